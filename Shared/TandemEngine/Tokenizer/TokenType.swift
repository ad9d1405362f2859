/// The kind of a vocabulary entry, as stored in GGUF's `tokenizer.ggml.token_type` (llama.cpp's numbering).
///
/// The kind decides how a token is matched and rendered: `normal` tokens are byte-level BPE pieces,
/// `control` tokens (`<|im_start|>`, `<|endoftext|>`) only come from templates and are hidden when
/// decoding for users, `userDefined` tokens are literal text matched before BPE.
public enum TokenType: Int32, Sendable, Hashable, CaseIterable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6

    /// Maps a raw GGUF value; out-of-range values are treated as `normal`.
    public init(raw: Int32) {
        self = TokenType(rawValue: raw) ?? .normal
    }
}
