import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemModels

/// `tandem generate`: runs one model locally and streams its continuation of a prompt.
///
/// A direct, single-sequence use of `ForwardEngine` (prefill in one call, then one decode call per token);
/// handy to check a model file and the engine's output by eye.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt with a local GGUF model (no server).")

    @Option(help: "Catalog name (see `tandem models list`), cached file name, or path to a GGUF file.")
    var model: String

    @Option(help: "Prompt text.")
    var prompt: String?

    @Option(help: "Comma-separated prompt token ids (instead of --prompt; bypasses the tokenizer).")
    var tokens: String?

    @Flag(help: "Wrap the prompt in the ChatML chat template as a user message.")
    var chat = false

    @Option(name: .customLong("max-tokens"), help: "Maximum number of tokens to generate.")
    var maxTokens = 128

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1 = off).")
    var topP: Float = 1

    @Option(name: .customLong("top-k"), help: "Top-k cutoff (0 = off).")
    var topK = 0

    @Option(help: "Random seed (with the position, determines every random draw).")
    var seed: UInt64 = 0

    @Option(help: "Compute threads.")
    var threads = 2

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f16 or f32 [TANDEM_KV_TYPE] (default: \(KVCacheType.default)).")
    var kvType: String?

    @Option(name: .customLong("prefill-chunk"), help: "Prefill in calls of at most this many tokens (0 = one call).")
    var prefillChunk = 0

    @Option(name: .customLong("dump-logits"),
            help: "Write the prompt's logits at every position (float32, [positions][vocab]) to this file and exit.")
    var dumpLogits: String?

    @Flag(name: .customLong("print-ids"), help: "Print token ids instead of text.")
    var printIds = false

    func run() async throws {
        var logger = Logger(label: "tandem.generate")
        logger.logLevel = .warning
        let lm = try LanguageModel.load(path: try ModelStore(logger: logger).resolve(model).path, logger: logger)
        let tokenizer = try Tokenizer(gguf: lm.gguf, logger: logger)

        var promptTokens: [Int32]
        if let tokens {
            promptTokens = try tokens.split(separator: ",").map {
                guard let v = Int32($0.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--tokens: '\($0)' is not a token id")
                }
                return v
            }
        } else if let prompt {
            let text = chat
                ? try ChatTemplate(gguf: lm.gguf).render(messages: [.user(prompt)], addGenerationPrompt: true)
                : prompt
            promptTokens = tokenizer.encode(text, parseSpecial: chat)
        } else {
            throw ValidationError("give --prompt or --tokens")
        }
        guard !promptTokens.isEmpty else { throw ValidationError("the prompt is empty") }
        if printIds {
            FileHandle.standardError.write(Data("[prompt ids: \(promptTokens.map(String.init).joined(separator: ","))]\n".utf8))
        }

        let engine = ForwardEngine(model: lm, threads: threads, kvType: try KVCacheType(flag: kvType, environment: ProcessInfo.processInfo.environment["TANDEM_KV_TYPE"]))
        let capacity = min(lm.config.contextLength, promptTokens.count + maxTokens)
        let cache = engine.makeCache(capacity: capacity)
        let sampler = Sampler(vocabSize: lm.config.vocabularySize)
        let params = SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let eos = tokenizer.endOfGenerationIDs
        var decoder = StreamingDecoder(tokenizer: tokenizer)

        let startTime = Date()
        if let dumpLogits {
            let r = try engine.forward([ForwardRequest(cache: cache, tokens: promptTokens, logits: .all)])
            var data = Data()
            for row in 0..<r.rowCount(request: 0) { data.append(contentsOf: UnsafeRawBufferPointer(r.logits(request: 0, row: row))) }
            try data.write(to: URL(fileURLWithPath: dumpLogits))
            return
        }
        let chunk = prefillChunk > 0 ? prefillChunk : promptTokens.count
        var start = 0
        var result: ForwardResult
        repeat {
            let end = min(promptTokens.count, start + chunk)
            result = try engine.forward([ForwardRequest(cache: cache, tokens: Array(promptTokens[start..<end]), logits: .last)])
            start = end
        } while start < promptTokens.count
        let prefillTime = Date().timeIntervalSince(startTime)
        if printIds {
            let l = result.logits(request: 0)
            let top = l.indices.sorted { l[$0] > l[$1] }.prefix(5).map { "\($0):\(l[$0])" }
            FileHandle.standardError.write(Data("[top logits after prompt: \(top.joined(separator: " "))]\n".utf8))
        }
        var generated: [Int32] = []
        generated.reserveCapacity(maxTokens)
        var logits = result.logits(request: 0)
        let decodeStart = Date()
        while generated.count < maxTokens {
            let position = cache.count
            let next = sampler.sample(logits: logits, params: params, position: position,
                                      recentTokens: generated)
            generated.append(next)
            if printIds {
                print(next, terminator: " ")
            } else {
                print(decoder.append(next), terminator: "")
            }
            fflush(nil)
            if eos.contains(next) || cache.remaining == 0 { break }
            logits = try engine.decode(cache: cache, token: next)
        }
        if !printIds { print(decoder.finish(), terminator: "") }
        print("")
        let decodeTime = Date().timeIntervalSince(decodeStart)
        FileHandle.standardError.write(Data(String(
            format: "[prompt %d tokens in %.2f s (%.1f t/s); generated %d tokens in %.2f s (%.1f t/s)]\n",
            promptTokens.count, prefillTime, Double(promptTokens.count) / prefillTime,
            generated.count, decodeTime, Double(max(generated.count - 1, 0)) / max(decodeTime, 1e-9)).utf8))
    }
}
