import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TandemBus
import TandemModels
import TandemService
import TandemWire

/// The config-advisor's bus side: a ROUTER answering `advise` (``ConfigAdvisorPolicy`` over the
/// cached metrics-store measurements) and `health`.
///
/// ``start()``/``stop()`` let tests run it in-process; as a lifecycle `Service`, ``run()`` serves
/// until graceful shutdown.
final class ConfigAdvisorServer: Service, Sendable {
    let endpoint: BusEndpoint
    let policy: ConfigAdvisorPolicy
    let cache: MeasurementCache
    /// Verification lines from the estimator (nil: not used).
    let verifyLines: VerifyLineCache?
    let replicaID: ReplicaID
    /// Closed on stop (the metrics-store and estimator DEALERs).
    private let clientEndpoints: [BusEndpoint]
    private let logger: Logger
    private let started = ContinuousClock.now
    private let answered = Atomic<Int>(0)
    private let measuredAnswers = Atomic<Int>(0)

    init(context: BusContext, bind: String, policy: ConfigAdvisorPolicy, cache: MeasurementCache,
         verifyLines: VerifyLineCache? = nil, clientEndpoints: [BusEndpoint] = [], replicaID: ReplicaID,
         logger: Logger) throws {
        self.policy = policy
        self.cache = cache
        self.verifyLines = verifyLines
        self.clientEndpoints = clientEndpoints
        self.replicaID = replicaID
        self.logger = logger
        self.endpoint = try BusEndpoint.router(context: context, bind: bind, logger: logger)
    }

    /// The endpoint actually bound (ephemeral port resolved).
    var boundEndpoint: String { endpoint.boundEndpoint ?? "" }

    func start() throws {
        try endpoint.serve(logger: logger) { [self] envelope, _ in await respond(envelope.message) }
    }

    func stop() async {
        await endpoint.close()
        for client in clientEndpoints { await client.close() }
    }

    func run() async throws {
        try start()
        try? await gracefulShutdown()
        await stop()
    }

    func respond(_ message: WireMessage) async -> WireMessage? {
        switch message {
        case .advise(let query):
            var measurements = await cache.measurements()
            if let verifyLines {
                let target = ModelCatalog.canonicalName(query.targetModel)
                if let line = await verifyLines.line(for: target) { measurements.verifyLines[target] = line }
            }
            do {
                if let joint = try policy.jointRecommend(query, measurements: measurements) {
                    let r = joint.recommendation
                    answered.add(1, ordering: .relaxed)
                    if r.basis == "measured" { measuredAnswers.add(1, ordering: .relaxed) }
                    logger.debug("joint advice", metadata: [
                        "device": "\(query.device.name)", "objective": "\(query.objective.rawValue)",
                        "draft": "\(r.draftModel)", "quantization": "\(r.quantization)", "k": "\(r.k)",
                        "value": "\(r.objectiveValue)", "basis": "\(r.basis)", "variants": "\(joint.variants.count)"])
                    return .advice(r)
                }
                let decision = try policy.recommend(query, measurements: measurements)
                let r = decision.recommendation
                answered.add(1, ordering: .relaxed)
                if r.basis == "measured" { measuredAnswers.add(1, ordering: .relaxed) }
                logger.debug("advice", metadata: [
                    "device": "\(query.device.name)", "objective": "\(query.objective.rawValue)",
                    "target": "\(query.targetModel)", "draft": "\(r.draftModel)", "quantization": "\(r.quantization)",
                    "k": "\(r.k)", "value": "\(r.objectiveValue)", "basis": "\(r.basis)",
                    "candidates": "\(decision.evaluations.count)"])
                return .advice(r)
            } catch {
                return .error(error)
            }
        case .health:
            return .healthReply(await health())
        default:
            return nil
        }
    }

    func health() async -> HealthReply {
        let measurements = await cache.measurements()
        var details: [String: String] = [
            "endpoint": boundEndpoint,
            "answered": String(answered.load(ordering: .relaxed)),
            "answered_measured": String(measuredAnswers.load(ordering: .relaxed)),
            "acceptance_rows": String(measurements.acceptance.count),
            "profile_rows": String(measurements.profiles.count),
            "alignment_rows": String(measurements.alignment.count),
            "alignment_files": String(policy.alignmentFiles.count),
            "latency_rows": String(measurements.batchLatency.count),
            "store_fetches": String(await cache.fetches),
            "store_failed_fetches": String(await cache.failedFetches),
            "k_range": "\(policy.kRange.lowerBound)...\(policy.kRange.upperBound)",
        ]
        if let age = await cache.age() { details["cache_age_s"] = String(format: "%.1f", age) }
        return HealthReply(role: .configAdvisor, replicaID: replicaID, status: "ok",
                           uptimeSeconds: ServiceClock.millis(since: started) / 1000, details: details)
    }
}
