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

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f16 or f32 [TANDEM_KV_TYPE] (default: \(KVCacheType.default)).")
    var kvType: String?

    @Option(help: "Draft length K when the session and the config-advisor do not fix one [TANDEM_K].")
    var k: Int?

    @Option(help: "Largest K the speculation controller may use [TANDEM_K_MAX].")
    var kMax: Int?

    @Flag(inversion: .prefixedNo, help: "Dynamic drafting: stop a round early when the next draft token is likely rejected.")
    var dynamic = true

    @Flag(name: .customLong("load-aware"), inversion: .prefixedNo,
          help: "Plan K each round from the verifier's observed load, K = 0 included (needs --dynamic).")
    var loadAware = true

    @Option(help: "Edge devices this process hosts, with ids PREFIX-1...N; requests name one with X-Tandem-Device [TANDEM_DEVICES].")
    var devices: Int?

    @Option(name: .customLong("device-prefix"), help: "Prefix of hosted device ids [TANDEM_DEVICE_PREFIX] (default: the replica id).")
    var devicePrefix: String?

    @Option(help: "Emulate devices: replay the drafts of this trace (tandem fleet record) instead of running a model [TANDEM_EMULATE].")
    var emulate: String?

    @Option(help: "Device profile JSON (tandem profile): emulated devices' draft time and network; with a real model, what the config-advisor chooses K from [TANDEM_DEVICE_PROFILE].")
    var profile: String?

    func run() async throws {
        try await ServiceProcess.run("drafter-agent", logger: "tandem.drafter", common: common) { process in
            let (context, logger) = (process.context, process.logger)
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

            config.loadAware = loadAware
            let replicaID = common.resolvedReplicaID(role: "drafter")
            let deviceCount = try Setting.int(devices, env: "TANDEM_DEVICES", default: 0)
            guard deviceCount >= 0 else { throw ValidationError("--devices must be non-negative") }
            let prefix = Setting.string(devicePrefix, env: "TANDEM_DEVICE_PREFIX", default: replicaID)
            let hosted: [String]? = deviceCount > 0 ? (1...deviceCount).map { "\(prefix)-\($0)" } : nil

            let source: any DraftSource
            var targetHint = ModelLoader.defaultTarget
            let edgeProfile = try Setting.optionalString(self.profile, env: "TANDEM_DEVICE_PROFILE")
                .map { try EdgeDeviceProfile.load(path: $0) }
            if let tracePath = Setting.optionalString(emulate, env: "TANDEM_EMULATE") {
                guard let deviceProfile = edgeProfile else {
                    throw ValidationError("--emulate needs --profile: emulated devices take their draft time from a device profile")
                }
                let trace = try FleetTrace.load(path: tracePath)
                config.maxK = min(config.maxK, trace.kMax)
                config.defaultK = min(config.defaultK, config.maxK)
                targetHint = trace.targetModel
                source = EmulatedDraftSource(trace: trace, tracePath: tracePath, profile: deviceProfile,
                                             devices: hosted ?? [replicaID], logger: logger)
                logger.notice("EMULATED devices: drafts replayed from a recorded trace, device time from a profile", metadata: [
                    "trace": "\(tracePath)", "draft": "\(trace.draftModel)", "target": "\(trace.targetModel)",
                    "profile": "\(deviceProfile.name)", "profile_source": "\(deviceProfile.source)",
                    "devices": "\(hosted?.count ?? 1)"])
            } else {
                let modelName = Setting.string(model, env: "TANDEM_DRAFT_MODEL", default: ModelLoader.defaultDraft)
                let loaded = try await ModelLoader.load(modelName, logger: logger)
                let engine = ForwardEngine(model: loaded.model, threads: profile.threads, kvType: try KVCacheType(flag: kvType, environment: Setting.optionalString(nil, env: "TANDEM_KV_TYPE")), logger: logger)
                source = ModelDraftSource(engine: engine, tokenizer: loaded.tokenizer, modelName: loaded.name,
                                          quantization: loaded.model.gguf.dominantTypeName, device: profile,
                                          devices: hosted, maxK: config.maxK, draftSupport: config.draftSupport)
            }
            let events = try EventPublisher(context: context, connect: try common.eventsPubEndpoint(), logger: logger)
            let core = DrafterCore(source: source, device: profile, replicaID: replicaID, configuration: config,
                                   context: context, events: events, logger: logger)
            // The config-advisor's K for this device (docs/design.md §10), asked again for each new target
            // model sessions bring; the flag's K stays while it is down.
            let advisor = AdvisorLink(context: context, endpoint: try common.advisorEndpoint(), device: profile,
                                      edgeProfile: edgeProfile, draftModel: source.modelName,
                                      apply: { core.setAdvisedK($0) }, logger: logger)
            core.observeTargets { target in Task { await advisor.advise(target: target) } }
            Task { [targetHint] in await advisor.advise(target: targetHint) }
            try await ReplicaMain.run(
                role: .drafter, process: process, model: source.modelName, device: profile,
                attributes: source.attributes.merging(
                    ["k": "\(config.defaultK)", "k_max": "\(config.maxK)", "dynamic": "\(dynamic)",
                     "load_aware": "\(loadAware)"], uniquingKeysWith: { a, _ in a }),
                devices: source.devices,
                load: { core.load },
                handler: { envelope, _ in await core.handle(envelope.message) },
                agentReady: { core.attach($0) })
            await core.shutdown()
            await events.close()
        }
    }
}
