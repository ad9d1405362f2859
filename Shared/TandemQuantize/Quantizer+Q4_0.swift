extension Quantizer {
    /// block_q4_0 { f16 d; u8 qs[16] }: d = max/-8 where max is the signed value of largest magnitude,
    /// q = min(15, trunc(x/d + 8.5)); element j in the low nibble of byte j, j+16 in the high nibble.
    @inline(__always)
    static func q4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0, mx: Float = 0
        for j in 0..<32 where amax < abs(x[j]) {
            amax = abs(x[j])
            mx = x[j]
        }
        let d = mx / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        for j in 0..<16 {
            let q0 = clampNibble(truncatingInt(x[j] * id + 8.5), 15)
            let q1 = clampNibble(truncatingInt(x[j + 16] * id + 8.5), 15)
            y.storeBytes(of: q0 | (q1 << 4), toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    /// block_q4_1 { f16 d; f16 m; u8 qs[16] }: m = min, d = (max-min)/15, q = min(15, trunc((x-m)/d + 0.5)).
    @inline(__always)
    static func q4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            lo = min(lo, x[j])
            hi = max(hi, x[j])
        }
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        storeHalf(lo, y, 2)
        for j in 0..<16 {
            let q0 = clampNibble(truncatingInt((x[j] - lo) * id + 0.5), 15)
            let q1 = clampNibble(truncatingInt((x[j + 16] - lo) * id + 0.5), 15)
            y.storeBytes(of: q0 | (q1 << 4), toByteOffset: 4 + j, as: UInt8.self)
        }
    }

    /// Clamps a truncated level to `0...maxLevel`. In range (every finite input) this equals ggml's
    /// `MIN(maxLevel, (int8_t)v)` and numpy's `.clip`; out of range it avoids C's wrap-around.
    @inline(__always)
    static func clampNibble(_ v: Int32, _ maxLevel: Int32) -> UInt8 {
        UInt8(truncatingIfNeeded: min(maxLevel, max(0, v)))
    }
}
