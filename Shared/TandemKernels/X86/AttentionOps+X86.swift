#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// The AVX2/F16C bodies of `AttentionOps` (see `MatMulKernels` for when they are compiled).
/// `PortableAttentionOps` performs the same operations in the same order.
extension AttentionOps {
    @inlinable @inline(__always)
    static func loadF16(_ p: UnsafePointer<UInt16>) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(UnsafeRawPointer(p).assumingMemoryBound(to: __m128i.self)))
    }

    /// Sum of `q[i] * k[i]` over `n` values, `k` in half precision.
    @inlinable
    public static func dotF16(_ q: UnsafePointer<Float>, _ k: UnsafePointer<UInt16>, count n: Int) -> Float {
        var acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps()
        var i = 0
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), loadF16(k + i), acc0)
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), loadF16(k + i + 8), acc1)
            i += 16
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), loadF16(k + i), acc0)
            i += 8
        }
        var s = VectorOps.hsum(_mm256_add_ps(acc0, acc1))
        while i < n {
            s = s.addingProduct(q[i], Float(Float16(bitPattern: k[i])))
            i += 1
        }
        return s
    }

    /// Attention scores of one query against `positions` cached keys: `scores[j] = dot(q, keys + j *
    /// stride) * scale`. Returns the largest score (for a stable softmax).
    @inlinable
    public static func scoresF16(_ q: UnsafePointer<Float>, keys: UnsafePointer<UInt16>, stride: Int, positions: Int,
                                 headDim: Int, scale: Float, _ scores: UnsafeMutablePointer<Float>) -> Float {
        var mx = -Float.infinity
        for j in 0..<positions {
            let d = dotF16(q, keys + j * stride, count: headDim) * scale
            scores[j] = d
            mx = max(mx, d)
        }
        return mx
    }

    /// `out = Σ_j (weights[j] * norm) * values[j]` over `positions` cached value rows, accumulated in
    /// position order with one fused multiply-add per element (`out` is overwritten, or, with
    /// `zeroFirst` false, added to: a run over positions split in blocks gives the same bits as one call).
    @inlinable
    public static func accumulateF16(_ weights: UnsafePointer<Float>, norm: Float, values: UnsafePointer<UInt16>,
                                     stride: Int, positions: Int, headDim n: Int, _ out: UnsafeMutablePointer<Float>,
                                     zeroFirst: Bool = true) {
        if zeroFirst { out.initialize(repeating: 0, count: n) }
        for j in 0..<positions {
            let a = weights[j] * norm
            let va = _mm256_set1_ps(a)
            let x = values + j * stride
            var i = 0
            while i + 8 <= n {
                _mm256_storeu_ps(out + i, _mm256_fmadd_ps(va, loadF16(x + i), _mm256_loadu_ps(out + i)))
                i += 8
            }
            while i < n {
                out[i] = out[i].addingProduct(a, Float(Float16(bitPattern: x[i])))
                i += 1
            }
        }
    }
}
#endif
