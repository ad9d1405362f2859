import Logging
import TandemKernels

#if canImport(Glibc)
import Glibc
#endif

/// The weights of one transformer layer. Matrices stay quantized and point into the memory-mapped file;
/// only the small norm vectors and biases are copied to `Float` arrays.
public struct LayerWeights: @unchecked Sendable {
    public let attentionNorm: [Float]
    public let wq: WeightMatrix
    public let wk: WeightMatrix
    public let wv: WeightMatrix
    public let wo: WeightMatrix
    public let bq: [Float]?
    public let bk: [Float]?
    public let bv: [Float]?
    public let ffnNorm: [Float]
    public let gate: WeightMatrix
    public let up: WeightMatrix
    public let down: WeightMatrix
}

/// A loaded model: its configuration and weights, backed by a memory-mapped GGUF file.
///
/// Q4_K, Q6_K, Q5_0 and Q8_0 matrices are repacked at load time into the row-interleaved layout of
/// `WeightPacking` (same size; the file's pages are released) because the batched kernels run
/// about twice as fast on it; other types are multiplied straight from the mapping.
///
/// Immutable and `Sendable`: one `LanguageModel` can serve any number of `ForwardEngine`s and `KVCache`s
/// (e.g. a verifier process keeps one model and many sessions' caches). Evaluate it with `ForwardEngine`.
public final class LanguageModel: Sendable {
    public let config: ModelConfig
    /// The underlying file (metadata for the tokenizer, chat template, etc.). Keeps the mapping alive.
    public let gguf: GGUFFile
    public let tokenEmbedding: WeightMatrix
    public let outputNorm: [Float]
    /// The output (un-embedding) matrix: `output.weight`, or `token_embd.weight` when tied.
    public let output: WeightMatrix
    public let layers: [LayerWeights]
    /// Owner of the packed matrix copies (nil when nothing was packed).
    private let packedWeights: PackedWeights?

    /// Opens `path`, validates it and binds every tensor the architecture needs.
    ///
    /// Throws `GGUFError` when the file is malformed, a tensor is missing, has an unexpected shape, or
    /// uses a type the kernels cannot multiply.
    public static func load(path: String, logger: Logger) throws -> LanguageModel {
        let start = Self.monotonicSeconds()
        let file = try GGUFFile(path: path)
        let model = try LanguageModel(gguf: file)
        let c = model.config
        logger.info("loaded model", metadata: [
            "path": "\(path)", "arch": "\(c.architecture)", "layers": "\(c.layerCount)",
            "width": "\(c.embeddingWidth)", "heads": "\(c.headCount)/\(c.kvHeadCount)",
            "ffn": "\(c.feedForwardWidth)", "vocab": "\(c.vocabularySize)", "tied": "\(c.tiedOutput)",
            "seconds": "\(Self.monotonicSeconds() - start)",
        ])
        return model
    }

    /// Binds the weights of an already opened file.
    ///
    /// `packWeights: false` multiplies every matrix from the file's layout (slower batches; used
    /// by tests that compare both layouts). `packThreads` threads repack at load time.
    public init(gguf: GGUFFile, packWeights: Bool = true, packThreads: Int = 2) throws {
        let c = try ModelConfig(gguf: gguf)
        self.config = c
        self.gguf = gguf

        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            let t = try gguf.requireTensor(name)
            guard t.dimensions.count == 2, t.columns == cols, t.rows == rows else {
                throw GGUFError(.missing, "tensor '\(name)' has shape \(t.dimensions), expected [\(cols), \(rows)]")
            }
            let type = t.type
            guard type.isSupported else {
                throw GGUFError(.unsupportedType, "tensor '\(name)' type \(t.type) cannot be used as a weight matrix")
            }
            return WeightMatrix(type: type, rows: rows, cols: cols, data: gguf.tensorData(t))
        }
        func vector(_ name: String, count: Int) throws -> [Float] {
            let t = try gguf.requireTensor(name)
            guard t.elementCount == count else {
                throw GGUFError(.missing, "tensor '\(name)' has \(t.elementCount) elements, expected \(count)")
            }
            let type = t.type
            guard type.isSupported else {
                throw GGUFError(.unsupportedType, "tensor '\(name)' has unsupported type \(t.type)")
            }
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { dequantizeRow(type, gguf.tensorData(t), $0.baseAddress!, count: count) }
            return out
        }
        func optionalVector(_ name: String, count: Int) throws -> [Float]? {
            gguf.tensor(name) == nil ? nil : try vector(name, count: count)
        }

        let e = c.embeddingWidth
        let embedding = try matrix("token_embd.weight", rows: c.vocabularySize, cols: e)
        outputNorm = try vector("output_norm.weight", count: e)
        var output = c.tiedOutput ? embedding : try matrix("output.weight", rows: c.vocabularySize, cols: e)
        var layers: [LayerWeights] = []
        for l in 0..<c.layerCount {
            let p = "blk.\(l)."
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", count: e),
                wq: try matrix(p + "attn_q.weight", rows: c.queryWidth, cols: e),
                wk: try matrix(p + "attn_k.weight", rows: c.kvWidth, cols: e),
                wv: try matrix(p + "attn_v.weight", rows: c.kvWidth, cols: e),
                wo: try matrix(p + "attn_output.weight", rows: e, cols: c.queryWidth),
                bq: try optionalVector(p + "attn_q.bias", count: c.queryWidth),
                bk: try optionalVector(p + "attn_k.bias", count: c.kvWidth),
                bv: try optionalVector(p + "attn_v.bias", count: c.kvWidth),
                ffnNorm: try vector(p + "ffn_norm.weight", count: e),
                gate: try matrix(p + "ffn_gate.weight", rows: c.feedForwardWidth, cols: e),
                up: try matrix(p + "ffn_up.weight", rows: c.feedForwardWidth, cols: e),
                down: try matrix(p + "ffn_down.weight", rows: e, cols: c.feedForwardWidth)
            ))
        }
        if packWeights {
            var all = [output]
            for l in layers { all += [l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down] }
            var packed: [WeightMatrix] = []
            let storage = PackedWeights(all, file: gguf, threads: packThreads, result: &packed)
            output = packed[0]
            layers = layers.indices.map { i in
                let m = packed[(1 + 7 * i)..<(8 + 7 * i)].map { $0 }
                let l = layers[i]
                return LayerWeights(attentionNorm: l.attentionNorm, wq: m[0], wk: m[1], wv: m[2], wo: m[3],
                                    bq: l.bq, bk: l.bk, bv: l.bv, ffnNorm: l.ffnNorm, gate: m[4], up: m[5], down: m[6])
            }
            packedWeights = storage.byteCount > 0 ? storage : nil
        } else {
            packedWeights = nil
        }
        // With a tied output, lookups use the same tensor (its `data`; packing leaves it valid).
        self.tokenEmbedding = embedding
        self.output = output
        self.layers = layers
    }

    /// Total bytes of quantized weight data bound by this model (what one decode step streams).
    public var weightBytes: Int {
        var n = tokenEmbedding.byteCount + (config.tiedOutput ? 0 : output.byteCount)
        for l in layers {
            n += l.wq.byteCount + l.wk.byteCount + l.wv.byteCount + l.wo.byteCount
            n += l.gate.byteCount + l.up.byteCount + l.down.byteCount
        }
        return n
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
