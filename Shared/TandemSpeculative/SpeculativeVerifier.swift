import TandemEngine

/// The two lossless acceptance rules (docs/design.md §5): the engine's copy of the wire's `VerificationMode`,
/// which a request's `ServingMode` implies (TandemWire; the engine knows no wire). Converted in one place,
/// TandemServing's WireConversions.swift.
public enum SpeculationMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// Rejection sampling against the draft distribution: accept `x` with probability `min(1, p(x)/q(x))`,
    /// on rejection sample `norm(max(0, p - q))`. Highest acceptance; the output depends on the drafts.
    case exact
    /// Shared Gumbel noise: accept while the draft equals the target's own Gumbel-max choice. The output is
    /// exactly target-only sampling with the same seed, whatever the drafter; only token ids travel.
    case coupled
}

/// Verifies one round of draft tokens against the target's logits at `K + 1` positions.
///
/// Owns a ``Sampler`` and a vocabulary-sized scratch buffer, so a round allocates nothing once the
/// caller-supplied ``VerificationResult`` has capacity: keep one verifier per worker thread. Not `Sendable`.
///
/// Positions: the first draft token sits at `position` (= number of committed context tokens, the wire's
/// `VerifyRequest.position`), draft `i` at `position + i`, the bonus at `position + K`. Random draws:
/// `exact` uses uniforms from streams `accept` and `residual` at each position and Gumbel noise (stream
/// `sample`) for the bonus; `coupled` uses only the `sample` stream, exactly like target-only sampling, so a
/// `coupled` round with `K = 0` *is* target-only sampling. Greedy parameters reduce both modes to
/// "accept while the draft equals the target argmax, then emit the argmax".
public final class SpeculativeVerifier {
    public let vocabSize: Int
    /// The target-side sampler (exposed so a verifier can also do plain target-only decoding with it).
    public let sampler: Sampler
    /// Dense copy of a draft distribution during residual sampling; all zero between calls.
    private var denseQ: [Float]
    /// Penalty window: recent context followed by the accepted drafts.
    private var history: [Int32]

    public init(vocabSize: Int) {
        self.vocabSize = vocabSize
        sampler = Sampler(vocabSize: vocabSize)
        denseQ = [Float](repeating: 0, count: vocabSize)
        history = []
        history.reserveCapacity(256)
    }

    /// Verifies `draftTokens` (K of them) given `K + 1` rows of target logits.
    ///
    /// - Parameters:
    ///   - draftDistributions: the sparse distributions each draft token was sampled from; required (K of
    ///     them) in `exact` mode unless greedy, ignored otherwise. A draft token missing from its own
    ///     distribution is treated as drafted deterministically (q = one-hot), which keeps the rule lossless.
    ///   - targetLogits: row `i` (the target's logits for position `position + i`) starts at
    ///     `i * rowStride`; only the first ``vocabSize`` entries of a row are read.
    ///   - recentTokens: committed context tokens before `position` (at least the penalty window), used only
    ///     when the repetition penalty is on; the accepted drafts are appended internally.
    ///   - result: reset and filled; reuse one value to avoid allocation.
    public func verify(mode: SpeculationMode, draftTokens: UnsafeBufferPointer<Int32>,
                       draftDistributions: [SparseDistribution], targetLogits: UnsafeBufferPointer<Float>,
                       rowStride: Int? = nil, position: Int, params: SamplingParams,
                       recentTokens: UnsafeBufferPointer<Int32> = UnsafeBufferPointer(start: nil, count: 0),
                       into result: inout VerificationResult) {
        let k = draftTokens.count
        let stride = rowStride ?? vocabSize
        precondition(stride >= vocabSize, "row stride shorter than the vocabulary")
        precondition(targetLogits.count >= k * stride + vocabSize, "need K + 1 rows of target logits")
        let v = vocabSize
        verify(mode: mode, draftTokens: draftTokens, draftDistributions: draftDistributions,
               targetRow: { UnsafeBufferPointer(rebasing: targetLogits[($0 * stride)..<($0 * stride + v)]) },
               position: position, params: params, recentTokens: recentTokens, into: &result)
    }

    /// Same as the buffer variant, with the target's logits for position `position + i` given by
    /// `targetRow(i)` for `i` in `0...K` (e.g. `{ forward.logits(request: r, row: $0) }`).
    public func verify(mode: SpeculationMode, draftTokens: UnsafeBufferPointer<Int32>,
                       draftDistributions: [SparseDistribution], targetRow: (Int) -> UnsafeBufferPointer<Float>,
                       position: Int, params: SamplingParams,
                       recentTokens: UnsafeBufferPointer<Int32> = UnsafeBufferPointer(start: nil, count: 0),
                       into result: inout VerificationResult) {
        let k = draftTokens.count
        let useRejection = mode == .exact && !params.isGreedy
        precondition(!useRejection || draftDistributions.count == k, "exact mode needs one distribution per draft")
        result.reset(draftCount: k)
        let random = PositionRandom(seed: params.seed)
        let penalty = params.hasRepetitionPenalty
        if penalty {
            history.removeAll(keepingCapacity: true)
            let w = min(params.repetitionWindow, recentTokens.count)
            for j in (recentTokens.count - w)..<recentTokens.count { history.append(recentTokens[j]) }
        }

        for i in 0...k {
            let row = targetRow(i)
            precondition(row.count >= vocabSize, "target logits row shorter than the vocabulary")
            if penalty {
                history.withUnsafeBufferPointer { sampler.computeDistribution(logits: row, params: params, recentTokens: $0) }
            } else {
                sampler.computeDistribution(logits: row, params: params)
            }
            let pos = position + i
            if i == k {
                result.tokens.append(sampler.sampleDistribution(random: random, position: pos))
                return
            }
            let x = draftTokens[i]
            let accepted: Bool
            var correction: Int32 = x
            if useRejection {
                let q = draftDistributions[i]
                let px = sampler.probability(of: x)
                var qx = q.probability(of: x)
                let qUsable = qx > 0
                if !qUsable { qx = 1 }
                let u = random.uniform(position: pos, stream: .accept)
                accepted = u * Double(qx) < Double(px)
                if !accepted {
                    correction = sampleResidual(q: q, qUsable: qUsable, draft: x,
                                                u: random.uniform(position: pos, stream: .residual))
                }
            } else {
                let y = sampler.sampleDistribution(random: random, position: pos)
                accepted = y == x
                correction = y
            }
            if accepted {
                result.acceptFlags.append(true)
                result.tokens.append(x)
                result.acceptedCount += 1
                if penalty { history.append(x) }
            } else {
                for _ in i..<k { result.acceptFlags.append(false) }
                result.tokens.append(correction)
                return
            }
        }
    }

    /// Array-friendly variant of the row-closure form (drafts and history as arrays; result reused).
    public func verify(mode: SpeculationMode, draftTokens: [Int32], draftDistributions: [SparseDistribution],
                       targetRow: (Int) -> UnsafeBufferPointer<Float>, position: Int, params: SamplingParams,
                       recentTokens: [Int32], into result: inout VerificationResult) {
        draftTokens.withUnsafeBufferPointer { d in
            recentTokens.withUnsafeBufferPointer { r in
                verify(mode: mode, draftTokens: d, draftDistributions: draftDistributions, targetRow: targetRow,
                       position: position, params: params, recentTokens: r, into: &result)
            }
        }
    }

    /// Array convenience for ``verify(mode:draftTokens:draftDistributions:targetLogits:rowStride:position:params:recentTokens:into:)``.
    public func verify(mode: SpeculationMode, draftTokens: [Int32], draftDistributions: [SparseDistribution] = [],
                       targetLogits: [Float], rowStride: Int? = nil, position: Int, params: SamplingParams,
                       recentTokens: [Int32] = []) -> VerificationResult {
        var result = VerificationResult()
        draftTokens.withUnsafeBufferPointer { d in
            targetLogits.withUnsafeBufferPointer { l in
                recentTokens.withUnsafeBufferPointer { r in
                    verify(mode: mode, draftTokens: d, draftDistributions: draftDistributions, targetLogits: l,
                           rowStride: rowStride, position: position, params: params, recentTokens: r, into: &result)
                }
            }
        }
        return result
    }

    /// Inverse-CDF sample from `norm(max(0, p - q))` over the target support (in its deterministic order),
    /// where `p` is the sampler's current distribution. Falls back to `p` itself if the residual has no mass
    /// (only possible through rounding, when p ≈ q).
    private func sampleResidual(q: SparseDistribution, qUsable: Bool, draft: Int32, u: Double) -> Int32 {
        let v = vocabSize
        return denseQ.withUnsafeMutableBufferPointer { dq in
            if qUsable {
                for j in q.tokens.indices {
                    let t = Int(q.tokens[j])
                    if t >= 0 && t < v { dq[t] += q.probs[j] }
                }
            } else if draft >= 0 && Int(draft) < v {
                dq[Int(draft)] = 1
            }
            defer {
                if qUsable {
                    for t in q.tokens where t >= 0 && Int(t) < v { dq[Int(t)] = 0 }
                } else if draft >= 0 && Int(draft) < v {
                    dq[Int(draft)] = 0
                }
            }
            return sampler.withDistribution { tokens, probs -> Int32 in
                var total: Double = 0
                for j in 0..<tokens.count {
                    total += Double(max(0, probs[j] - dq[Int(tokens[j])]))
                }
                var chosen: Int32 = -1
                if total > 1e-9 {
                    let target = u * total
                    var cum: Double = 0
                    for j in 0..<tokens.count {
                        let r = max(0, probs[j] - dq[Int(tokens[j])])
                        guard r > 0 else { continue }
                        chosen = tokens[j]
                        cum += Double(r)
                        if cum > target { break }
                    }
                } else {
                    let target = u
                    var cum: Double = 0
                    for j in 0..<tokens.count where probs[j] > 0 {
                        chosen = tokens[j]
                        cum += Double(probs[j])
                        if cum > target { break }
                    }
                }
                return chosen >= 0 ? chosen : tokens[0]
            }
        }
    }
}
