#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float32 vector helpers for the transformer forward pass (norms, activations, attention,
/// rotary embedding).
///
/// All of them are batch-invariant: a result depends only on the inputs of that call, computed
/// with a fixed sequence of operations (8-lane accumulators, fixed reduction order), never on
/// how many tokens a forward pass processes. Pointers may alias only where documented (`out`
/// may equal an input for the element-wise ops).
public enum VectorOps {
    // dot, axpy, rmsNorm, add, mul, scale: X86/VectorOps+X86.swift or Portable/PortableVectorOps.swift,
    // chosen at build time like the matmul kernels (`MatMulKernels`).

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
