/// `AttentionOps`' f16-cache attention in Swift SIMD types: the bodies `AttentionOps` uses when the
/// portable kernels are selected (`MatMulKernels`), compiled in every build so tests can hold them
/// against the x86 ones. Same accumulators, same order and fused multiply-adds as the AVX2/F16C
/// versions; the half-to-float widening is exact on both, so with FMA hardware both give the same bits.
public enum PortableAttentionOps {
    @inlinable @inline(__always)
    static func loadF16(_ p: UnsafePointer<UInt16>) -> SIMD8<Float> {
        let h = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float16>.self)
        return SIMD8<Float>(h)
    }

    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Sum of `q[i] * k[i]` over `n` values, `k` in half precision.
    @inlinable
    public static func dotF16(_ q: UnsafePointer<Float>, _ k: UnsafePointer<UInt16>, count n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0 = acc0.addingProduct(load(q + i), loadF16(k + i))
            acc1 = acc1.addingProduct(load(q + i + 8), loadF16(k + i + 8))
            i += 16
        }
        if i + 8 <= n {
            acc0 = acc0.addingProduct(load(q + i), loadF16(k + i))
            i += 8
        }
        var s = PortableVectorOps.hsum(acc0 + acc1)
        while i < n {
            s = s.addingProduct(q[i], Float(Float16(bitPattern: k[i])))
            i += 1
        }
        return s
    }

    /// See `AttentionOps.scoresF16`.
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

    /// See `AttentionOps.accumulateF16`.
    @inlinable
    public static func accumulateF16(_ weights: UnsafePointer<Float>, norm: Float, values: UnsafePointer<UInt16>,
                                     stride: Int, positions: Int, headDim n: Int, _ out: UnsafeMutablePointer<Float>,
                                     zeroFirst: Bool = true) {
        if zeroFirst { out.initialize(repeating: 0, count: n) }
        for j in 0..<positions {
            let a = weights[j] * norm
            let va = SIMD8<Float>(repeating: a)
            let x = values + j * stride
            var i = 0
            while i + 8 <= n {
                UnsafeMutableRawPointer(out + i).storeBytes(of: load(out + i).addingProduct(va, loadF16(x + i)),
                                                            as: SIMD8<Float>.self)
                i += 8
            }
            while i < n {
                out[i] = out[i].addingProduct(a, Float(Float16(bitPattern: x[i])))
                i += 1
            }
        }
    }
}

#if !(arch(x86_64) && !TANDEM_PORTABLE_KERNELS)
/// The portable kernels are selected (`MatMulKernels`): `AttentionOps` runs `PortableAttentionOps`.
extension AttentionOps {
    @inlinable @inline(__always)
    public static func dotF16(_ q: UnsafePointer<Float>, _ k: UnsafePointer<UInt16>, count n: Int) -> Float {
        PortableAttentionOps.dotF16(q, k, count: n)
    }

    @inlinable @inline(__always)
    public static func scoresF16(_ q: UnsafePointer<Float>, keys: UnsafePointer<UInt16>, stride: Int, positions: Int,
                                 headDim: Int, scale: Float, _ scores: UnsafeMutablePointer<Float>) -> Float {
        PortableAttentionOps.scoresF16(q, keys: keys, stride: stride, positions: positions, headDim: headDim,
                                       scale: scale, scores)
    }

    @inlinable @inline(__always)
    public static func accumulateF16(_ weights: UnsafePointer<Float>, norm: Float, values: UnsafePointer<UInt16>,
                                     stride: Int, positions: Int, headDim n: Int, _ out: UnsafeMutablePointer<Float>,
                                     zeroFirst: Bool = true) {
        PortableAttentionOps.accumulateF16(weights, norm: norm, values: values, stride: stride, positions: positions,
                                           headDim: n, out, zeroFirst: zeroFirst)
    }
}
#endif
