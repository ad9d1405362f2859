import _Builtin_intrinsics.intel

/// Matrix multiplication of quantized weights with Float activations.
///
/// Fast paths (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) quantize the activations of each
/// token on the fly (Q8_0-style per 32 values, or Q8_K-style per 256 values with per-16 sums) and
/// run AVX2 integer dot products (`maddubs`/`madd`). Q4_0, Q4_1 and Q5_1 take int16 activations
/// instead (per 32 values, `madd` on widened weights): on their row-major kernels that costs the
/// same multiply-pipe work as int8 (two ops per 32 products either way) and removes the int8
/// rounding error, which on SmolLM2-135M (Q4_1) moved logits by up to 3.9 % of their range. Each weight block is unpacked once and
/// reused for a tile of up to 4 tokens, which is what makes batched (speculative verification)
/// forwards cheaper per token than decode. Other types dequantize rows to Float.
///
/// All hot loops live in this file: debug builds are not whole-module optimized.
public enum MatMul {
    /// `out[t * w.rows + r] = sum_c W[r, c] * x[t * w.cols + c]` for `t` in `0..<nTokens`.
    ///
    /// BATCH-INVARIANT: the value for token `t` is bit-for-bit identical whatever `nTokens` is
    /// and whatever the other tokens are: every output element is computed by exactly the same
    /// sequence of operations (activations are quantized per token; token tiles only change the
    /// loop order across tokens, never the per-token arithmetic; results do not depend on the
    /// thread count either). Speculative verification relies on this.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                                _ out: UnsafeMutablePointer<Float>, pool: ComputePool, scratch: MatMulScratch) {
        execute(Targets(w, out, nil, nil, nil, nil), x, nTokens: nTokens, pool: pool, scratch: scratch)
    }

    /// Several matrices applied to the same input (e.g. Q, K and V projections, or FFN gate and
    /// up): the activations are quantized once and all rows run in one parallel loop, which
    /// saves a synchronization per matrix. Results are bit-identical to separate `multiply` calls.
    /// All matrices must have the same `cols`.
    public static func multiply(_ a: WeightMatrix, _ outA: UnsafeMutablePointer<Float>,
                                _ b: WeightMatrix, _ outB: UnsafeMutablePointer<Float>,
                                _ c: WeightMatrix? = nil, _ outC: UnsafeMutablePointer<Float>? = nil,
                                input x: UnsafePointer<Float>, nTokens: Int, pool: ComputePool,
                                scratch: MatMulScratch) {
        precondition(a.cols == b.cols && (c == nil || c!.cols == a.cols), "MatMul: shared input needs equal cols")
        precondition((c == nil) == (outC == nil), "MatMul: matrix c needs an output")
        execute(Targets(a, outA, b, outB, c, outC), x, nTokens: nTokens, pool: pool, scratch: scratch)
    }

    /// Up to three (matrix, output) pairs sharing one input, without heap allocation.
    @usableFromInline
    struct Targets {
        let w0: WeightMatrix, o0: UnsafeMutablePointer<Float>
        let w1: WeightMatrix?, o1: UnsafeMutablePointer<Float>?
        let w2: WeightMatrix?, o2: UnsafeMutablePointer<Float>?
        init(_ w0: WeightMatrix, _ o0: UnsafeMutablePointer<Float>, _ w1: WeightMatrix?,
             _ o1: UnsafeMutablePointer<Float>?, _ w2: WeightMatrix?, _ o2: UnsafeMutablePointer<Float>?) {
            self.w0 = w0; self.o0 = o0; self.w1 = w1; self.o1 = o1; self.w2 = w2; self.o2 = o2
        }
    }

    enum Path { case k, q32, q16, float }

    @inline(__always)
    static func path(_ t: GGMLType) -> Path {
        switch t {
        case .q4_K, .q5_K, .q6_K: return .k
        case .q5_0, .q8_0: return .q32
        case .q4_0, .q4_1, .q5_1: return .q16
        default: return .float
        }
    }

    static func execute(_ tg: Targets, _ x: UnsafePointer<Float>, nTokens: Int, pool: ComputePool,
                        scratch: MatMulScratch) {
        let cols = tg.w0.cols
        if nTokens <= 0 { return }
        scratch.reserve(cols: cols, nTokens: nTokens, threads: pool.threadCount)
        var needK = false, need32 = false, need16 = false
        @inline(__always) func note(_ w: WeightMatrix?) {
            guard let w else { return }
            precondition(w.type.isSupported, "MatMul: unsupported type \(w.type.name)")
            switch path(w.type) {
            case .k: needK = true
            case .q32: need32 = true
            case .q16: need16 = true
            case .float: break
            }
        }
        note(tg.w0)
        note(tg.w1)
        note(tg.w2)
        let kActs = needK ? quantizeActivations(x, nTokens: nTokens, cols: cols, kFormat: true, scratch: scratch, pool: pool) : nil
        let qActs = need32 ? quantizeActivations(x, nTokens: nTokens, cols: cols, kFormat: false, scratch: scratch, pool: pool) : nil
        let wActs = need16 ? quantizeActivations16(x, nTokens: nTokens, cols: cols, scratch: scratch, pool: pool) : nil

        let threads = pool.threadCount
        let r0 = tg.w0.rows, r1 = tg.w1?.rows ?? 0, r2 = tg.w2?.rows ?? 0
        let ch0 = chunkRows(r0 + r1 + r2, threads: threads)
        let n0 = (r0 + ch0 - 1) / ch0, n1 = (r1 + ch0 - 1) / ch0, n2 = (r2 + ch0 - 1) / ch0
        pool.parallelFor(n0 + n1 + n2) { c, thread in
            if c < n0 {
                rowsChunk(tg.w0, tg.o0, c * ch0, min(r0, (c + 1) * ch0), x, nTokens, kActs, qActs, wActs, scratch, thread)
            } else if c < n0 + n1 {
                let i = c - n0
                rowsChunk(tg.w1!, tg.o1!, i * ch0, min(r1, (i + 1) * ch0), x, nTokens, kActs, qActs, wActs, scratch, thread)
            } else {
                let i = c - n0 - n1
                rowsChunk(tg.w2!, tg.o2!, i * ch0, min(r2, (i + 1) * ch0), x, nTokens, kActs, qActs, wActs, scratch, thread)
            }
        }
    }

    /// Rows `r0..<r1` of `w` for all tokens.
    @inline(__always)
    static func rowsChunk(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
                          _ x: UnsafePointer<Float>, _ nTokens: Int, _ kActs: Acts?, _ qActs: Acts?,
                          _ wActs: Acts?, _ scratch: MatMulScratch, _ thread: Int) {
        if let p = w.packed {
            packedRows(w, p, out, r0, r1, nTokens, kActs, qActs)
            return
        }
        let rows = w.rows
        switch w.type {
        case .q4_K:
            let a = kActs!, nb = w.cols / 256
            if nTokens >= manyThreshold {
                let acc = scratch.rowBuffer(thread: thread, cols: w.cols)
                forTokenBlocks(nTokens) { t0, nt in
                    for r in r0..<r1 { tileKMany(w.row(r), nb, a, t0, nt, out + t0 * rows + r, rows, acc, high: false) }
                }
                return
            }
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tileK(row, nb, a, t0, n, o, rows, high: false) }
            }
        case .q5_K:
            let a = kActs!, nb = w.cols / 256
            if nTokens >= manyThreshold {
                let acc = scratch.rowBuffer(thread: thread, cols: w.cols)
                forTokenBlocks(nTokens) { t0, nt in
                    for r in r0..<r1 { tileKMany(w.row(r), nb, a, t0, nt, out + t0 * rows + r, rows, acc, high: true) }
                }
                return
            }
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tileK(row, nb, a, t0, n, o, rows, high: true) }
            }
        case .q6_K:
            let a = kActs!, nb = w.cols / 256
            if nTokens >= manyThreshold {
                let acc = scratch.rowBuffer(thread: thread, cols: w.cols)
                forTokenBlocks(nTokens) { t0, nt in
                    for r in r0..<r1 { tileQ6KMany(w.row(r), nb, a, t0, nt, out + t0 * rows + r, rows, acc) }
                }
                return
            }
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tileQ6K(row, nb, a, t0, n, o, rows) }
            }
        case .q4_0:
            let a = wActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile16(row, nb, a, t0, n, o, rows, kind: 0) }
            }
        case .q5_0:
            let a = qActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile32(row, nb, a, t0, n, o, rows, kind: 1) }
            }
        case .q8_0:
            let a = qActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile32(row, nb, a, t0, n, o, rows, kind: 2) }
            }
        case .q4_1:
            let a = wActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile16(row, nb, a, t0, n, o, rows, kind: 3) }
            }
        case .q5_1:
            let a = wActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile16(row, nb, a, t0, n, o, rows, kind: 4) }
            }
        default:
            genericRows(w, out, r0, r1, x, nTokens, scratch.rowBuffer(thread: thread, cols: w.cols))
        }
    }

    /// From this many tokens on, K-quant rows are processed by the whole-batch kernels
    /// (`tileKMany`, `tileQ6KMany`), which unpack each super-block once for all tokens.
    /// Both kernel families perform identical per-token arithmetic.
    static let manyThreshold = 5

    /// Token blocks for the whole-batch kernels: a block's activations stay in L1 while every
    /// row of the chunk runs against them.
    @inline(__always)
    static func forTokenBlocks(_ nTokens: Int, _ body: (_ t0: Int, _ nt: Int) -> Void) {
        var t0 = 0
        while t0 < nTokens {
            let nt = min(tokenBlock, nTokens - t0)
            body(t0, nt)
            t0 += nt
        }
    }

    static let tokenBlock = 8

    /// Rows per parallel chunk: enough chunks for load balancing, big enough to amortize; a
    /// multiple of 8 so chunks never split a packed row group (`WeightPacking`).
    @inlinable
    static func chunkRows(_ rows: Int, threads: Int) -> Int {
        let target = max(1, rows / (threads * 8))
        return (max(8, min(64, target)) + 7) / 8 * 8
    }

    /// Calls `body` with a literal tile count so the inlined kernel is specialized per count
    /// (no per-token branches in the inner loops). The per-token arithmetic is identical in
    /// every specialization, which keeps results batch-invariant.
    @inline(__always)
    static func withTileCount(_ nt: Int, _ body: (Int) -> Void) {
        switch nt {
        case 1: body(1)
        case 2: body(2)
        case 3: body(3)
        default: body(4)
        }
    }

    /// Each row of `r0..<r1` against token tiles of up to 4.
    @inline(__always)
    static func forTiles(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int, _ nTokens: Int,
                         _ tile: (_ row: UnsafeRawPointer, _ t0: Int, _ nt: Int, _ out: UnsafeMutablePointer<Float>) -> Void) {
        let rowBytes = w.rowBytes, rows = w.rows
        var r = r0
        while r < r1 {
            let row = w.data + r * rowBytes
            var t0 = 0
            while t0 < nTokens {
                let nt = min(4, nTokens - t0)
                tile(row, t0, nt, out + t0 * rows + r)
                t0 += nt
            }
            r += 1
        }
    }

    /// Generic path: dequantize each weight row to Float, then a Float dot per token.
    static func genericRows(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
                            _ x: UnsafePointer<Float>, _ nTokens: Int, _ buf: UnsafeMutablePointer<Float>) {
        let rows = w.rows, cols = w.cols
        for r in r0..<r1 {
            let rowPtr: UnsafePointer<Float>
            if w.type == .f32 {
                rowPtr = w.row(r).assumingMemoryBound(to: Float.self)
            } else {
                dequantizeRow(w.type, w.row(r), buf, count: cols)
                rowPtr = UnsafePointer(buf)
            }
            for t in 0..<nTokens {
                out[t * rows + r] = floatDot(rowPtr, x + t * cols, cols)
            }
        }
    }

    @inline(__always)
    static func floatDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps()
        var acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps()
        var i = 0
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0)
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1)
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2)
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3)
            i += 32
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0)
            i += 8
        }
        var s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)))
        while i < n {
            s = s.addingProduct(a[i], b[i])
            i += 1
        }
        return s
    }

    // MARK: - SIMD helpers

    @inline(__always)
    static func hsum(_ v: __m256) -> Float {
        let s = unsafeBitCast(v, to: SIMD8<Float>.self)
        let s4 = s.lowHalf + s.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        return s2[0] + s2[1]
    }

    @inline(__always)
    static func ld(_ p: UnsafeRawPointer) -> __m256i {
        _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self))
    }

    @inline(__always)
    static func ld128(_ p: UnsafeRawPointer) -> __m128i {
        _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
    }

    /// Unaligned scalar loads through SSE intrinsics: `UnsafeRawPointer.loadUnaligned` is not
    /// always inlined in debug (non-WMO) builds and a call in the inner loop costs a vzeroupper.
    /// Half-precision fields sit at even offsets of even-sized blocks and GGUF tensor data is
    /// 32-byte aligned, so a plain 2-byte load is aligned (and avoids the false dependency of
    /// `vpinsrw`).
    @inline(__always)
    static func load16(_ p: UnsafeRawPointer) -> UInt16 {
        p.load(as: UInt16.self)
    }

    @inline(__always)
    static func load32(_ p: UnsafeRawPointer) -> UInt32 {
        UInt32(bitPattern: _mm_cvtsi128_si32(_mm_loadu_si32(p)))
    }

    /// The two half-precision values at `p` and `p + 2`, converted, in lanes 0 and 1. A 4-byte
    /// `vmovd` load zero-extends, avoiding the false dependency a 2-byte `vpinsrw` load creates
    /// (which serialized the 32-block loops on an unrelated accumulator).
    @inline(__always)
    static func halves(_ p: UnsafeRawPointer) -> __m128 {
        _mm_cvtph_ps(_mm_loadu_si32(p))
    }

    @inline(__always)
    static func lane0(_ v: __m128) -> Float { _mm_cvtss_f32(v) }

    @inline(__always)
    static func lane1(_ v: __m128) -> Float { _mm_cvtss_f32(_mm_movehdup_ps(v)) }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: load16(p + offset)))
    }

    /// 16 packed bytes -> 32 nibbles: low nibbles first (elements 0..15), then high nibbles.
    @inline(__always)
    static func nibbles32(_ p: UnsafeRawPointer) -> __m256i {
        let t = ld128(p)
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F))
    }

    /// 32 bits -> 32 bytes, 0xFF where the bit is set.
    @inline(__always)
    static func bytesFromBits(_ x: UInt32) -> __m256i {
        let shuf = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        var bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: x)), shuf)
        bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
        return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
    }

    // MARK: - Activation quantization

    /// Quantized activations of a batch of tokens.
    @usableFromInline
    struct Acts {
        /// int8 values, token `t` at `qs + t * cols`.
        let qs: UnsafePointer<Int8>
        /// Scale per block (32 or 256 values), token `t` at `d + t * blocksPerToken`.
        let d: UnsafePointer<Float>
        /// Q8_K: Int16 sum per 16 values; Q8_0: Int32 `16 * sum(q)` per 32 values; int16
        /// activations: Float `d * sum(q)` per 32 values.
        let sums: UnsafeRawPointer
        /// Q8_K only: Int16 sum per 32 values, token `t` at `pairs + t * (cols / 32)`.
        let pairs: UnsafePointer<Int16>
        let cols: Int
        let blocksPerToken: Int
    }

    static func quantizeActivations(_ x: UnsafePointer<Float>, nTokens: Int, cols: Int, kFormat: Bool,
                                    scratch: MatMulScratch, pool: ComputePool) -> Acts {
        let slot = kFormat ? 0 : 1
        let qs = scratch.quants(slot)
        let d = scratch.scales(slot)
        let sums = scratch.sums(slot)
        let pairs = scratch.pairs()
        let bs = kFormat ? 256 : 32
        let nb = cols / bs
        @inline(__always) func one(_ t: Int) {
            if kFormat {
                quantizeRowQ8K(x + t * cols, qs + t * cols, d + t * nb,
                               sums.assumingMemoryBound(to: Int16.self) + t * (cols / 16), pairs + t * (cols / 32), nb)
            } else {
                quantizeRowQ8_0(x + t * cols, qs + t * cols, d + t * nb,
                                sums.assumingMemoryBound(to: Int32.self) + t * nb, nb)
            }
        }
        if nTokens >= 4 && nTokens * cols >= 16384 {
            pool.parallelFor(nTokens) { t in one(t) }
        } else {
            for t in 0..<nTokens { one(t) }
        }
        return Acts(qs: qs, d: d, sums: UnsafeRawPointer(sums), pairs: pairs, cols: cols, blocksPerToken: nb)
    }

    /// int16 activations per 32 values (scale amax / 32767) for Q4_0, Q4_1 and Q5_1, in slot 2;
    /// `sums` holds `d * sum(q)` per block (the Q4_1/Q5_1 min term).
    static func quantizeActivations16(_ x: UnsafePointer<Float>, nTokens: Int, cols: Int, scratch: MatMulScratch,
                                      pool: ComputePool) -> Acts {
        let qs = UnsafeMutableRawPointer(scratch.quants(2)).assumingMemoryBound(to: Int16.self)
        let d = scratch.scales(2)
        let sums = scratch.sums(2).assumingMemoryBound(to: Float.self)
        let nb = cols / 32
        if nTokens >= 4 && nTokens * cols >= 16384 {
            pool.parallelFor(nTokens) { t in quantizeRowQ16(x + t * cols, qs + t * cols, d + t * nb, sums + t * nb, nb) }
        } else {
            for t in 0..<nTokens { quantizeRowQ16(x + t * cols, qs + t * cols, d + t * nb, sums + t * nb, nb) }
        }
        return Acts(qs: UnsafeRawPointer(qs).assumingMemoryBound(to: Int8.self), d: d, sums: UnsafeRawPointer(sums),
                    pairs: scratch.pairs(), cols: cols, blocksPerToken: nb)
    }

    static func quantizeRowQ16(_ x: UnsafePointer<Float>, _ qs: UnsafeMutablePointer<Int16>,
                               _ d: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Float>, _ nb: Int) {
        for b in 0..<nb {
            let p = x + 32 * b
            let amax = unsafeBitCast(absMax32(p), to: SIMD8<Float>.self).max()
            let dd = amax / 32767
            let id = _mm256_set1_ps(amax != 0 ? 32767 / amax : 0)
            let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p), id))
            let i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p + 8), id))
            let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p + 16), id))
            let i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p + 24), id))
            let sum = unsafeBitCast(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)),
                                    to: SIMD8<Int32>.self).wrappedSum()
            // packs works per 128-bit lane: reorder the 64-bit quarters back into element order.
            let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7)
            let a = _mm256_permutevar8x32_epi32(_mm256_packs_epi32(i0, i1), order)
            let c = _mm256_permutevar8x32_epi32(_mm256_packs_epi32(i2, i3), order)
            let dst = UnsafeMutableRawPointer(qs + 32 * b)
            _mm256_storeu_si256(dst.assumingMemoryBound(to: __m256i.self), a)
            _mm256_storeu_si256((dst + 32).assumingMemoryBound(to: __m256i.self), c)
            d[b] = dd
            s[b] = dd * Float(sum)
        }
    }

    /// Quantizes 32 floats with inverse scale `id`; returns the 32 bytes and the sums of the two
    /// halves of 16.
    @inline(__always)
    static func quantize32(_ p: UnsafePointer<Float>, _ id: __m256, _ dst: UnsafeMutablePointer<Int8>) -> (Int32, Int32) {
        let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p), id))
        let i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p + 8), id))
        let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p + 16), id))
        let i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p + 24), id))
        let s0 = unsafeBitCast(_mm256_add_epi32(i0, i1), to: SIMD8<Int32>.self).wrappedSum()
        let s1 = unsafeBitCast(_mm256_add_epi32(i2, i3), to: SIMD8<Int32>.self).wrappedSum()
        let a = _mm256_packs_epi32(i0, i1)
        let b = _mm256_packs_epi32(i2, i3)
        let c = _mm256_packs_epi16(a, b)
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)
        _mm256_storeu_si256(UnsafeMutableRawPointer(dst).assumingMemoryBound(to: __m256i.self),
                            _mm256_permutevar8x32_epi32(c, perm))
        return (s0, s1)
    }

    @inline(__always)
    static func absMax32(_ p: UnsafePointer<Float>) -> __m256 {
        let sign = _mm256_set1_ps(-0.0)
        let a = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p)), _mm256_andnot_ps(sign, _mm256_loadu_ps(p + 8)))
        let b = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p + 16)),
                              _mm256_andnot_ps(sign, _mm256_loadu_ps(p + 24)))
        return _mm256_max_ps(a, b)
    }

    /// Q8_0-style: per 32 values, scale = amax / 127; also stores `16 * sum(q)` per block (the
    /// packed Q5_0 kernel's offset correction: it multiplies unsigned weights q + 16).
    static func quantizeRowQ8_0(_ x: UnsafePointer<Float>, _ qs: UnsafeMutablePointer<Int8>,
                                _ d: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Int32>, _ nb: Int) {
        for b in 0..<nb {
            let amax = unsafeBitCast(absMax32(x + 32 * b), to: SIMD8<Float>.self).max()
            let dd = amax / 127
            let id = amax != 0 ? 127 / amax : 0
            let (s0, s1) = quantize32(x + 32 * b, _mm256_set1_ps(id), qs + 32 * b)
            d[b] = dd
            s[b] = 16 * (s0 + s1)
        }
    }

    /// Q8_K-style: per 256 values, scale = amax / 127, plus Int16 sums per 16 values.
    static func quantizeRowQ8K(_ x: UnsafePointer<Float>, _ qs: UnsafeMutablePointer<Int8>,
                               _ d: UnsafeMutablePointer<Float>, _ bsums: UnsafeMutablePointer<Int16>,
                               _ pairs: UnsafeMutablePointer<Int16>, _ nb: Int) {
        for b in 0..<nb {
            let p = x + 256 * b
            var m = absMax32(p)
            for k in 1..<8 { m = _mm256_max_ps(m, absMax32(p + 32 * k)) }
            let amax = unsafeBitCast(m, to: SIMD8<Float>.self).max()
            let id = _mm256_set1_ps(amax != 0 ? 127 / amax : 0)
            for k in 0..<8 {
                let (s0, s1) = quantize32(p + 32 * k, id, qs + 256 * b + 32 * k)
                bsums[16 * b + 2 * k] = Int16(s0)
                bsums[16 * b + 2 * k + 1] = Int16(s1)
                pairs[8 * b + k] = Int16(s0 + s1)
            }
            d[b] = amax / 127
        }
    }

    // MARK: - Q4_K

    /// Unpacks Q4_K/Q5_K 6-bit scales and mins: (scales bytes 0..7, mins bytes 0..7).
    @inline(__always)
    static func scalesMinsK4(_ p: UnsafeRawPointer) -> (UInt64, UInt64) {
        let k1: UInt32 = 0x3f3f_3f3f, k2: UInt32 = 0x0f0f_0f0f, k3: UInt32 = 0x0303_0303
        let u0 = load32(p)
        let u1 = load32(p + 4)
        let u2 = load32(p + 8)
        let sc0 = u0 & k1, sc1 = (u2 & k2) | (((u0 >> 6) & k3) << 4)
        let mn0 = u1 & k1, mn1 = ((u2 >> 4) & k2) | (((u1 >> 6) & k3) << 4)
        return (UInt64(sc0) | UInt64(sc1) << 32, UInt64(mn0) | UInt64(mn1) << 32)
    }

    /// Per-token sum of `min_j * (bsum_{2j} + bsum_{2j+1})` as 8 Int32 lanes.
    @inline(__always)
    static func minsVector(_ mins: UInt64) -> __m256i {
        let m = _mm_cvtsi64_si128(Int64(bitPattern: mins))
        return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m))
    }

    @inline(__always)
    static func stepK(_ lo: __m256i, _ hi: __m256i, _ sclo: __m256i, _ schi: __m256i, _ y: UnsafePointer<Int8>,
                      _ acc: inout __m256i) {
        let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ld(y)), sclo)
        let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, ld(y + 32)), schi)
        acc = _mm256_add_epi32(acc, _mm256_add_epi32(plo, phi))
    }

    /// Folds one super-block's integer sums of one token into its float accumulator.
    @inline(__always)
    /// `acc += dy * (d * I - dmin * M)`; `vd`/`vdmin` are weight-side broadcasts shared by the tile.
    static func finishK(_ iacc: __m256i, _ minsv: __m256i, _ bsums: UnsafePointer<Int16>, _ vd: __m256,
                        _ vdmin: __m256, _ dy: UnsafePointer<Float>, _ acc: inout __m256) {
        let msum = _mm256_madd_epi16(minsv, ld(bsums))
        let v = _mm256_fnmadd_ps(vdmin, _mm256_cvtepi32_ps(msum), _mm256_mul_ps(vd, _mm256_cvtepi32_ps(iacc)))
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(dy), v, acc)
    }



    /// Broadcast of int16 lane `k` of each 128-bit half (scales are duplicated in both halves).
    @inline(__always)
    static func lane16(_ v: __m256i, _ k: Int) -> __m256i {
        let m = Int16(truncatingIfNeeded: (2 * k) | ((2 * k + 1) << 8))
        return _mm256_shuffle_epi8(v, _mm256_set1_epi16(m))
    }

    /// One 64-value chunk `j` of a Q4_K/Q5_K super-block for up to 4 tokens.
    @inline(__always)
    static func chunkK(_ blk: UnsafeRawPointer, _ j: Int, high: Bool, _ qh: __m256i, _ scales: __m256i,
                       _ off: Int, _ nt: Int, _ y0: UnsafePointer<Int8>, _ y1: UnsafePointer<Int8>,
                       _ y2: UnsafePointer<Int8>, _ y3: UnsafePointer<Int8>,
                       _ i0: inout __m256i, _ i1: inout __m256i, _ i2: inout __m256i, _ i3: inout __m256i) {
        let m4 = _mm256_set1_epi8(0x0F)
        let q = ld(blk + (high ? 48 : 16) + 32 * j)
        var lo = _mm256_and_si256(q, m4)
        var hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
        if high {
            let h = _mm256_srli_epi16(qh, Int32(2 * j))
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x01)), 4))
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x02)), 3))
        }
        let sclo = lane16(scales, 2 * j), schi = lane16(scales, 2 * j + 1)
        stepK(lo, hi, sclo, schi, y0 + off, &i0)
        if nt > 1 { stepK(lo, hi, sclo, schi, y1 + off, &i1) }
        if nt > 2 { stepK(lo, hi, sclo, schi, y2 + off, &i2) }
        if nt > 3 { stepK(lo, hi, sclo, schi, y3 + off, &i3) }
    }

    /// Q4_K (`high == false`, 144-byte blocks) and Q5_K (`high == true`, 176-byte blocks).
    @inline(__always)
    static func tileK(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                      _ out: UnsafeMutablePointer<Float>, _ stride: Int, high: Bool) {
        let blockBytes = high ? 176 : 144
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let bsBase = a.sums.assumingMemoryBound(to: Int16.self) + t0 * (cols / 16)
        let bs0 = bsBase, bs1 = bs0 + cols / 16, bs2 = bs1 + cols / 16, bs3 = bs2 + cols / 16
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        for b in 0..<nb {
            let blk = row + blockBytes * b
            let dd = halves(blk)
            let (sc, mins) = scalesMinsK4(blk + 4)
            // 8 scales as int16, duplicated in both 128-bit halves.
            let sc128 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(Int64(bitPattern: sc)))
            let scales = _mm256_set_m128i(sc128, sc128)
            var i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0
            let qh = high ? ld(blk + 16) : i0
            let off = 256 * b
            chunkK(blk, 0, high: high, qh, scales, off, nt, y0, y1, y2, y3, &i0, &i1, &i2, &i3)
            chunkK(blk, 1, high: high, qh, scales, off + 64, nt, y0, y1, y2, y3, &i0, &i1, &i2, &i3)
            chunkK(blk, 2, high: high, qh, scales, off + 128, nt, y0, y1, y2, y3, &i0, &i1, &i2, &i3)
            chunkK(blk, 3, high: high, qh, scales, off + 192, nt, y0, y1, y2, y3, &i0, &i1, &i2, &i3)
            let minsv = minsVector(mins)
            let vd = _mm256_broadcastss_ps(dd), vdmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dd))
            finishK(i0, minsv, bs0 + 16 * b, vd, vdmin, d0 + b, &acc0)
            if nt > 1 { finishK(i1, minsv, bs1 + 16 * b, vd, vdmin, d1 + b, &acc1) }
            if nt > 2 { finishK(i2, minsv, bs2 + 16 * b, vd, vdmin, d2 + b, &acc2) }
            if nt > 3 { finishK(i3, minsv, bs3 + 16 * b, vd, vdmin, d3 + b, &acc3) }
        }
        out[0] = hsum(acc0)
        if nt > 1 { out[stride] = hsum(acc1) }
        if nt > 2 { out[2 * stride] = hsum(acc2) }
        if nt > 3 { out[3 * stride] = hsum(acc3) }
    }

    /// Q4_K/Q5_K row against all `n` tokens: each super-block is unpacked once, then every token
    /// runs 8 maddubs/madd steps against it. Per-token arithmetic is exactly that of `tileK`
    /// (integer sums are exact, the float sequence per token is the same), so results are
    /// bit-identical to the small-tile kernel. `accBuf` holds 8 floats per token.
    @inline(__always)
    static func tileKMany(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ n: Int,
                          _ out: UnsafeMutablePointer<Float>, _ stride: Int, _ accBuf: UnsafeMutablePointer<Float>,
                          high: Bool) {
        let blockBytes = high ? 176 : 144
        let cols = a.cols
        let bsAll = a.sums.assumingMemoryBound(to: Int16.self)
        for t in 0..<n { _mm256_storeu_ps(accBuf + 8 * t, _mm256_setzero_ps()) }
        let m4 = _mm256_set1_epi8(0x0F)
        for b in 0..<nb {
            let blk = row + blockBytes * b
            let dd = halves(blk)
            let (sc, mins) = scalesMinsK4(blk + 4)
            let sc128 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(Int64(bitPattern: sc)))
            let scales = _mm256_set_m128i(sc128, sc128)
            let qh = high ? ld(blk + 16) : _mm256_setzero_si256()
            @inline(__always) func unpack(_ j: Int) -> (__m256i, __m256i) {
                let q = ld(blk + (high ? 48 : 16) + 32 * j)
                var lo = _mm256_and_si256(q, m4)
                var hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
                if high {
                    let h = _mm256_srli_epi16(qh, Int32(2 * j))
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x01)), 4))
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x02)), 3))
                }
                return (lo, hi)
            }
            let (l0, h0) = unpack(0), (l1, h1) = unpack(1), (l2, h2) = unpack(2), (l3, h3) = unpack(3)
            let s0 = lane16(scales, 0), s1 = lane16(scales, 1), s2 = lane16(scales, 2), s3 = lane16(scales, 3)
            let s4 = lane16(scales, 4), s5 = lane16(scales, 5), s6 = lane16(scales, 6), s7 = lane16(scales, 7)
            let minsv = minsVector(mins)
            let vd = _mm256_broadcastss_ps(dd), vdmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dd))
            for t in 0..<n {
                let y = a.qs + (t0 + t) * cols + 256 * b
                @inline(__always) func dp(_ w: __m256i, _ s: __m256i, _ o: Int) -> __m256i {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(w, ld(y + o)), s)
                }
                let i01 = _mm256_add_epi32(dp(l0, s0, 0), dp(h0, s1, 32))
                let i23 = _mm256_add_epi32(dp(l1, s2, 64), dp(h1, s3, 96))
                let i45 = _mm256_add_epi32(dp(l2, s4, 128), dp(h2, s5, 160))
                let i67 = _mm256_add_epi32(dp(l3, s6, 192), dp(h3, s7, 224))
                let i = _mm256_add_epi32(_mm256_add_epi32(i01, i23), _mm256_add_epi32(i45, i67))
                var acc = _mm256_loadu_ps(accBuf + 8 * t)
                finishK(i, minsv, bsAll + (t0 + t) * (cols / 16) + 16 * b, vd, vdmin, a.d + (t0 + t) * nb + b, &acc)
                _mm256_storeu_ps(accBuf + 8 * t, acc)
            }
        }
        for t in 0..<n { out[t * stride] = hsum(_mm256_loadu_ps(accBuf + 8 * t)) }
    }

    /// Q6_K row against all `n` tokens (see `tileKMany`); bit-identical to `tileQ6K`.
    @inline(__always)
    static func tileQ6KMany(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ n: Int,
                            _ out: UnsafeMutablePointer<Float>, _ stride: Int, _ accBuf: UnsafeMutablePointer<Float>) {
        let m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03), m30 = _mm256_set1_epi8(0x30)
        let cols = a.cols
        let bsAll = a.sums.assumingMemoryBound(to: Int16.self)
        for t in 0..<n { _mm256_storeu_ps(accBuf + 8 * t, _mm256_setzero_ps()) }
        for b in 0..<nb {
            let blk = row + 210 * b
            let d = lane1(halves(blk + 206))
            let scales = ld128(blk + 192)
            @inline(__always) func unpack(_ n: Int) -> (__m256i, __m256i, __m256i, __m256i) {
                let ql0 = ld(blk + 64 * n), ql1 = ld(blk + 64 * n + 32), qh = ld(blk + 128 + 32 * n)
                let q1 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4))
                let q2 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30))
                let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30))
                let q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))
                return (q1, q2, q3, q4)
            }
            let (a1, a2, a3, a4) = unpack(0), (b1, b2, b3, b4) = unpack(1)
            let sa1 = scaleShuffle(scales, 0), sa2 = scaleShuffle(scales, 1)
            let sa3 = scaleShuffle(scales, 2), sa4 = scaleShuffle(scales, 3)
            let sb1 = scaleShuffle(scales, 4), sb2 = scaleShuffle(scales, 5)
            let sb3 = scaleShuffle(scales, 6), sb4 = scaleShuffle(scales, 7)
            let sc16 = _mm256_cvtepi8_epi16(scales)
            for t in 0..<n {
                let y = a.qs + (t0 + t) * cols + 256 * b
                @inline(__always) func dp(_ w: __m256i, _ s: __m256i, _ o: Int) -> __m256i {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(w, ld(y + o)), s)
                }
                let i1 = _mm256_add_epi32(_mm256_add_epi32(dp(a1, sa1, 0), dp(a2, sa2, 32)),
                                          _mm256_add_epi32(dp(a3, sa3, 64), dp(a4, sa4, 96)))
                let i2 = _mm256_add_epi32(_mm256_add_epi32(dp(b1, sb1, 128), dp(b2, sb2, 160)),
                                          _mm256_add_epi32(dp(b3, sb3, 192), dp(b4, sb4, 224)))
                var acc = _mm256_loadu_ps(accBuf + 8 * t)
                finish6(_mm256_add_epi32(i1, i2), sc16, bsAll + (t0 + t) * (cols / 16) + 16 * b, d * a.d[(t0 + t) * nb + b],
                        &acc)
                _mm256_storeu_ps(accBuf + 8 * t, acc)
            }
        }
        for t in 0..<n { out[t * stride] = hsum(_mm256_loadu_ps(accBuf + 8 * t)) }
    }

    // MARK: - Q6_K

    @inline(__always)
    static func step6(_ q: __m256i, _ sc: __m256i, _ y: UnsafePointer<Int8>, _ acc: inout __m256i) {
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q, ld(y)), sc))
    }

    @inline(__always)
    static func finish6(_ iacc: __m256i, _ sc16: __m256i, _ bsums: UnsafePointer<Int16>, _ d: Float,
                        _ acc: inout __m256) {
        // Weights are stored as q + 32 (unsigned): subtract 32 * sum_k scale_k * bsum_k.
        let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, ld(bsums)), 5)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_sub_epi32(iacc, corr)), acc)
    }

    @inline(__always)
    static func scaleShuffle(_ scales: __m128i, _ g: Int) -> __m256i {
        let a = Int64(2 * g) * 0x0101_0101_0101_0101, b = Int64(2 * g + 1) * 0x0101_0101_0101_0101
        return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, _mm_set_epi64x(b, a)))
    }

    @inline(__always)
    static func tileQ6K(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                        _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03), m30 = _mm256_set1_epi8(0x30)
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let bsBase = a.sums.assumingMemoryBound(to: Int16.self) + t0 * (cols / 16)
        let bs0 = bsBase, bs1 = bs0 + cols / 16, bs2 = bs1 + cols / 16, bs3 = bs2 + cols / 16
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        for b in 0..<nb {
            let blk = row + 210 * b
            let d = lane1(halves(blk + 206))
            let scales = ld128(blk + 192)
            var i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0
            for n in 0..<2 {
                let ql0 = ld(blk + 64 * n), ql1 = ld(blk + 64 * n + 32), qh = ld(blk + 128 + 32 * n)
                let q1 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4))
                let q2 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30))
                let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30))
                let q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))
                let s1 = scaleShuffle(scales, 4 * n), s2 = scaleShuffle(scales, 4 * n + 1)
                let s3 = scaleShuffle(scales, 4 * n + 2), s4 = scaleShuffle(scales, 4 * n + 3)
                let off = 256 * b + 128 * n
                step6(q1, s1, y0 + off, &i0); step6(q2, s2, y0 + off + 32, &i0)
                step6(q3, s3, y0 + off + 64, &i0); step6(q4, s4, y0 + off + 96, &i0)
                if nt > 1 {
                    step6(q1, s1, y1 + off, &i1); step6(q2, s2, y1 + off + 32, &i1)
                    step6(q3, s3, y1 + off + 64, &i1); step6(q4, s4, y1 + off + 96, &i1)
                }
                if nt > 2 {
                    step6(q1, s1, y2 + off, &i2); step6(q2, s2, y2 + off + 32, &i2)
                    step6(q3, s3, y2 + off + 64, &i2); step6(q4, s4, y2 + off + 96, &i2)
                }
                if nt > 3 {
                    step6(q1, s1, y3 + off, &i3); step6(q2, s2, y3 + off + 32, &i3)
                    step6(q3, s3, y3 + off + 64, &i3); step6(q4, s4, y3 + off + 96, &i3)
                }
            }
            let sc16 = _mm256_cvtepi8_epi16(scales)
            finish6(i0, sc16, bs0 + 16 * b, d * d0[b], &acc0)
            if nt > 1 { finish6(i1, sc16, bs1 + 16 * b, d * d1[b], &acc1) }
            if nt > 2 { finish6(i2, sc16, bs2 + 16 * b, d * d2[b], &acc2) }
            if nt > 3 { finish6(i3, sc16, bs3 + 16 * b, d * d3[b], &acc3) }
        }
        out[0] = hsum(acc0)
        if nt > 1 { out[stride] = hsum(acc1) }
        if nt > 2 { out[2 * stride] = hsum(acc2) }
        if nt > 3 { out[3 * stride] = hsum(acc3) }
    }

    // MARK: - 32-element signed block types with int8 activations (Q5_0, Q8_0; unpacked layout)

    /// One unpacked 32-weight block: signed weights `w`, `aw = |w|`, and the broadcast scale.
    /// kind 1 Q5_0, 2 Q8_0.
    @inline(__always)
    static func block32(_ blk: UnsafeRawPointer, kind: Int) -> (w: __m256i, aw: __m256i, vdw: __m256) {
        let vdw = _mm256_broadcastss_ps(halves(blk))
        let w: __m256i
        if kind == 1 {
            let bits = bytesFromBits(load32(blk + 2))
            w = _mm256_or_si256(nibbles32(blk + 6), _mm256_andnot_si256(bits, _mm256_set1_epi8(-16)))
        } else {
            w = ld(blk + 2)
        }
        return (w, _mm256_sign_epi8(w, w), vdw)
    }

    /// `dw * (dy * P)` for one block and one token, P the 8-lane integer partial dot product.
    @inline(__always)
    static func token32(_ bl: (w: __m256i, aw: __m256i, vdw: __m256), _ y: UnsafePointer<Int8>,
                        _ dy: UnsafePointer<Float>) -> __m256 {
        let prod = _mm256_maddubs_epi16(bl.aw, _mm256_sign_epi8(ld(y), bl.w))
        let p = _mm256_madd_epi16(prod, _mm256_set1_epi16(1))
        return _mm256_mul_ps(bl.vdw, _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(dy)))
    }

    /// kind: 1 Q5_0, 2 Q8_0, for matrices that are not packed (rows not a multiple of 8, or
    /// packing disabled).
    ///
    /// Blocks are consumed in pairs whose values are summed before touching the accumulator,
    /// which halves the loop-carried dependency chain (this matters at one token).
    @inline(__always)
    static func tile32(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                       _ out: UnsafeMutablePointer<Float>, _ stride: Int, kind: Int) {
        let blockBytes = kind == 1 ? 22 : 34
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        var b = 0
        while b + 2 <= nb {
            let p = block32(row + blockBytes * b, kind: kind)
            let q = block32(row + blockBytes * (b + 1), kind: kind)
            let off = 32 * b
            @inline(__always) func pair(_ y: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ acc: inout __m256) {
                acc = _mm256_add_ps(acc, _mm256_add_ps(token32(p, y + off, d + b), token32(q, y + off + 32, d + b + 1)))
            }
            pair(y0, d0, &acc0)
            if nt > 1 { pair(y1, d1, &acc1) }
            if nt > 2 { pair(y2, d2, &acc2) }
            if nt > 3 { pair(y3, d3, &acc3) }
            b += 2
        }
        if b < nb {
            let p = block32(row + blockBytes * b, kind: kind)
            let off = 32 * b
            @inline(__always) func single(_ y: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ acc: inout __m256) {
                acc = _mm256_add_ps(acc, token32(p, y + off, d + b))
            }
            single(y0, d0, &acc0)
            if nt > 1 { single(y1, d1, &acc1) }
            if nt > 2 { single(y2, d2, &acc2) }
            if nt > 3 { single(y3, d3, &acc3) }
        }
        out[0] = hsum(acc0)
        if nt > 1 { out[stride] = hsum(acc1) }
        if nt > 2 { out[2 * stride] = hsum(acc2) }
        if nt > 3 { out[3 * stride] = hsum(acc3) }
    }

    // MARK: - int16 activations (Q4_0, Q4_1, Q5_1)

    /// 32 weights of a Q4_0/Q4_1/Q5_1 block as int16 (elements 0...15, 16...31), the broadcast
    /// scale and the min (Q4_1/Q5_1).
    @inline(__always)
    static func block16(_ blk: UnsafeRawPointer, kind: Int) -> (a: __m256i, b: __m256i, vdw: __m256, m: Float) {
        let h = halves(blk)
        let w: __m256i
        switch kind {
        case 0: w = _mm256_sub_epi8(nibbles32(blk + 2), _mm256_set1_epi8(8))
        case 3: w = nibbles32(blk + 4)
        default:
            let bits = bytesFromBits(load32(blk + 4))
            w = _mm256_or_si256(nibbles32(blk + 8), _mm256_and_si256(bits, _mm256_set1_epi8(0x10)))
        }
        let a = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w))
        let swapped = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3))
        let b = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(swapped))
        return (a, b, _mm256_broadcastss_ps(h), kind == 0 ? 0 : lane1(h))
    }

    /// kind: 0 Q4_0, 3 Q4_1, 4 Q5_1, against int16 activations (`quantizeActivations16`).
    /// Products fit easily: |w| <= 31, |y| <= 32767, four per int32 lane.
    @inline(__always)
    static func tile16(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                       _ out: UnsafeMutablePointer<Float>, _ stride: Int, kind: Int) {
        let blockBytes = kind == 0 ? 18 : (kind == 3 ? 20 : 24)
        let cols = a.cols
        let q16 = UnsafeRawPointer(a.qs)
        let y0 = q16 + 2 * t0 * cols, y1 = y0 + 2 * cols, y2 = y1 + 2 * cols, y3 = y2 + 2 * cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let sBase = a.sums.assumingMemoryBound(to: Float.self) + t0 * nb
        let s0 = sBase, s1 = s0 + nb, s2 = s1 + nb, s3 = s2 + nb
        var acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        var sacc0: Float = 0, sacc1: Float = 0, sacc2: Float = 0, sacc3: Float = 0
        for b in 0..<nb {
            let w = block16(row + blockBytes * b, kind: kind)
            let off = 64 * b
            @inline(__always) func token(_ y: UnsafeRawPointer, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Float>,
                                         _ acc: inout __m256, _ sacc: inout Float) {
                let p = _mm256_add_epi32(_mm256_madd_epi16(w.a, ld(y + off)), _mm256_madd_epi16(w.b, ld(y + off + 32)))
                acc = _mm256_fmadd_ps(_mm256_mul_ps(w.vdw, _mm256_broadcast_ss(d + b)), _mm256_cvtepi32_ps(p), acc)
                if kind != 0 { sacc = sacc.addingProduct(w.m, s[b]) }
            }
            token(y0, d0, s0, &acc0, &sacc0)
            if nt > 1 { token(y1, d1, s1, &acc1, &sacc1) }
            if nt > 2 { token(y2, d2, s2, &acc2, &sacc2) }
            if nt > 3 { token(y3, d3, s3, &acc3, &sacc3) }
        }
        out[0] = hsum(acc0) + sacc0
        if nt > 1 { out[stride] = hsum(acc1) + sacc1 }
        if nt > 2 { out[2 * stride] = hsum(acc2) + sacc2 }
        if nt > 3 { out[3 * stride] = hsum(acc3) + sacc3 }
    }
}
