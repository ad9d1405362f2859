import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemModels

/// `tandem perplexity`: perplexity of a model on a text file, computed like llama.cpp's `llama-perplexity`.
///
/// The file is tokenized once (with BOS when `tokenizer.ggml.add_bos_token` says so); the tokens are split
/// into non-overlapping chunks of `--ctx` tokens; in each chunk the first token is replaced by BOS (when
/// the model adds BOS), the chunk is evaluated from an empty cache, and only the second half is scored:
/// positions `ctx/2 ..< ctx-1` predict tokens `ctx/2+1 ..< ctx`. PPL = exp(mean negative log-likelihood).
/// Numbers are therefore comparable with llama.cpp's on the same file and context size.
struct PerplexityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a GGUF model on a text file (llama.cpp method: chunks of --ctx, second half scored).")

    @Option(help: "Catalog name (see `tandem models list`), cached file name, or path to a GGUF file.")
    var model: String

    @Option(help: "Text file to score.")
    var file: String

    @Option(help: "Chunk (context) size in tokens.")
    var ctx = 512

    @Option(name: .customLong("chunks"), help: "Score at most this many chunks (default: all).")
    var maxChunks: Int?

    @Option(help: "Compute threads.")
    var threads = 2

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f16 or f32 [TANDEM_KV_TYPE] (default: \(KVCacheType.default)).")
    var kvType: String?

    func run() async throws {
        var logger = Logger(label: "tandem.perplexity")
        logger.logLevel = .warning
        guard ctx >= 4 else { throw ValidationError("--ctx must be at least 4") }
        let lm = try LanguageModel.load(path: try ModelStore(logger: logger).resolve(model).path, logger: logger)
        let text = try String(contentsOfFile: (file as NSString).expandingTildeInPath, encoding: .utf8)
        let addBOS = lm.gguf["tokenizer.ggml.add_bos_token"]?.bool ?? false
        let bos = lm.gguf["tokenizer.ggml.bos_token_id"]?.int.map(Int32.init)
        let tokens = try tokenizeForPerplexity(model: lm, text: text, addBOS: addBOS && bos != nil)
        guard tokens.count >= 2 * ctx else {
            throw ValidationError("need at least \(2 * ctx) tokens for --ctx \(ctx); the file has \(tokens.count)")
        }
        var nChunks = tokens.count / ctx
        if let maxChunks { nChunks = min(nChunks, maxChunks) }
        print("perplexity: \(tokens.count) tokens, \(nChunks) chunks of \(ctx), add_bos=\(addBOS)")

        let engine = ForwardEngine(model: lm, threads: threads, kvType: try KVCacheType(flag: kvType, environment: ProcessInfo.processInfo.environment["TANDEM_KV_TYPE"]))
        let cache = engine.makeCache(capacity: ctx)
        let first = ctx / 2
        let scoreBatch = 64
        var nll = 0.0, nll2 = 0.0
        var count = 0
        let start = Date()
        for c in 0..<nChunks {
            var chunk = Array(tokens[(c * ctx)..<((c + 1) * ctx)])
            if addBOS, let bos { chunk[0] = bos }
            cache.reset()
            // First half: context only.
            _ = try engine.forward([ForwardRequest(cache: cache, tokens: Array(chunk[0..<first]), logits: .none)])
            // Second half in slices (bounded logits memory); position j predicts chunk[j + 1].
            var j = first
            while j < ctx {
                let end = min(ctx, j + scoreBatch)
                let result = try engine.forward([ForwardRequest(cache: cache, tokens: Array(chunk[j..<end]), logits: .all)])
                for r in 0..<(end - j) where j + r + 1 < ctx {
                    let lp = Self.logProbability(result.logits(request: 0, row: r), of: Int(chunk[j + r + 1]))
                    nll -= lp
                    nll2 += lp * lp
                    count += 1
                }
                j = end
            }
            print(String(format: "[%d]%.4f,", c + 1, exp(nll / Double(count))), terminator: "")
            fflush(nil)
        }
        print("")
        print("KV cache: \(engine.kvType)")
        let mean = nll / Double(count)
        let ppl = exp(mean)
        let variance = nll2 / Double(count) - mean * mean
        let err = variance > 0 ? (variance / Double(count - 1)).squareRoot() * ppl : .nan
        print(String(format: "Final estimate: PPL = %.4f +/- %.5f  (%d scored tokens, %.1f s)",
                     ppl, err, count, Date().timeIntervalSince(start)))
    }

    /// log softmax(logits)[token], accumulated in Double.
    static func logProbability(_ logits: UnsafeBufferPointer<Float>, of token: Int) -> Double {
        var mx = -Float.infinity
        for v in logits { mx = max(mx, v) }
        var sum = 0.0
        for v in logits { sum += Double(expf(v - mx)) }
        return Double(logits[token] - mx) - log(sum)
    }
}

/// Tokenizes `text` for perplexity (BOS prepended when `addBOS`).
func tokenizeForPerplexity(model: LanguageModel, text: String, addBOS: Bool) throws -> [Int32] {
    try Tokenizer(gguf: model.gguf).encode(text, addBOS: addBOS, parseSpecial: false)
}
