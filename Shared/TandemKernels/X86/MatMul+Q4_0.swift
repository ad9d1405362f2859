#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// AVX2 kernels for Q4_0, Q4_1 and Q5_1 against int16 activations, row-major layout.
extension MatMul {
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
#endif
