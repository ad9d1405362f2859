/// `VectorOps`' element-wise operations in Swift SIMD types: the bodies `VectorOps` uses when the
/// portable kernels are selected (`MatMulKernels`), compiled in every build so tests can hold them
/// against the x86 ones. Same accumulators, same operation order and fused multiply-adds as the
/// AVX2 versions, so with FMA hardware both give the same bits.
public enum PortableVectorOps {
    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inlinable @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// Horizontal sum of 8 lanes in a fixed order.
    @inlinable @inline(__always)
    public static func hsum(_ s: SIMD8<Float>) -> Float {
        let s4 = s.lowHalf + s.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        return s2[0] + s2[1]
    }

    /// Sum of `a[i] * b[i]`.
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0 = acc0.addingProduct(load(a + i), load(b + i))
            acc1 = acc1.addingProduct(load(a + i + 8), load(b + i + 8))
            i += 16
        }
        if i + 8 <= n {
            acc0 = acc0.addingProduct(load(a + i), load(b + i))
            i += 8
        }
        var s = hsum(acc0 + acc1)
        while i < n {
            s = s.addingProduct(a[i], b[i])
            i += 1
        }
        return s
    }

    /// `y[i] += a * x[i]`.
    @inlinable
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        let va = SIMD8<Float>(repeating: a)
        var i = 0
        while i + 8 <= n {
            store(load(y + i).addingProduct(va, load(x + i)), y + i)
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
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let v = load(x + i)
            acc = acc.addingProduct(v, v)
            i += 8
        }
        var ss = hsum(acc)
        while i < n {
            ss = ss.addingProduct(x[i], x[i])
            i += 1
        }
        let scale = 1 / (ss / Float(n) + eps).squareRoot()
        let vs = SIMD8<Float>(repeating: scale)
        i = 0
        while i + 8 <= n {
            store((load(x + i) * vs) * load(weight + i), out + i)
            i += 8
        }
        while i < n {
            out[i] = (x[i] * scale) * weight[i]
            i += 1
        }
    }

    /// `out = a + b`.
    @inlinable
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        var i = 0
        while i + 8 <= n {
            store(load(a + i) + load(b + i), out + i)
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
            store(load(a + i) * load(b + i), out + i)
            i += 8
        }
        while i < n { out[i] = a[i] * b[i]; i += 1 }
    }

    /// `out = x * s`.
    @inlinable
    public static func scale(_ x: UnsafePointer<Float>, _ s: Float, _ out: UnsafeMutablePointer<Float>, count n: Int) {
        let vs = SIMD8<Float>(repeating: s)
        var i = 0
        while i + 8 <= n {
            store(load(x + i) * vs, out + i)
            i += 8
        }
        while i < n { out[i] = x[i] * s; i += 1 }
    }
}

#if !(arch(x86_64) && !TANDEM_PORTABLE_KERNELS)
/// The portable kernels are selected (`MatMulKernels`): `VectorOps` runs `PortableVectorOps`.
extension VectorOps {
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        PortableVectorOps.dot(a, b, count: n)
    }

    @inlinable @inline(__always)
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        PortableVectorOps.axpy(a, x, y, count: n)
    }

    @inlinable @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, count n: Int, eps: Float,
                               _ out: UnsafeMutablePointer<Float>) {
        PortableVectorOps.rmsNorm(x, weight, count: n, eps: eps, out)
    }

    @inlinable @inline(__always)
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        PortableVectorOps.add(a, b, out, count: n)
    }

    @inlinable @inline(__always)
    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        PortableVectorOps.mul(a, b, out, count: n)
    }

    @inlinable @inline(__always)
    public static func scale(_ x: UnsafePointer<Float>, _ s: Float, _ out: UnsafeMutablePointer<Float>, count n: Int) {
        PortableVectorOps.scale(x, s, out, count: n)
    }
}
#endif
