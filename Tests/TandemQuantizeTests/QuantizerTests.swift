import Foundation
import Testing
import TandemKernels
@testable import TandemQuantize

/// Round trips of every output type through the engine's dequantisers, and agreement with the
/// Python `gguf` package: byte-identical for the formats it can quantise, identical decoding of our
/// bytes for the K-quants (which it can only dequantise).
@Suite("Quantizer")
struct QuantizerTests {
    static let rows = 8
    static let columns = 512  // two K-quant super-blocks per row

    /// Worst per-row RMSE relative to the row's RMS, for Gaussian rows. Each bound is about 1.3x what
    /// the format gives on this data (measured: F16 0.00023, BF16 0.0018, Q8_0 0.0056, Q6_K 0.019,
    /// Q5_0 0.046, Q5_1 0.039, Q5_K 0.037, Q4_0 0.091, Q4_1 0.083, Q4_K 0.075), so a scale or
    /// packing bug (errors of order 1) fails while a legitimate rounding change does not.
    static let bounds: [(GGMLType, Double)] = [
        (.f32, 0), (.f16, 0.0004), (.bf16, 0.003),
        (.q8_0, 0.0075), (.q6_K, 0.025),
        (.q5_0, 0.06), (.q5_1, 0.05), (.q5_K, 0.048),
        (.q4_0, 0.12), (.q4_1, 0.11), (.q4_K, 0.097),
    ]

    @Test(arguments: bounds.map(\.0))
    func roundTripThroughEngineDequantiser(type: GGMLType) throws {
        let x = QuantTestData.rows(Self.rows, Self.columns)
        let q = Quantizer.quantize(x, as: type)
        #expect(q.count == type.byteCount(elements: x.count))
        let y = QuantTestData.dequantize(q, type, rows: Self.rows, columns: Self.columns)
        // Rows 0-3 hold the special blocks (zero, constant, outlier, all-negative), checked below;
        // the bound is about the Gaussian rows.
        let g = (4 * Self.columns)...
        let err = QuantTestData.worstRelativeRMSE(Array(x[g]), Array(y[g]), columns: Self.columns)
        let bound = Self.bounds.first { $0.0 == type }!.1
        print("round trip \(type.name): worst row relative RMSE \(String(format: "%.5f", err)) (bound \(bound))")
        #expect(err <= bound, "\(type.name): relative RMSE \(err) > \(bound)")
        // The all-zero block must decode to exact zeros and the constant block closely.
        #expect(y[0..<32].allSatisfy { $0 == 0 }, "\(type.name): zero block")
        let c = y[Self.columns..<(Self.columns + 32)]
        #expect(c.allSatisfy { abs($0 - 0.125) <= 0.125 * 0.07 }, "\(type.name): constant block \(Array(c.prefix(4)))")
    }

    /// The K-quant scale search is worth its cost: at the same bit width it beats the 32-element
    /// formats with a min (Q4_1, Q5_1) on the same rows, despite sharing one f16 scale per 256.
    @Test func kQuantSearchBeatsPlainFormats() {
        let x = Array(QuantTestData.rows(Self.rows, Self.columns)[(4 * Self.columns)...])
        func err(_ t: GGMLType) -> Double {
            QuantTestData.worstRelativeRMSE(x, QuantTestData.dequantize(Quantizer.quantize(x, as: t), t, rows: 4, columns: Self.columns),
                                            columns: Self.columns)
        }
        #expect(err(.q4_K) < err(.q4_1))
        #expect(err(.q5_K) < err(.q5_1))
    }

    /// Q8_0's error bound per element is half a step (d/2, d = amax/127, plus the f16 rounding of d).
    @Test func q8_0ErrorIsAtMostHalfAStep() {
        let x = QuantTestData.rows(Self.rows, Self.columns, seed: 7)
        let y = QuantTestData.dequantize(Quantizer.quantize(x, as: .q8_0), .q8_0, rows: Self.rows, columns: Self.columns)
        for b in 0..<(x.count / 32) {
            let block = x[(32 * b)..<(32 * b + 32)]
            let amax = block.map(abs).max()!
            let step = amax / 127
            for i in block.indices {
                #expect(abs(x[i] - y[i]) <= step * 0.5 * 1.01 + amax * 0.001, "element \(i)")
            }
        }
    }

    /// Rows of a 2-block width, quantised one row at a time, equal the whole-buffer quantisation
    /// (blocks are independent: no state may leak from one block or row to the next).
    @Test(arguments: [GGMLType.q4_0, .q8_0, .q4_K, .q5_K, .q6_K])
    func blocksAreIndependent(type: GGMLType) {
        let x = QuantTestData.rows(4, 512, seed: 9)
        let whole = Quantizer.quantize(x, as: type)
        var pieces: [UInt8] = []
        for r in 0..<4 { pieces += Quantizer.quantize(Array(x[(r * 512)..<((r + 1) * 512)]), as: type) }
        #expect(whole == pieces)
    }

    /// NaN or infinite inputs must not trap (a corrupt source tensor is reported, not a crash).
    @Test(arguments: Quantizer.supportedTypes)
    func nonFiniteInputDoesNotTrap(type: GGMLType) {
        var x = QuantTestData.rows(1, 256)
        x[3] = .nan
        x[40] = .infinity
        x[100] = -.infinity
        _ = Quantizer.quantize(x, as: type)
    }

    // MARK: Python gguf

    static let pythonQuantisable: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .f16, .bf16]
    static let kQuants: [GGMLType] = [.q4_K, .q5_K, .q6_K]

    /// `gguf.quants.quantize` on the same floats gives the same bytes (Python's Q8_0 is written to be
    /// bit-exact with ggml's reference; the others follow the same C code).
    @Test func bitExactWithPythonGGUF() throws {
        guard PythonGGUF.require() else { return }
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = QuantTestData.rows(Self.rows, Self.columns, seed: 11)
        try QuantTestFiles.write(x, to: dir.appendingPathComponent("x.f32"))
        let script = """
        import sys, numpy as np
        from gguf import quants, GGMLQuantizationType as T
        d = sys.argv[1]; cols = int(sys.argv[2])
        x = np.fromfile(d + "/x.f32", dtype=np.float32).reshape(-1, cols)
        for name in sys.argv[3:]:
            np.ascontiguousarray(quants.quantize(x, T[name])).view(np.uint8).tofile(d + "/" + name + ".py")
        """
        let names = Self.pythonQuantisable.map(\.name)
        let r = try PythonGGUF.run(["-c", script, dir.path, "\(Self.columns)"] + names)
        try #require(r.status == 0, "python failed: \(r.output)")
        for type in Self.pythonQuantisable {
            let ours = Quantizer.quantize(x, as: type)
            let theirs = [UInt8](try Data(contentsOf: dir.appendingPathComponent(type.name + ".py")))
            let firstDiff = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(ours == theirs, "\(type.name): \(ours.count) vs \(theirs.count) bytes, first difference at byte \(firstDiff.map(String.init) ?? "-")")
        }
    }

    /// The Python package cannot quantise K-quants, but it can decode them: our Q4_K/Q5_K/Q6_K bytes
    /// decode to the same floats there as in the engine, so the layout (scale packing, nibble and
    /// high-bit order) is the one llama.cpp's readers expect, not merely self-consistent.
    @Test func kQuantLayoutMatchesPythonDequantiser() throws {
        guard PythonGGUF.require() else { return }
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = QuantTestData.rows(Self.rows, Self.columns, seed: 13)
        for type in Self.kQuants {
            try Data(Quantizer.quantize(x, as: type)).write(to: dir.appendingPathComponent(type.name + ".q"))
        }
        let script = """
        import sys, numpy as np
        from gguf import quants, GGMLQuantizationType as T
        d = sys.argv[1]; rows = int(sys.argv[2])
        for name in sys.argv[3:]:
            q = np.fromfile(d + "/" + name + ".q", dtype=np.uint8).reshape(rows, -1)
            quants.dequantize(q, T[name]).astype(np.float32).tofile(d + "/" + name + ".f32")
        """
        let r = try PythonGGUF.run(["-c", script, dir.path, "\(Self.rows)"] + Self.kQuants.map(\.name))
        try #require(r.status == 0, "python failed: \(r.output)")
        for type in Self.kQuants {
            let ours = QuantTestData.dequantize(Quantizer.quantize(x, as: type), type, rows: Self.rows, columns: Self.columns)
            let theirs = try QuantTestFiles.readFloats(dir.appendingPathComponent(type.name + ".f32"))
            try #require(theirs.count == ours.count)
            var worst: Float = 0
            for i in ours.indices { worst = max(worst, abs(ours[i] - theirs[i]) / max(abs(x[i]), 1e-3)) }
            #expect(worst <= 1e-5, "\(type.name): engine and gguf-py decode our bytes differently (worst relative \(worst))")
        }
    }
}
