#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// AVX2 kernels for Q6_K weights in ggml's row-major layout, against Q8_K-style activations.
extension MatMul {
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
}
#endif
