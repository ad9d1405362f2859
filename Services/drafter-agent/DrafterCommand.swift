import ArgumentParser
import Foundation
import Logging
import TandemBus
import TandemEngine
import TandemModels
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

    @Option(help: "Draft model: catalog name, GGUF path, or 'auto' (the config-advisor chooses, the gateway ships it) [TANDEM_DRAFT_MODEL].")
    var model: String?

    @Option(help: "With --model auto: the gateway's HTTP address to download the model from [TANDEM_MODEL_SERVER] (default: the address the gateway reports on its control socket).")
    var modelServer: String?

    @Option(help: "With --model auto: the local model store downloads are kept in [TANDEM_DRAFT_MODEL_CACHE] (default: $TANDEM_MODELS or ~/.cache/tandem/models).")
    var modelCache: String?

    @Option(help: "With --model auto: only these shipped models (comma-separated names) are offered to the config-advisor [TANDEM_DRAFT_CANDIDATES].")
    var autoCandidates: String?

    @Option(help: "With --model auto: the target the advice is about [TANDEM_TARGET_MODEL] (default: the gateway's served model).")
    var targetModel: String?

    @Option(help: "With --model auto: API key of the gateway's model endpoint [TANDEM_API_KEY].")
    var apiKey: String?

    @Option(help: "With --model auto: seconds between asking the config-advisor again (its choice may change the model); 0 = only per new target [TANDEM_READVISE_SECONDS] (default: 300).")
    var readviseSeconds: Double?

    @Option(help: "With --model auto: seconds the start may wait for the gateway, the advisor and the download [TANDEM_AUTO_TIMEOUT] (default: 600).")
    var autoTimeout: Double?

    @Option(help: "What the config-advisor optimises for this device: goodput, cost or energy [TANDEM_OBJECTIVE] (default: goodput).")
    var objective: String?

    @Option(help: "Device profile name [TANDEM_DEVICE].")
    var device: String?

    @Option(help: "Device power while drafting, watts [TANDEM_DEVICE_POWER_WATTS].")
    var powerWatts: Double?

    @Option(help: "Compute throttle, 0 < t <= 1 (1 = full speed); emulates a slower device [TANDEM_DEVICE_THROTTLE].")
    var throttle: Double?

    @Option(help: "Compute threads for the draft model [TANDEM_DRAFT_THREADS].")
    var threads: Int?

    @Option(help: "Scheduling niceness of the draft model's compute threads, 0-19: on a machine shared with a verifier, let the verifier win the cores [TANDEM_DRAFTER_NICE] (default: 0).")
    var nice: Int?

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f16 or f32 [TANDEM_KV_TYPE] (default: \(KVCacheType.default)).")
    var kvType: String?

    @Option(help: "Draft KV cache memory budget for all sessions, MiB [TANDEM_DRAFTER_KV_BUDGET_MB] (default: 1024).")
    var kvBudgetMb: Int?

    @Option(help: "Draft length K when the session and the config-advisor do not fix one [TANDEM_K].")
    var k: Int?

    @Option(help: "Largest K the speculation controller may use [TANDEM_K_MAX].")
    var kMax: Int?

    @Flag(inversion: .prefixedNo, help: "Dynamic drafting: stop a round early when the next draft token is likely rejected.")
    var dynamic = true

    @Flag(name: .customLong("load-aware"), inversion: .prefixedNo,
          help: "Plan K each round from the verifier's observed load, K = 0 included (needs --dynamic).")
    var loadAware = true

    @Option(help: "Draft the next round while this one is verified: auto (when it likely pays and no other session waits for the device), on, off; off where the drafter shares the verifier's cores [TANDEM_DRAFT_AHEAD] (default: auto).")
    var draftAhead: String?

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
            let ahead = Setting.string(draftAhead, env: "TANDEM_DRAFT_AHEAD", default: config.draftAhead.rawValue)
            guard let aheadMode = DrafterCore.DraftAheadMode(rawValue: ahead) else {
                throw ValidationError("--draft-ahead must be auto, on or off")
            }
            config.draftAhead = aheadMode
            let replicaID = common.resolvedReplicaID(role: "drafter")
            let deviceCount = try Setting.int(devices, env: "TANDEM_DEVICES", default: 0)
            guard deviceCount >= 0 else { throw ValidationError("--devices must be non-negative") }
            let prefix = Setting.string(devicePrefix, env: "TANDEM_DEVICE_PREFIX", default: replicaID)
            let hosted: [String]? = deviceCount > 0 ? (1...deviceCount).map { "\(prefix)-\($0)" } : nil

            let source: any DraftSource
            var auto: AutoStart?
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
                let kv = try KVCacheType(flag: kvType, environment: Setting.optionalString(nil, env: "TANDEM_KV_TYPE"))
                let (maxK, draftSupport) = (config.maxK, config.draftSupport)
                let kvBudgetBytes = try Setting.int(kvBudgetMb, env: "TANDEM_DRAFTER_KV_BUDGET_MB", default: 1024) << 20
                let niceness = try Setting.int(nice, env: "TANDEM_DRAFTER_NICE", default: 0)
                guard (0...19).contains(niceness) else { throw ValidationError("--nice must be in 0...19") }
                let makeSource: @Sendable (ModelLoader.Loaded, String) -> ModelDraftSource = { loaded, name in
                    let engine = ForwardEngine(model: loaded.model, threads: profile.threads, kvType: kv, logger: logger)
                    let source = ModelDraftSource(engine: engine, tokenizer: loaded.tokenizer, modelName: name,
                                                  quantization: loaded.model.gguf.dominantTypeName, device: profile,
                                                  devices: hosted, maxK: maxK, draftSupport: draftSupport,
                                                  kvBudgetBytes: kvBudgetBytes)
                    // The engine's and the source's compute threads exist now (again after a model swap).
                    if niceness > 0 {
                        let lowered = ThreadPriority.lowerEveryThread(to: Int32(niceness))
                        logger.info("lowered the drafter's thread priority", metadata: [
                            "niceness": "\(niceness)", "threads": "\(lowered)"])
                    }
                    return source
                }
                let modelName = Setting.string(model, env: "TANDEM_DRAFT_MODEL", default: ModelLoader.defaultDraft)
                if modelName == "auto" {
                    // The advisor chooses the model among those the gateway ships (docs/model-shipping.md).
                    let autoModel = AutoDraftModel(settings: try autoSettings(), context: context,
                                                   gatewayControl: try common.gatewayControlEndpoint(), logger: logger)
                    let asker = AdvisorLink(context: context, endpoint: try common.advisorEndpoint(), device: profile,
                                            edgeProfile: edgeProfile, objective: try resolvedObjective(),
                                            candidates: { await autoModel.candidates(for: $0) },
                                            apply: { _, _ in }, logger: logger)
                    let start = try await autoModel.start(advisor: asker)
                    let loaded = try await ModelLoader.load(start.fetched.url.path, logger: logger)
                    let reloadable = ReloadableDraftSource(makeSource(loaded, start.entry.name))
                    targetHint = start.target
                    source = reloadable
                    auto = AutoStart(model: autoModel, start: start, source: reloadable, load: { url, name in
                        makeSource(try await ModelLoader.load(url.path, logger: logger), name)
                    })
                } else {
                    let loaded = try await ModelLoader.load(modelName, logger: logger)
                    source = makeSource(loaded, loaded.name)
                }
            }
            let events = try EventPublisher(context: context, connect: try common.eventsPubEndpoint(), logger: logger)
            let core = DrafterCore(source: source, device: profile, replicaID: replicaID, configuration: config,
                                   context: context, events: events, logger: logger)
            // With --model auto: the advice's model replaces the current one at session boundaries.
            var reloader: DraftModelReloader?
            if let auto {
                core.setAdvisedK(auto.start.advice.k)
                reloader = DraftModelReloader(auto: auto.model, source: auto.source, current: auto.start.entry.name,
                                              load: auto.load, swapped: { core.announce($0) }, logger: logger)
            }
            // The config-advisor's K for this device (docs/design.md §10), asked again for each new target
            // model sessions bring; the flag's K stays while it is down.
            let candidates: @Sendable (String) async -> [String]
            if let autoModel = auto?.model {
                candidates = { await autoModel.candidates(for: $0) }
            } else {
                let fixed = source.modelName
                candidates = { _ in [fixed] }
            }
            let advisor = AdvisorLink(context: context, endpoint: try common.advisorEndpoint(), device: profile,
                                      edgeProfile: edgeProfile, objective: try resolvedObjective(),
                                      candidates: candidates, apply: { [reloader] advice, _ in
                                          core.setAdvisedK(advice.k)
                                          await reloader?.consider(advice)
                                      }, logger: logger)
            core.observeTargets { target in Task { await advisor.advise(target: target) } }
            Task { [targetHint] in await advisor.advise(target: targetHint) }
            let readvise = try Setting.double(readviseSeconds, env: "TANDEM_READVISE_SECONDS", default: 300)
            let readvising: Task<Void, Never>? = auto != nil && readvise > 0 ? Task {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: .milliseconds(Int64(readvise * 1000))) } catch { return }
                    await advisor.readvise()
                }
            } : nil
            try await ReplicaMain.run(
                role: .drafter, process: process, model: source.modelName, device: profile,
                attributes: source.attributes.merging(
                    ["k": "\(config.defaultK)", "k_max": "\(config.maxK)", "dynamic": "\(dynamic)",
                     "load_aware": "\(loadAware)", "draft_ahead": config.draftAhead.rawValue],
                    uniquingKeysWith: { a, _ in a }),
                devices: source.devices,
                load: { core.load },
                handler: { envelope, _ in await core.handle(envelope.message) },
                agentReady: { core.attach($0) })
            readvising?.cancel()
            await core.shutdown()
            await events.close()
        }
    }

    /// A drafter started with `--model auto`: what it started with, and how it loads a later model.
    struct AutoStart: Sendable {
        var model: AutoDraftModel
        var start: AutoDraftModel.Start
        var source: ReloadableDraftSource
        var load: @Sendable (URL, String) async throws -> ModelDraftSource
    }

    func resolvedObjective() throws -> Objective {
        let raw = Setting.string(objective, env: "TANDEM_OBJECTIVE", default: "goodput")
        guard let value = Objective(rawValue: raw) else { throw ValidationError("objective must be goodput, cost or energy") }
        return value
    }

    /// `--model auto`'s settings from flags and environment.
    func autoSettings() throws -> AutoDraftModel.Settings {
        let cache = Setting.optionalString(modelCache, env: "TANDEM_DRAFT_MODEL_CACHE")
            .map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) } ?? ModelStore.defaultDirectory
        var settings = AutoDraftModel.Settings(cacheDirectory: cache)
        settings.modelServer = Setting.optionalString(modelServer, env: "TANDEM_MODEL_SERVER")
        settings.apiKey = Setting.optionalString(apiKey, env: "TANDEM_API_KEY")
        settings.target = Setting.optionalString(targetModel, env: "TANDEM_TARGET_MODEL")
        settings.allowed = Setting.optionalString(autoCandidates, env: "TANDEM_DRAFT_CANDIDATES")
            .map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        let timeout = try Setting.double(autoTimeout, env: "TANDEM_AUTO_TIMEOUT", default: 600)
        guard timeout > 0 else { throw ValidationError("--auto-timeout must be positive") }
        settings.startTimeout = .milliseconds(Int64(timeout * 1000))
        return settings
    }
}
