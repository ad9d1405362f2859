import _Builtin_intrinsics.intel
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float32 vector helpers for the transformer forward pass (norms, activations, attention,
/// rotary embedding).
///
/// All of them are batch-invariant: a result depends only on the inputs of that call, computed
/// with a fixed sequence of operations (8-lane AVX accumulators, fixed reduction order), never on
/// how many tokens a forward pass processes. Pointers may alias only where documented (`out`
/// may equal an input for the element-wise ops).
public enum VectorOps {
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

    /// SwiGLU: `out = silu(gate) * up`, `silu(g) = g / (1 + exp(-g))`.
    @inlinable
    public static func siluMul(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>,
                               _ out: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n {
            let g = gate[i]
            out[i] = (g / (1 + expf(-g))) * up[i]
        }
    }

    /// In-place softmax over `count` values (max-subtracted for stability).
    @inlinable
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        if n <= 0 { return }
        var m = x[0]
        for i in 1..<n where x[i] > m { m = x[i] }
        var sum: Float = 0
        for i in 0..<n {
            let e = expf(x[i] - m)
            x[i] = e
            sum += e
        }
        scale(x, 1 / sum, x, count: n)
    }

    /// Index of the largest value (first one on ties): greedy sampling.
    @inlinable
    public static func argmax(_ x: UnsafePointer<Float>, count n: Int) -> Int {
        var best = 0
        var bv = x[0]
        for i in 1..<n where x[i] > bv {
            bv = x[i]
            best = i
        }
        return best
    }

    /// Rotary embedding layout.
    public enum RotaryLayout: Sendable {
        /// GPT-NeoX / Qwen2: dimension `i` pairs with `i + ropeDim/2`.
        case neox
        /// Original LLaMA (ggml "normal"): dimension `2i` pairs with `2i + 1`.
        case normal
    }

    /// Fills `cos[i]`, `sin[i]` (i in `0..<ropeDim/2`) with the rotation of frequency pair `i` at
    /// `position`: angle = position * base^(-2i/ropeDim), computed in Double. Compute once per
    /// position and reuse for every layer and head.
    public static func rotaryAngles(position: Int, ropeDim: Int, base: Float,
                                    cos cosOut: UnsafeMutablePointer<Float>, sin sinOut: UnsafeMutablePointer<Float>) {
        let half = ropeDim / 2
        let b = Double(base)
        for i in 0..<half {
            let freq = pow(b, -2.0 * Double(i) / Double(ropeDim))
            let angle = Double(position) * freq
            cosOut[i] = Float(cos(angle))
            sinOut[i] = Float(sin(angle))
        }
    }

    /// Rotates the first `ropeDim` dimensions of each of `heads` consecutive vectors of `headDim`
    /// floats in `x`, in place, using tables from `rotaryAngles`.
    @inlinable
    public static func applyRotary(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, ropeDim: Int,
                                   cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, layout: RotaryLayout) {
        let half = ropeDim / 2
        for h in 0..<heads {
            let v = x + h * headDim
            switch layout {
            case .neox:
                for i in 0..<half {
                    let a = v[i], b = v[i + half]
                    v[i] = a * cos[i] - b * sin[i]
                    v[i + half] = a * sin[i] + b * cos[i]
                }
            case .normal:
                for i in 0..<half {
                    let a = v[2 * i], b = v[2 * i + 1]
                    v[2 * i] = a * cos[i] - b * sin[i]
                    v[2 * i + 1] = a * sin[i] + b * cos[i]
                }
            }
        }
    }

    /// Convenience: rotary embedding of `heads` vectors at one position with base `theta`
    /// (ropeDim = headDim). Computes the angle table on the stack; prefer `rotaryAngles` +
    /// `applyRotary` when several tensors share a position.
    public static func applyRotary(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, position: Int,
                                   base: Float, layout: RotaryLayout) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: headDim) { buf in
            let c = buf.baseAddress!, s = c + headDim / 2
            rotaryAngles(position: position, ropeDim: headDim, base: base, cos: c, sin: s)
            applyRotary(x, heads: heads, headDim: headDim, ropeDim: headDim, cos: c, sin: s, layout: layout)
        }
    }
}
