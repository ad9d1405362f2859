import TandemKernels

/// Row quantisers that write llama.cpp's block layouts (`block_q4_0`, `block_q4_K`, ...) byte for byte.
///
/// The engine's dequantisers (`dequantizeRow` in TandemKernels) and llama.cpp read what these write.
/// Each format follows llama.cpp's *reference* quantiser (`quantize_row_<type>_ref` in ggml-quants.c),
/// which is also what `llama-quantize` uses when no importance matrix is given; the 32-element formats
/// agree bit for bit with the Python `gguf` package (tested). Arithmetic is done in `Float` in the same
/// order as the C code; llama.cpp builds that contract `a*b+c` into FMA can differ in the last bit of
/// a scale, so K-quant blocks are "llama.cpp's algorithm", not guaranteed identical bytes.
public enum Quantizer {
    /// Elements per K-quant super-block (ggml's `QK_K`). Defined here rather than taken from the
    /// kernels so that this module only depends on their public block sizes.
    public static let superBlock = 256
    /// Elements per block of the 32-element formats (`QK4_0`, `QK8_0`, ...).
    public static let smallBlock = 32

    /// The output types this module can produce.
    public static let supportedTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    /// Whether `quantizeRow` can write `type`.
    public static func canQuantize(_ type: GGMLType) -> Bool { supportedTypes.contains(type) }

    /// Quantises `count` floats (a multiple of `type.blockSize`) from `src` into `dst`
    /// (`type.byteCount(elements: count)` bytes).
    public static func quantizeRow(_ type: GGMLType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
        precondition(count % type.blockSize == 0, "row length \(count) is not a multiple of the \(type.name) block size")
        let nb = count / type.blockSize
        switch type {
        case .f32:
            dst.copyMemory(from: src, byteCount: count * 4)
        case .f16:
            quantizeF16(src, dst, count: count)
        case .bf16:
            quantizeBF16(src, dst, count: count)
        case .q4_0:
            for b in 0..<nb { q4_0(src + b * 32, dst + b * 18) }
        case .q4_1:
            for b in 0..<nb { q4_1(src + b * 32, dst + b * 20) }
        case .q5_0:
            for b in 0..<nb { q5_0(src + b * 32, dst + b * 22) }
        case .q5_1:
            for b in 0..<nb { q5_1(src + b * 32, dst + b * 24) }
        case .q8_0:
            for b in 0..<nb { q8_0(src + b * 32, dst + b * 34) }
        case .q4_K:
            withKScratch { s in for b in 0..<nb { q4_K(src + b * 256, dst + b * 144, s) } }
        case .q5_K:
            withKScratch { s in for b in 0..<nb { q5_K(src + b * 256, dst + b * 176, s) } }
        case .q6_K:
            withKScratch { s in for b in 0..<nb { q6_K(src + b * 256, dst + b * 210, s) } }
        default:
            preconditionFailure("quantizeRow: \(type.name) is not a supported output type")
        }
    }

    /// Quantises a whole buffer and returns the bytes (convenience for tests and small tensors).
    public static func quantize(_ values: [Float], as type: GGMLType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: type.byteCount(elements: values.count))
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { dst in
                quantizeRow(type, src.baseAddress!, dst.baseAddress!, count: values.count)
            }
        }
        return out
    }

    // MARK: Helpers shared by the formats

    /// ggml's `nearest_int`: round half to even via the 1.5·2^23 trick. Never traps (a NaN or huge
    /// input gives a garbage but finite integer, as in C), unlike `Int32(x.rounded())`.
    @inline(__always)
    static func nearestInt(_ x: Float) -> Int32 {
        let v = x + 12_582_912
        return Int32(bitPattern: v.bitPattern & 0x007F_FFFF) - 0x0040_0000
    }

    /// C's float-to-int truncation for values in range; NaN and out-of-range values give `Int32.min`
    /// (what x86 `cvttss2si` returns) instead of trapping.
    @inline(__always)
    static func truncatingInt(_ x: Float) -> Int32 {
        guard x > -2_147_483_648, x < 2_147_483_648 else { return Int32.min }
        return Int32(x)
    }

    /// Stores `value` as IEEE half (round to nearest even, like `GGML_FP32_TO_FP16` with F16C).
    @inline(__always)
    static func storeHalf(_ value: Float, _ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBytes(of: Float16(value).bitPattern, toByteOffset: offset, as: UInt16.self)
    }

    /// The half-precision value `value` rounds to, as a Float (what a dequantiser will see).
    @inline(__always)
    static func roundedToHalf(_ value: Float) -> Float { Float(Float16(value)) }
}
