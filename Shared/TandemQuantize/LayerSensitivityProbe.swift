import Foundation
import Logging
import TandemEngine
import TandemKernels

/// Measures how far a variant of a draft model has moved from the model it was made from: over a
/// fixed set of texts, the mean `D(base || variant)` of the next-token distributions and the share of
/// positions whose most likely token changed.
///
/// Why against the base draft and not the target: the planner needs each layer's *own* damage, a
/// quantity that is non-negative and (for small changes) adds up across layers; scored against the
/// target, lowering a layer can look like an improvement by chance (docs/quantize.md). What the
/// damage does to acceptance is measured afterwards on the finished plan (`tandem plan --target`).
///
/// The base rows are kept as log-probabilities (positions x vocabulary floats: 256 positions of a
/// 152k vocabulary take 155 MB), so each variant costs one teacher-forced pass.
public final class LayerSensitivityProbe: @unchecked Sendable {
    // @unchecked: immutable after init; `score` allocates its own state.

    /// One variant's distance from the base.
    public struct Score: Sendable, Equatable, Codable {
        /// Mean `D(base || variant)` over the scored positions, nats.
        public var meanKL: Double
        /// Largest single-position divergence, nats.
        public var maxKL: Double
        /// Share of positions whose argmax differs from the base's.
        public var top1Flips: Double

        public init(meanKL: Double, maxKL: Double, top1Flips: Double) {
            self.meanKL = meanKL
            self.maxKL = maxKL
            self.top1Flips = top1Flips
        }

        enum CodingKeys: String, CodingKey {
            case meanKL = "mean_kl", maxKL = "max_kl", top1Flips = "top1_flips"
        }
    }

    /// A token sequence and the first position whose prediction is scored (positions `scoredFrom..<count`).
    public struct Text: Sendable {
        public var tokens: [Int32]
        public var scoredFrom: Int
        public init(tokens: [Int32], scoredFrom: Int) {
            self.tokens = tokens
            self.scoredFrom = scoredFrom
        }
    }

    public let texts: [Text]
    public let threads: Int
    public let vocabulary: Int
    /// Longest single forward (bounds the attention scratch).
    public var chunk = 256
    private let baseLogProbs: [Float]
    private let baseArgmax: [Int32]
    public var positions: Int { baseArgmax.count }

    /// Scores `base` over `texts` once and keeps its rows.
    public init(base: LanguageModel, texts: [Text], threads: Int, logger: Logger) throws {
        let scored = texts.reduce(0) { $0 + max(0, $1.tokens.count - $1.scoredFrom) }
        guard scored > 0, texts.allSatisfy({ $0.scoredFrom >= 1 && $0.scoredFrom <= $0.tokens.count }) else {
            throw PlanError("the sensitivity texts score no position (each needs 1 <= scoredFrom <= length)")
        }
        self.texts = texts
        self.threads = max(1, threads)
        let vocab = base.config.vocabularySize
        vocabulary = vocab
        var logProbs = [Float](repeating: 0, count: scored * vocab)
        var argmax = [Int32](repeating: 0, count: scored)
        var n = 0
        try Self.forEachScoredRow(ForwardEngine(model: base, threads: self.threads, logger: logger), texts: texts,
                                  chunk: chunk) { row in
            argmax[n] = Sampler.argmax(logits: row)
            let lse = Self.logSumExp(row)
            logProbs.withUnsafeMutableBufferPointer { dst in
                for i in 0..<vocab { dst[n * vocab + i] = row[i] - lse }
            }
            n += 1
        }
        baseLogProbs = logProbs
        baseArgmax = argmax
    }

    /// The distance of `model` (a variant with the base's vocabulary) from the base.
    public func score(_ model: LanguageModel, logger: Logger) throws -> Score {
        guard model.config.vocabularySize == vocabulary else {
            throw PlanError("the variant's vocabulary \(model.config.vocabularySize) is not the base's \(vocabulary)")
        }
        var klSum = 0.0, klMax = 0.0
        var flips = 0
        var n = 0
        let vocab = vocabulary
        try Self.forEachScoredRow(ForwardEngine(model: model, threads: threads, logger: logger), texts: texts,
                                  chunk: chunk) { row in
            if Sampler.argmax(logits: row) != baseArgmax[n] { flips += 1 }
            let lse = Self.logSumExp(row)
            var kl = 0.0
            baseLogProbs.withUnsafeBufferPointer { base in
                var acc = 0.0
                for i in 0..<vocab {
                    let lp = base[n * vocab + i]
                    acc += Double(expf(lp) * (lp - (row[i] - lse)))
                }
                kl = acc
            }
            kl = max(kl, 0)
            klSum += kl
            klMax = max(klMax, kl)
            n += 1
        }
        let count = Double(max(n, 1))
        return Score(meanKL: klSum / count, maxKL: klMax, top1Flips: Double(flips) / count)
    }

    /// Writes the variant `plan` makes of `source` under `directory`, scores it and deletes it.
    public func score(plan: QuantizationPlan, source: GGUFFile, directory: URL, logger: Logger) throws -> Score {
        let path = directory.appendingPathComponent("variant-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try Requantizer.run(source: source, destination: path,
                                options: RequantizeOptions(plan: plan, threads: threads))
        let variant = try LanguageModel(gguf: try GGUFFile(path: path), packThreads: threads)
        return try score(variant, logger: logger)
    }

    // MARK: Internals

    /// Calls `body` with the logits row predicting each scored token, text by text, in order.
    static func forEachScoredRow(_ engine: ForwardEngine, texts: [Text], chunk: Int,
                                 body: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        for text in texts {
            try engine.teacherForcedRows(text.tokens, scoredFrom: text.scoredFrom, chunk: chunk) { _, row in try body(row) }
        }
    }

    static func logSumExp(_ row: UnsafeBufferPointer<Float>) -> Float {
        var m = -Float.infinity
        for x in row where x > m { m = x }
        var s = 0.0
        for x in row { s += Double(expf(x - m)) }
        return m + Float(log(s))
    }
}
