import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemModels
import TandemService
import TandemServing

/// `tandem fleet ...`: what emulated edge devices need (docs/fleet.md).
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Emulated edge devices: record the real draft model's proposals for replay.",
        subcommands: [FleetRecordCommand.self])
}

/// `tandem fleet record`: runs the real draft and target models once over a prompt set and stores, per
/// prompt, the target-only output and the draft model's next `k-max` tokens at every prefix of it.
/// Emulated devices (`drafter-agent --emulate`) replay these drafts exactly.
struct FleetRecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record", abstract: "Record a fleet trace (real models, run once; cached by its parameters).")

    @OptionGroup var options: FleetTraceOptions

    @Option(help: "Write the trace here (default: the trace cache, keyed by every parameter).")
    var out: String?

    @Option(help: "Compute threads.")
    var threads = 2

    func run() async throws {
        let logger = Logger(label: "tandem.fleet")
        let path = try await options.recordIfMissing(out: out, threads: threads, logger: logger)
        say("trace: \(path)")
    }
}

/// The parameters that identify a trace; shared by `fleet record` and `bench fleet`.
struct FleetTraceOptions: ParsableArguments {
    @Option(help: "Draft model (catalog name or GGUF path).")
    var draft = ModelLoader.defaultDraft

    @Option(help: "Target model (catalog name or GGUF path).")
    var target = ModelLoader.defaultTarget

    @Option(help: "Prompt set: code (HumanEval), chat, mixed, or a .jsonl file.")
    var prompts = "code"

    @Option(help: "Use the first N prompts of the set.")
    var limit = 16

    @Option(name: .customLong("max-tokens"), help: "Tokens generated per prompt.")
    var maxTokens = 128

    @Option(name: .customLong("k-max"), help: "Drafts recorded at every prefix (the largest K a replay can use).")
    var kMax = 8

    @Option(help: "Sampling temperature (0 = greedy; > 0 records coupled-mode sampling with --seed).")
    var temperature: Float = 0

    @Option(help: "Seed of every random draw (coupled mode).")
    var seed: UInt64 = 1

    /// The cache file for these parameters: any change of models, prompts or sampling is another trace.
    func cachePath() -> String {
        let key = [draft, target, prompts, "\(limit)", "\(maxTokens)", "\(kMax)", "\(temperature)", "\(seed)"]
            .joined(separator: "|")
        var hasher = StreamingSHA256()
        hasher.update(Array(key.utf8))
        let digest = hasher.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
        let safe = (prompts as NSString).lastPathComponent.replacingOccurrences(of: ".", with: "_")
        return ModelStore.defaultDirectory.deletingLastPathComponent()
            .appendingPathComponent("traces/\(safe)-\(limit)x\(maxTokens)-k\(kMax)-\(digest).json").path
    }

    /// Records the trace unless the cache (or `out`) already holds one with these parameters.
    func recordIfMissing(out: String?, threads: Int, logger: Logger) async throws -> String {
        let path = out ?? cachePath()
        if let existing = try? FleetTrace.load(path: path), existing.kMax == kMax, existing.maxTokens == maxTokens,
           existing.entries.count > 0 {
            say("fleet trace cached: \(path) (\(existing.entries.count) prompts)")
            return path
        }
        guard limit >= 1, maxTokens >= 2, kMax >= 1, temperature >= 0 else {
            throw ValidationError("need --limit >= 1, --max-tokens >= 2, --k-max >= 1, --temperature >= 0")
        }
        let prompts = Array(try await PromptSet.load(self.prompts, logger: logger).prefix(limit))
        let draftModel = try await ModelLoader.load(draft, logger: logger)
        let targetModel = try await ModelLoader.load(target, logger: logger)
        guard draftModel.tokenizer.vocabularySize == targetModel.tokenizer.vocabularySize else {
            throw ValidationError("\(draft) and \(target) do not share a tokenizer: not a draft/target pair")
        }
        let template = try ChatTemplate(templateSource: targetModel.model.gguf.metadata["tokenizer.chat_template"]?.string)
        let params = SamplingParams(temperature: temperature, seed: seed)
        let recorder = FleetTraceRecorder(
            draft: ForwardEngine(model: draftModel.model, threads: threads, logger: logger),
            target: ForwardEngine(model: targetModel.model, threads: threads, logger: logger),
            params: params, kMax: kMax, maxTokens: maxTokens)
        let tokenizer = targetModel.tokenizer
        say("recording \(prompts.count) prompts: target \(targetModel.name) alone, then \(draftModel.name)'s next "
            + "\(kMax) tokens at every prefix (real models, \(threads) threads)")
        let started = ContinuousClock.now
        var entries: [FleetTrace.Entry] = []
        for (i, prompt) in prompts.enumerated() {
            let messages = prompt.messages.map { ChatMessage(role: $0.role, content: $0.content) }
            let tokens = tokenizer.encode(template.render(messages: messages, addGenerationPrompt: true), parseSpecial: true)
            let entry = try await BlockingWork.run("fleet-record") {
                try recorder.record(id: prompt.id, messages: prompt.messages.map { .init(role: $0.role, content: $0.content) },
                                    promptTokens: tokens, isEndOfGeneration: tokenizer.isEndOfGeneration)
            }
            entries.append(entry)
            let agree = zip(entry.drafts, entry.output).filter { $0.first == $1 }.count
            say(String(format: "  [%d/%d] %@: %d prompt + %d output tokens, first draft = target's next token at %.0f%% of prefixes (%.0f s so far)",
                       i + 1, prompts.count, prompt.id, tokens.count, entry.output.count,
                       100 * Double(agree) / Double(max(1, entry.output.count)),
                       (ContinuousClock.now - started).milliseconds / 1000))
        }
        let trace = FleetTrace(
            draftModel: draftModel.name, targetModel: targetModel.name, promptSet: self.prompts, maxTokens: maxTokens,
            kMax: kMax, temperature: temperature, topK: 0, topP: 1, seed: seed,
            endOfGeneration: tokenizer.endOfGenerationIDs.sorted(),
            contextLength: min(draftModel.model.config.contextLength, targetModel.model.config.contextLength),
            recordedAt: ISO8601DateFormatter().string(from: Date()),
            recordSeconds: (ContinuousClock.now - started).milliseconds / 1000, entries: entries)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try trace.write(path: path)
        say(String(format: "fleet trace written: %@ (%.0f s)", path, trace.recordSeconds))
        return path
    }
}
