import Foundation
import Testing
@testable import TandemKernels

/// Dequantization against fixtures produced by gguf-py's `gguf.quants`
/// (Tests/Reference/dequant_reference.py).
@Suite("Kernels: dequantization")
struct KernelsDequantizeTests {
    static let types: [GGMLType] = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    @Test("matches gguf.quants", arguments: types)
    func matchesReference(type: GGMLType) throws {
        let raw = try Data(contentsOf: KernelsTestSupport.fixtures.appendingPathComponent("kernels-\(type.name).bin"))
        let refData = try Data(contentsOf: KernelsTestSupport.fixtures.appendingPathComponent("kernels-\(type.name).f32"))
        let count = refData.count / 4
        #expect(count > 0)
        #expect(raw.count == type.byteCount(elements: count))
        let ref: [Float] = refData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        var out = [Float](repeating: .nan, count: count)
        raw.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dequantizeRow(type, src.baseAddress!, $0.baseAddress!, count: count) }
        }
        var mismatches = 0
        for i in 0..<count where abs(out[i] - ref[i]) > 1e-6 * max(1, abs(ref[i])) {
            mismatches += 1
        }
        #expect(mismatches == 0, "\(type.name): \(mismatches) of \(count) values differ")
    }

    @Test("block geometry")
    func geometry() {
        #expect(GGMLType.q4_K.blockSize == 256 && GGMLType.q4_K.bytesPerBlock == 144)
        #expect(GGMLType.q6_K.bytesPerBlock == 210)
        #expect(GGMLType.q8_0.bytesPerBlock == 34)
        #expect(GGMLType.q5_0.bytesPerBlock == 22)
        #expect(GGMLType(rawValue: 30) == .bf16)
        let w = WeightMatrix(type: .q4_K, rows: 2, cols: 512, data: UnsafeRawPointer(bitPattern: 64)!)
        #expect(w.rowBytes == 288)
    }

    @Test("half conversions round-trip")
    func halfRoundTrip() {
        let src: [Float] = (0..<37).map { Float($0) * 0.37 - 5 }
        var h = [UInt16](repeating: 0, count: src.count)
        var back = [Float](repeating: 0, count: src.count)
        convertF32ToF16(src, &h, count: src.count)
        convertF16ToF32(h, &back, count: src.count)
        for i in 0..<src.count {
            #expect(back[i] == Float(Float16(src[i])))
            #expect(f16ToF32(f32ToF16(src[i])) == back[i])
        }
    }
}
