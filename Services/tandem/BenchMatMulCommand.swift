import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemKernels
import TandemModels

/// `tandem bench matmul`: the matrix kernels alone on one model's real weight matrices (layer 0 and the
/// output matrix, packed as the engine packs them), at several token counts.
///
/// Why: forward-pass figures move by ±10 % on a shared machine and mix kernels with attention and
/// norms; this isolates the kernels and reports products per second, which can be held against the
/// multiply pipes' limit (see docs/design-decisions.md, Engine).
struct BenchMatMulCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matmul",
        abstract: "Benchmark the quantized matmul kernels on a model's layer-0 and output matrices.")

    @Option(help: "Catalog name (see `tandem models list`), cached file name, or path to a GGUF file.")
    var model: String

    @Option(help: "Comma-separated token counts.")
    var tokens = "1,8,32"

    @Option(help: "Compute threads.")
    var threads = 2

    @Option(help: "Seconds per measurement.")
    var seconds = 0.5

    func run() throws {
        var logger = Logger(label: "tandem.bench")
        logger.logLevel = .warning
        let counts = tokens.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--tokens: positive integers") }
        let lm = try LanguageModel.load(path: try ModelStore(logger: logger).resolve(model).path, logger: logger)
        let l = lm.layers[0]
        let matrices = [("attn_q", l.wq), ("attn_k", l.wk), ("attn_v", l.wv), ("attn_output", l.wo),
                        ("ffn_gate", l.gate), ("ffn_up", l.up), ("ffn_down", l.down), ("output", lm.output)]
        let pool = ComputePool(threads: threads)
        defer { pool.shutdown() }
        let scratch = MatMulScratch()
        let maxT = counts.max()!
        let maxCols = matrices.map { $0.1.cols }.max()!, maxRows = matrices.map { $0.1.rows }.max()!
        let x = UnsafeMutablePointer<Float>.allocate(capacity: maxT * maxCols)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: maxT * maxRows)
        defer { x.deallocate(); out.deallocate() }
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<(maxT * maxCols) {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            x[i] = Float(Int(seed >> 40) % 2001 - 1000) / 1000
        }
        print("\(lm.config.architecture), \(threads) threads; billions of multiply-adds per second (GMAC/s)")
        print("matrix".padding(toLength: 13, withPad: " ", startingAt: 0) + "type  packed      rows x cols"
              + counts.map { String(repeating: " ", count: max(1, 9 - "T=\($0)".count)) + "T=\($0)" }.joined())
        for (name, w) in matrices {
            var line = name.padding(toLength: 13, withPad: " ", startingAt: 0)
                + w.type.name.padding(toLength: 6, withPad: " ", startingAt: 0)
                + (w.packed != nil ? "yes " : "no  ") + String(format: "%8d x %-6d", w.rows, w.cols)
            for n in counts {
                MatMul.multiply(w, x, nTokens: n, out, pool: pool, scratch: scratch)
                var calls = 0
                let start = Date()
                while Date().timeIntervalSince(start) < seconds {
                    MatMul.multiply(w, x, nTokens: n, out, pool: pool, scratch: scratch)
                    calls += 1
                }
                let macs = Double(calls) * Double(n) * Double(w.rows) * Double(w.cols)
                line += String(format: "%9.1f", macs / Date().timeIntervalSince(start) / 1e9)
            }
            print(line)
        }
    }
}
