import Foundation
import TandemEngine
import TandemKernels

/// Options for rewriting a GGUF file with new tensor types.
public struct RequantizeOptions: Sendable {
    public var plan: QuantizationPlan
    /// Copy `output.weight` unchanged (llama.cpp keeps the output matrix at higher precision: it
    /// matters most for perplexity) unless the plan names it explicitly.
    public var keepOutputType = false
    /// Copy `token_embd.weight` unchanged unless the plan names it explicitly.
    public var keepEmbeddingType = false
    /// Worker threads for quantising rows.
    public var threads = 2

    public init(plan: QuantizationPlan, keepOutputType: Bool = false, keepEmbeddingType: Bool = false, threads: Int = 2) {
        self.plan = plan
        self.keepOutputType = keepOutputType
        self.keepEmbeddingType = keepEmbeddingType
        self.threads = threads
    }
}

/// What happens to one tensor.
public struct TensorDecision: Sendable {
    public enum Action: Sendable, Equatable {
        /// The bytes are copied unchanged (same type, or a keep flag).
        case copy
        /// Dequantised to F32 and quantised to the output type.
        case requantize
    }
    public var name: String
    public var dimensions: [Int]
    public var sourceType: GGMLType
    public var outputType: GGMLType
    public var action: Action
    /// The type the plan asked for, when a block-size fallback replaced it.
    public var requestedType: GGMLType?
    /// Why the tensor is copied (for the report).
    public var note: String?
}

/// Summary of one `Requantizer.run`.
public struct RequantizeReport: Sendable {
    public struct TypeRow: Sendable {
        public var type: GGMLType
        public var tensors = 0
        public var elements = 0
        public var bytes = 0
    }
    public var decisions: [TensorDecision]
    /// Per output type, in descending byte order.
    public var byType: [TypeRow]
    public var fileSize: Int
    public var seconds: Double
    /// Elements written / bytes of tensor data, as bits per weight.
    public var bitsPerWeight: Double
}

/// Rewrites a GGUF file tensor by tensor with the types a `QuantizationPlan` asks for.
///
/// Every quantised tensor is dequantised to F32 with the engine's dequantisers and quantised again
/// (our published models are already quantised, so this is *re*quantisation: the result carries
/// both rounding errors). Metadata is copied in order with `general.file_type` updated; tensor order
/// and `general.alignment` are kept, so tools that diff two variants line up.
public enum Requantizer {
    /// Decides each tensor's output type (without writing anything).
    public static func decide(source: GGUFFile, options: RequantizeOptions) throws -> [TensorDecision] {
        try source.tensors.map { t in
            guard t.type.isSupported else {
                throw GGUFError(.unsupportedType, "tensor '\(t.name)' has type \(t.type.name), which cannot be dequantised")
            }
            var d = TensorDecision(name: t.name, dimensions: t.dimensions, sourceType: t.type, outputType: t.type,
                                   action: .copy, requestedType: nil, note: nil)
            let (requestedOrKeep, explicit) = options.plan.requestedType(for: t.name)
            guard let asked = requestedOrKeep else {
                d.note = "kept (plan default: source)"
                return d
            }
            var want: GGMLType
            if t.dimensions.count == 1 && !explicit {
                want = .f32  // norms and biases: tiny, and precision-sensitive
            } else if !explicit && options.keepOutputType && t.name == "output.weight" {
                d.note = "--keep-output-type"
                return d
            } else if !explicit && options.keepEmbeddingType && t.name == "token_embd.weight" {
                d.note = "--keep-embedding-type"
                return d
            } else {
                want = asked
            }
            let requested = want
            guard let fitted = QuantizationPlan.effectiveType(want, columns: t.columns) else {
                throw GGUFError(.badDimensions, "tensor '\(t.name)' row length \(t.columns) fits no fallback of \(requested.name)")
            }
            want = fitted
            if want != requested { d.requestedType = requested }
            d.outputType = want
            if want == t.type {
                d.note = "already \(want.name)"
            } else {
                d.action = .requantize
            }
            return d
        }
    }

    /// The metadata of `source` with `general.file_type` set for `fileType` (kept in the source's
    /// integer width; appended as u32 when absent).
    public static func metadata(of source: GGUFFile, fileType: Int?) -> [(String, GGUFValue)] {
        var out: [(String, GGUFValue)] = source.metadataKeys.compactMap { k in source.metadata[k].map { (k, $0) } }
        guard let fileType else { return out }
        if let i = out.firstIndex(where: { $0.0 == "general.file_type" }) {
            switch out[i].1 {
            case .int32: out[i].1 = .int32(Int32(fileType))
            case .uint64: out[i].1 = .uint64(UInt64(fileType))
            case .int64: out[i].1 = .int64(Int64(fileType))
            default: out[i].1 = .uint32(UInt32(fileType))
            }
        } else {
            out.append(("general.file_type", .uint32(UInt32(fileType))))
        }
        return out
    }

    /// Writes `destination` from `source` following `options`. `progress` is called after each tensor.
    public static func run(source: GGUFFile, destination: String, options: RequantizeOptions,
                           progress: ((Int, TensorDecision) -> Void)? = nil) throws -> RequantizeReport {
        let start = Date()
        let decisions = try decide(source: source, options: options)
        let writer = try GGUFWriter(
            path: destination,
            metadata: metadata(of: source, fileType: options.plan.defaultType?.llamaFileType),
            tensors: decisions.map { GGUFWriter.Tensor(name: $0.name, dimensions: $0.dimensions, type: $0.outputType) },
            alignment: source.alignment)
        do {
            for (i, d) in decisions.enumerated() {
                let info = source.tensors[i]
                let src = source.tensorData(info)
                switch d.action {
                case .copy:
                    try writer.append(UnsafeRawBufferPointer(start: src, count: info.byteCount))
                case .requantize:
                    try requantize(src, from: d.sourceType, to: d.outputType, rows: info.rows, columns: info.columns,
                                   threads: options.threads, writer: writer)
                }
                source.releasePages(src, count: info.byteCount)
                progress?(i, d)
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        var rows: [GGMLType: RequantizeReport.TypeRow] = [:]
        for d in decisions {
            let n = d.dimensions.reduce(1, *)
            rows[d.outputType, default: .init(type: d.outputType)].tensors += 1
            rows[d.outputType]!.elements += n
            rows[d.outputType]!.bytes += d.outputType.byteCount(elements: n)
        }
        let byType = rows.values.sorted { $0.bytes > $1.bytes }
        let elements = byType.reduce(0) { $0 + $1.elements }
        let bytes = byType.reduce(0) { $0 + $1.bytes }
        let attributes = try? FileManager.default.attributesOfItem(atPath: destination)
        let size = (attributes?[.size] as? Int) ?? writer.bytesWritten
        return RequantizeReport(decisions: decisions, byType: byType, fileSize: size,
                                seconds: Date().timeIntervalSince(start),
                                bitsPerWeight: elements > 0 ? Double(bytes * 8) / Double(elements) : 0)
    }

    /// Dequantises and requantises one tensor in chunks of rows (bounded memory: a 150k-row
    /// embedding is never expanded to F32 at once), splitting each chunk's rows across threads.
    static func requantize(_ src: UnsafeRawPointer, from: GGMLType, to: GGMLType, rows: Int, columns: Int,
                           threads: Int, writer: GGUFWriter) throws {
        let inRow = from.byteCount(elements: columns), outRow = to.byteCount(elements: columns)
        let chunkRows = max(1, min(rows, (1 << 20) / max(columns, 1)))
        let out = UnsafeMutableRawPointer.allocate(byteCount: chunkRows * outRow, alignment: 64)
        defer { out.deallocate() }
        let workers = max(1, threads)
        var r0 = 0
        while r0 < rows {
            let n = min(chunkRows, rows - r0)
            let base = r0
            let perWorker = (n + workers - 1) / workers
            // Addresses cross into the workers as integers (raw pointers are not Sendable); each
            // worker reads its own source rows and writes disjoint output rows.
            let srcAddress = Int(bitPattern: src), outAddress = Int(bitPattern: out)
            DispatchQueue.concurrentPerform(iterations: min(workers, n)) { w in
                let src = UnsafeRawPointer(bitPattern: srcAddress)!, out = UnsafeMutableRawPointer(bitPattern: outAddress)!
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: columns)
                defer { scratch.deallocate() }
                let lo = w * perWorker, hi = min(n, lo + perWorker)
                for r in Swift.stride(from: lo, to: hi, by: 1) {
                    dequantizeRow(from, src + (base + r) * inRow, scratch, count: columns)
                    Quantizer.quantizeRow(to, scratch, out + r * outRow, count: columns)
                }
            }
            try writer.append(UnsafeRawBufferPointer(start: out, count: n * outRow))
            r0 += n
        }
    }
}
