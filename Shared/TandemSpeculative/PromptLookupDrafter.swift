/// Prompt-lookup (n-gram) drafting: proposes the tokens that followed the most recent earlier occurrence of
/// the context's last n-gram (vLLM's `ngram` speculative method, llama.cpp's lookup decoding). It needs no
/// draft model, so a verifier can draft for a session that has no drafter, or for a K = 0 round, from the
/// session's own tokens: code edits, quoted text and repetitive output continue what came before.
///
/// The proposal is only a draft: the verifier checks it with the usual lossless rule, so a bad match costs
/// batch positions, never correctness (docs/design.md, "Prompt lookup on the verifier").
public struct PromptLookupDrafter: Sendable, Hashable {
    public struct Configuration: Sendable, Hashable, Codable {
        /// Longest n-gram tried (longer matches are tried first: they predict better).
        public var maxNgram: Int
        /// Shortest n-gram accepted as a match.
        public var minNgram: Int
        /// How far back the search looks (tokens), bounding its cost on long contexts.
        public var maxLookback: Int

        public init(maxNgram: Int = 3, minNgram: Int = 1, maxLookback: Int = 4096) {
            self.maxNgram = max(1, maxNgram)
            self.minNgram = min(max(1, minNgram), max(1, maxNgram))
            self.maxLookback = max(2, maxLookback)
        }
    }

    /// A match: the last `ngram` tokens of the context also occur earlier, followed by `continuation`.
    public struct Match: Sendable, Hashable {
        /// Length of the matched suffix.
        public var ngram: Int
        /// Indices (into the searched context) of the tokens that followed the earlier occurrence: the proposal.
        public var continuation: Range<Int>
    }

    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The longest suffix n-gram (from `maxNgram` down to `minNgram`) with an earlier occurrence in the last
    /// `maxLookback` tokens, taking the most recent occurrence, and up to `maxTokens` tokens that followed it.
    /// nil when nothing matches or `maxTokens < 1`. Allocates nothing.
    public func match(in context: UnsafeBufferPointer<Int32>, maxTokens: Int) -> Match? {
        let count = context.count
        guard maxTokens >= 1, count >= 2 else { return nil }
        let lowest = max(0, count - configuration.maxLookback)
        var n = min(configuration.maxNgram, count - 1)
        while n >= configuration.minNgram {
            let suffix = count - n
            // Occurrences start at `start` with `start + n <= count - 1` (at least one token follows it
            // inside the context), most recent first.
            var start = count - n - 1
            while start >= lowest {
                var equal = true
                for j in 0..<n where context[start + j] != context[suffix + j] {
                    equal = false
                    break
                }
                if equal {
                    let from = start + n
                    return Match(ngram: n, continuation: from..<min(count, from + maxTokens))
                }
                start -= 1
            }
            n -= 1
        }
        return nil
    }

    /// Array convenience for ``match(in:maxTokens:)``.
    public func match(in context: [Int32], maxTokens: Int) -> Match? {
        context.withUnsafeBufferPointer { match(in: $0, maxTokens: maxTokens) }
    }

    /// How many of `available` proposed tokens to verify with one decode step: the count that maximises the
    /// batch's expected tokens per second. Without the proposal the batch yields `batchTokens` tokens in
    /// `batchSeconds(0)`; with `k` proposed tokens it yields `batchTokens + sum_{i<=k} acceptance^i` in
    /// `batchSeconds(k)` (each extra position costs the time model's price, and slows every member of the
    /// batch). 0 when no proposal pays. The time model decides, so a verifier whose forward is nearly free
    /// per extra position proposes more, and one whose batch is already saturated proposes nothing.
    public static func proposalLength(available: Int, acceptance: Double, batchTokens: Double,
                                      batchSeconds: (Int) -> Double) -> Int {
        guard available >= 1, acceptance > 0 else { return 0 }
        let a = min(max(acceptance, 0), 1)
        let base = batchSeconds(0)
        guard base > 0 else { return 0 }
        var best = 0
        var bestRate = batchTokens / base
        var expected = batchTokens
        var survive = 1.0
        for k in 1...available {
            survive *= a
            expected += survive
            let seconds = batchSeconds(k)
            guard seconds > 0 else { continue }
            let rate = expected / seconds
            // Strictly better by a small margin, so a flat time model does not propose for nothing.
            if rate > bestRate * 1.0001 {
                best = k
                bestRate = rate
            }
        }
        return best
    }
}

/// Acceptance of one session's prompt-lookup proposals, per matched n-gram length (a longer match predicts
/// better). The estimate is the geometric model's maximum likelihood (accepted / (accepted + rejections)),
/// started from a prior of `priorAccepted` accepted tokens and one rejection per length.
public struct PromptLookupStats: Sendable, Hashable {
    /// Tokens proposed and accepted so far (all lengths).
    public private(set) var proposed = 0
    public private(set) var accepted = 0
    private var acceptedByLength: [Int]
    private var rejectionsByLength: [Int]
    private let priorAccepted: Double

    /// - Parameter priorAccepted: prior accepted tokens per rejection (1 gives a prior acceptance of 0.5).
    public init(maxNgram: Int = 3, priorAccepted: Double = 1) {
        acceptedByLength = Array(repeating: 0, count: max(1, maxNgram) + 1)
        rejectionsByLength = Array(repeating: 0, count: max(1, maxNgram) + 1)
        self.priorAccepted = priorAccepted
    }

    /// The per-token acceptance expected of a proposal made from an `ngram`-long match.
    public func acceptance(ngram: Int) -> Double {
        let i = min(max(ngram, 0), acceptedByLength.count - 1)
        let a = Double(acceptedByLength[i]) + priorAccepted
        return a / (a + Double(rejectionsByLength[i]) + 1)
    }

    /// Records one verified proposal: `proposedCount` tokens, of which the first `acceptedCount` were accepted.
    public mutating func record(ngram: Int, proposed proposedCount: Int, accepted acceptedCount: Int) {
        guard proposedCount > 0 else { return }
        let i = min(max(ngram, 0), acceptedByLength.count - 1)
        proposed += proposedCount
        accepted += acceptedCount
        acceptedByLength[i] += acceptedCount
        if acceptedCount < proposedCount { rejectionsByLength[i] += 1 }
    }
}
