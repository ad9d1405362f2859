import Foundation
import TandemEngine

/// One drafted token and what the speculation controller needs to know about it.
public struct DraftStep: Sendable, Hashable {
    /// The proposed token.
    public var token: Int32
    /// Draft confidence: the largest probability of the draft's (untruncated, temperature-1 when greedy)
    /// distribution; the controller's predictor of acceptance.
    public var confidence: Float
}

/// Drafter-side sampling for both verification modes.
///
/// The drafter always proposes `argmax_t (log q_t + g(seed, position, t))` over its own truncated
/// distribution `q` (Gumbel-max with the session seed). In `coupled` mode this is the required proposal rule;
/// in `exact` mode it is simply an exact sample from `q`, and the verifier's accept/residual draws use other
/// streams, so reusing the noise is safe. Owns a ``Sampler``; allocation-free per token; not `Sendable`.
public final class SpeculativeDrafter {
    public let sampler: Sampler
    /// Cap on the size of the draft support (what travels to the verifier in `exact` mode).
    public var maxSupport: Int

    /// The drafter-agent's default support (what travels in `exact` mode). Recorded fleet traces use the
    /// same value, since the support shapes the drafted token and its confidence when sampling.
    public static let defaultMaxSupport = 32

    public init(vocabSize: Int, maxSupport: Int = SpeculativeDrafter.defaultMaxSupport) {
        sampler = Sampler(vocabSize: vocabSize)
        self.maxSupport = maxSupport
    }

    /// Drafts the token at `position` from the draft model's logits with the session's parameters (support
    /// capped at ``maxSupport``). Afterwards ``distribution`` / ``copyDistribution()`` hold the exact sparse
    /// distribution the token was sampled from.
    public func draft(logits: UnsafeBufferPointer<Float>, params: SamplingParams, position: Int,
                      recentTokens: UnsafeBufferPointer<Int32> = UnsafeBufferPointer(start: nil, count: 0)) -> DraftStep {
        let p = params.drafting(maxSupport: maxSupport)
        let token = sampler.sample(logits: logits, params: p, position: position, recentTokens: recentTokens)
        let confidence: Float = params.isGreedy
            ? Self.topProbability(logits: logits, vocabSize: sampler.vocabSize)
            : sampler.maxProbability
        return DraftStep(token: token, confidence: confidence)
    }

    /// Variant taking the penalty history as an array (no default, to keep calls unambiguous).
    public func draft(logits: UnsafeBufferPointer<Float>, params: SamplingParams, position: Int,
                      recentTokens: [Int32]) -> DraftStep {
        recentTokens.withUnsafeBufferPointer { draft(logits: logits, params: params, position: position, recentTokens: $0) }
    }

    /// Array convenience for ``draft(logits:params:position:recentTokens:)``.
    public func draft(logits: [Float], params: SamplingParams, position: Int, recentTokens: [Int32] = []) -> DraftStep {
        logits.withUnsafeBufferPointer { l in
            recentTokens.withUnsafeBufferPointer { r in draft(logits: l, params: params, position: position, recentTokens: r) }
        }
    }

    /// The distribution the last drafted token was sampled from (a fresh copy, like ``copyDistribution()``).
    public var distribution: SparseDistribution { sampler.distribution }

    /// A compact copy of the last draft distribution, to send in `exact` mode.
    public func copyDistribution() -> SparseDistribution { sampler.copyDistribution() }

    /// The coupled proposal rule on an already computed draft distribution.
    public static func proposeCoupled(_ q: SparseDistribution, seed: UInt64, position: Int) -> Int32 {
        Sampler.gumbelArgmax(q, random: PositionRandom(seed: seed), position: position)
    }

    /// `max softmax(logits)` at temperature 1: the confidence of a greedy drafter. One pass of `exp`.
    public static func topProbability(logits: UnsafeBufferPointer<Float>, vocabSize: Int) -> Float {
        let n = min(vocabSize, logits.count)
        var m = -Float.infinity
        for i in 0..<n where logits[i] > m { m = logits[i] }
        guard m.isFinite else { return 1 }
        var z: Float = 0
        for i in 0..<n { z += exp(logits[i] - m) }
        return 1 / z
    }
}
