import Foundation
import Testing
@testable import TandemKernels

@Suite("Kernels: matmul")
struct KernelsMatMulTests {
    static let pool = ComputePool(threads: 2)

    @Test("matches dequantize + dot reference", arguments: KernelsTestSupport.weightTypes)
    func matchesReference(type: GGMLType) {
        var rng = KernelsRNG(seed: 42 &+ UInt64(type.rawValue))
        let rows = 37, cols = 512, nTokens = 5
        let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
        let x = KernelsTestSupport.randomActivations(count: nTokens * cols, rng: &rng)
        let scratch = MatMulScratch()
        bytes.withUnsafeBytes { wb in
            let w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
            var out = [Float](repeating: .nan, count: nTokens * rows)
            MatMul.multiply(w, x, nTokens: nTokens, &out, pool: Self.pool, scratch: scratch)
            let ref = KernelsTestSupport.referenceMultiply(w, x, nTokens: nTokens)
            var worst = 0.0
            for i in 0..<out.count {
                let err = abs(Double(out[i]) - ref.values[i]) / (ref.scale[i] + 1e-9)
                worst = max(worst, err)
            }
            // Activations are quantized to int8 on the fast paths (observed ~0.1% of sum |w*x|);
            // float paths are exact to ~1e-7. A wrong scale, min or bit layout gives >> 1%.
            let tolerance = [.f32, .f16, .bf16, .q2_K, .q3_K].contains(type) ? 1e-5 : 4e-3
            #expect(worst < tolerance, "\(type.name): worst relative error \(worst)")
        }
    }

    @Test("batch invariance: nTokens 1, 3, 8, 33 give bit-identical rows",
          arguments: [GGMLType.q4_K, .q6_K, .q5_0, .q8_0, .q4_0, .q4_1, .q5_1, .q5_K, .f16, .f32])
    func batchInvariance(type: GGMLType) {
        var rng = KernelsRNG(seed: 7 &+ UInt64(type.rawValue))
        let rows = 70, cols = 768
        let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
        let maxTokens = 33
        let x = KernelsTestSupport.randomActivations(count: maxTokens * cols, rng: &rng)
        let scratch = MatMulScratch()
        bytes.withUnsafeBytes { wb in
            let w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
            var full = [Float](repeating: 0, count: maxTokens * rows)
            MatMul.multiply(w, x, nTokens: maxTokens, &full, pool: Self.pool, scratch: scratch)
            for n in [1, 3, 8] {
                // Place tokens at varying offsets so each token meets different neighbours.
                for start in [0, 5, maxTokens - n] {
                    var out = [Float](repeating: 0, count: n * rows)
                    x.withUnsafeBufferPointer { xb in
                        MatMul.multiply(w, xb.baseAddress! + start * cols, nTokens: n, &out, pool: Self.pool,
                                        scratch: scratch)
                    }
                    let expected = Array(full[(start * rows)..<((start + n) * rows)])
                    #expect(out.map(\.bitPattern) == expected.map(\.bitPattern),
                            "\(type.name): nTokens \(n) at \(start) differs from nTokens \(maxTokens)")
                }
            }
        }
    }

    @Test("single-thread pool gives identical results")
    func threadInvariance() {
        var rng = KernelsRNG(seed: 99)
        let rows = 100, cols = 1024, n = 4
        let bytes = KernelsTestSupport.randomWeights(.q4_K, rows: rows, cols: cols, rng: &rng)
        let x = KernelsTestSupport.randomActivations(count: n * cols, rng: &rng)
        bytes.withUnsafeBytes { wb in
            let w = WeightMatrix(type: .q4_K, rows: rows, cols: cols, data: wb.baseAddress!)
            var a = [Float](repeating: 0, count: n * rows), b = a
            MatMul.multiply(w, x, nTokens: n, &a, pool: Self.pool, scratch: MatMulScratch())
            let one = ComputePool(threads: 1)
            MatMul.multiply(w, x, nTokens: n, &b, pool: one, scratch: MatMulScratch())
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        }
    }
}
