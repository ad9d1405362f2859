#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Micro-benchmark of the matmul kernels on transformer-sized matrices (release builds only give
/// meaningful numbers). Reports weight-streaming bandwidth for single-token matvec and effective
/// GFLOP/s for batches, per weight type. Enough distinct matrices are cycled to defeat the
/// last-level cache, so batch-1 numbers reflect DRAM streaming as in real decode.
public enum KernelBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let type: GGMLType
        public let rows: Int
        public let cols: Int
        public let nTokens: Int
        public let secondsPerCall: Double
        /// CPU time of the calling thread per call (meaningful for 1 thread on a busy machine).
        public let cpuSecondsPerCall: Double
        public var gigabytesPerSecond: Double {
            Double(rows * (cols / type.blockSize) * type.bytesPerBlock) / secondsPerCall / 1e9
        }
        public var gflops: Double { 2 * Double(rows * cols * nTokens) / secondsPerCall / 1e9 }
        public var description: String {
            let us = secondsPerCall * 1e6
            return "\(type.name) \(rows)x\(cols) nTokens=\(nTokens): \(fmt(us)) us/call, "
                + "\(fmt(gigabytesPerSecond)) GB/s weights, \(fmt(gflops)) GFLOP/s, "
                + "\(fmt(us / Double(nTokens))) us/token; caller CPU: "
                + "\(fmt(Double(rows * (cols / type.blockSize) * type.bytesPerBlock) / cpuSecondsPerCall / 1e9)) GB/s, "
                + "\(fmt(2 * Double(rows * cols * nTokens) / cpuSecondsPerCall / 1e9)) GFLOP/s"
        }
    }

    /// Runs the benchmark and prints one line per measurement.
    @discardableResult
    public static func run(threads: Int = 2, types: [GGMLType] = [.q4_K, .q6_K, .q5_0, .q8_0, .q4_1, .q4_0],
                           shapes: [(rows: Int, cols: Int)] = [(8960, 1536), (1536, 8960)],
                           batches: [Int] = [1, 4, 8, 32], minSeconds: Double = 0.5,
                           cacheResident: Bool = false) -> [Result] {
        let pool = ComputePool(threads: threads)
        defer { pool.shutdown() }
        let scratch = MatMulScratch()
        var results: [Result] = []
        print("KernelBenchmark: \(threads) threads\(cacheResident ? ", cache-resident weights" : "")")
        for type in types {
            for shape in shapes {
                let rows = shape.rows, cols = shape.cols
                let rowBytes = (cols / type.blockSize) * type.bytesPerBlock
                let matBytes = rows * rowBytes
                // Cycle through enough copies to stream from DRAM (unless measuring cached compute).
                let copies = cacheResident ? 1 : max(2, (256 << 20) / matBytes)
                let data = UnsafeMutableRawPointer.allocate(byteCount: copies * matBytes, alignment: 64)
                defer { data.deallocate() }
                fillRandom(type, data, blocks: copies * matBytes / type.bytesPerBlock)
                let maxTokens = batches.max() ?? 1
                let x = UnsafeMutablePointer<Float>.allocate(capacity: maxTokens * cols)
                defer { x.deallocate() }
                var seed: UInt64 = 12345
                for i in 0..<(maxTokens * cols) { x[i] = Float(Int(next(&seed) % 2001) - 1000) / 500 }
                let out = UnsafeMutablePointer<Float>.allocate(capacity: maxTokens * rows)
                defer { out.deallocate() }
                for n in batches {
                    var calls = 0
                    var k = 0
                    // Warm up.
                    for _ in 0..<2 {
                        MatMul.multiply(WeightMatrix(type: type, rows: rows, cols: cols, data: data + k * matBytes),
                                        x, nTokens: n, out, pool: pool, scratch: scratch)
                        k = (k + 1) % copies
                    }
                    let start = now()
                    let cpuStart = threadCPU()
                    var elapsed = 0.0
                    while elapsed < minSeconds || calls < 3 {
                        MatMul.multiply(WeightMatrix(type: type, rows: rows, cols: cols, data: data + k * matBytes),
                                        x, nTokens: n, out, pool: pool, scratch: scratch)
                        k = (k + 1) % copies
                        calls += 1
                        elapsed = now() - start
                    }
                    let cpu = threadCPU() - cpuStart
                    let r = Result(type: type, rows: rows, cols: cols, nTokens: n,
                                   secondsPerCall: elapsed / Double(calls), cpuSecondsPerCall: cpu / Double(calls))
                    print(r)
                    results.append(r)
                }
            }
        }
        return results
    }

    static func fmt(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return String(r)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func next(_ s: inout UInt64) -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Random blocks with small finite half-precision scales.
    static func fillRandom(_ type: GGMLType, _ p: UnsafeMutableRawPointer, blocks: Int) {
        var seed: UInt64 = 777
        let words = blocks * type.bytesPerBlock / 8
        let w = p.bindMemory(to: UInt64.self, capacity: words)
        for i in 0..<words { w[i] = next(&seed) }
        let halfOffsets: [Int]
        switch type {
        case .f32, .f16, .bf16:
            // Replace with small finite values.
            let n = blocks * type.bytesPerBlock / 4
            let f = p.bindMemory(to: UInt32.self, capacity: n)
            for i in 0..<n {
                let v = Float(Int(next(&seed) % 200) - 100) / 1000
                f[i] = type == .f32 ? v.bitPattern : UInt32(Float16(v).bitPattern) * 0x10001
            }
            return
        case .q4_0, .q5_0, .q8_0: halfOffsets = [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: halfOffsets = [0, 2]
        case .q2_K: halfOffsets = [80, 82]
        case .q3_K: halfOffsets = [108]
        case .q6_K: halfOffsets = [208]
        default: halfOffsets = []
        }
        let h = Float16(0.01).bitPattern
        for b in 0..<blocks {
            for o in halfOffsets { p.storeBytes(of: h, toByteOffset: b * type.bytesPerBlock + o, as: UInt16.self) }
        }
    }
}
