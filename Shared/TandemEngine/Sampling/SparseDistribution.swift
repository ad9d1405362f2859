/// A truncated, renormalized distribution: the exact support and probabilities a token was sampled from.
///
/// This is what a drafter samples from and sends to the verifier in `exact` mode, and what the verifier
/// builds from the target's logits. Truncated distributions (top-k / top-p active) are ordered by descending
/// probability; untruncated ones are in token-id order. `probs` sum to 1 (up to rounding).
public struct SparseDistribution: Sendable, Hashable, Codable {
    public var tokens: [Int32]
    public var probs: [Float]

    public init(tokens: [Int32], probs: [Float]) {
        precondition(tokens.count == probs.count, "tokens and probs must have the same length")
        self.tokens = tokens
        self.probs = probs
    }

    /// The distribution that puts all mass on one token (greedy decoding).
    public static func oneHot(_ token: Int32) -> SparseDistribution {
        SparseDistribution(tokens: [token], probs: [1])
    }

    public var count: Int { tokens.count }

    /// Probability of `token` (0 when outside the support). Linear scan: supports are small.
    public func probability(of token: Int32) -> Float {
        for i in tokens.indices where tokens[i] == token { return probs[i] }
        return 0
    }

    /// The most likely token (lowest id wins ties); nil for an empty distribution.
    public var argmax: Int32? {
        guard !tokens.isEmpty else { return nil }
        var best = 0
        for i in 1..<tokens.count where probs[i] > probs[best] || (probs[i] == probs[best] && tokens[i] < tokens[best]) {
            best = i
        }
        return tokens[best]
    }

    /// The largest probability (the drafter's confidence); 0 for an empty distribution.
    public var maxProbability: Float { probs.max() ?? 0 }

    /// Checks the invariants a received distribution must satisfy before it is trusted by a verifier:
    /// non-empty, ids inside the vocabulary, no duplicates, finite non-negative probabilities summing to ~1.
    public func isValid(vocabSize: Int, tolerance: Float = 1e-3) -> Bool {
        guard !tokens.isEmpty, tokens.count == probs.count, tokens.count <= vocabSize else { return false }
        var sum: Double = 0
        for (t, p) in zip(tokens, probs) {
            guard t >= 0, Int(t) < vocabSize, p.isFinite, p >= 0 else { return false }
            sum += Double(p)
        }
        guard abs(sum - 1) <= Double(tolerance) else { return false }
        if tokens.count <= 64 {
            for i in tokens.indices { for j in (i + 1)..<tokens.count where tokens[i] == tokens[j] { return false } }
        } else if Set(tokens).count != tokens.count {
            return false
        }
        return true
    }
}
