import Logging
import TandemBus
import TandemWire

/// Asks the config-advisor for this drafter's K (and, with `--model auto`, its draft model) about the
/// target it actually drafts for.
///
/// The drafter does not know its verifiers' model when it starts: sessions name it
/// (``SessionStart/targetModel``). So the link asks once at start about the best guess (an emulation
/// trace's target, the gateway's served model with `--model auto`, else the default target) and again
/// whenever a session brings a target it has not asked about; the newest answer wins. With a device
/// profile (`--profile`, from `tandem profile`) the query carries it, so the advisor chooses K from the
/// device's measured draft time per K, network and energy (docs/alignment.md) rather than from the
/// device's tokens/s alone. If the advisor is down the drafter keeps the K it has (the flag's, or the
/// last advice). ``readvise()`` asks about the newest target again (a drafter with `--model auto` does so
/// periodically, so that a change in the advisor's measurements can change its model).
actor AdvisorLink {
    private let context: BusContext
    private let endpoint: String
    private let device: DeviceProfile
    private let edgeProfile: EdgeDeviceProfile?
    private let objective: Objective
    /// The draft models this drafter can run, for a target (the query's candidates).
    private let candidates: @Sendable (String) async -> [String]
    private let apply: @Sendable (AdvisorRecommendation, String) async -> Void
    private let logger: Logger
    private var asked: Set<String> = []
    private var newestTarget: String?

    init(context: BusContext, endpoint: String, device: DeviceProfile, edgeProfile: EdgeDeviceProfile?,
         objective: Objective = .goodput, candidates: @escaping @Sendable (String) async -> [String],
         apply: @escaping @Sendable (AdvisorRecommendation, String) async -> Void, logger: Logger) {
        self.context = context
        self.endpoint = endpoint
        self.device = device
        self.edgeProfile = edgeProfile
        self.objective = objective
        self.candidates = candidates
        self.apply = apply
        self.logger = logger
    }

    /// A drafter with a fixed model: the advice's K is all it uses.
    init(context: BusContext, endpoint: String, device: DeviceProfile, edgeProfile: EdgeDeviceProfile?,
         draftModel: String, apply: @escaping @Sendable (Int) -> Void, logger: Logger) {
        self.init(context: context, endpoint: endpoint, device: device, edgeProfile: edgeProfile,
                  candidates: { _ in [draftModel] }, apply: { advice, _ in apply(advice.k) }, logger: logger)
    }

    /// Asks about `target` unless it was asked about before (an answer or a failure counts: one query per
    /// target per process, so a session start never waits on it).
    func advise(target: String) async {
        guard asked.insert(target).inserted else { return }
        newestTarget = target
        await query(target)
    }

    /// Asks again about the newest target (nothing when none was asked about yet).
    func readvise() async {
        guard let target = newestTarget else { return }
        await query(target)
    }

    /// One query; the answer is applied, a failure logged.
    private func query(_ target: String) async {
        do {
            let advice = try await ask(target: target)
            await apply(advice, target)
            logger.info("config-advisor recommends \(advice.draftModel) K=\(advice.k) (\(advice.basis))",
                        metadata: ["target": "\(target)"])
        } catch {
            logger.info("config-advisor not reached or gave no advice; K stays",
                        metadata: ["target": "\(target)", "error": "\(error)"])
        }
    }

    /// The advisor's answer about `target`, or the reason there is none.
    func ask(target: String, timeout: Duration = .seconds(3)) async throws -> AdvisorRecommendation {
        let client = try BusEndpoint.dealer(context: context, connect: endpoint, logger: logger)
        defer { Task { await client.close() } }
        let query = AdvisorQuery(device: device, objective: objective, targetModel: target,
                                 candidates: await candidates(target), edgeProfile: edgeProfile)
        let reply = try await client.call(.advise(query), timeout: timeout)
        switch reply {
        case .advice(let advice): return advice
        case .error(let error): throw error
        default: throw ErrorReply(code: .unexpectedKind, message: "config-advisor answered \(reply.kind.rawValue)")
        }
    }
}
