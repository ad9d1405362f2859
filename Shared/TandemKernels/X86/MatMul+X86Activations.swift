#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// AVX2 quantization of activations (the formats of `MatMul.Acts`).
extension MatMul {
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
}
#endif
