import ArgumentParser
import Foundation
import Logging
import TandemBus
import TandemService
import TandemSpeculative
import TandemWire

/// `config-advisor`: ConfigSpec's profiling-based configuration choice as a service (docs/design.md §10).
///
/// Answers `advise` (device profile, objective, target, candidate drafts) with the draft model,
/// quantization and K that maximise the objective (``ConfigAdvisorPolicy``), from the metrics-store's
/// acceptance, profile and batch-latency answers (cached a few seconds, ``MeasurementCache``), falling
/// back to documented priors (``AdvisorPriors``, `basis = prior`) when the store has no data or is down.
/// Verification time vs K comes from the estimator's fitted model when it has enough data
/// (``VerifyLineCache``), else from the store's batch latency, else from the prior.
///
/// Prints `READY advisor=<bound endpoint>` once bound.
@main
struct ConfigAdvisorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config-advisor",
        abstract: "Tandem config-advisor: draft model, quantization and K per device and objective.")

    @OptionGroup var common: CommonOptions

    @Option(help: "ROUTER bind endpoint; tcp://127.0.0.1:* picks a free port [TANDEM_ADVISOR_BIND, default tcp://127.0.0.1:5575].")
    var bind: String?

    @Option(help: "Smallest draft length considered [TANDEM_ADVISOR_MIN_K, default 1].")
    var minK: Int?

    @Option(help: "Largest draft length considered [TANDEM_ADVISOR_MAX_K, default 16].")
    var maxK: Int?

    @Option(help: "Seconds metrics-store answers are reused [TANDEM_ADVISOR_CACHE_S, default 5].")
    var cacheSeconds: Double?

    @Option(help: "Timeout of each metrics-store query, ms [TANDEM_ADVISOR_QUERY_TIMEOUT_MS, default 500].")
    var queryTimeoutMs: Int?

    @Option(help: "Device power while waiting for verification, as a fraction of drafting power; 0 counts drafting energy only as docs/design.md §11 does [TANDEM_ADVISOR_IDLE_POWER_FRACTION, default 0].")
    var idlePowerFraction: Double?

    @Option(help: "Alignment profile JSON (`tandem profile --pair --out`), repeatable: the joint (draft variant, K) choice for drafters that send their device profile.")
    var alignment: [String] = []

    @Flag(inversion: .prefixedNo, help: "Ask the estimator (--estimator) for the target's verification time vs K.")
    var useEstimator = true

    @OptionGroup var registration: RegistrationOptions

    func run() async throws {
        let bindEndpoint = try BusAddress.resolve(flag: bind, env: "TANDEM_ADVISOR_BIND", default: DefaultEndpoints.advisor)
        let lowK = try Setting.int(minK, env: "TANDEM_ADVISOR_MIN_K", default: 1)
        let highK = try Setting.int(maxK, env: "TANDEM_ADVISOR_MAX_K", default: 16)
        guard lowK >= 1, highK >= lowK, highK <= 64 else {
            throw ValidationError("draft lengths must satisfy 1 <= min-k <= max-k <= 64 (got \(lowK)...\(highK))")
        }
        let ttl = try Setting.double(cacheSeconds, env: "TANDEM_ADVISOR_CACHE_S", default: 5)
        let timeoutMs = try Setting.int(queryTimeoutMs, env: "TANDEM_ADVISOR_QUERY_TIMEOUT_MS", default: 500)
        let idle = try Setting.double(idlePowerFraction, env: "TANDEM_ADVISOR_IDLE_POWER_FRACTION", default: 0)
        guard ttl >= 0, timeoutMs > 0, idle >= 0 else {
            throw ValidationError("cache seconds and idle power fraction must be >= 0, query timeout > 0")
        }
        var policy = ConfigAdvisorPolicy()
        policy.kRange = lowK...highK
        policy.idlePowerFraction = idle
        for file in alignment {
            do { policy.alignmentFiles += try AlignmentProfile.load(path: file) } catch {
                throw ValidationError("\(error)")
            }
        }

        try await ServiceProcess.run("config-advisor", logger: "tandem.config-advisor", common: common,
                                     replica: .configAdvisor) { process in
            let (context, logger) = (process.context, process.logger)
            let storeEndpoint = try common.metricsQueryEndpoint()
            let client = try MetricsStoreClient(context: context, connect: storeEndpoint,
                                                timeout: .milliseconds(timeoutMs), logger: logger)
            let cache = MeasurementCache(ttl: .milliseconds(Int(ttl * 1000))) { await client.fetch() }
            var clients = [client.endpoint]
            var verifyLines: VerifyLineCache?
            if useEstimator {
                let estimator = try BusEndpoint.dealer(context: context, connect: common.estimatorEndpoint(), logger: logger)
                clients.append(estimator)
                verifyLines = VerifyLineCache(
                    ttl: .milliseconds(Int(ttl * 1000)),
                    query: VerifyLineCache.estimatorQuery(endpoint: estimator, timeout: .milliseconds(timeoutMs),
                                                          logger: logger))
            }
            let server = try ConfigAdvisorServer(context: context, bind: bindEndpoint, policy: policy, cache: cache,
                                                 verifyLines: verifyLines, clientEndpoints: clients,
                                                 replicaID: common.replicaID(of: .configAdvisor), logger: logger)
            let bound = server.boundEndpoint
            let advertised = common.advertise(bound)
            logger.info("config-advisor running", metadata: [
                "bind": "\(bound)", "advertised": "\(advertised)", "metrics_query": "\(storeEndpoint)",
                "k_range": "\(lowK)...\(highK)", "cache_s": "\(ttl)"])
            try await ReplicaMain.run(role: .configAdvisor, process: process, register: registration.register,
                                      advertisedEndpoint: advertised, attributes: ["metrics_query": storeEndpoint],
                                      services: [server], ready: ["advisor": bound])
        }
    }
}
