import ArgumentParser
import Logging
import TandemBus
import TandemEngine
import TandemServing
import TandemService
import TandemTelemetry
import TandemWire

/// `drafter-agent`: an edge device. Runs a draft model, drafts K tokens per round for each of its
/// sessions, sends them to the session's verifier and reports committed tokens to the gateway.
@main
struct DrafterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drafter-agent", abstract: "Tandem drafter: drafts tokens with a small model on an edge device.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Draft model: catalog name or GGUF path [TANDEM_DRAFT_MODEL].")
    var model: String?

    @Option(help: "Device profile name [TANDEM_DEVICE].")
    var device: String?

    @Option(help: "Device power while drafting, watts [TANDEM_DEVICE_POWER_WATTS].")
    var powerWatts: Double?

    @Option(help: "Compute throttle, 0 < t <= 1 (1 = full speed); emulates a slower device [TANDEM_DEVICE_THROTTLE].")
    var throttle: Double?

    @Option(help: "Compute threads for the draft model [TANDEM_DRAFT_THREADS].")
    var threads: Int?

    @Option(help: "Draft length K when the session and the config-advisor do not fix one [TANDEM_K].")
    var k: Int?

    @Option(help: "Largest K the speculation controller may use [TANDEM_K_MAX].")
    var kMax: Int?

    @Flag(inversion: .prefixedNo, help: "Dynamic drafting: stop a round early when the next draft token is likely rejected.")
    var dynamic = true

    func run() async throws {
        TelemetryBootstrap.bootstrap(label: "drafter-agent", level: common.resolvedLogLevel())
        let logger = Logger(label: "tandem.drafter")
        let profile = DeviceProfile(
            name: Setting.string(device, env: "TANDEM_DEVICE", default: "local"),
            powerWatts: try Setting.double(powerWatts, env: "TANDEM_DEVICE_POWER_WATTS", default: 15),
            computeThrottle: try Setting.double(throttle, env: "TANDEM_DEVICE_THROTTLE", default: 1),
            threads: try Setting.int(threads, env: "TANDEM_DRAFT_THREADS", default: 1))
        guard profile.computeThrottle > 0, profile.computeThrottle <= 1 else {
            throw ValidationError("throttle must be in (0, 1]")
        }
        var config = DrafterCore.Configuration()
        config.defaultK = try Setting.int(k, env: "TANDEM_K", default: config.defaultK)
        config.maxK = try Setting.int(kMax, env: "TANDEM_K_MAX", default: max(config.maxK, config.defaultK))
        config.dynamic = dynamic
        guard config.defaultK >= 1, config.maxK >= config.defaultK else { throw ValidationError("need 1 <= k <= k-max") }

        let modelName = Setting.string(model, env: "TANDEM_DRAFT_MODEL", default: ModelLoader.defaultDraft)
        let loaded = try await ModelLoader.load(modelName, logger: logger)
        let engine = ForwardEngine(model: loaded.model, threads: profile.threads, logger: logger)
        let context = try BusContext()
        let replicaID = common.resolvedReplicaID(role: "drafter")
        let events = try EventPublisher(context: context, connect: try common.eventsPubEndpoint(), logger: logger)
        let quantization = loaded.model.gguf.dominantTypeName
        let core = DrafterCore(engine: engine, tokenizer: loaded.tokenizer, modelName: loaded.name,
                               quantization: quantization, device: profile, replicaID: replicaID,
                               configuration: config, context: context, events: events, logger: logger)
        let advisor = try common.advisorEndpoint()
        Task {
            // The config-advisor's K for this device (design.md §2); the flag's K stays if it is down.
            let client = try BusEndpoint.dealer(context: context, connect: advisor, logger: logger)
            defer { Task { await client.close() } }
            let query = AdvisorQuery(device: profile, objective: .goodput, targetModel: ModelLoader.defaultTarget,
                                     candidates: [loaded.name])
            if case .advice(let advice)? = try? await client.call(.advise(query), timeout: .seconds(3)) {
                core.setAdvisedK(advice.k)
                logger.info("config-advisor recommends K=\(advice.k) (\(advice.basis))")
            }
        }
        try await ReplicaMain.run(
            role: .drafter, common: common, context: context, logger: logger, model: loaded.name, device: profile,
            attributes: ["k": "\(config.defaultK)", "k_max": "\(config.maxK)", "dynamic": "\(dynamic)"],
            load: { core.load },
            handler: { envelope, _ in await core.handle(envelope.message) },
            agentReady: { core.attach($0) })
        await core.shutdown()
        await events.close()
    }
}
