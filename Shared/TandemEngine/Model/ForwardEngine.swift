import Logging
import TandemKernels

#if canImport(Glibc)
import Glibc
#endif

/// Evaluates a `LanguageModel` on a batch of sequences, each with one or more new tokens.
///
/// One `forward` call stacks every request's new tokens into one activation matrix, so each weight matrix
/// is streamed from memory once per call whatever the number of sequences and positions (the verifier
/// checks many sessions' K+1 draft positions in one call; prefill is one call with all prompt tokens).
///
/// **Batch invariance.** The logits of a position are bit-for-bit identical whether it is evaluated alone,
/// as one of several new positions of its sequence, or batched with other sequences: matrix products use
/// `MatMul.multiply`, whose per-token result does not depend on the batch; norms, rotary embedding and
/// activations are per token; attention computes every (position, head) pair independently with a fixed
/// operation order (parallelized over pairs, never splitting a reduction). Speculative verification relies
/// on this for lossless greedy output.
///
/// An engine owns its scratch buffers (grown on demand, reused between calls) and a `ComputePool`. It is
/// not reentrant: make one call at a time (give each thread or actor its own engine; they can share the
/// model).
public final class ForwardEngine: @unchecked Sendable {
    public let model: LanguageModel
    public let pool: ComputePool
    /// Element type of the caches `makeCache` creates.
    public let kvType: KVCacheType
    private let ownsPool: Bool
    private let logger: Logger

    // Geometry.
    private let E: Int, QW: Int, KVW: Int, FF: Int, V: Int, HD: Int, NH: Int, NKV: Int
    private let ropeHalf: Int
    private let ropeLayout: VectorOps.RotaryLayout

    // Scratch (capacity in tokens `capT`, logits rows `capL`, scores `capS` floats).
    private var capT = 0, capL = 0, capS = 0, capR = 0
    private var x = Buf(), xn = Buf(), q = Buf(), k = Buf(), v = Buf(), att = Buf(), tmp = Buf()
    private var gate = Buf(), up = Buf(), scores = Buf(), logitsBuf = Buf(), gathered = Buf()
    private var tokSeq = IBuf(), tokPos = IBuf(), rowStart = IBuf(), rowCount = IBuf(), logitTokens = IBuf()
    /// Per request: its first token's row in the pass, and the index of its first attention tile.
    private var tokStart = IBuf(), tilePrefix = IBuf()
    /// Attention tiles of the current pass, and the longest context in it (the score rows' length).
    private var attentionTiles = 0, passMaxLen = 0
    private let matmulScratch = MatMulScratch()
    private var decodeRequest: [ForwardRequest] = []

    /// Most new tokens one pass evaluates. A longer call (a long prompt's prefill) runs in several passes, so
    /// activation and attention scratch stay bounded by this (a few tens of MB) instead of growing with the
    /// prompt; the results are bit-for-bit those of one pass.
    public var maxTokensPerPass = 256
    private var ropeCos = Buf(), ropeSin = Buf()

    /// - Parameters:
    ///   - model: the model to evaluate.
    ///   - threads: threads used for the kernels (the calling thread included). Ignored when `pool` is given.
    ///   - pool: an existing pool to share (e.g. between a drafter's engines); the engine creates its own otherwise.
    ///   - kvType: element type of the caches `makeCache` creates (a forward pass accepts caches of either type).
    ///     Speculative decoding is lossless only when the drafter's reference and the verifier agree, so
    ///     everything that does not choose uses `KVCacheType.default`.
    public init(model: LanguageModel, threads: Int = 2, pool: ComputePool? = nil, kvType: KVCacheType = .default,
                logger: Logger = Logger(label: "tandem.engine")) {
        self.model = model
        self.kvType = kvType
        self.pool = pool ?? ComputePool(threads: threads)
        self.ownsPool = pool == nil
        self.logger = logger
        let c = model.config
        E = c.embeddingWidth; QW = c.queryWidth; KVW = c.kvWidth; FF = c.feedForwardWidth
        V = c.vocabularySize; HD = c.headDim; NH = c.headCount; NKV = c.kvHeadCount
        ropeHalf = c.ropeDim / 2
        ropeLayout = c.ropeLayout == .neox ? .neox : .normal
    }

    deinit {
        if ownsPool { pool.shutdown() }
        for b in [x, xn, q, k, v, att, tmp, gate, up, scores, logitsBuf, gathered, ropeCos, ropeSin] { b.free() }
        for b in [tokSeq, tokPos, rowStart, rowCount, logitTokens, tokStart, tilePrefix] { b.free() }
    }

    /// Creates a KV cache for this engine's model, of the engine's `kvType` unless `type` says otherwise
    /// (address space for `capacity` positions; memory is committed in blocks as it fills).
    public func makeCache(capacity: Int, type: KVCacheType? = nil) -> KVCache {
        KVCache(config: model.config, capacity: capacity, type: type ?? kvType)
    }

    /// Bytes one cached position takes with this engine's `kvType` (memory budgets).
    public var kvBytesPerPosition: Int { KVCache.bytesPerPosition(config: model.config, type: kvType) }

    /// Convenience for one sequence, one new token: returns the next-token logits (valid until the next call).
    ///
    /// Allocation-free in steady state: the one-element request array is kept and updated in place (so the
    /// engine holds a reference to the last decoded cache until the next `decode`).
    public func decode(cache: KVCache, token: Int32) throws -> UnsafeBufferPointer<Float> {
        if decodeRequest.isEmpty {
            decodeRequest = [ForwardRequest(cache: cache, tokens: [token], logits: .last)]
        } else {
            decodeRequest[0].cache = cache
            decodeRequest[0].tokens[0] = token
        }
        return try forward(decodeRequest).logits(request: 0)
    }

    /// Evaluates every request's new tokens, appends them to the requests' caches, and returns the logits
    /// selected by each request (views valid until the next call on this engine).
    ///
    /// Throws `ForwardError` (and changes no cache) when a request is empty, a token id is out of range, a
    /// cache lacks room, a cache belongs to another model geometry, or the same cache appears twice.
    public func forward(_ requests: [ForwardRequest]) throws -> ForwardResult {
        let total = try validate(requests)
        guard total > maxTokensPerPass else { return evaluate(requests) }
        // Too many tokens for one pass: evaluate leading chunks of the prefill-like requests (`.none`, `.last`)
        // first, without logits, until the rest fits. Batch invariance makes the result bit-for-bit the same
        // as one pass; the scratch stays bounded by the pass size whatever the prompt length.
        var rest = requests
        var restTotal = total
        while restTotal > maxTokensPerPass {
            var pass: [ForwardRequest] = []
            var room = maxTokensPerPass
            for i in rest.indices where room > 0 && rest[i].logits != .all && rest[i].tokens.count > 1 {
                let n = min(room, rest[i].tokens.count - 1)
                pass.append(ForwardRequest(cache: rest[i].cache, tokens: Array(rest[i].tokens.prefix(n)), logits: .none))
                rest[i].tokens.removeFirst(n)
                room -= n
            }
            if pass.isEmpty { break }  // only verification-like (`.all`) requests remain: one pass
            _ = evaluate(pass)
            restTotal -= maxTokensPerPass - room
        }
        return evaluate(rest)
    }

    /// Checks every request (see ``forward(_:)``) and returns the total number of new tokens.
    private func validate(_ requests: [ForwardRequest]) throws -> Int {
        var total = 0
        for (i, r) in requests.enumerated() {
            guard !r.tokens.isEmpty else { throw ForwardError("request \(i) has no tokens") }
            guard r.cache.layerCount == model.config.layerCount, r.cache.kvWidth == KVW else {
                throw ForwardError("request \(i): cache was made for a different model")
            }
            guard r.tokens.count <= r.cache.remaining else {
                throw ForwardError("request \(i): \(r.tokens.count) tokens do not fit in the cache (\(r.cache.count)/\(r.cache.capacity) used)")
            }
            for t in r.tokens where t < 0 || Int(t) >= V {
                throw ForwardError("request \(i): token id \(t) is outside the vocabulary (0..<\(V))")
            }
            for j in 0..<i where requests[j].cache === r.cache {
                throw ForwardError("requests \(j) and \(i) share one KV cache")
            }
            total += r.tokens.count
        }
        return total
    }

    /// One pass over already validated requests: every new token of every request in one activation matrix.
    private func evaluate(_ requests: [ForwardRequest]) -> ForwardResult {
        var total = 0
        var nLogits = 0
        var maxLen = 0
        for r in requests {
            total += r.tokens.count
            maxLen = max(maxLen, r.cache.count + r.tokens.count)
            switch r.logits {
            case .all: nLogits += r.tokens.count
            case .last: nLogits += 1
            case .none: break
            }
        }
        ensureCapacity(tokens: total, logitsRows: nLogits, requests: requests.count, maxLen: maxLen)
        // Commit the caches' memory for the new positions (a block at a time; nothing when already there).
        for r in requests { r.cache.commit(upTo: r.cache.count + r.tokens.count) }

        // Token table: which request and absolute position each stacked row is.
        var t = 0
        var row = 0
        attentionTiles = 0
        passMaxLen = maxLen
        for (i, r) in requests.enumerated() {
            tokStart.p[i] = t
            tilePrefix.p[i] = attentionTiles
            attentionTiles += (r.tokens.count + Self.attentionTileTokens - 1) / Self.attentionTileTokens
            rowStart.p[i] = row
            let n: Int
            switch r.logits {
            case .all: n = r.tokens.count
            case .last: n = 1
            case .none: n = 0
            }
            rowCount.p[i] = n
            for (j, tok) in r.tokens.enumerated() {
                tokSeq.p[t] = i
                tokPos.p[t] = r.cache.count + j
                if r.logits == .all || (r.logits == .last && j == r.tokens.count - 1) {
                    logitTokens.p[row] = t
                    row += 1
                }
                embed(token: tok, into: x.p + t * E)
                VectorOps.rotaryAngles(position: r.cache.count + j, ropeDim: 2 * ropeHalf,
                                       base: Float(model.config.ropeBase),
                                       cos: ropeCos.p + t * ropeHalf, sin: ropeSin.p + t * ropeHalf)
                t += 1
            }
        }

        for l in 0..<model.config.layerCount {
            layer(l, requests: requests, nTokens: total)
        }

        // Final norm on the rows that need logits, then the output projection.
        if nLogits > 0 {
            let eps = model.config.rmsEpsilon
            model.outputNorm.withUnsafeBufferPointer { w in
                for r in 0..<nLogits {
                    rmsNorm(x.p + logitTokens.p[r] * E, w.baseAddress!, gathered.p + r * E, E, eps)
                }
            }
            matmul(model.output, gathered.p, nLogits, logitsBuf.p)
        }
        for r in requests { r.cache.advance(by: r.tokens.count) }
        return ForwardResult(base: logitsBuf.p, rowStart: rowStart.p, rowCount: rowCount.p,
                             requestCount: requests.count, vocabularySize: V)
    }

    // MARK: - Layers

    private func layer(_ l: Int, requests: [ForwardRequest], nTokens T: Int) {
        let w = model.layers[l]
        let eps = model.config.rmsEpsilon
        let E = E, QW = QW, KVW = KVW, FF = FF

        // Attention block.
        w.attentionNorm.withUnsafeBufferPointer { nw in
            for t in 0..<T { rmsNorm(x.p + t * E, nw.baseAddress!, xn.p + t * E, E, eps) }
        }
        MatMul.multiply(w.wq, q.p, w.wk, k.p, w.wv, v.p, input: xn.p, nTokens: T, pool: pool, scratch: matmulScratch)
        if let b = w.bq { addBias(q.p, b, T, QW) }
        if let b = w.bk { addBias(k.p, b, T, KVW) }
        if let b = w.bv { addBias(v.p, b, T, KVW) }
        for t in 0..<T {
            let pos = tokPos.p[t]
            let c = ropeCos.p + t * ropeHalf, s = ropeSin.p + t * ropeHalf
            VectorOps.applyRotary(q.p + t * QW, heads: NH, headDim: HD, ropeDim: 2 * ropeHalf, cos: c, sin: s, layout: ropeLayout)
            VectorOps.applyRotary(k.p + t * KVW, heads: NKV, headDim: HD, ropeDim: 2 * ropeHalf, cos: c, sin: s, layout: ropeLayout)
            let cache = requests[tokSeq.p[t]].cache
            switch cache.type {
            case .f32:
                (cache.keys(layer: l) + pos * KVW).update(from: k.p + t * KVW, count: KVW)
                (cache.values(layer: l) + pos * KVW).update(from: v.p + t * KVW, count: KVW)
            case .f16:
                AttentionOps.storeF16(k.p + t * KVW, cache.halfKeys(layer: l) + pos * KVW, count: KVW)
                AttentionOps.storeF16(v.p + t * KVW, cache.halfValues(layer: l) + pos * KVW, count: KVW)
            }
        }
        attention(layer: l, requests: requests, nTokens: T)
        matmul(w.wo, att.p, T, tmp.p)
        addInPlace(x.p, tmp.p, T * E)

        // Feed-forward block (SwiGLU).
        w.ffnNorm.withUnsafeBufferPointer { nw in
            for t in 0..<T { rmsNorm(x.p + t * E, nw.baseAddress!, xn.p + t * E, E, eps) }
        }
        MatMul.multiply(w.gate, gate.p, w.up, up.p, input: xn.p, nTokens: T, pool: pool, scratch: matmulScratch)
        let g = gate.p, u = up.p
        let chunks = min(T, 8)
        pool.parallelFor(chunks) { c in
            let lo = c * T / chunks * FF, hi = (c + 1) * T / chunks * FF
            swiglu(g + lo, u + lo, hi - lo)
        }
        matmul(w.down, gate.p, T, tmp.p)
        addInPlace(x.p, tmp.p, T * E)
    }

    /// New tokens per attention tile: a tile's queries, for all heads sharing one KV head, read each
    /// block of cached keys and values once (``attentionKeyBlock`` positions, a few tens of KB) instead of
    /// once per (token, head). On a 16k-token prefill of the 1.5B (2 cores) this took the rate at 5-8k
    /// tokens of context from 12.8 to 25-38 tokens/s; at 12k both ran at 12.8 tokens/s, where the per-score
    /// work (an `expf` and three passes over each score row) dominates (docs/measurements.md).
    static let attentionTileTokens = 16
    /// Cached positions per block of a tile's sweep.
    static let attentionKeyBlock = 64

    /// Floats of per-thread attention scratch for `rows` (token, head) pairs: a score row of `maxLen` each,
    /// then each row's maximum and sum.
    static func tileScratch(rows: Int, maxLen: Int) -> Int { rows * maxLen + 2 * rows }

    /// Causal attention for every (new token, head) pair. Each pair's result comes from a fixed sequence
    /// of operations over its cached positions (one dot product per position, the softmax in position
    /// order, one fused multiply-add per value row in position order), so it does not depend on the batch
    /// or on how the work is split: f16 caches are swept in tiles (``attentionTileTokens`` tokens of one
    /// request x the heads of one KV head, blocks of ``attentionKeyBlock`` positions), which changes which
    /// pair runs when, never what a pair computes.
    private func attention(layer l: Int, requests: [ForwardRequest], nTokens T: Int) {
        let HD = HD, NH = NH, QW = QW, KVW = KVW, NKV = NKV
        let group = NH / NKV
        let scale = 1 / Float(HD).squareRoot()
        let stride = capS / pool.threadCount
        let maxLen = passMaxLen
        let TT = Self.attentionTileTokens, B = Self.attentionKeyBlock
        let qp = q.p, ap = att.p, sp = scores.p, poss = tokPos.p, starts = tokStart.p, prefix = tilePrefix.p
        let nReq = requests.count
        requests.withUnsafeBufferPointer { reqs in
            pool.parallelFor(attentionTiles * NKV) { item, thread in
                let tile = item / NKV, kvh = item % NKV
                // The request holding this tile (tiles are numbered request by request).
                var r = 0
                while r + 1 < nReq && prefix[r + 1] <= tile { r += 1 }
                let cache = reqs[r].cache
                let t0 = starts[r] + (tile - prefix[r]) * TT
                let t1 = min(t0 + TT, starts[r] + reqs[r].tokens.count)
                let s = sp + thread * stride
                guard cache.type == .f16 else {
                    for t in t0..<t1 {
                        for h in kvh * group..<(kvh + 1) * group {
                            attendF32(cache, layer: l, query: qp + t * QW + h * HD, kvHead: kvh, positions: poss[t] + 1,
                                      scale: scale, scores: s, out: ap + t * QW + h * HD)
                        }
                    }
                    return
                }
                let K = cache.halfKeys(layer: l) + kvh * HD
                let Vv = cache.halfValues(layer: l) + kvh * HD
                let rows = (t1 - t0) * group
                let mx = s + rows * maxLen, sum = mx + rows
                let end = poss[t1 - 1] + 1  // the tile's last token sees the most positions
                for row in 0..<rows { mx[row] = -Float.infinity }
                // Visits every (token, head) row of the tile once per key block it sees, blocks in position
                // order: `body(t, head, row, first, stop)` covers positions first..<stop.
                func sweep(_ body: (Int, Int, Int, Int, Int) -> Void) {
                    var jb = 0
                    while jb < end {
                        let je = min(jb + B, end)
                        for t in t0..<t1 {
                            let stop = min(je, poss[t] + 1)
                            guard jb < stop else { continue }
                            for hh in 0..<group { body(t, kvh * group + hh, (t - t0) * group + hh, jb, stop) }
                        }
                        jb = je
                    }
                }
                sweep { t, h, row, first, stop in
                    let blockMax = AttentionOps.scoresF16(qp + t * QW + h * HD, keys: K + first * KVW, stride: KVW,
                                                          positions: stop - first, headDim: HD, scale: scale,
                                                          s + row * maxLen + first)
                    mx[row] = max(mx[row], blockMax)
                }
                for t in t0..<t1 {
                    let n = poss[t] + 1
                    for hh in 0..<group {
                        let row = (t - t0) * group + hh
                        let scores = s + row * maxLen, m = mx[row]
                        var total: Float = 0
                        for j in 0..<n {
                            let e = expf(scores[j] - m)
                            scores[j] = e
                            total += e
                        }
                        sum[row] = 1 / total
                    }
                }
                sweep { t, h, row, first, stop in
                    AttentionOps.accumulateF16(s + row * maxLen + first, norm: sum[row], values: Vv + first * KVW,
                                               stride: KVW, positions: stop - first, headDim: HD,
                                               ap + t * QW + h * HD, zeroFirst: first == 0)
                }
            }
        }
    }

    /// One (token, head) pair over an f32 cache.
    private func attendF32(_ cache: KVCache, layer l: Int, query qv: UnsafeMutablePointer<Float>, kvHead kvh: Int,
                           positions n: Int, scale: Float, scores s: UnsafeMutablePointer<Float>,
                           out: UnsafeMutablePointer<Float>) {
        let HD = HD, KVW = KVW
        let K = cache.keys(layer: l) + kvh * HD
        let Vv = cache.values(layer: l) + kvh * HD
        var mx = -Float.infinity
        for j in 0..<n {
            let d = dot(qv, K + j * KVW, HD) * scale
            s[j] = d
            mx = max(mx, d)
        }
        var sum: Float = 0
        for j in 0..<n {
            let e = expf(s[j] - mx)
            s[j] = e
            sum += e
        }
        let inv = 1 / sum
        out.initialize(repeating: 0, count: HD)
        for j in 0..<n {
            axpy(s[j] * inv, Vv + j * KVW, out, HD)
        }
    }

    // MARK: - Helpers

    private func embed(token: Int32, into dst: UnsafeMutablePointer<Float>) {
        let m = model.tokenEmbedding
        dequantizeRow(m.type, m.row(Int(token)), dst, count: E)
    }

    private func matmul(_ w: WeightMatrix, _ input: UnsafeMutablePointer<Float>, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
        MatMul.multiply(w, UnsafePointer(input), nTokens: n, out, pool: pool, scratch: matmulScratch)
    }

    private func ensureCapacity(tokens T: Int, logitsRows L: Int, requests R: Int, maxLen: Int) {
        if T > capT {
            let n = max(T, capT * 2, 8)
            for b in [x, xn, tmp] { b.resize(n * E) }
            for b in [q, att] { b.resize(n * QW) }
            for b in [k, v] { b.resize(n * KVW) }
            for b in [gate, up] { b.resize(n * FF) }
            tokSeq.resize(n); tokPos.resize(n)
            ropeCos.resize(n * ropeHalf); ropeSin.resize(n * ropeHalf)
            capT = n
        }
        let L1 = max(L, 1)
        if L1 > capL {
            let n = max(L1, capL * 2)
            logitsBuf.resize(n * V)
            gathered.resize(n * E)
            logitTokens.resize(n)
            capL = n
        }
        if R > capR {
            let n = max(R, capR * 2, 4)
            rowStart.resize(n); rowCount.resize(n); tokStart.resize(n); tilePrefix.resize(n)
            capR = n
        }
        // Scores: per pool thread, one row of `maxLen` for each (token, head) of an attention tile plus the
        // tile's maxima and sums (an item's scores live only while its thread runs it), so attention
        // scratch does not grow with the number of new tokens.
        let needS = pool.threadCount * Self.tileScratch(rows: Self.attentionTileTokens * (NH / NKV), maxLen: maxLen)
        if needS > capS {
            let n = max(needS, capS * 2)
            scores.resize(n)
            capS = n
        }
    }
}

// MARK: - Scratch buffers

/// A manually managed, growable `Float` buffer (stable address between resizes; contents not preserved).
final class Buf {
    var p: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    func resize(_ n: Int) {
        p.deallocate()
        p = .allocate(capacity: max(n, 1))
        p.initialize(repeating: 0, count: max(n, 1))
    }
    func free() { p.deallocate() }
}

final class IBuf {
    var p: UnsafeMutablePointer<Int> = .allocate(capacity: 1)
    func resize(_ n: Int) {
        p.deallocate()
        p = .allocate(capacity: max(n, 1))
        p.initialize(repeating: 0, count: max(n, 1))
    }
    func free() { p.deallocate() }
}

// MARK: - Small F32 ops (kept in this file so they inline without whole-module optimization)

@inline(__always)
private func rmsNorm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, _ eps: Float) {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        acc += v * v
        i += 8
    }
    var ss = acc.sum()
    while i < n { ss += x[i] * x[i]; i += 1 }
    let scale = 1 / (ss / Float(n) + eps).squareRoot()
    for j in 0..<n { out[j] = x[j] * scale * w[j] }
}

@inline(__always)
private func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        acc0 += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        acc1 += UnsafeRawPointer(a + i + 8).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i + 8).loadUnaligned(as: SIMD8<Float>.self)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

@inline(__always)
private func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let a = SIMD8<Float>(repeating: alpha)
    while i + 8 <= n {
        let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: yv + a * xv, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}

@inline(__always)
private func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += x[i] }
}

@inline(__always)
private func addBias(_ y: UnsafeMutablePointer<Float>, _ b: [Float], _ rows: Int, _ width: Int) {
    b.withUnsafeBufferPointer { bp in
        for r in 0..<rows {
            let row = y + r * width
            for i in 0..<width { row[i] += bp[i] }
        }
    }
}

/// `g[i] = silu(g[i]) * u[i]`.
@inline(__always)
private func swiglu(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n {
        let a = g[i]
        g[i] = a / (1 + expf(-a)) * u[i]
    }
}
