#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel
import TandemCSupport

/// Kernels for row-interleaved weights (`WeightPacking`): each call computes 8 adjacent rows
/// for a tile of up to 4 tokens. Every 32-bit lane is one row, so a weight vector (8 rows x 4
/// columns) meets a broadcast of 4 activation bytes, `maddubs` products of a sub-block add up
/// in int16, and one `madd` per sub-block applies the 8 rows' scales.
///
/// BATCH-INVARIANT like the rest of `MatMul`: the operations applied to one token do not depend
/// on the tile size or on the other tokens (tiles are specialized per count by `tiles`).
///
/// Bounds that keep the int16 sums exact (activations are in -127...127):
/// Q4_K 8 x 2 x 15 x 127 = 30480; Q6_K (unsigned q + 32 <= 63) 2 x 2 x 63 x 127 = 32004;
/// Q5_0 (unsigned q + 16 <= 31) 4 x 2 x 31 x 127 = 31496; Q8_0 is widened after every `maddubs`.
/// Q6_K and Q5_0 multiply their stored unsigned values and subtract the offset times the
/// activation sums afterwards: that saves two sign operations per weight vector, which compete
/// with `maddubs` for the same pipes.
///
/// Self-contained (its own load helpers), from before the kernel module was compiled
/// whole-module in debug builds too.
extension MatMul {
    /// Rows `r0..<r1` (multiples of 8) of packed `w` for all tokens.
    @inline(__always)
    static func packedRows(_ w: WeightMatrix, _ p: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>,
                           _ r0: Int, _ r1: Int, _ nTokens: Int, _ kActs: Acts?, _ qActs: Acts?) {
        let rows = w.rows
        let nb = w.cols / w.type.blockSize
        let groupBytes = nb * WeightPacking.groupBlockBytes(w.type)
        var g = r0 / 8
        while g * 8 < r1 {
            let grp = p + g * groupBytes
            var t0 = 0
            while t0 < nTokens {
                let nt = min(4, nTokens - t0)
                let o = out + t0 * rows + 8 * g
                switch w.type {
                case .q4_K: tiles(nt) { n in packedQ4K(grp, nb, kActs!, t0, n, o, rows) }
                case .q6_K: tiles(nt) { n in packedQ6K(grp, nb, kActs!, t0, n, o, rows) }
                case .q5_0: tiles(nt) { n in packedQ5_0(grp, nb, qActs!, t0, n, o, rows) }
                default: tiles(nt) { n in packedQ8_0(grp, nb, qActs!, t0, n, o, rows) }
                }
                t0 += nt
            }
            g += 1
        }
    }

    /// Calls `body` with a literal tile count so each kernel is specialized per count.
    @inline(__always)
    private static func tiles(_ nt: Int, _ body: (Int) -> Void) {
        switch nt {
        case 1: body(1)
        case 2: body(2)
        case 3: body(3)
        default: body(4)
        }
    }

    @inline(__always)
    private static func v256(_ p: UnsafeRawPointer) -> __m256i {
        _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self))
    }

    @inline(__always)
    private static func v128(_ p: UnsafeRawPointer) -> __m128i {
        _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
    }

    /// How far ahead of the kernel the weight stream is prefetched (bytes). At batch 1 the
    /// kernels are bound by memory bandwidth; the hardware prefetcher alone kept too few lines
    /// in flight per core.
    /// Measured on the 1.5B model's decode: none 23.0, 1 KiB 26.1, 2 KiB 28.2, 4 KiB 28.3 tok/s.
    /// Only the first token tile of a row group prefetches: later tiles find the group in cache.
    static let prefetchDistance = 2048

    /// Prefetches `lines` cache lines from `p + prefetchDistance` on.
    @inline(__always)
    static func prefetch(_ p: UnsafeRawPointer, lines: Int = 3) {
        let q = p + prefetchDistance
        tandem_prefetch(q)
        if lines > 1 { tandem_prefetch(q + 64) }
        if lines > 2 { tandem_prefetch(q + 128) }
    }

    /// The 4 activation bytes at `p` in every 32-bit lane.
    @inline(__always)
    static func bcast4(_ p: UnsafePointer<Int8>) -> __m256i {
        _mm256_set1_epi32(UnsafeRawPointer(p).load(as: Int32.self))
    }

    /// 8 bytes at `p` (one per row) as int16 pairs `(v, v)` per 32-bit lane, zero- or sign-extended.
    @inline(__always)
    static func rowScales(_ p: UnsafeRawPointer, signed: Bool) -> __m256i {
        let v = _mm_loadl_epi64(p.assumingMemoryBound(to: __m128i.self))
        if signed {
            let x = _mm256_cvtepi8_epi32(v)
            return _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(x, 16))
        }
        let x = _mm256_cvtepu8_epi32(v)
        return _mm256_or_si256(x, _mm256_slli_epi32(x, 16))
    }

    @inline(__always)
    static func storeRows(_ v: __m256, _ out: UnsafeMutablePointer<Float>) { _mm256_storeu_ps(out, v) }

    /// Stores the 8-row results of tokens `0..<nt` (`out` + token * `stride`).
    @inline(__always)
    static func storeTile(_ f0: __m256, _ f1: __m256, _ f2: __m256, _ f3: __m256, _ nt: Int,
                          _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        storeRows(f0, out)
        if nt > 1 { storeRows(f1, out + stride) }
        if nt > 2 { storeRows(f2, out + 2 * stride) }
        if nt > 3 { storeRows(f3, out + 3 * stride) }
    }

    /// `f += (d_rows * dy) * i`: one block's integer dot products of 8 rows, scaled by the rows'
    /// weight scales `dv` and the token's activation scale `*dy`.
    @inline(__always)
    static func accumulate(_ dv: __m256, _ dy: UnsafePointer<Float>, _ i: __m256i, _ f: inout __m256) {
        f = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_broadcast_ss(dy)), _mm256_cvtepi32_ps(i), f)
    }

    // MARK: Q4_K

    @inline(__always)
    static func packedQ4K(_ grp: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                          _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let m4 = _mm256_set1_epi8(0x0F)
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let p0 = a.pairs + t0 * (cols / 32), p1 = p0 + cols / 32, p2 = p1 + cols / 32, p3 = p2 + cols / 32
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0
        for b in 0..<nb {
            let blk = grp + 1184 * b
            var i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0
            for s in 0..<8 {
                if t0 == 0 { prefetch(blk + 148 * s) }
                let sc = rowScales(blk + 32 + 8 * s, signed: false)
                var a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0
                for c in 0..<4 {
                    let q = v256(blk + 160 + 128 * s + 32 * c)
                    let lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
                    let o = 256 * b + 32 * s + 4 * c
                    @inline(__always) func dot(_ y: UnsafePointer<Int8>, _ acc: inout __m256i) {
                        acc = _mm256_add_epi16(acc, _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(y + o)),
                                                                     _mm256_maddubs_epi16(hi, bcast4(y + o + 16))))
                    }
                    dot(y0, &a0)
                    if nt > 1 { dot(y1, &a1) }
                    if nt > 2 { dot(y2, &a2) }
                    if nt > 3 { dot(y3, &a3) }
                }
                i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(a0, sc))
                if nt > 1 { i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(a1, sc)) }
                if nt > 2 { i2 = _mm256_add_epi32(i2, _mm256_madd_epi16(a2, sc)) }
                if nt > 3 { i3 = _mm256_add_epi32(i3, _mm256_madd_epi16(a3, sc)) }
            }
            let mn0 = _mm256_cvtepu8_epi16(v128(blk + 96)), mn1 = _mm256_cvtepu8_epi16(v128(blk + 112))
            let mn2 = _mm256_cvtepu8_epi16(v128(blk + 128)), mn3 = _mm256_cvtepu8_epi16(v128(blk + 144))
            let dv = _mm256_cvtph_ps(v128(blk)), dmv = _mm256_cvtph_ps(v128(blk + 16))
            @inline(__always) func finish(_ iacc: __m256i, _ pr: UnsafePointer<Int16>, _ dy: UnsafePointer<Float>,
                                          _ f: inout __m256) {
                let q = pr + 8 * b
                let m = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_madd_epi16(mn0, bcast4(q)), _mm256_madd_epi16(mn1, bcast4(q + 2))),
                    _mm256_add_epi32(_mm256_madd_epi16(mn2, bcast4(q + 4)), _mm256_madd_epi16(mn3, bcast4(q + 6))))
                let v = _mm256_fnmadd_ps(dmv, _mm256_cvtepi32_ps(m), _mm256_mul_ps(dv, _mm256_cvtepi32_ps(iacc)))
                f = _mm256_fmadd_ps(_mm256_broadcast_ss(dy + b), v, f)
            }
            finish(i0, p0, d0, &f0)
            if nt > 1 { finish(i1, p1, d1, &f1) }
            if nt > 2 { finish(i2, p2, d2, &f2) }
            if nt > 3 { finish(i3, p3, d3, &f3) }
        }
        storeTile(f0, f1, f2, f3, nt, out, stride)
    }

    @inline(__always)
    static func bcast4(_ p: UnsafePointer<Int16>) -> __m256i {
        _mm256_set1_epi32(UnsafeRawPointer(p).load(as: Int32.self))
    }

    // MARK: Q6_K

    @inline(__always)
    static func packedQ6K(_ grp: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                          _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30)
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let bs0 = a.sums.assumingMemoryBound(to: Int16.self) + t0 * (cols / 16)
        let bs1 = bs0 + cols / 16, bs2 = bs1 + cols / 16, bs3 = bs2 + cols / 16
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0
        for b in 0..<nb {
            let blk = grp + 1680 * b
            var i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0
            for s in 0..<16 {
                if t0 == 0 { prefetch(blk + 105 * s, lines: 2) }
                let sc = rowScales(blk + 16 + 8 * s, signed: true)
                let hb = v256(blk + 1168 + 32 * s)
                let lo = v256(blk + 144 + 128 * (s >> 1))
                @inline(__always) func weights(_ c: Int) -> __m256i {
                    let ql = c == 0 ? lo : v256(blk + 144 + 128 * (s >> 1) + 32 * c)
                    let nib = (s & 1) == 0 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
                    switch c {
                    case 0: return _mm256_or_si256(nib, _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30))
                    case 1: return _mm256_or_si256(nib, _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30))
                    case 2: return _mm256_or_si256(nib, _mm256_and_si256(hb, m30))
                    default: return _mm256_or_si256(nib, _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))
                    }
                }
                for half in 0..<2 {
                    let wa = weights(2 * half), wb = weights(2 * half + 1)
                    let o = 256 * b + 16 * s + 8 * half
                    @inline(__always) func dot(_ y: UnsafePointer<Int8>, _ acc: inout __m256i) {
                        let p = _mm256_add_epi16(_mm256_maddubs_epi16(wa, bcast4(y + o)),
                                                 _mm256_maddubs_epi16(wb, bcast4(y + o + 4)))
                        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc))
                    }
                    dot(y0, &i0)
                    if nt > 1 { dot(y1, &i1) }
                    if nt > 2 { dot(y2, &i2) }
                    if nt > 3 { dot(y3, &i3) }
                }
            }
            // Offset: the stored values are q + 32, so subtract 32 * sum_s scale_s * bsum_s, with
            // scales paired per 32-bit lane (s = 2j, 2j + 1) against the activations' sums per 16.
            @inline(__always) func pairScales(_ j: Int) -> __m256i {
                let e = _mm_loadl_epi64((blk + 16 + 16 * j).assumingMemoryBound(to: __m128i.self))
                let o = _mm_loadl_epi64((blk + 24 + 16 * j).assumingMemoryBound(to: __m128i.self))
                return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(e, o))
            }
            let sp0 = pairScales(0), sp1 = pairScales(1), sp2 = pairScales(2), sp3 = pairScales(3)
            let sp4 = pairScales(4), sp5 = pairScales(5), sp6 = pairScales(6), sp7 = pairScales(7)
            let dv = _mm256_cvtph_ps(v128(blk))
            @inline(__always) func finish(_ iacc: __m256i, _ bs: UnsafePointer<Int16>, _ dy: UnsafePointer<Float>,
                                          _ f: inout __m256) {
                let q = bs + 16 * b
                let m = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(sp0, bcast4(q)), _mm256_madd_epi16(sp1, bcast4(q + 2))),
                                     _mm256_add_epi32(_mm256_madd_epi16(sp2, bcast4(q + 4)), _mm256_madd_epi16(sp3, bcast4(q + 6)))),
                    _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(sp4, bcast4(q + 8)), _mm256_madd_epi16(sp5, bcast4(q + 10))),
                                     _mm256_add_epi32(_mm256_madd_epi16(sp6, bcast4(q + 12)), _mm256_madd_epi16(sp7, bcast4(q + 14)))))
                let i = _mm256_sub_epi32(iacc, _mm256_slli_epi32(m, 5))
                accumulate(dv, dy + b, i, &f)
            }
            finish(i0, bs0, d0, &f0)
            if nt > 1 { finish(i1, bs1, d1, &f1) }
            if nt > 2 { finish(i2, bs2, d2, &f2) }
            if nt > 3 { finish(i3, bs3, d3, &f3) }
        }
        storeTile(f0, f1, f2, f3, nt, out, stride)
    }

    // MARK: Q5_0

    /// The fifth bit of vector `v` (0...7) of a packed Q5_0 block, moved to bit 4 of each byte.
    @inline(__always)
    static func fifthBit(_ hb: __m256i, _ v: Int) -> __m256i {
        let m10 = _mm256_set1_epi8(0x10)
        switch v {
        case 0: return _mm256_and_si256(_mm256_slli_epi16(hb, 4), m10)
        case 1: return _mm256_and_si256(_mm256_slli_epi16(hb, 3), m10)
        case 2: return _mm256_and_si256(_mm256_slli_epi16(hb, 2), m10)
        case 3: return _mm256_and_si256(_mm256_slli_epi16(hb, 1), m10)
        case 4: return _mm256_and_si256(hb, m10)
        case 5: return _mm256_and_si256(_mm256_srli_epi16(hb, 1), m10)
        case 6: return _mm256_and_si256(_mm256_srli_epi16(hb, 2), m10)
        default: return _mm256_and_si256(_mm256_srli_epi16(hb, 3), m10)
        }
    }

    @inline(__always)
    static func packedQ5_0(_ grp: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                           _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1)
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        // 16 * sum of each block's activations (`quantizeRowQ8_0`): the stored values are q + 16.
        let c0 = a.sums.assumingMemoryBound(to: Int32.self) + t0 * nb, c1 = c0 + nb, c2 = c1 + nb, c3 = c2 + nb
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0
        for b in 0..<nb {
            let blk = grp + 176 * b
            if t0 == 0 { prefetch(blk) }
            let hb = v256(blk + 16)
            var i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0
            // Vectors v = c (low nibbles of chunk c) and v = c + 4 (high nibbles); two chunks per
            // int16 partial sum (4 products per lane pair at most).
            for pair in 0..<2 {
                var a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0
                for k in 0..<2 {
                    let c = 2 * pair + k
                    let ql = v256(blk + 48 + 32 * c)
                    let wl = _mm256_or_si256(_mm256_and_si256(ql, m4), fifthBit(hb, c))
                    let wh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql, 4), m4), fifthBit(hb, c + 4))
                    let o = 32 * b + 4 * c
                    @inline(__always) func dot(_ y: UnsafePointer<Int8>, _ acc: inout __m256i) {
                        acc = _mm256_add_epi16(acc, _mm256_add_epi16(_mm256_maddubs_epi16(wl, bcast4(y + o)),
                                                                     _mm256_maddubs_epi16(wh, bcast4(y + o + 16))))
                    }
                    dot(y0, &a0)
                    if nt > 1 { dot(y1, &a1) }
                    if nt > 2 { dot(y2, &a2) }
                    if nt > 3 { dot(y3, &a3) }
                }
                i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(a0, ones))
                if nt > 1 { i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(a1, ones)) }
                if nt > 2 { i2 = _mm256_add_epi32(i2, _mm256_madd_epi16(a2, ones)) }
                if nt > 3 { i3 = _mm256_add_epi32(i3, _mm256_madd_epi16(a3, ones)) }
            }
            let dv = _mm256_cvtph_ps(v128(blk))
            @inline(__always) func finish(_ iacc: __m256i, _ corr: UnsafePointer<Int32>, _ dy: UnsafePointer<Float>,
                                          _ f: inout __m256) {
                let i = _mm256_sub_epi32(iacc, _mm256_set1_epi32(corr[b]))
                accumulate(dv, dy + b, i, &f)
            }
            finish(i0, c0, d0, &f0)
            if nt > 1 { finish(i1, c1, d1, &f1) }
            if nt > 2 { finish(i2, c2, d2, &f2) }
            if nt > 3 { finish(i3, c3, d3, &f3) }
        }
        storeTile(f0, f1, f2, f3, nt, out, stride)
    }

    // MARK: Q8_0

    @inline(__always)
    static func packedQ8_0(_ grp: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                           _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let ones = _mm256_set1_epi16(1)
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        var f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0
        for b in 0..<nb {
            let blk = grp + 272 * b
            if t0 == 0 {
                prefetch(blk)
                prefetch(blk + 192, lines: 2)
            }
            var i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0
            for v in 0..<8 {
                let w = v256(blk + 16 + 32 * v)
                let aw = _mm256_sign_epi8(w, w)
                let o = 32 * b + 4 * v
                @inline(__always) func dot(_ y: UnsafePointer<Int8>, _ acc: inout __m256i) {
                    let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast4(y + o), w))
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones))
                }
                dot(y0, &i0)
                if nt > 1 { dot(y1, &i1) }
                if nt > 2 { dot(y2, &i2) }
                if nt > 3 { dot(y3, &i3) }
            }
            let dv = _mm256_cvtph_ps(v128(blk))
            @inline(__always) func finish(_ i: __m256i, _ dy: UnsafePointer<Float>, _ f: inout __m256) {
                accumulate(dv, dy + b, i, &f)
            }
            finish(i0, d0, &f0)
            if nt > 1 { finish(i1, d1, &f1) }
            if nt > 2 { finish(i2, d2, &f2) }
            if nt > 3 { finish(i3, d3, &f3) }
        }
        storeTile(f0, f1, f2, f3, nt, out, stride)
    }
}
#endif
