#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// The AVX2/FMA bodies of `VectorOps`' element-wise operations (see `MatMulKernels` for when they
/// are compiled). `PortableVectorOps` performs the same operations in the same order.
extension VectorOps {
    /// Horizontal sum of 8 lanes in a fixed order (used by kernels; public for inlining).
    @inlinable @inline(__always)
    public static func hsum(_ v: __m256) -> Float {
        let s = unsafeBitCast(v, to: SIMD8<Float>.self)
        let s4 = s.lowHalf + s.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        return s2[0] + s2[1]
    }

    /// Sum of `a[i] * b[i]` (attention scores).
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps()
        var i = 0
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0)
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1)
            i += 16
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0)
            i += 8
        }
        var s = hsum(_mm256_add_ps(acc0, acc1))
        while i < n {
            s = s.addingProduct(a[i], b[i])
            i += 1
        }
        return s
    }

    /// `y[i] += a * x[i]` (attention: accumulate value rows weighted by probabilities).
    @inlinable
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        let va = _mm256_set1_ps(a)
        var i = 0
        while i + 8 <= n {
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)))
            i += 8
        }
        while i < n {
            y[i] = y[i].addingProduct(a, x[i])
            i += 1
        }
    }

    /// `out = x / sqrt(mean(x^2) + eps) * weight`.
    @inlinable
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, count n: Int, eps: Float,
                               _ out: UnsafeMutablePointer<Float>) {
        var acc = _mm256_setzero_ps()
        var i = 0
        while i + 8 <= n {
            let v = _mm256_loadu_ps(x + i)
            acc = _mm256_fmadd_ps(v, v, acc)
            i += 8
        }
        var ss = hsum(acc)
        while i < n {
            ss = ss.addingProduct(x[i], x[i])
            i += 1
        }
        let scale = 1 / (ss / Float(n) + eps).squareRoot()
        let vs = _mm256_set1_ps(scale)
        i = 0
        while i + 8 <= n {
            let v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs)
            _mm256_storeu_ps(out + i, _mm256_mul_ps(v, _mm256_loadu_ps(weight + i)))
            i += 8
        }
        while i < n {
            out[i] = (x[i] * scale) * weight[i]
            i += 1
        }
    }

    /// `out = a + b` (residual connections, biases).
    @inlinable
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        var i = 0
        while i + 8 <= n {
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)))
            i += 8
        }
        while i < n { out[i] = a[i] + b[i]; i += 1 }
    }

    /// `out = a * b` element-wise.
    @inlinable
    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        var i = 0
        while i + 8 <= n {
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)))
            i += 8
        }
        while i < n { out[i] = a[i] * b[i]; i += 1 }
    }

    /// `out = x * s`.
    @inlinable
    public static func scale(_ x: UnsafePointer<Float>, _ s: Float, _ out: UnsafeMutablePointer<Float>, count n: Int) {
        let vs = _mm256_set1_ps(s)
        var i = 0
        while i + 8 <= n {
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs))
            i += 8
        }
        while i < n { out[i] = x[i] * s; i += 1 }
    }
}
#endif
