import ArgumentParser
import Foundation
import Logging
import TandemBus
import TandemEngine
import TandemService
import TandemServing
import TandemSpeculative
import TandemTelemetry
import TandemWire

/// The options of `tandem profile --pair`: draft/target alignment over a prompt set (docs/alignment.md).
struct ProfilePairOptions: ParsableArguments {
    @Option(parsing: .upToNextOption,
            help: ArgumentHelp("Alignment mode: draft model(s) then the target, e.g. --pair DRAFT [DRAFT...] TARGET (catalog names or GGUF paths). Repeating --pair DRAFT TARGET works too.",
                               valueName: "model"))
    var pair: [String] = []

    @Option(help: "Alignment mode: prompt set (code, chat, mixed, or a .jsonl file).")
    var prompts = "code"

    @Option(help: "Alignment mode: use the first N prompts of the set.")
    var limit = 8

    @Option(name: .customLong("max-tokens"), help: "Alignment mode: target tokens generated per prompt.")
    var maxTokens = 64

    @Option(name: .customLong("k-max"), help: "Alignment mode: largest draft length scored.")
    var kMax = 8

    @Option(help: "Alignment mode: temperature of the sampled acceptance Σ min(p, q) (KL and perplexity use 1).")
    var temperature = 1.0

    @Option(name: .customLong("speed-tokens"), help: "Alignment mode: decode steps timed for each draft's tokens/s.")
    var speedTokens = 64

    @Option(help: "Alignment mode: publish the results as profile events to this metrics-store events endpoint (XSUB).")
    var publish: String?

    @Option(name: .customLong("device-name"), help: "Alignment mode: device name in published events (default: host name).")
    var deviceName: String?

    /// (drafts, target): the last value is the target; repeats of it among the drafts are dropped, so
    /// `--pair A T --pair B T` means drafts A, B for target T.
    func split() throws -> (drafts: [String], target: String) {
        guard pair.count >= 2, let target = pair.last else {
            throw ValidationError("--pair needs at least one draft and a target: --pair DRAFT [DRAFT...] TARGET")
        }
        var drafts = Array(pair.dropLast())
        if drafts.count > 1 { drafts = drafts.filter { $0 != target } }
        var seen = Set<String>()
        drafts = drafts.filter { seen.insert($0).inserted }
        guard !drafts.isEmpty else { throw ValidationError("--pair names no draft model") }
        return (drafts, target)
    }

    func check() throws {
        guard limit >= 1, maxTokens >= 2, (1...64).contains(kMax), speedTokens >= 1 else {
            throw ValidationError("need --limit >= 1, --max-tokens >= 2, --k-max in 1...64, --speed-tokens >= 1")
        }
        guard temperature.isFinite, temperature > 0 else { throw ValidationError("--temperature must be > 0") }
    }
}

extension ProfileCommand {
    /// `tandem profile --pair`: loads the target and every draft, scores them over the prompt set
    /// (``AlignmentProfiler``), times each draft's decode, prints a table and writes the JSON list.
    func runPair() async throws {
        let options = pairOptions
        try options.check()
        let (draftNames, targetName) = try options.split()
        var logger = Logger(label: "tandem.profile")
        logger.logLevel = .warning
        let prompts = Array(try await PromptSet.load(options.prompts, logger: logger).prefix(options.limit))
        let target = try await ModelLoader.load(targetName, logger: logger)
        var drafts: [ModelLoader.Loaded] = []
        for name in draftNames {
            let d = try await ModelLoader.load(name, logger: logger)
            guard d.tokenizer.vocabularySize == target.tokenizer.vocabularySize else {
                throw ValidationError("\(name) and \(targetName) do not share a tokenizer: not a draft/target pair")
            }
            drafts.append(d)
        }
        let template = try ChatTemplate(templateSource: target.model.gguf.metadata["tokenizer.chat_template"]?.string)
        let targetEngine = ForwardEngine(model: target.model, threads: threads, logger: logger)
        let draftEngines = drafts.map { ForwardEngine(model: $0.model, threads: threads, logger: logger) }
        var profiler = AlignmentProfiler(target: targetEngine, drafts: draftEngines, kMax: options.kMax,
                                         maxTokens: options.maxTokens, temperature: options.temperature)
        say("alignment: target \(target.name), drafts \(drafts.map(\.name).joined(separator: ", ")); "
            + "\(prompts.count) \(options.prompts) prompts x \(options.maxTokens) tokens, K <= \(options.kMax), \(threads) threads")
        let started = ContinuousClock.now
        var firstPrompt: [Int32] = []
        for (i, prompt) in prompts.enumerated() {
            let messages = prompt.messages.map { ChatMessage(role: $0.role, content: $0.content) }
            let tokens = target.tokenizer.encode(template.render(messages: messages, addGenerationPrompt: true),
                                                 parseSpecial: true)
            if firstPrompt.isEmpty { firstPrompt = tokens }
            let tokenizer = target.tokenizer
            let (output, next) = try await BlockingWork.run("profile-pair") { [profiler] in
                var p = profiler
                let out = try p.add(prompt: tokens, isEndOfGeneration: tokenizer.isEndOfGeneration)
                return (out, p)
            }
            profiler = next
            say(String(format: "  [%d/%d] %@: %d prompt + %d target tokens (%.0f s so far)", i + 1, prompts.count,
                       prompt.id, tokens.count, output.count, ServiceClock.millis(since: started) / 1000))
        }
        let speedPrompt = Array(firstPrompt.prefix(256))
        var speeds: [Double] = []
        for engine in draftEngines {
            let tps = try await BlockingWork.run("profile-speed") {
                try AlignmentProfiler.decodeTokensPerSecond(engine, prompt: speedPrompt, tokens: options.speedTokens)
            }
            speeds.append(tps)
        }

        #if DEBUG
        let build = "debug build (kernels and engine optimized)"
        #else
        let build = "release build"
        #endif
        let host = ProcessInfo.processInfo.hostName
        let date = ISO8601DateFormatter().string(from: Date())
        var profiles: [AlignmentProfile] = []
        for (d, loaded) in drafts.enumerated() {
            let s = profiler.summary(draft: d)
            profiles.append(AlignmentProfile(
                draftModel: loaded.name, draftQuantization: loaded.model.gguf.dominantTypeName,
                draftBytes: loaded.model.gguf.fileSize, targetModel: target.name,
                targetQuantization: target.model.gguf.dominantTypeName, promptSet: options.prompts,
                prompts: prompts.count, maxTokens: options.maxTokens, kMax: options.kMax, positions: s.positions,
                greedy: s.greedy, temperature: options.temperature, sampled: s.sampled, klDivergence: s.klDivergence,
                klMax: s.klMax, draftPerplexity: s.draftPerplexity, targetPerplexity: s.targetPerplexity,
                draftTokensPerSecond: speeds[d],
                source: "measured: tandem profile --pair on \(host) \(date), threads \(threads); target greedy "
                    + "continuation, teacher-forced scoring; decode speed over \(options.speedTokens) steps after a "
                    + "\(speedPrompt.count)-token prompt; \(build)"))
        }
        print(Self.alignmentTable(profiles))
        if let out {
            try AlignmentProfile.write(profiles, path: out)
            say("wrote \(out)")
        }
        if let endpoint = options.publish {
            try await Self.publish(profiles, device: options.deviceName ?? host, endpoint: endpoint, logger: logger)
            say("published \(profiles.count) profile events to \(endpoint)")
        }
    }

    /// The table `tandem profile --pair` prints: one block per variant.
    static func alignmentTable(_ profiles: [AlignmentProfile]) -> String {
        var lines: [String] = []
        for p in profiles {
            let size = p.draftBytes.map { String(format: "%.1f MB", Double($0) / 1e6) } ?? "?"
            lines.append("\(p.draftModel) (\(p.draftQuantization), \(size)) -> \(p.targetModel) (\(p.targetQuantization)): "
                + String(format: "%d positions, KL %.4f nats (max %.3f), perplexity %.3f (target %.3f), draft %.1f tok/s",
                         p.positions, p.klDivergence, p.klMax, p.draftPerplexity, p.targetPerplexity, p.draftTokensPerSecond))
            lines.append(String(format: "   K  greedy: pos acc  tokens/round  rate   sampled(T=%.2g): pos acc  tokens/round  rate",
                                p.temperature))
            for j in 0..<p.kMax {
                let g = p.greedy.perK[j], s = p.sampled.perK[j]
                lines.append(String(format: "  %2d          %6.3f  %12.3f  %5.3f                   %6.3f  %12.3f  %5.3f",
                                    j + 1, p.greedy.perPosition[j], g.tokensPerRound, g.acceptanceRate,
                                    p.sampled.perPosition[j], s.tokensPerRound, s.acceptanceRate))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One `profile` event per variant (speed plus the alignment fields) to the metrics-store's event proxy.
    /// A PUB socket drops what it sends before its subscriptions arrive, so it waits a moment after connecting.
    static func publish(_ profiles: [AlignmentProfile], device: String, endpoint: String, logger: Logger) async throws {
        let context = try BusContext(security: try CommonOptions.busSecurity(directory: nil))
        let publisher = try EventPublisher(context: context, connect: endpoint, logger: logger)
        try await Task.sleep(for: .milliseconds(500))
        for p in profiles {
            publisher.publish(.profile(ProfileEvent(
                device: device, draftModel: p.draftModel, quantization: p.draftQuantization,
                draftTokensPerSecond: p.draftTokensPerSecond, powerWatts: 0, at: Envelope.now(),
                alignment: ProfileEvent.Alignment(
                    targetModel: p.targetModel, perPosition: p.greedy.perPosition,
                    sampledPerPosition: p.sampled.perPosition, temperature: p.temperature,
                    klDivergence: p.klDivergence, perplexity: p.draftPerplexity, positions: p.positions))))
        }
        try await Task.sleep(for: .milliseconds(300))
        await publisher.close()
        await context.shutdown()
    }
}
