extension Quantizer {
    /// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: like Q4_0 with 32 levels (d = max/-16, offset 16.5);
    /// bit 4 of element j goes to bit j of the little-endian u32 `qh`.
    /// Used as the fallback for Q4_K when a row is not a multiple of 256 (llama.cpp does the same).
    @inline(__always)
    static func q5_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0, mx: Float = 0
        for j in 0..<32 where amax < abs(x[j]) {
            amax = abs(x[j])
            mx = x[j]
        }
        let d = mx / -16
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = clampNibble(truncatingInt(x[j] * id + 16.5), 31)
            let q1 = clampNibble(truncatingInt(x[j + 16] * id + 16.5), 31)
            y.storeBytes(of: (q0 & 0xF) | ((q1 & 0xF) << 4), toByteOffset: 6 + j, as: UInt8.self)
            qh |= UInt32(q0 >> 4) << UInt32(j)
            qh |= UInt32(q1 >> 4) << UInt32(j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
    }

    /// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: like Q4_1 with 32 levels.
    /// Used as the fallback for Q5_K when a row is not a multiple of 256 (llama.cpp does the same).
    @inline(__always)
    static func q5_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            lo = min(lo, x[j])
            hi = max(hi, x[j])
        }
        let d = (hi - lo) / 31
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, y, 0)
        storeHalf(lo, y, 2)
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = clampNibble(truncatingInt((x[j] - lo) * id + 0.5), 31)
            let q1 = clampNibble(truncatingInt((x[j + 16] - lo) * id + 0.5), 31)
            y.storeBytes(of: (q0 & 0xF) | ((q1 & 0xF) << 4), toByteOffset: 8 + j, as: UInt8.self)
            qh |= UInt32(q0 >> 4) << UInt32(j)
            qh |= UInt32(q1 >> 4) << UInt32(j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
    }
}
