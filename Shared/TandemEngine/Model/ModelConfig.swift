/// Hyper-parameters of a decoder-only transformer, read from GGUF metadata.
///
/// Supports the two architectures Tandem ships with: `qwen2` (q/k/v biases, NEOX half-split rotary layout)
/// and `llama` (no biases, "normal" interleaved-pair rotary layout, as llama.cpp's converter permutes Q/K
/// for it). Keys are `<arch>.<name>` as written by llama.cpp's converters.
public struct ModelConfig: Sendable, Equatable {
    /// How rotary position embedding pairs up the elements of a head.
    public enum RopeLayout: String, Sendable {
        /// Pairs `(2i, 2i+1)` (llama.cpp `LLAMA_ROPE_TYPE_NORM`, used by `llama`).
        case normal
        /// Pairs `(i, i + d/2)` (llama.cpp `LLAMA_ROPE_TYPE_NEOX`, used by `qwen2`).
        case neox
    }

    public var architecture: String
    public var layerCount: Int
    public var embeddingWidth: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var feedForwardWidth: Int
    public var ropeBase: Double
    public var ropeLayout: RopeLayout
    /// Number of leading elements of each head that are rotated (usually `headDim`).
    public var ropeDim: Int
    public var rmsEpsilon: Float
    /// Training context length (the KV cache may be created smaller).
    public var contextLength: Int
    public var vocabularySize: Int
    /// True when the file has no `output.weight` and the token embedding is reused as the output matrix.
    public var tiedOutput: Bool

    /// Width of the query projection (`headCount * headDim`).
    public var queryWidth: Int { headCount * headDim }
    /// Width of the key/value projections (`kvHeadCount * headDim`).
    public var kvWidth: Int { kvHeadCount * headDim }

    public init(
        architecture: String, layerCount: Int, embeddingWidth: Int, headCount: Int, kvHeadCount: Int,
        headDim: Int, feedForwardWidth: Int, ropeBase: Double, ropeLayout: RopeLayout, ropeDim: Int,
        rmsEpsilon: Float, contextLength: Int, vocabularySize: Int, tiedOutput: Bool
    ) {
        self.architecture = architecture
        self.layerCount = layerCount
        self.embeddingWidth = embeddingWidth
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.feedForwardWidth = feedForwardWidth
        self.ropeBase = ropeBase
        self.ropeLayout = ropeLayout
        self.ropeDim = ropeDim
        self.rmsEpsilon = rmsEpsilon
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
        self.tiedOutput = tiedOutput
    }

    /// Reads the configuration of a `qwen2` or `llama` model from a GGUF file's metadata and tensor shapes.
    public init(gguf: GGUFFile) throws {
        guard let arch = gguf.architecture else {
            throw GGUFError(.missing, "general.architecture is missing (\(gguf.path))")
        }
        let layout: RopeLayout
        switch arch {
        case "qwen2": layout = .neox
        case "llama": layout = .normal
        default:
            throw GGUFError(.missing, "architecture '\(arch)' is not supported (qwen2, llama) (\(gguf.path))")
        }
        func req(_ key: String) throws -> Int {
            guard let v = gguf["\(arch).\(key)"]?.int, v > 0 else {
                throw GGUFError(.missing, "metadata '\(arch).\(key)' is missing or not a positive integer (\(gguf.path))")
            }
            return v
        }
        let nEmbd = try req("embedding_length")
        let nHead = try req("attention.head_count")
        let nKV = gguf["\(arch).attention.head_count_kv"]?.int ?? nHead
        guard nKV > 0, nHead % nKV == 0 else {
            throw GGUFError(.missing, "head_count \(nHead) is not a multiple of head_count_kv \(nKV) (\(gguf.path))")
        }
        let headDim = gguf["\(arch).attention.key_length"]?.int ?? nEmbd / nHead
        let embd = try gguf.requireTensor("token_embd.weight")
        guard embd.dimensions.count == 2, embd.dimensions[0] == nEmbd else {
            throw GGUFError(.missing, "token_embd.weight has shape \(embd.dimensions), expected [\(nEmbd), vocab]")
        }
        let vocab = embd.dimensions[1]
        guard let eps = gguf["\(arch).attention.layer_norm_rms_epsilon"]?.float else {
            throw GGUFError(.missing, "metadata '\(arch).attention.layer_norm_rms_epsilon' is missing (\(gguf.path))")
        }
        self.init(
            architecture: arch,
            layerCount: try req("block_count"),
            embeddingWidth: nEmbd,
            headCount: nHead,
            kvHeadCount: nKV,
            headDim: headDim,
            feedForwardWidth: try req("feed_forward_length"),
            ropeBase: gguf["\(arch).rope.freq_base"]?.double ?? 10000,
            ropeLayout: layout,
            ropeDim: gguf["\(arch).rope.dimension_count"]?.int ?? headDim,
            rmsEpsilon: eps,
            contextLength: gguf["\(arch).context_length"]?.int ?? 2048,
            vocabularySize: vocab,
            tiedOutput: gguf.tensor("output.weight") == nil
        )
        guard ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw GGUFError(.missing, "rope.dimension_count \(ropeDim) is invalid for head size \(headDim)")
        }
    }
}
