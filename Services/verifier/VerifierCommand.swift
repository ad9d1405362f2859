import ArgumentParser
import Logging
import TandemBus
import TandemEngine
import TandemServing
import TandemService
import TandemSpeculative
import TandemTelemetry
import TandemWire

/// `verifier`: runs the target model, keeps per-session KV caches, batches verification requests
/// from many drafters into one forward pass and applies the lossless acceptance rule.
@main
struct VerifierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verifier", abstract: "Tandem verifier: batched lossless verification with the target model.")

    @OptionGroup var common: CommonOptions

    @Option(help: "ROUTER bind endpoint for verify requests [TANDEM_VERIFY_BIND].")
    var bind: String?

    @Option(help: "Target model: catalog name or GGUF path [TANDEM_TARGET_MODEL].")
    var model: String?

    @Option(help: "Compute threads for the model [TANDEM_THREADS].")
    var threads: Int?

    @Option(help: "Most sessions verified in one batch [TANDEM_MAX_BATCH].")
    var maxBatch: Int?

    @Option(help: "Milliseconds an idle verifier waits to collect a batch [TANDEM_BATCH_WINDOW_MS].")
    var batchWindowMs: Int?

    @Option(help: "KV cache memory budget for all sessions, MiB [TANDEM_KV_BUDGET_MB].")
    var kvBudgetMb: Int?

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f16 or f32 [TANDEM_KV_TYPE] (default: \(KVCacheType.default)).")
    var kvType: String?

    @Option(help: "Batch scheduling: sloAware (default: earliest deadline first with the batch-time model) or firstCome (SLED) [TANDEM_SCHEDULER].")
    var scheduler: String?

    @Option(help: "A queued verify request is dropped once its deadline is past by more than this many ms (or twice its window, if larger) [TANDEM_REQUEST_EXPIRY_MS].")
    var requestExpiryMs: Int?

    @Option(help: "Prompt-lookup (n-gram) drafts for decode steps: priced (default: only what the batch-time model says pays), always, or off [TANDEM_PROMPT_LOOKUP].")
    var promptLookup: String?

    @Option(help: "Largest forward (positions) the start-up calibration of the batch-time curve measures; 0 skips it [TANDEM_CALIBRATE_POSITIONS] (default: 32).")
    var calibratePositions: Int?

    func run() async throws {
        try await ServiceProcess.run("verifier", logger: "tandem.verifier", common: common) { process in
            let (context, logger) = (process.context, process.logger)
            let modelName = Setting.string(model, env: "TANDEM_TARGET_MODEL", default: ModelLoader.defaultTarget)
            var config = VerifierCore.Configuration()
            config.maxBatchSequences = try Setting.int(maxBatch, env: "TANDEM_MAX_BATCH", default: config.maxBatchSequences)
            config.batchWindow = .milliseconds(try Setting.int(batchWindowMs, env: "TANDEM_BATCH_WINDOW_MS", default: 2))
            config.kvBudgetBytes = try Setting.int(kvBudgetMb, env: "TANDEM_KV_BUDGET_MB", default: 2048) << 20
            config.expiryGraceMs = Double(try Setting.int(requestExpiryMs, env: "TANDEM_REQUEST_EXPIRY_MS",
                                                          default: Int(config.expiryGraceMs)))
            let policyName = Setting.string(scheduler, env: "TANDEM_SCHEDULER", default: "sloAware")
            guard let policy = SLOBatchScheduler.Policy(rawValue: policyName) else {
                throw ValidationError("unknown scheduler '\(policyName)' (firstCome, sloAware)")
            }
            config.policy = policy
            switch Setting.string(promptLookup, env: "TANDEM_PROMPT_LOOKUP", default: "priced") {
            case "priced": break
            case "always": config.lookupIgnoresCost = true
            case "off": config.promptLookup = nil
            case let other: throw ValidationError("unknown prompt lookup '\(other)' (priced, always, off)")
            }
            let threadCount = try Setting.int(threads, env: "TANDEM_THREADS", default: 2)

            let loaded = try await ModelLoader.load(modelName, logger: logger)
            config.endOfGeneration = loaded.tokenizer.endOfGenerationIDs
            let engine = ForwardEngine(model: loaded.model, threads: threadCount, kvType: try KVCacheType(flag: kvType, environment: Setting.optionalString(nil, env: "TANDEM_KV_TYPE")), logger: logger)
            let replicaID = common.resolvedReplicaID(role: "verifier")
            let events = try EventPublisher(context: context, connect: try common.eventsPubEndpoint(), logger: logger)
            let core = VerifierCore(engine: engine, modelName: loaded.name, replicaID: replicaID, configuration: config,
                                    events: events, logger: logger)
            let calibrationLimit = try Setting.int(calibratePositions, env: "TANDEM_CALIBRATE_POSITIONS", default: 32)
            let calibration = try await core.calibrate(maxPositions: calibrationLimit)
            if !calibration.isEmpty {
                logger.info("batch-time curve calibrated", metadata: [
                    "forward_ms": "\(calibration.map { "\($0.positions):\(String(format: "%.1f", $0.ms))" }.joined(separator: " "))"])
            }
            let verify = try BusEndpoint.router(
                context: context,
                bind: try BusAddress.resolve(flag: bind, env: "TANDEM_VERIFY_BIND", default: DefaultEndpoints.verify),
                logger: logger)
            try verify.serve(logger: logger) { envelope, _ in await core.handle(envelope.message) }
            let advertised = common.advertise(verify.boundEndpoint ?? "")
            try await ReplicaMain.run(
                role: .verifier, process: process, advertisedEndpoint: advertised,
                model: loaded.name,
                attributes: ["vocabulary": "\(loaded.model.config.vocabularySize)",
                             "context": "\(loaded.model.config.contextLength)", "scheduler": policy.rawValue],
                load: { core.load },
                handler: { envelope, _ in await core.handle(envelope.message) },
                agentReady: { agent in
                    // Sessions placed with no drafter: this verifier reports their tokens like a drafter.
                    core.selfDriven.attach { report in
                        do {
                            try await agent.endpoint.post(.tokens(report))
                        } catch {
                            logger.warning("token report failed", metadata: ["session": "\(report.session)", "error": "\(error)"])
                        }
                    }
                })
            await verify.close()
            await events.close()
            core.shutdown()
        }
    }
}
