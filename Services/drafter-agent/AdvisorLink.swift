import Logging
import TandemBus
import TandemWire

/// Asks the config-advisor for this drafter's K about the target it actually drafts for.
///
/// The drafter does not know its verifiers' model when it starts: sessions name it
/// (``SessionStart/targetModel``). So the link asks once at start about the best guess (an emulation
/// trace's target, else the default target) and again whenever a session brings a target it has not
/// asked about; the newest answer wins. With a device profile (`--profile`, from `tandem profile`) the
/// query carries it, so the advisor chooses K from the device's measured draft time per K, network and
/// energy (docs/alignment.md) rather than from the device's tokens/s alone. If the advisor is down the
/// drafter keeps the K it has (the flag's, or the last advice).
actor AdvisorLink {
    private let context: BusContext
    private let endpoint: String
    private let device: DeviceProfile
    private let edgeProfile: EdgeDeviceProfile?
    private let draftModel: String
    private let apply: @Sendable (Int) -> Void
    private let logger: Logger
    private var asked: Set<String> = []

    init(context: BusContext, endpoint: String, device: DeviceProfile, edgeProfile: EdgeDeviceProfile?,
         draftModel: String, apply: @escaping @Sendable (Int) -> Void, logger: Logger) {
        self.context = context
        self.endpoint = endpoint
        self.device = device
        self.edgeProfile = edgeProfile
        self.draftModel = draftModel
        self.apply = apply
        self.logger = logger
    }

    /// Asks about `target` unless it was asked about before (an answer or a failure counts: one query per
    /// target per process, so a session start never waits on it).
    func advise(target: String) async {
        guard asked.insert(target).inserted else { return }
        do {
            let client = try BusEndpoint.dealer(context: context, connect: endpoint, logger: logger)
            defer { Task { await client.close() } }
            let query = AdvisorQuery(device: device, objective: .goodput, targetModel: target,
                                     candidates: [draftModel], edgeProfile: edgeProfile)
            let reply = try await client.call(.advise(query), timeout: .seconds(3))
            guard case .advice(let advice) = reply else {
                logger.info("config-advisor gave no advice", metadata: ["target": "\(target)", "reply": "\(reply.kind)"])
                return
            }
            apply(advice.k)
            logger.info("config-advisor recommends K=\(advice.k) (\(advice.basis))", metadata: ["target": "\(target)"])
        } catch {
            logger.info("config-advisor not reached; K stays", metadata: ["target": "\(target)", "error": "\(error)"])
        }
    }
}
