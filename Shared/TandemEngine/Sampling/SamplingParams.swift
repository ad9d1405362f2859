/// How a next token is chosen from logits.
///
/// The transforms are applied in this fixed order (every one of them except temperature keeps a prefix of the
/// tokens sorted by logit, so drafter and verifier agree on the support):
/// 1. repetition penalty on the last ``repetitionWindow`` tokens (llama.cpp rule: positive logits are divided
///    by the penalty, negative ones multiplied),
/// 2. temperature (`0` = greedy: argmax with the lowest index winning ties; all other fields are ignored),
/// 3. min-p (keep tokens with `p >= minP * p_max`),
/// 4. top-k,
/// 5. top-p (smallest prefix whose renormalized mass reaches `topP`, computed on what steps 3-4 kept).
///
/// Every random choice derives from ``seed`` and the token position (see ``PositionRandom``), never from a
/// shared stream, so re-execution, batching and failover reproduce the same tokens.
public struct SamplingParams: Sendable, Hashable, Codable {
    /// Softmax temperature; `0` (or less) selects greedy decoding.
    public var temperature: Float
    /// Keep only the `topK` most likely tokens; `0` = off.
    public var topK: Int
    /// Nucleus mass; `1` = off.
    public var topP: Float
    /// Keep tokens whose probability is at least `minP` times the largest one; `0` = off.
    public var minP: Float
    /// Repetition penalty (> 1 discourages repeats); `1` = off.
    public var repetitionPenalty: Float
    /// How many of the most recent tokens the repetition penalty looks at (llama.cpp's `penalty_last_n`).
    public var repetitionWindow: Int
    /// Seed of the request: together with the position it determines every random draw.
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                repetitionPenalty: Float = 1, repetitionWindow: Int = 64, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    /// Greedy parameters (temperature 0).
    public static let greedy = SamplingParams()

    /// Whether decoding is deterministic argmax.
    @inlinable public var isGreedy: Bool { !(temperature > 0) }

    /// Whether the repetition penalty changes anything.
    @inlinable public var hasRepetitionPenalty: Bool {
        repetitionPenalty != 1 && repetitionPenalty > 0 && repetitionWindow > 0
    }

    /// Parameters a drafter should sample with: the request's own transforms with the support additionally
    /// capped at `maxSupport` tokens, so the sparse distribution sent to the verifier stays small.
    ///
    /// Verification stays lossless for any draft distribution, as long as the drafter sends exactly the
    /// distribution it sampled from; capping only lowers acceptance slightly.
    public func drafting(maxSupport: Int) -> SamplingParams {
        var p = self
        if maxSupport > 0 { p.topK = topK > 0 ? min(topK, maxSupport) : maxSupport }
        return p
    }
}
