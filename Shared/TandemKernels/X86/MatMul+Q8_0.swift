#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// AVX2 kernels for the 32-element signed block types with int8 activations (Q5_0, Q8_0), row-major layout.
extension MatMul {
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
}
#endif
