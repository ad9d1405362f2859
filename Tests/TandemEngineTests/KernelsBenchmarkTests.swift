import Foundation
import TandemTestSupport
import Testing
@testable import TandemKernels

/// Throughput of each compiled kernel family per weight type, for comparing the portable path
/// with the x86 one on the same machine. Off by default (timing, not correctness): run with
/// `TANDEM_KERNEL_BENCH=1 swift test --skip-build --filter KernelsBenchmark`. The kernel module is
/// optimized in debug builds too (Package.swift), so a debug test binary measures the kernels.
@Suite("Kernels: benchmark", .enabled(if: ProcessInfo.processInfo.environment["TANDEM_KERNEL_BENCH"] == "1"))
struct KernelsBenchmarkTests {
    @Test("GMAC/s per kernel family and type")
    func throughput() {
        let pool = ComputePool(threads: 2)
        defer { pool.shutdown() }
        let rows = 2048, cols = 2048
        let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .q3_K, .f16]
        var rng = TestRNG(seed: 1)
        let x = KernelsTestSupport.randomActivations(count: 32 * cols, rng: &rng)
        print("type   family          T=1     T=8    T=32   (GMAC/s, \(rows) x \(cols), 2 threads)")
        for type in types {
            let bytes = KernelsTestSupport.randomWeights(type, rows: rows, cols: cols, rng: &rng)
            bytes.withUnsafeBytes { wb in
                var w = WeightMatrix(type: type, rows: rows, cols: cols, data: wb.baseAddress!)
                var packed: UnsafeMutableRawPointer?
                if WeightPacking.canPack(type, rows: rows) {
                    let p = UnsafeMutableRawPointer.allocate(byteCount: WeightPacking.packedByteCount(w), alignment: 64)
                    WeightPacking.pack(w, into: p)
                    w = w.withPacked(UnsafeRawPointer(p))
                    packed = p
                }
                defer { packed?.deallocate() }
                for kernels in MatMulKernels.available {
                    var line = type.name.padding(toLength: 7, withPad: " ", startingAt: 0)
                        + kernels.description.padding(toLength: 14, withPad: " ", startingAt: 0)
                    for n in [1, 8, 32] {
                        var out = [Float](repeating: 0, count: n * rows)
                        let scratch = MatMulScratch()
                        MatMul.multiply(w, x, nTokens: n, &out, pool: pool, scratch: scratch, kernels: kernels)
                        var calls = 0
                        let start = Date()
                        while Date().timeIntervalSince(start) < 0.3 {
                            MatMul.multiply(w, x, nTokens: n, &out, pool: pool, scratch: scratch, kernels: kernels)
                            calls += 1
                        }
                        let macs = Double(calls * n * rows * cols)
                        line += String(format: "%8.1f", macs / Date().timeIntervalSince(start) / 1e9)
                    }
                    print(line)
                }
            }
        }
    }
}
