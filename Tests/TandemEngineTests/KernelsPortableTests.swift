import Foundation
import TandemTestSupport
import Testing
@testable import TandemKernels

/// The portable (Swift SIMD) kernels, which arm64 builds use, tested in every build: against the
/// dequantize-then-dot reference, for batch invariance, and, where the x86 kernels are compiled
/// in too, against them on the same random data (`MatMulKernels`).
@Suite("Kernels: portable SIMD path")
struct KernelsPortableTests {
    static let pool = ComputePool(threads: 2)
    static let x86Available = MatMulKernels.available.contains(.x86AVX2)
    /// Types whose rows are dequantized to Float on both paths (same dot-product order).
    static let floatPathTypes: [GGMLType] = [.f32, .f16, .bf16, .q2_K, .q3_K]

    static func run(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ nTokens: Int, _ kernels: MatMulKernels,
                    pool: ComputePool = pool) -> [Float] {
        var out = [Float](repeating: .nan, count: nTokens * w.rows)
        MatMul.multiply(w, x, nTokens: nTokens, &out, pool: pool, scratch: MatMulScratch(), kernels: kernels)
        return out
    }

    @Test("portable matches dequantize + dot reference", arguments: KernelsTestSupport.weightTypes)
    func matchesReference(type: GGMLType) {
        var rng = TestRNG(seed: 420 &+ UInt64(type.rawValue))
        let rows = 37, cols = 512, nTokens = 6
        let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
        let x = KernelsTestSupport.randomActivations(count: nTokens * cols, rng: &rng)
        bytes.withUnsafeBytes { wb in
            let w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
            let out = Self.run(w, x, nTokens, .portable)
            let ref = KernelsTestSupport.referenceMultiply(w, x, nTokens: nTokens)
            var worst = 0.0
            for i in 0..<out.count {
                worst = max(worst, abs(Double(out[i]) - ref.values[i]) / (ref.scale[i] + 1e-9))
            }
            // Same activation formats and tolerances as the x86 kernels (KernelsMatMulTests).
            let tolerance = Self.floatPathTypes.contains(type) ? 1e-5
                : [.q4_0, .q4_1, .q5_1].contains(type) ? 1e-4 : 4e-3
            #expect(worst < tolerance, "\(type.name): worst relative error \(worst)")
        }
    }

    @Test("x86 and portable kernels agree on random data", .enabled(if: x86Available),
          arguments: KernelsTestSupport.weightTypes)
    func agreesWithX86(type: GGMLType) {
        var rng = TestRNG(seed: 77 &+ UInt64(type.rawValue))
        let rows = 48, cols = 768
        let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
        let x = KernelsTestSupport.randomActivations(count: 9 * cols, rng: &rng)
        bytes.withUnsafeBytes { wb in
            var w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
            let ref = KernelsTestSupport.referenceMultiply(w, x, nTokens: 9)
            // The x86 kernels run on the packed copy where one exists, as in the engine.
            var packed: UnsafeMutableRawPointer?
            if WeightPacking.hasLayout(type, rows: rows) {
                let p = UnsafeMutableRawPointer.allocate(byteCount: WeightPacking.packedByteCount(w), alignment: 64)
                WeightPacking.pack(w, into: p)
                w = w.withPacked(UnsafeRawPointer(p))
                packed = p
            }
            defer { packed?.deallocate() }
            for n in [1, 4, 9] {
                let a = Self.run(w, x, n, .x86AVX2), b = Self.run(w, x, n, .portable)
                if Self.floatPathTypes.contains(type) {
                    #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(type.name) n=\(n): float paths differ")
                }
                var worst = 0.0
                for i in 0..<a.count { worst = max(worst, Double(abs(a[i] - b[i])) / (ref.scale[i] + 1e-9)) }
                // Activations are quantized to the same integers on both paths: only the float
                // summation order differs.
                #expect(worst < 1e-5, "\(type.name) n=\(n): x86 vs portable \(worst)")
            }
        }
    }

    @Test("portable batch and thread invariance: bit-identical rows for any token count",
          arguments: KernelsTestSupport.weightTypes)
    func batchInvariance(type: GGMLType) {
        var rng = TestRNG(seed: 7 &+ UInt64(type.rawValue))
        let rows = 40, cols = 768, maxTokens = 11
        let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
        let x = KernelsTestSupport.randomActivations(count: maxTokens * cols, rng: &rng)
        bytes.withUnsafeBytes { wb in
            let w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
            let full = Self.run(w, x, maxTokens, .portable)
            let single = Self.run(w, x, maxTokens, .portable, pool: ComputePool(threads: 1))
            #expect(full.map(\.bitPattern) == single.map(\.bitPattern), "\(type.name): 1 vs 2 threads")
            for n in [1, 2, 3, 5] {
                for start in [0, 3, maxTokens - n] {
                    let out = x.withUnsafeBufferPointer { Self.run(w, $0.baseAddress! + start * cols, n, .portable) }
                    #expect(out.map(\.bitPattern) == Array(full[(start * rows)..<((start + n) * rows)]).map(\.bitPattern),
                            "\(type.name): \(n) tokens at \(start)")
                }
            }
        }
    }

    @Test("portable vector ops give the same bits as VectorOps")
    func vectorOps() {
        var rng = TestRNG(seed: 31)
        let n = 77
        let a = KernelsTestSupport.randomActivations(count: n, rng: &rng)
        let b = KernelsTestSupport.randomActivations(count: n, rng: &rng)
        #expect(PortableVectorOps.dot(a, b, count: n).bitPattern == VectorOps.dot(a, b, count: n).bitPattern)
        var y1 = b, y2 = b
        PortableVectorOps.axpy(0.37, a, &y1, count: n)
        VectorOps.axpy(0.37, a, &y2, count: n)
        #expect(y1.map(\.bitPattern) == y2.map(\.bitPattern))
        var o1 = [Float](repeating: 0, count: n), o2 = o1
        PortableVectorOps.rmsNorm(a, b, count: n, eps: 1e-6, &o1)
        VectorOps.rmsNorm(a, b, count: n, eps: 1e-6, &o2)
        #expect(o1.map(\.bitPattern) == o2.map(\.bitPattern))
        PortableVectorOps.add(a, b, &o1, count: n)
        VectorOps.add(a, b, &o2, count: n)
        #expect(o1.map(\.bitPattern) == o2.map(\.bitPattern))
        PortableVectorOps.mul(a, b, &o1, count: n)
        VectorOps.mul(a, b, &o2, count: n)
        #expect(o1.map(\.bitPattern) == o2.map(\.bitPattern))
        PortableVectorOps.scale(a, 1.7, &o1, count: n)
        VectorOps.scale(a, 1.7, &o2, count: n)
        #expect(o1.map(\.bitPattern) == o2.map(\.bitPattern))
    }

    #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
    @Test("portable activation quantizers give the x86 quantizers' bytes")
    func activationQuantizers() {
        var rng = TestRNG(seed: 5)
        let cols = 512, nb = cols / 256
        var x = KernelsTestSupport.randomActivations(count: cols, rng: &rng)
        x[3] = 0.5 / 127  // a tie after scaling, on some draws: exercises round-to-even
        var qa = [Int8](repeating: 0, count: cols), qb = qa
        var da = [Float](repeating: 0, count: cols / 32), db = da
        var sa = [Int16](repeating: 0, count: cols / 16), sb = sa
        var pa = [Int16](repeating: 0, count: cols / 32), pb = pa
        MatMul.quantizeRowQ8K(x, &qa, &da, &sa, &pa, nb)
        MatMul.portableQuantizeRowQ8K(x, &qb, &db, &sb, &pb, nb)
        #expect(qa == qb && sa == sb && pa == pb && da.map(\.bitPattern) == db.map(\.bitPattern))
        var ca = [Int32](repeating: 0, count: cols / 32), cb = ca
        MatMul.quantizeRowQ8_0(x, &qa, &da, &ca, cols / 32)
        MatMul.portableQuantizeRowQ8_0(x, &qb, &db, &cb, cols / 32)
        #expect(qa == qb && ca == cb && da.map(\.bitPattern) == db.map(\.bitPattern))
    }
    #endif
}
