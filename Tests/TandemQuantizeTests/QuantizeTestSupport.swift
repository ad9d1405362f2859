import Foundation
import TandemEngine
import TandemKernels
import TandemTestSupport

enum QuantTestData {
    /// `rows` × `columns` values shaped like weight rows: Gaussian with a per-row scale between
    /// 0.005 and 0.5, plus the awkward blocks every quantiser must survive: an all-zero block,
    /// a constant block, a single outlier and an all-negative block.
    static func rows(_ rows: Int, _ columns: Int, seed: UInt64 = 42) -> [Float] {
        var rng = TestRNG(seed: seed)
        var out = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            let scale = Float(0.005) * powf(100, Float(r) / Float(max(rows - 1, 1)))
            for c in 0..<columns { out[r * columns + c] = Float(rng.normal()) * scale }
        }
        if rows >= 4 && columns >= 64 {
            for c in 0..<32 { out[0 * columns + c] = 0 }                       // all zero
            for c in 0..<32 { out[1 * columns + c] = 0.125 }                   // constant
            out[2 * columns + 5] = 40 * abs(out[2 * columns + 5]) + 1         // outlier
            for c in 32..<64 { out[3 * columns + c] = -abs(out[3 * columns + c]) - 0.01 }  // all negative
        }
        return out
    }

    /// Dequantises `bytes` (rows of `columns` of `type`) with the engine's dequantiser.
    static func dequantize(_ bytes: [UInt8], _ type: GGMLType, rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        let rowBytes = type.byteCount(elements: columns)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    dequantizeRow(type, src.baseAddress! + r * rowBytes, dst.baseAddress! + r * columns, count: columns)
                }
            }
        }
        return out
    }

    /// Root-mean-square error of `b` against `a`, relative to the RMS of `a`, per row, worst row.
    static func worstRelativeRMSE(_ a: [Float], _ b: [Float], columns: Int) -> Double {
        var worst = 0.0
        for r in 0..<(a.count / columns) {
            var err = 0.0, ref = 0.0
            for c in 0..<columns {
                let i = r * columns + c
                err += Double(a[i] - b[i]) * Double(a[i] - b[i])
                ref += Double(a[i]) * Double(a[i])
            }
            if ref > 0 { worst = max(worst, (err / ref).squareRoot()) }
        }
        return worst
    }
}

/// Runs python3 with the `gguf` package; every test that needs it skips visibly without it.
enum PythonGGUF {
    /// Whether `python3 -c "import gguf, numpy"` works (checked once).
    static let available: Bool = {
        (try? run(["-c", "import gguf, numpy"]).status) == 0
    }()

    /// Prints the skip line and returns false when python/gguf is missing.
    static func require(_ function: String = #function) -> Bool {
        if available { return true }
        print("SKIPPED \(function): python3 with the gguf package is not installed (pip install gguf numpy)")
        return false
    }

    /// Runs `python3 <arguments>`; returns the exit status and combined output.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let (status, data) = try ShortCommand.run(["python3"] + arguments)
        return (status, String(decoding: data, as: UTF8.self))
    }
}

enum QuantTestFiles {
    /// A fresh temporary directory for one test.
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-quantize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ values: [Float], to url: URL) throws {
        try values.withUnsafeBytes { try Data($0).write(to: url) }
    }

    static func readFloats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The test model directory (as the engine tests use it: TANDEM_MODELS or ~/.cache/tandem/models).
    static func model(_ name: String, function: String = #function) -> String? {
        let dir = ProcessInfo.processInfo.environment["TANDEM_MODELS"].flatMap { $0.isEmpty ? nil : $0 }
            ?? NSHomeDirectory() + "/.cache/tandem/models"
        let p = dir + "/" + name
        if FileManager.default.fileExists(atPath: p) { return p }
        print("SKIPPED \(function): model file \(p) is absent (run `make test-models` or set TANDEM_MODELS)")
        return nil
    }
}
