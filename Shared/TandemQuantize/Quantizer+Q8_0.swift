extension Quantizer {
    /// block_q8_0 { f16 d; i8 qs[32] }: d = amax/127, q = roundf(x/d) (round half away from zero).
    @inline(__always)
    static func q8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        for j in 0..<32 {
            let q = truncatingInt((x[j] * id).rounded(.toNearestOrAwayFromZero))
            y.storeBytes(of: Int8(truncatingIfNeeded: q), toByteOffset: 2 + j, as: Int8.self)
        }
    }
}
