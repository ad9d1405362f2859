/// Portable quantization of activations into the formats of `MatMul.Acts`.
///
/// The int8 formats (Q8_0-style per 32, Q8_K-style per 256) are bit-identical to the x86
/// quantizers': same scale (`amax / 127` in Float), same products `x * (127 / amax)`, same
/// round-to-nearest-even (`cvtps` there, the 1.5 * 2^23 trick here). The int16 format stores
/// Int32 values in the order `portableTile16` reads (see `portableQuantizeRowQ16`).
extension MatMul {
    /// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the integer in the
    /// low mantissa bits (no per-lane conversion loop, which SIMD `rounded` would compile to).
    @inline(__always)
    static func roundToInt32(_ v: Float) -> Int32 {
        Int32(bitPattern: (v + 12_582_912).bitPattern) &- 0x4B40_0000
    }

    @inline(__always)
    static func portableAbsMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m: Float = 0
        for i in 0..<n { m = max(m, abs(p[i])) }
        return m
    }

    /// Quantizes 32 floats with inverse scale `id` into `dst`; returns the sums of the two halves of 16.
    @inline(__always)
    static func portableQuantize32(_ p: UnsafePointer<Float>, _ id: Float, _ dst: UnsafeMutablePointer<Int8>)
        -> (Int32, Int32) {
        var s0: Int32 = 0, s1: Int32 = 0
        for i in 0..<16 {
            let q = roundToInt32(p[i] * id)
            dst[i] = Int8(truncatingIfNeeded: q)
            s0 &+= q
        }
        for i in 16..<32 {
            let q = roundToInt32(p[i] * id)
            dst[i] = Int8(truncatingIfNeeded: q)
            s1 &+= q
        }
        return (s0, s1)
    }

    /// Q8_0-style: per 32 values, scale = amax / 127; also `16 * sum(q)` per block (read only by the
    /// packed x86 Q5_0 kernel, kept so the formats stay identical).
    static func portableQuantizeRowQ8_0(_ x: UnsafePointer<Float>, _ qs: UnsafeMutablePointer<Int8>,
                                        _ d: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Int32>, _ nb: Int) {
        for b in 0..<nb {
            let amax = portableAbsMax(x + 32 * b, 32)
            let id: Float = amax != 0 ? 127 / amax : 0
            let (s0, s1) = portableQuantize32(x + 32 * b, id, qs + 32 * b)
            d[b] = amax / 127
            s[b] = 16 * (s0 + s1)
        }
    }

    /// Q8_K-style: per 256 values, scale = amax / 127, plus Int16 sums per 16 and per 32 values.
    static func portableQuantizeRowQ8K(_ x: UnsafePointer<Float>, _ qs: UnsafeMutablePointer<Int8>,
                                       _ d: UnsafeMutablePointer<Float>, _ bsums: UnsafeMutablePointer<Int16>,
                                       _ pairs: UnsafeMutablePointer<Int16>, _ nb: Int) {
        for b in 0..<nb {
            let p = x + 256 * b
            let amax = portableAbsMax(p, 256)
            let id: Float = amax != 0 ? 127 / amax : 0
            for k in 0..<8 {
                let (s0, s1) = portableQuantize32(p + 32 * k, id, qs + 256 * b + 32 * k)
                bsums[16 * b + 2 * k] = Int16(s0)
                bsums[16 * b + 2 * k + 1] = Int16(s1)
                pairs[8 * b + k] = Int16(s0 + s1)
            }
            d[b] = amax / 127
        }
    }

    /// int16-range activations per 32 values (scale amax / 32767), stored as Int32 so the kernel
    /// multiplies 32-bit lanes without widening, in "stride 4" order: block value `4L + j` at
    /// index `8j + L` (j < 4, L < 8), the order in which `portableTile16` unpacks nibbles.
    /// `s` holds `d * sum(q)` per block (the Q4_1/Q5_1 min term).
    static func portableQuantizeRowQ16(_ x: UnsafePointer<Float>, _ qs: UnsafeMutablePointer<Int32>,
                                       _ d: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Float>, _ nb: Int) {
        for b in 0..<nb {
            let p = x + 32 * b
            let amax = portableAbsMax(p, 32)
            let dd = amax / 32767
            let id: Float = amax != 0 ? 32767 / amax : 0
            var sum: Int32 = 0
            let dst = qs + 32 * b
            for i in 0..<32 {
                let q = roundToInt32(p[i] * id)
                dst[8 * (i & 3) + (i >> 2)] = q
                sum &+= q
            }
            d[b] = dd
            s[b] = dd * Float(sum)
        }
    }
}
