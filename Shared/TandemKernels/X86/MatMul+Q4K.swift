#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// AVX2 kernels for Q4_K and Q5_K weights in ggml's row-major layout (they share the 6-bit
/// scale/min packing and differ only in the fifth bit), against Q8_K-style activations.
extension MatMul {
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
}
#endif
