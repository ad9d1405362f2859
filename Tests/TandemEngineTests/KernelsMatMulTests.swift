import Foundation
import TandemTestSupport
import Testing
@testable import TandemKernels

@Suite("Kernels: matmul")
struct KernelsMatMulTests {
    static let pool = ComputePool(threads: 2)

    @Test("matches dequantize + dot reference", arguments: KernelsTestSupport.weightTypes)
    func matchesReference(type: GGMLType) {
        var rng = TestRNG(seed: 42 &+ UInt64(type.rawValue))
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
            // Activations are quantized to int8 on the fast paths (observed ~0.1% of sum |w*x|) and
            // to int16 for Q4_0/Q4_1/Q5_1 (~1e-5); float paths are exact to ~1e-7. A wrong scale,
            // min or bit layout gives >> 1%.
            let tolerance = [.f32, .f16, .bf16, .q2_K, .q3_K].contains(type) ? 1e-5
                : [.q4_0, .q4_1, .q5_1].contains(type) ? 1e-4 : 4e-3
            #expect(worst < tolerance, "\(type.name): worst relative error \(worst)")
        }
    }

    @Test("batch invariance: nTokens 1, 3, 8, 33 give bit-identical rows",
          arguments: [GGMLType.q4_K, .q6_K, .q5_0, .q8_0, .q4_0, .q4_1, .q5_1, .q5_K, .f16, .f32])
    func batchInvariance(type: GGMLType) {
        var rng = TestRNG(seed: 7 &+ UInt64(type.rawValue))
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
        var rng = TestRNG(seed: 99)
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

@Suite("Kernels: shared-input matmul")
struct KernelsSharedMatMulTests {
    @Test("multiply(a, b, c) equals separate multiplies, mixing fast and generic types",
          arguments: [[GGMLType.q4_K, .q4_K, .q6_K], [.q5_0, .q8_0, .q4_K], [.q4_1, .f32, .q4_1], [.q6_K, .q3_K, .q5_1]])
    func sharedEqualsSeparate(types: [GGMLType]) {
        var rng = TestRNG(seed: 2024)
        let cols = 512, n = 6
        let rows = [64, 16, 40]
        let mats = (0..<3).map { KernelsTestSupport.randomWeights(types[$0], rows: rows[$0], cols: cols, rng: &rng) }
        let x = KernelsTestSupport.randomActivations(count: n * cols, rng: &rng)
        let pool = KernelsMatMulTests.pool
        mats[0].withUnsafeBytes { b0 in mats[1].withUnsafeBytes { b1 in mats[2].withUnsafeBytes { b2 in
            let w = [WeightMatrix(type: types[0], rows: rows[0], cols: cols, data: b0.baseAddress!),
                     WeightMatrix(type: types[1], rows: rows[1], cols: cols, data: b1.baseAddress!),
                     WeightMatrix(type: types[2], rows: rows[2], cols: cols, data: b2.baseAddress!)]
            var sep = (0..<3).map { [Float](repeating: 0, count: n * rows[$0]) }
            let scratch = MatMulScratch()
            for i in 0..<3 { MatMul.multiply(w[i], x, nTokens: n, &sep[i], pool: pool, scratch: scratch) }
            var o0 = [Float](repeating: 0, count: n * rows[0])
            var o1 = [Float](repeating: 0, count: n * rows[1])
            var o2 = [Float](repeating: 0, count: n * rows[2])
            o0.withUnsafeMutableBufferPointer { p0 in o1.withUnsafeMutableBufferPointer { p1 in
                o2.withUnsafeMutableBufferPointer { p2 in
                    MatMul.multiply(w[0], p0.baseAddress!, w[1], p1.baseAddress!, w[2], p2.baseAddress!,
                                    input: x, nTokens: n, pool: pool, scratch: MatMulScratch())
                }
            } }
            #expect(o0.map(\.bitPattern) == sep[0].map(\.bitPattern))
            #expect(o1.map(\.bitPattern) == sep[1].map(\.bitPattern))
            #expect(o2.map(\.bitPattern) == sep[2].map(\.bitPattern))
            // Two-matrix form.
            var p = [Float](repeating: 0, count: n * rows[0]), q = [Float](repeating: 0, count: n * rows[1])
            p.withUnsafeMutableBufferPointer { pp in q.withUnsafeMutableBufferPointer { qq in
                MatMul.multiply(w[0], pp.baseAddress!, w[1], qq.baseAddress!, input: x, nTokens: n, pool: pool,
                                scratch: scratch)
            } }
            #expect(p.map(\.bitPattern) == sep[0].map(\.bitPattern))
            #expect(q.map(\.bitPattern) == sep[1].map(\.bitPattern))
        } } }
    }
}

@Suite("Kernels: packed (row-interleaved) matmul")
struct KernelsPackedMatMulTests {
    static let types: [GGMLType] = [.q4_K, .q6_K, .q5_0, .q8_0]

    /// Runs `body` with `w` and its packed twin.
    static func withPacked(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64,
                           _ body: (_ plain: WeightMatrix, _ packed: WeightMatrix) -> Void) {
        var rng = TestRNG(seed: seed)
        let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
        bytes.withUnsafeBytes { wb in
            let w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
            let n = WeightPacking.packedByteCount(w)
            #expect(n == w.byteCount + (type == .q4_K ? rows / 8 * (cols / 256) * 32 : 0))
            let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
            defer { p.deallocate() }
            WeightPacking.pack(w, into: p)
            body(w, w.withPacked(UnsafeRawPointer(p)))
        }
    }

    @Test("packed equals unpacked (same integer dot products) for 1...9 tokens", arguments: types)
    func packedEqualsPlain(type: GGMLType) {
        let rows = 48, cols = 768
        Self.withPacked(type, rows: rows, cols: cols, seed: 11 &+ UInt64(type.rawValue)) { plain, packed in
            var rng = TestRNG(seed: 5)
            let x = KernelsTestSupport.randomActivations(count: 9 * cols, rng: &rng)
            let ref = KernelsTestSupport.referenceMultiply(plain, x, nTokens: 9)
            for n in [1, 2, 3, 4, 5, 9] {
                var a = [Float](repeating: .nan, count: n * rows), b = a
                MatMul.multiply(plain, x, nTokens: n, &a, pool: KernelsMatMulTests.pool, scratch: MatMulScratch())
                MatMul.multiply(packed, x, nTokens: n, &b, pool: KernelsMatMulTests.pool, scratch: MatMulScratch())
                var worst = 0.0, worstRef = 0.0
                for i in 0..<a.count {
                    // Only the float summation order differs from the row-major kernels.
                    worst = max(worst, Double(abs(a[i] - b[i])) / (ref.scale[i] + 1e-9))
                    worstRef = max(worstRef, abs(Double(b[i]) - ref.values[i]) / (ref.scale[i] + 1e-9))
                }
                #expect(worst < 1e-5, "\(type.name) n=\(n): packed vs plain \(worst)")
                #expect(worstRef < 4e-3, "\(type.name) n=\(n): packed vs reference \(worstRef)")
            }
        }
    }

    @Test("packed kernels are batch- and thread-invariant", arguments: types)
    func packedInvariance(type: GGMLType) {
        let rows = 64, cols = 512, maxTokens = 13
        Self.withPacked(type, rows: rows, cols: cols, seed: 3 &+ UInt64(type.rawValue)) { _, packed in
            var rng = TestRNG(seed: 8)
            let x = KernelsTestSupport.randomActivations(count: maxTokens * cols, rng: &rng)
            var full = [Float](repeating: 0, count: maxTokens * rows)
            MatMul.multiply(packed, x, nTokens: maxTokens, &full, pool: KernelsMatMulTests.pool, scratch: MatMulScratch())
            var single = [Float](repeating: 0, count: maxTokens * rows)
            MatMul.multiply(packed, x, nTokens: maxTokens, &single, pool: ComputePool(threads: 1), scratch: MatMulScratch())
            #expect(full.map(\.bitPattern) == single.map(\.bitPattern), "\(type.name): 1 vs 2 threads")
            for start in [0, 2, 7] {
                for n in [1, 3, 6] where start + n <= maxTokens {
                    var out = [Float](repeating: 0, count: n * rows)
                    x.withUnsafeBufferPointer { xb in
                        MatMul.multiply(packed, xb.baseAddress! + start * cols, nTokens: n, &out,
                                        pool: KernelsMatMulTests.pool, scratch: MatMulScratch())
                    }
                    #expect(out.map(\.bitPattern) == Array(full[(start * rows)..<((start + n) * rows)]).map(\.bitPattern),
                            "\(type.name): \(n) tokens at \(start)")
                }
            }
        }
    }

    @Test("only packable types with rows in groups of 8 can be packed, and only for the x86 kernels")
    func packability() {
        #expect(WeightPacking.hasLayout(.q4_K, rows: 64))
        #expect(!WeightPacking.hasLayout(.q4_K, rows: 60))
        #expect(!WeightPacking.hasLayout(.q4_1, rows: 64))
        #expect(!WeightPacking.hasLayout(.f32, rows: 64))
        // The portable kernels read ggml's layout: a portable build does not pack.
        #expect(WeightPacking.canPack(.q4_K, rows: 64) == (MatMulKernels.selected == .x86AVX2))
        #expect(!WeightPacking.canPack(.q4_K, rows: 60))
    }
}
