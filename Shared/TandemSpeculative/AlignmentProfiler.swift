import Foundation
import TandemEngine

/// Measures how well draft models agree with a target (``AlignmentProfile``), prompt by prompt.
///
/// Per prompt: the target generates its greedy continuation (what every lossless greedy session of that
/// prompt emits); then the target and every draft evaluate `prompt + output` teacher-forced, in the same
/// chunked forwards, and each output position t is scored from the two next-token distributions p
/// (target) and q (draft): greedy match `argmax q = output[t]`, sampled acceptance `Σ min(p_T, q_T)`,
/// `D(p || q)` and the draft's negative log-likelihood of `output[t]`. Position scores become
/// per-position and per-K acceptance in ``AcceptanceAccumulator``. Scoring every prefix at once from one
/// forward is what drafting from every prefix would give for greedy drafts (see the accumulator), at the
/// cost of one forward per model instead of one per prefix.
///
/// Runs on the caller's thread (blocking); the engines are not used concurrently.
public struct AlignmentProfiler: @unchecked Sendable {
    public let target: ForwardEngine
    public let drafts: [ForwardEngine]
    public let kMax: Int
    public let maxTokens: Int
    /// Temperature of the sampled acceptance (> 0).
    public let temperature: Double
    /// Longest single forward (bounds the attention scratch).
    public var chunk = 256

    private var greedy: [AcceptanceAccumulator]
    private var sampled: [AcceptanceAccumulator]
    private var klSum: [Double]
    private var klMax: [Double]
    private var nllSum: [Double]
    private var targetNLLSum = 0.0
    public private(set) var positions = 0

    /// Per-draft totals so far.
    public struct Summary: Sendable {
        public var greedy: AlignmentProfile.Acceptance
        public var sampled: AlignmentProfile.Acceptance
        public var klDivergence: Double
        public var klMax: Double
        public var draftPerplexity: Double
        public var targetPerplexity: Double
        public var positions: Int
    }

    public init(target: ForwardEngine, drafts: [ForwardEngine], kMax: Int, maxTokens: Int, temperature: Double) {
        precondition(kMax >= 1 && maxTokens >= 1 && temperature > 0)
        self.target = target
        self.drafts = drafts
        self.kMax = kMax
        self.maxTokens = maxTokens
        self.temperature = temperature
        greedy = drafts.map { _ in AcceptanceAccumulator(kMax: kMax) }
        sampled = drafts.map { _ in AcceptanceAccumulator(kMax: kMax) }
        klSum = Array(repeating: 0, count: drafts.count)
        klMax = Array(repeating: 0, count: drafts.count)
        nllSum = Array(repeating: 0, count: drafts.count)
    }

    /// Scores one prompt; returns the target's output.
    @discardableResult
    public mutating func add(prompt: [Int32], isEndOfGeneration: (Int32) -> Bool) throws -> [Int32] {
        guard !prompt.isEmpty else { throw ForwardError("empty prompt") }
        let vocab = target.model.config.vocabularySize
        for d in drafts where d.model.config.vocabularySize != vocab {
            throw ForwardError("draft vocabulary \(d.model.config.vocabularySize) differs from the target's \(vocab)")
        }
        let output = try greedyOutput(prompt, isEndOfGeneration: isEndOfGeneration)
        let m = output.count
        guard m > 0 else { return output }

        // Target rows, kept (m × vocab floats) with their log-sum-exp at temperature 1 and T.
        var targetLogits = [Float](repeating: 0, count: m * vocab)
        var targetRow = [RowStats](repeating: RowStats(), count: m)
        let invT = Float(1 / temperature)
        try teacherForced(target, prompt: prompt, output: output) { t, row in
            targetLogits.withUnsafeMutableBufferPointer { dst in
                _ = UnsafeMutableBufferPointer(rebasing: dst[(t * vocab)..<((t + 1) * vocab)]).initialize(from: row)
            }
            targetRow[t] = RowStats(row, invT: invT)
            targetNLLSum += targetRow[t].nll(row, token: output[t])
        }
        positions += m

        for (d, engine) in drafts.enumerated() {
            var matches = [Double](repeating: 0, count: m)
            var betas = [Double](repeating: 0, count: m)
            try teacherForced(engine, prompt: prompt, output: output) { t, q in
                let qs = RowStats(q, invT: invT)
                matches[t] = Sampler.argmax(logits: q) == output[t] ? 1 : 0
                nllSum[d] += qs.nll(q, token: output[t])
                let (kl, beta) = targetLogits.withUnsafeBufferPointer { all in
                    Self.compare(p: UnsafeBufferPointer(rebasing: all[(t * vocab)..<((t + 1) * vocab)]),
                                 ps: targetRow[t], q: q, qs: qs, invT: invT, sameTemperature: temperature == 1)
                }
                klSum[d] += kl
                klMax[d] = max(klMax[d], kl)
                betas[t] = beta
            }
            greedy[d].add(scores: matches)
            sampled[d].add(scores: betas)
        }
        return output
    }

    public func summary(draft d: Int) -> Summary {
        let n = Double(max(positions, 1))
        return Summary(greedy: greedy[d].result, sampled: sampled[d].result, klDivergence: klSum[d] / n,
                       klMax: klMax[d], draftPerplexity: exp(nllSum[d] / n), targetPerplexity: exp(targetNLLSum / n),
                       positions: positions)
    }

    /// Batch-1 greedy decode speed of `engine` after `prompt` (tokens/s): one warm-up step, then `tokens`
    /// timed steps, as a drafter decodes.
    public static func decodeTokensPerSecond(_ engine: ForwardEngine, prompt: [Int32], tokens: Int) throws -> Double {
        let capacity = min(engine.model.config.contextLength, prompt.count + tokens + 2)
        guard prompt.count + tokens + 2 <= capacity, !prompt.isEmpty else {
            throw ForwardError("prompt + \(tokens) tokens exceed the context")
        }
        let cache = engine.makeCache(capacity: capacity)
        var last = try engine.prefill(prompt, cache: cache)
        last = Sampler.argmax(logits: try engine.decode(cache: cache, token: last))  // warm-up
        let t0 = ContinuousClock.now
        for _ in 0..<tokens { last = Sampler.argmax(logits: try engine.decode(cache: cache, token: last)) }
        let elapsed = ContinuousClock.now - t0
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return Double(tokens) / max(seconds, 1e-9)
    }

    // MARK: Internals

    private func greedyOutput(_ prompt: [Int32], isEndOfGeneration: (Int32) -> Bool) throws -> [Int32] {
        try target.greedyContinuation(of: prompt, maxTokens: maxTokens, chunk: chunk, isEndOfGeneration: isEndOfGeneration)
    }

    /// Evaluates `prompt + output` teacher-forced; `body(t, row)` gets the logits predicting `output[t]`.
    /// Target and drafts go through exactly this path, so a model scored against itself compares equal rows.
    private func teacherForced(_ engine: ForwardEngine, prompt: [Int32], output: [Int32],
                               body: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        try engine.teacherForcedRows(prompt + output, scoredFrom: prompt.count, chunk: chunk, body: body)
    }

    /// Max and log-sum-exp of one logits row at temperature 1 and at 1/invT.
    struct RowStats {
        var max: Float = 0
        var lse1: Double = 0
        var lseT: Double = 0

        init() {}

        init(_ row: UnsafeBufferPointer<Float>, invT: Float) {
            var m = -Float.infinity
            for x in row where x > m { m = x }
            var s1: Double = 0
            var sT: Double = 0
            for x in row {
                let d = x - m
                s1 += Double(expf(d))
                sT += Double(expf(d * invT))
            }
            max = m
            lse1 = log(s1)
            lseT = log(sT)
        }

        func nll(_ row: UnsafeBufferPointer<Float>, token: Int32) -> Double {
            -(Double(row[Int(token)] - max) - lse1)
        }
    }

    /// `(D(p || q), Σ min(p_T, q_T))` of two logits rows.
    static func compare(p: UnsafeBufferPointer<Float>, ps: RowStats, q: UnsafeBufferPointer<Float>, qs: RowStats,
                        invT: Float, sameTemperature: Bool) -> (Double, Double) {
        var kl: Double = 0
        var beta: Double = 0
        let pl = Float(ps.lse1), ql = Float(qs.lse1)
        let plT = Float(ps.lseT), qlT = Float(qs.lseT)
        for i in 0..<p.count {
            let lp = p[i] - ps.max - pl
            let lq = q[i] - qs.max - ql
            let pp = expf(lp)
            kl += Double(pp * (lp - lq))
            if sameTemperature {
                beta += Double(Swift.min(pp, expf(lq)))
            } else {
                let pT = expf((p[i] - ps.max) * invT - plT)
                let qT = expf((q[i] - qs.max) * invT - qlT)
                beta += Double(Swift.min(pT, qT))
            }
        }
        return (Swift.max(kl, 0), Swift.min(beta, 1))
    }
}
