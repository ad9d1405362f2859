import Foundation

/// Turns logits into a truncated distribution and samples from it, reproducibly.
///
/// A `Sampler` owns every buffer it needs (sized to the vocabulary at init), so computing a distribution or a
/// token allocates nothing: keep one per session (or per verifier worker) and reuse it. It is a class because
/// it owns large scratch buffers; it is not `Sendable` — confine it to one task/thread.
///
/// Sampling uses the Gumbel-max trick: the token is `argmax_t (log p_t + g_t)` over the truncated support, with
/// `g_t` Gumbel noise that is a pure function of `(seed, position, token)` (``PositionRandom``). This draws
/// exactly from `p`, and because the noise belongs to the *position and token* rather than to a stream, a
/// drafter using the same noise on its own distribution proposes the token the target will pick whenever the
/// two distributions are close: that is `coupled` speculative mode, which reproduces target-only sampling.
/// (Implementation note: `argmax log p + g` is computed as `argmax p / E` with `E = -log u` the exponential
/// variate behind `g = -log E`; identical in exact arithmetic and one `log` cheaper per token.)
///
/// Cost per call: O(V) for scaling, plus O(V log k) partial selection when top-k is set, or an O(V) heapify
/// and O(n log V) pops for the n tokens top-p keeps; only an untruncated distribution touches all V tokens
/// with `exp` and noise. Drafters should cap the support (``SamplingParams/drafting(maxSupport:)``).
public final class Sampler {
    public let vocabSize: Int

    /// Support of the last computed distribution (valid prefix: `supportCount`).
    private let supportTokens: UnsafeMutablePointer<Int32>
    private let supportProbs: UnsafeMutablePointer<Float>
    /// Number of tokens in the last computed distribution.
    public private(set) var supportCount: Int = 0
    /// Logits after temperature and penalty.
    private let scaled: UnsafeMutablePointer<Float>
    /// Candidate token ids for the selection heaps.
    private let order: UnsafeMutablePointer<Int32>

    public init(vocabSize: Int) {
        precondition(vocabSize > 0, "vocabulary must not be empty")
        self.vocabSize = vocabSize
        supportTokens = .allocate(capacity: vocabSize)
        supportProbs = .allocate(capacity: vocabSize)
        scaled = .allocate(capacity: vocabSize)
        order = .allocate(capacity: vocabSize)
    }

    deinit {
        supportTokens.deallocate()
        supportProbs.deallocate()
        scaled.deallocate()
        order.deallocate()
    }

    /// The distribution computed by the last ``computeDistribution(logits:params:recentTokens:)`` call, as a
    /// fresh value (allocates: for hot paths use ``withDistribution(_:)``, ``probability(of:)``,
    /// ``maxProbability`` or ``sampleDistribution(random:position:)``, which read the sampler's own buffers).
    public var distribution: SparseDistribution {
        SparseDistribution(tokens: Array(UnsafeBufferPointer(start: supportTokens, count: supportCount)),
                           probs: Array(UnsafeBufferPointer(start: supportProbs, count: supportCount)))
    }

    /// Same as ``distribution``: a compact copy that is safe to keep or send.
    public func copyDistribution() -> SparseDistribution { distribution }

    /// Zero-copy access to the last computed distribution (tokens, probabilities). Do not escape the buffers.
    public func withDistribution<R>(_ body: (UnsafeBufferPointer<Int32>, UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: supportTokens, count: supportCount),
                 UnsafeBufferPointer(start: supportProbs, count: supportCount))
    }

    /// Probability of `token` in the last computed distribution (0 outside the support). Linear scan.
    public func probability(of token: Int32) -> Float {
        for i in 0..<supportCount where supportTokens[i] == token { return supportProbs[i] }
        return 0
    }

    /// Largest probability of the last computed distribution.
    public var maxProbability: Float {
        var m: Float = 0
        for i in 0..<supportCount where supportProbs[i] > m { m = supportProbs[i] }
        return m
    }

    // MARK: Distribution

    /// Computes the truncated, renormalized distribution of `logits` (the first ``vocabSize`` entries) into
    /// ``distribution``. Greedy parameters give a one-hot distribution on the argmax (lowest index wins ties).
    ///
    /// - Parameter recentTokens: the most recent context tokens for the repetition penalty (only the last
    ///   `params.repetitionWindow` are used; ignored when the penalty is off).
    public func computeDistribution(logits: UnsafeBufferPointer<Float>, params: SamplingParams,
                                    recentTokens: UnsafeBufferPointer<Int32> = UnsafeBufferPointer(start: nil, count: 0)) {
        precondition(logits.count >= vocabSize, "logits row shorter than the vocabulary")
        let n = vocabSize
        let greedy = params.isGreedy
        let invT: Float = greedy ? 1 : 1 / params.temperature
        let penalty = params.hasRepetitionPenalty
        supportCount = 0
        let l = logits.baseAddress!
        if greedy && !penalty {
            appendOneHot(Self.argmax(l, n))
            return
        }
        let s = scaled
        if greedy {
            s.update(from: l, count: n)
        } else {
            for i in 0..<n { s[i] = l[i] * invT }
        }
        if penalty { Self.applyPenalty(s, n, recentTokens, params) }
        if greedy {
            appendOneHot(Self.argmax(s, n))
            return
        }
        truncateAndNormalize(params)
    }

    /// Array convenience for ``computeDistribution(logits:params:recentTokens:)``.
    public func computeDistribution(logits: [Float], params: SamplingParams, recentTokens: [Int32] = []) {
        logits.withUnsafeBufferPointer { l in
            recentTokens.withUnsafeBufferPointer { r in computeDistribution(logits: l, params: params, recentTokens: r) }
        }
    }

    /// Variant taking the penalty history as an array (no default, to keep calls unambiguous).
    public func computeDistribution(logits: UnsafeBufferPointer<Float>, params: SamplingParams, recentTokens: [Int32]) {
        recentTokens.withUnsafeBufferPointer { computeDistribution(logits: logits, params: params, recentTokens: $0) }
    }

    /// Samples the next token at `position`: computes the distribution, then Gumbel-max over its support.
    @discardableResult
    public func sample(logits: UnsafeBufferPointer<Float>, params: SamplingParams, position: Int,
                       recentTokens: UnsafeBufferPointer<Int32> = UnsafeBufferPointer(start: nil, count: 0)) -> Int32 {
        computeDistribution(logits: logits, params: params, recentTokens: recentTokens)
        return sampleDistribution(random: PositionRandom(seed: params.seed), position: position)
    }

    /// Variant taking the penalty history as an array (no default, to keep calls unambiguous).
    @discardableResult
    public func sample(logits: UnsafeBufferPointer<Float>, params: SamplingParams, position: Int,
                       recentTokens: [Int32]) -> Int32 {
        recentTokens.withUnsafeBufferPointer { sample(logits: logits, params: params, position: position, recentTokens: $0) }
    }

    /// Array convenience for ``sample(logits:params:position:recentTokens:)``.
    @discardableResult
    public func sample(logits: [Float], params: SamplingParams, position: Int, recentTokens: [Int32] = []) -> Int32 {
        logits.withUnsafeBufferPointer { l in
            recentTokens.withUnsafeBufferPointer { r in sample(logits: l, params: params, position: position, recentTokens: r) }
        }
    }

    /// Gumbel-max sample from the current ``distribution`` at `position`.
    public func sampleDistribution(random: PositionRandom, position: Int) -> Int32 {
        Self.gumbelArgmax(tokens: UnsafeBufferPointer(start: supportTokens, count: supportCount),
                          probs: UnsafeBufferPointer(start: supportProbs, count: supportCount),
                          random: random, position: position)
    }

    // MARK: Gumbel-max

    /// `argmax_t (log p_t + g(seed, position, t))` over a support: an exact sample from the distribution whose
    /// noise depends only on `(seed, position, token id)`, never on the support's order or size.
    @inlinable
    public static func gumbelArgmax(tokens: UnsafeBufferPointer<Int32>, probs: UnsafeBufferPointer<Float>,
                                    random: PositionRandom, position: Int) -> Int32 {
        precondition(tokens.count == probs.count && !tokens.isEmpty, "empty or malformed distribution")
        if tokens.count == 1 { return tokens[0] }
        let key = random.key(position: position, stream: .sample)
        // Seed the running best with the most likely token, then skip every token that provably cannot beat
        // it without taking a log: score_t = p_t / E_t < best  <=  E_t >= c = p_t / best (with a 1e-9
        // margin), and E_t = -log u_t >= c  <=  u_t <= exp(-c), implied by u_t <= 1 - c because exp(-c) >= 1 - c.
        // Skipped tokens could never have been chosen, so the result is identical to the plain argmax, but
        // a 150k-token support costs one hash per token instead of one log.
        var top = 0
        for i in 1..<tokens.count where probs[i] > probs[top] { top = i }
        var bestToken = tokens[top]
        var best = Double(probs[top]) / key.exponential(UInt64(UInt32(bitPattern: bestToken)))
        var invBest = (1 + 1e-9) / best
        for i in 0..<tokens.count where i != top {
            let p = probs[i]
            guard p > 0 else { continue }
            let t = tokens[i]
            let index = UInt64(UInt32(bitPattern: t))
            let c = Double(p) * invBest
            if c < 1 && key.uniform(index) <= 1 - c { continue }
            let score = Double(p) / key.exponential(index)
            if score > best || (score == best && t < bestToken) {
                best = score
                bestToken = t
                invBest = (1 + 1e-9) / best
            }
        }
        return bestToken
    }

    /// Gumbel-max sample from a ``SparseDistribution`` (the drafter's and the verifier's shared rule).
    public static func gumbelArgmax(_ distribution: SparseDistribution, random: PositionRandom, position: Int) -> Int32 {
        distribution.tokens.withUnsafeBufferPointer { t in
            distribution.probs.withUnsafeBufferPointer { p in
                gumbelArgmax(tokens: t, probs: p, random: random, position: position)
            }
        }
    }

    /// Index of the largest value, lowest index on ties; NaN never wins. Returns 0 if nothing beats -inf.
    @inline(__always)
    static func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int32 {
        var best = 0
        var bestValue = -Float.infinity
        for i in 0..<n where x[i] > bestValue {
            bestValue = x[i]
            best = i
        }
        return Int32(best)
    }

    /// Greedy argmax of raw logits (lowest index wins ties).
    public static func argmax(logits: UnsafeBufferPointer<Float>) -> Int32 {
        argmax(logits.baseAddress!, logits.count)
    }

    // MARK: Internals

    private func appendOneHot(_ token: Int32) {
        supportTokens[0] = token
        supportProbs[0] = 1
        supportCount = 1
    }

    /// llama.cpp's rule, once per distinct token in the window: positive logits are divided by the penalty,
    /// negative ones multiplied (temperature > 0 preserves signs, so applying it after scaling is equivalent).
    private static func applyPenalty(_ s: UnsafeMutablePointer<Float>, _ n: Int,
                                     _ recent: UnsafeBufferPointer<Int32>, _ params: SamplingParams) {
        let w = min(params.repetitionWindow, recent.count)
        guard w > 0 else { return }
        let start = recent.count - w
        let pen = params.repetitionPenalty
        for i in start..<recent.count {
            let t = recent[i]
            guard t >= 0, Int(t) < n else { continue }
            var seen = false
            for j in start..<i where recent[j] == t { seen = true; break }
            if seen { continue }
            let v = s[Int(t)]
            s[Int(t)] = v > 0 ? v / pen : v * pen
        }
    }

    /// min-p, top-k, top-p and softmax over `scaled`, written into `distribution`.
    private func truncateAndNormalize(_ params: SamplingParams) {
        let n = vocabSize
        let s = UnsafePointer(scaled)
        let h = order
        let outT = supportTokens
        let outP = supportProbs
        var m = -Float.infinity
        for i in 0..<n where s[i] > m { m = s[i] }
        guard m > -Float.infinity, m.isFinite else {
            // Everything masked (or +inf logits): fall back to the argmax.
            appendOneHot(Self.argmax(s, n))
            return
        }
        // min-p: p_t >= minP * p_max  <=>  s_t >= m + log(minP). Also drops -inf and NaN.
        let threshold: Float = params.minP > 0 ? m + Float(log(Double(min(params.minP, 1)))) : -Float.greatestFiniteMagnitude
        let topP = params.topP
        let useTopP = topP < 1
        let k = params.topK
        var out = 0

        if k > 0 && k < n {
            // Partial selection: min-heap (root = worst kept) of the best k candidates, O(V log k).
            var count = 0
            for i in 0..<n {
                let v = s[i]
                guard v >= threshold else { continue }
                let t = Int32(i)
                if count < k {
                    h[count] = t
                    Self.siftUpWorst(h, count, s)
                    count += 1
                } else if Self.better(t, h[0], s) {
                    h[0] = t
                    Self.siftDownWorst(h, count, 0, s)
                }
            }
            // Heap sort in place: best first.
            var end = count - 1
            while end > 0 {
                h.swapAt(0, end)
                Self.siftDownWorst(h, end, 0, s)
                end -= 1
            }
            for j in 0..<count {
                outT[j] = h[j]
                outP[j] = exp(s[Int(h[j])] - m)
            }
            out = count
            if useTopP {
                var z: Double = 0
                for j in 0..<count { z += Double(outP[j]) }
                let target = Double(max(topP, 0)) * z
                var cum: Double = 0
                for j in 0..<count {
                    cum += Double(outP[j])
                    if cum >= target { out = j + 1; break }
                }
            }
        } else if useTopP {
            // Sort only as far as needed: heapify all candidates, pop until the mass reaches topP.
            var count = 0
            var z: Double = 0
            for i in 0..<n where s[i] >= threshold {
                h[count] = Int32(i)
                count += 1
                z += Double(exp(s[i] - m))
            }
            var i = count / 2 - 1
            while i >= 0 {
                Self.siftDownBest(h, count, i, s)
                i -= 1
            }
            let target = Double(max(topP, 0)) * z
            var cum: Double = 0
            var size = count
            while size > 0 {
                let t = h[0]
                size -= 1
                h[0] = h[size]
                if size > 0 { Self.siftDownBest(h, size, 0, s) }
                let w = exp(s[Int(t)] - m)
                outT[out] = t
                outP[out] = w
                out += 1
                cum += Double(w)
                if cum >= target { break }
            }
        } else {
            // No truncation beyond min-p: the support is every candidate, in id order.
            for i in 0..<n where s[i] >= threshold {
                outT[out] = Int32(i)
                outP[out] = exp(s[i] - m)
                out += 1
            }
        }
        // Normalize.
        var z: Double = 0
        for j in 0..<out { z += Double(outP[j]) }
        let inv = Float(1 / z)
        for j in 0..<out { outP[j] *= inv }
        supportCount = out
    }

    /// `a` ranks before `b`: larger scaled logit, then lower id.
    @inline(__always)
    private static func better(_ a: Int32, _ b: Int32, _ s: UnsafePointer<Float>) -> Bool {
        let va = s[Int(a)], vb = s[Int(b)]
        return va > vb || (va == vb && a < b)
    }

    @inline(__always)
    private static func siftUpWorst(_ h: UnsafeMutablePointer<Int32>, _ index: Int, _ s: UnsafePointer<Float>) {
        var i = index
        while i > 0 {
            let p = (i - 1) / 2
            guard better(h[p], h[i], s) else { break }
            h.swapAt(p, i)
            i = p
        }
    }

    @inline(__always)
    private static func siftDownWorst(_ h: UnsafeMutablePointer<Int32>, _ n: Int, _ index: Int, _ s: UnsafePointer<Float>) {
        var i = index
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var w = l
            let r = l + 1
            if r < n && better(h[l], h[r], s) { w = r }
            guard better(h[i], h[w], s) else { return }
            h.swapAt(i, w)
            i = w
        }
    }

    @inline(__always)
    private static func siftDownBest(_ h: UnsafeMutablePointer<Int32>, _ n: Int, _ index: Int, _ s: UnsafePointer<Float>) {
        var i = index
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var b = l
            let r = l + 1
            if r < n && better(h[r], h[l], s) { b = r }
            guard better(h[b], h[i], s) else { return }
            h.swapAt(i, b)
            i = b
        }
    }
}

extension UnsafeMutablePointer where Pointee == Int32 {
    @inline(__always)
    fileprivate func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }
}
