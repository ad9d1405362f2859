import Foundation
import TandemEngine
import TandemKernels

/// Measures what one transformer layer's weight matrices cost a drafter on *this* machine at each
/// weight type: the batch-1 matrix-vector time (one drafted token) of each matrix of a layer of the
/// given model, requantised in memory to the type and packed exactly as the engine packs it at load.
///
/// Why measure instead of counting bytes: decode is not purely bandwidth-bound here; the engine's
/// kernels differ per type (docs/measurements.md found the Q4_0 draft slower than the Q5_0 one although it
/// moves fewer bytes), so a per-layer plan that minimises bytes need not minimise time. The figures are
/// what `tandem plan` prices layers with and what `tandem profile` records for a device.
public enum LayerMatvecProbe {
    /// The matrices of a layer, in `LayerWeights` order, with the GGUF tensor suffix each is stored as.
    public static let roles: [(role: String, tensor: String)] = [
        ("attn_q", "attn_q.weight"), ("attn_k", "attn_k.weight"), ("attn_v", "attn_v.weight"),
        ("attn_output", "attn_output.weight"), ("ffn_gate", "ffn_gate.weight"), ("ffn_up", "ffn_up.weight"),
        ("ffn_down", "ffn_down.weight"),
    ]

    /// The tensor `blk.<layer>.<suffix>` of `file` (a suffix of ``roles``), if the model has it.
    public static func tensor(in file: GGUFFile, layer: Int, _ suffix: String) -> GGUFTensorInfo? {
        file.tensors.first { $0.name == "blk.\(layer).\(suffix)" }
    }

    /// The types a plan over `layers` can write to their matrices: each matrix's own type, and every type in
    /// `asked` after its block-size fallback for that matrix. These are the types a device must be timed at.
    public static func writtenTypes(in file: GGUFFile, layers: [Int], asked: [GGMLType]) -> [GGMLType] {
        var written = Set<GGMLType>()
        for l in layers {
            for r in roles {
                guard let info = tensor(in: file, layer: l, r.tensor) else { continue }
                written.insert(info.type)
                for t in asked { if let w = QuantizationPlan.effectiveType(t, columns: info.columns) { written.insert(w) } }
            }
        }
        return written.sorted { $0.name < $1.name }
    }

    static func matrices(_ layer: LayerWeights) -> [WeightMatrix] {
        [layer.wq, layer.wk, layer.wv, layer.wo, layer.gate, layer.up, layer.down]
    }

    /// Milliseconds of one batch-1 product per (type, role), for the matrices of layer `layerIndex` of
    /// `model`. Keyed by the type *written*: asking for a type a matrix's row length cannot hold times the
    /// block-size fallback `tandem quantize` would write (`QuantizationPlan.effectiveType`) and files it
    /// under that type, where a plan naming the asked type looks it up. The layer is requantised once and copied `copies` times (default: the model's layer
    /// count), and the products sweep all copies, so the weights stream from memory as in a real decode
    /// step instead of sitting in the cache. Each type is timed for about `seconds` after a warm-up sweep.
    public static func measure(model: LanguageModel, layerIndex: Int = 0, types: [GGMLType], threads: Int,
                               copies: Int? = nil, seconds: Double = 0.5) throws -> [GGMLType: [String: Double]] {
        guard model.layers.indices.contains(layerIndex) else { throw PlanError("no layer \(layerIndex)") }
        let pool = ComputePool(threads: max(1, threads))
        defer { pool.shutdown() }
        let scratch = MatMulScratch()
        let source = matrices(model.layers[layerIndex])
        let maxCols = source.map(\.cols).max() ?? 0, maxRows = source.map(\.rows).max() ?? 0
        let x = UnsafeMutablePointer<Float>.allocate(capacity: maxCols)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: maxRows)
        defer { x.deallocate(); out.deallocate() }
        for i in 0..<maxCols { x[i] = Float((i * 7919) % 2001 - 1000) / 1000 }
        let n = max(1, copies ?? model.layers.count)

        var result: [GGMLType: [String: Double]] = [:]
        for type in types {
            var stacks: [[WeightMatrix]] = []
            var timed: [(role: String, type: GGMLType)] = []
            var buffers: [UnsafeMutableRawPointer] = []
            defer { buffers.forEach { $0.deallocate() } }
            for (i, w) in source.enumerated() {
                guard let actual = QuantizationPlan.effectiveType(type, columns: w.cols) else {
                    throw PlanError("\(roles[i].role): row length \(w.cols) fits no fallback of \(type.name)")
                }
                guard result[actual]?[roles[i].role] == nil, !timed.contains(where: { $0 == (roles[i].role, actual) }) else { continue }
                timed.append((roles[i].role, actual))
                let (one, owned) = requantized(w, as: actual)
                buffers.append(owned)
                var stack: [WeightMatrix] = []
                for _ in 0..<n {
                    let (copy, memory) = packedCopy(one)
                    buffers.append(memory)
                    stack.append(copy)
                }
                stacks.append(stack)
            }
            var totals = [Duration](repeating: .zero, count: stacks.count)
            var sweeps = 0
            let started = ContinuousClock.now
            var warm = false
            guard !stacks.isEmpty else { continue }
            repeat {
                for c in 0..<n {
                    for (r, stack) in stacks.enumerated() {
                        let t0 = ContinuousClock.now
                        MatMul.multiply(stack[c], x, nTokens: 1, out, pool: pool, scratch: scratch)
                        if warm { totals[r] += ContinuousClock.now - t0 }
                    }
                }
                if warm { sweeps += 1 }
                warm = true
            } while sweeps < 2 || ContinuousClock.now - started < .milliseconds(Int(seconds * 1000))
            for (r, total) in totals.enumerated() {
                let s = Double(total.components.seconds) + Double(total.components.attoseconds) * 1e-18
                result[timed[r].type, default: [:]][timed[r].role] = s * 1000 / Double(sweeps * n)
            }
        }
        return result
    }

    /// `w`'s values (dequantised from its stored type) written as `type`, in a new buffer the caller frees.
    static func requantized(_ w: WeightMatrix, as type: GGMLType) -> (WeightMatrix, UnsafeMutableRawPointer) {
        let rowBytes = type.byteCount(elements: w.cols)
        let data = UnsafeMutableRawPointer.allocate(byteCount: rowBytes * w.rows, alignment: 64)
        let values = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
        defer { values.deallocate() }
        for r in 0..<w.rows {
            dequantizeRow(w.type, w.row(r), values, count: w.cols)
            Quantizer.quantizeRow(type, values, data + r * rowBytes, count: w.cols)
        }
        return (WeightMatrix(type: type, rows: w.rows, cols: w.cols, data: UnsafeRawPointer(data)), data)
    }

    /// A private copy of `w` in the layout the engine multiplies (packed when the engine packs that type).
    static func packedCopy(_ w: WeightMatrix) -> (WeightMatrix, UnsafeMutableRawPointer) {
        if WeightPacking.canPack(w.type, rows: w.rows) {
            let p = UnsafeMutableRawPointer.allocate(byteCount: WeightPacking.packedByteCount(w), alignment: 64)
            WeightPacking.pack(w, into: p)
            return (w.withPacked(UnsafeRawPointer(p)), p)
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: w.byteCount, alignment: 64)
        p.copyMemory(from: w.data, byteCount: w.byteCount)
        return (WeightMatrix(type: w.type, rows: w.rows, cols: w.cols, data: UnsafeRawPointer(p)), p)
    }
}
