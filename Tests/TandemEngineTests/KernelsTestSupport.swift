import Foundation
import TandemTestSupport
@testable import TandemKernels

enum KernelsTestSupport {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Types covered by dequantization and matmul tests.
    static let weightTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K,
                                          .q5_K, .q6_K]

    /// Byte offsets of half-precision scale fields in one block.
    static func halfFields(_ t: GGMLType) -> [Int] {
        switch t {
        case .q4_0, .q5_0, .q8_0: return [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
        case .q2_K: return [80, 82]
        case .q3_K: return [108]
        case .q6_K: return [208]
        default: return []
        }
    }

    /// Random but valid weight data: random bytes with finite, moderate half-precision scales.
    static func randomWeights(_ t: GGMLType, rows: Int, cols: Int, rng: inout TestRNG) -> [UInt8] {
        let rowBytes = (cols / t.blockSize) * t.bytesPerBlock
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
        switch t {
        case .f32:
            bytes.withUnsafeMutableBytes { b in
                let f = b.bindMemory(to: Float.self)
                for i in 0..<f.count { f[i] = Float.random(in: -1...1, using: &rng) }
            }
        case .f16:
            bytes.withUnsafeMutableBytes { b in
                let f = b.bindMemory(to: UInt16.self)
                for i in 0..<f.count { f[i] = Float16(Float.random(in: -1...1, using: &rng)).bitPattern }
            }
        case .bf16:
            bytes.withUnsafeMutableBytes { b in
                let f = b.bindMemory(to: UInt16.self)
                for i in 0..<f.count { f[i] = UInt16(Float.random(in: -1...1, using: &rng).bitPattern >> 16) }
            }
        default:
            for i in 0..<bytes.count { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
            let nBlocks = bytes.count / t.bytesPerBlock
            for b in 0..<nBlocks {
                for off in halfFields(t) {
                    let v = Float.random(in: 0.001...0.05, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
                    let h = Float16(v).bitPattern
                    bytes[b * t.bytesPerBlock + off] = UInt8(h & 0xFF)
                    bytes[b * t.bytesPerBlock + off + 1] = UInt8(h >> 8)
                }
            }
        }
        return bytes
    }

    static func randomActivations(count: Int, rng: inout TestRNG) -> [Float] {
        (0..<count).map { _ in Float.random(in: -2...2, using: &rng) }
    }

    /// Reference product: dequantize each row, then a Double-precision dot.
    /// Also returns sum |w*x| per output, the natural scale for tolerances.
    static func referenceMultiply(_ w: WeightMatrix, _ x: [Float], nTokens: Int) -> (values: [Double], scale: [Double]) {
        var vals = [Double](repeating: 0, count: nTokens * w.rows)
        var mags = vals
        var row = [Float](repeating: 0, count: w.cols)
        for r in 0..<w.rows {
            row.withUnsafeMutableBufferPointer { dequantizeRow(w.type, w.row(r), $0.baseAddress!, count: w.cols) }
            for t in 0..<nTokens {
                var s = 0.0, m = 0.0
                for c in 0..<w.cols {
                    let p = Double(row[c]) * Double(x[t * w.cols + c])
                    s += p
                    m += abs(p)
                }
                vals[t * w.rows + r] = s
                mags[t * w.rows + r] = m
            }
        }
        return (vals, mags)
    }
}
