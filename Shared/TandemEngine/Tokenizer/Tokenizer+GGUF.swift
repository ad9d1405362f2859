import Logging

extension Tokenizer {
    /// Builds the tokenizer stored in a GGUF model file (`tokenizer.ggml.*` metadata).
    ///
    /// Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is supported. An unknown
    /// `tokenizer.ggml.pre` falls back to the GPT-2 expression with a warning, as llama.cpp's default does.
    public convenience init(gguf file: GGUFFile, logger: Logger = Logger(label: "tandem.tokenizer")) throws {
        let model = file["tokenizer.ggml.model"]?.string
        guard model == "gpt2" else {
            throw TokenizerError("unsupported tokenizer model '\(model ?? "none")' in \(file.path); only byte-level BPE ('gpt2') is supported")
        }
        guard let tokens = file["tokenizer.ggml.tokens"]?.strings else {
            throw TokenizerError("\(file.path) has no tokenizer.ggml.tokens")
        }
        guard let merges = file["tokenizer.ggml.merges"]?.strings else {
            throw TokenizerError("\(file.path) has no tokenizer.ggml.merges")
        }
        let types = (file["tokenizer.ggml.token_type"]?.ints ?? []).map { Int32(truncatingIfNeeded: $0) }
        let preName = file["tokenizer.ggml.pre"]?.string ?? "default"
        let pre: PreTokenizer
        if let known = PreTokenizer(ggufName: preName) {
            pre = known
        } else {
            logger.warning("unknown pre-tokenizer '\(preName)'; using the GPT-2 expression")
            pre = .gpt2
        }
        func id(_ key: String) -> Int32? {
            file["tokenizer.ggml.\(key)"]?.int.map { Int32(truncatingIfNeeded: $0) }
        }
        try self.init(
            tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre,
            bosID: id("bos_token_id"), eosID: id("eos_token_id"), eotID: id("eot_token_id"),
            padID: id("padding_token_id"),
            addBOS: file["tokenizer.ggml.add_bos_token"]?.bool ?? false,
            logger: logger)
    }
}

extension ChatTemplate {
    /// The chat template of a GGUF model (`tokenizer.chat_template`); see ``init(templateSource:)``.
    public init(gguf file: GGUFFile) throws {
        try self.init(templateSource: file["tokenizer.chat_template"]?.string)
    }
}
