import TandemKernels

extension Quantizer {
    /// F16: IEEE half per element, round to nearest even (numpy's `astype(float16)` and ggml agree).
    static func quantizeF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        for i in 0..<count {
            dst.storeBytes(of: Float16(src[i]).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
        }
    }

    /// BF16: top half of the float, rounded to nearest even; NaNs are forced quiet so that rounding
    /// cannot turn one into infinity (same rule as ggml's `ggml_compute_fp32_to_bf16`).
    static func quantizeBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        for i in 0..<count {
            let u = src[i].bitPattern
            let h: UInt16
            if (u & 0x7FFF_FFFF) > 0x7F80_0000 {
                h = UInt16(truncatingIfNeeded: (u >> 16) | 64)
            } else {
                h = UInt16(truncatingIfNeeded: (UInt64(u) + UInt64(0x7FFF + ((u >> 16) & 1))) >> 16)
            }
            dst.storeBytes(of: h, toByteOffset: 2 * i, as: UInt16.self)
        }
    }
}
