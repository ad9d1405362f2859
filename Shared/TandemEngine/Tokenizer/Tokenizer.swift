import Logging

/// Errors building a tokenizer from model metadata.
public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "tokenizer: \(message)" }
}

/// A GPT-2 style byte-level BPE tokenizer built from a model's own vocabulary and merges
/// (GGUF `tokenizer.ggml.model == "gpt2"`).
///
/// Encoding splits out special tokens, pre-tokenizes each stretch of text with the model family's
/// expression (``PreTokenizer``), and runs BPE on each piece's bytes by merge rank. It is immutable
/// after construction and safe to share between threads; every call uses its own scratch state.
///
/// Token ids are `Int32`, as in GGUF and the model's embedding table.
public final class Tokenizer: Sendable {
    /// Vocabulary strings, in byte-level spelling for normal tokens and literal text for special ones.
    public let tokens: [String]
    /// Kind of each token.
    public let tokenTypes: [TokenType]
    /// The pre-tokenizer splitting text before BPE.
    public let preTokenizer: PreTokenizer
    /// Beginning-of-sequence token, if the model has one.
    public let bosID: Int32?
    /// End-of-sequence token.
    public let eosID: Int32?
    /// End-of-turn token, if distinct.
    public let eotID: Int32?
    /// Padding token.
    public let padID: Int32?
    /// Whether `encode` prepends BOS by default (GGUF `tokenizer.ggml.add_bos_token`).
    public let addBOSByDefault: Bool
    /// Tokens that end generation: EOS, EOT, and end-of-turn control tokens such as `<|im_end|>`.
    public let endOfGenerationIDs: Set<Int32>

    /// Skip BPE for pieces that are whole vocabulary entries (HF `ignore_merges`, used by Llama 3).
    let ignoreMerges: Bool
    let tokenToID: [String: Int32]
    /// Initial BPE symbol for each byte.
    let byteToken: [Int32]
    /// `(left << 32 | right)` -> `(rank << 32 | merged)`.
    let merges: [UInt64: UInt64]
    /// Concatenated decoded bytes of every token; token `i` is `decodedBytes[decodedOffsets[i]..<decodedOffsets[i+1]]`.
    let decodedBytes: [UInt8]
    let decodedOffsets: [Int32]
    /// Special tokens matched in text before pre-tokenization, longest first, bucketed by first byte.
    let specialsByFirstByte: [[SpecialToken]]

    struct SpecialToken: Sendable {
        var bytes: [UInt8]
        var id: Int32
        /// Control tokens are matched only with `parseSpecial`; user-defined tokens always.
        var isControl: Bool
    }

    /// Builds a tokenizer from plain metadata values (what a GGUF file carries).
    ///
    /// - Parameters:
    ///   - tokens: `tokenizer.ggml.tokens`.
    ///   - merges: `tokenizer.ggml.merges` (`"left right"`, rank = index).
    ///   - tokenTypes: `tokenizer.ggml.token_type`; empty means all normal.
    ///   - preTokenizer: `tokenizer.ggml.pre` mapped with ``PreTokenizer/init(ggufName:)``.
    public init(
        tokens: [String],
        merges: [String],
        tokenTypes: [Int32] = [],
        preTokenizer: PreTokenizer,
        bosID: Int32? = nil,
        eosID: Int32? = nil,
        eotID: Int32? = nil,
        padID: Int32? = nil,
        addBOS: Bool = false,
        logger: Logger = Logger(label: "tandem.tokenizer")
    ) throws {
        guard !tokens.isEmpty else { throw TokenizerError("empty vocabulary") }
        guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
            throw TokenizerError("token_type has \(tokenTypes.count) entries for \(tokens.count) tokens")
        }
        for (name, id) in [("bos", bosID), ("eos", eosID), ("eot", eotID), ("pad", padID)] {
            if let id, id < 0 || Int(id) >= tokens.count {
                throw TokenizerError("\(name) token id \(id) is outside the vocabulary (\(tokens.count))")
            }
        }
        self.tokens = tokens
        let types = tokenTypes.isEmpty
            ? [TokenType](repeating: .normal, count: tokens.count)
            : tokenTypes.map(TokenType.init(raw:))
        self.tokenTypes = types
        self.preTokenizer = preTokenizer
        self.ignoreMerges = preTokenizer == .llama3
        self.bosID = bosID
        self.eosID = eosID
        self.eotID = eotID
        self.padID = padID
        self.addBOSByDefault = addBOS

        var toID: [String: Int32] = [:]
        toID.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where toID[t] == nil { toID[t] = Int32(i) }
        self.tokenToID = toID

        var byteToken = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = toID[ByteLevel.string(forByte: UInt8(b))] { byteToken[b] = id }
        }
        self.byteToken = byteToken
        // Some vocabularies (SmolLM2) lack a few rare control bytes; like llama.cpp and HF, such bytes
        // are dropped when encoding.
        let missingBytes = (0..<256).filter { byteToken[$0] < 0 }
        if !missingBytes.isEmpty {
            logger.debug("vocabulary lacks byte tokens \(missingBytes.map { String($0, radix: 16) }); they are dropped when encoding")
        }

        var mergeTable: [UInt64: UInt64] = [:]
        mergeTable.reserveCapacity(merges.count)
        var skipped = 0
        for (rank, merge) in merges.enumerated() {
            // Split on the single separating space; tokens themselves never contain a raw space.
            guard let space = merge.firstIndex(of: " ") else { skipped += 1; continue }
            let left = String(merge[..<space])
            let right = String(merge[merge.index(after: space)...])
            guard let l = toID[left], let r = toID[right], let m = toID[left + right] else {
                skipped += 1
                continue
            }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if mergeTable[key] == nil {
                mergeTable[key] = UInt64(rank) << 32 | UInt64(UInt32(m))
            }
        }
        if skipped > 0 { logger.debug("skipped \(skipped) merges whose parts are not in the vocabulary") }
        self.merges = mergeTable

        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 6)
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(tokens.count + 1)
        for (i, t) in tokens.enumerated() {
            switch types[i] {
            case .normal, .byte, .unknown, .undefined, .unused:
                ByteLevel.decode(t, into: &bytes)
            case .control, .userDefined:
                bytes.append(contentsOf: t.utf8)
            }
            offsets.append(Int32(bytes.count))
        }
        self.decodedBytes = bytes
        self.decodedOffsets = offsets

        var buckets = [[SpecialToken]](repeating: [], count: 256)
        for (i, t) in tokens.enumerated() where types[i] == .control || types[i] == .userDefined {
            let b = Array(t.utf8)
            guard let first = b.first else { continue }
            buckets[Int(first)].append(SpecialToken(bytes: b, id: Int32(i), isControl: types[i] == .control))
        }
        for i in 0..<256 { buckets[i].sort { $0.bytes.count > $1.bytes.count } }
        self.specialsByFirstByte = buckets

        var eog = Set<Int32>()
        for id in [eosID, eotID].compactMap({ $0 }) { eog.insert(id) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>", "<end_of_turn>",
                     "<|eom_id|>", "<EOT>"] {
            if let id = toID[name], types[Int(id)] == .control { eog.insert(id) }
        }
        self.endOfGenerationIDs = eog
    }

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// The id of a token given its vocabulary spelling (e.g. `"<|im_start|>"`), if present.
    public func tokenID(_ text: String) -> Int32? { tokenToID[text] }

    /// Whether `token` ends generation (EOS, EOT, `<|im_end|>`, ...).
    @inline(__always)
    public func isEndOfGeneration(_ token: Int32) -> Bool { endOfGenerationIDs.contains(token) }

    /// Whether `token` is a control token (rendered only on request).
    public func isControl(_ token: Int32) -> Bool {
        token >= 0 && Int(token) < tokenTypes.count && tokenTypes[Int(token)] == .control
    }

    // MARK: Encoding

    /// Encodes text into token ids.
    ///
    /// - Parameters:
    ///   - addBOS: prepend BOS; defaults to the model's `add_bos_token` setting.
    ///   - parseSpecial: match control tokens such as `<|im_start|>` written in the text as single
    ///     tokens (needed for chat templates). Without it they are encoded as plain text, so user
    ///     input cannot inject control tokens. User-defined tokens are always matched.
    public func encode(_ text: String, addBOS: Bool? = nil, parseSpecial: Bool = false) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3 + 2)
        if addBOS ?? addBOSByDefault, let bosID { out.append(bosID) }
        var text = text
        text.withUTF8 { utf8 in
            var state = EncodeState()
            var segmentStart = 0
            var i = 0
            let n = utf8.count
            while i < n {
                if let special = matchSpecial(utf8, at: i, parseSpecial: parseSpecial) {
                    if segmentStart < i {
                        encodeSegment(UnsafeBufferPointer(rebasing: utf8[segmentStart..<i]), state: &state, into: &out)
                    }
                    out.append(special.id)
                    i += special.bytes.count
                    segmentStart = i
                } else {
                    i += 1
                }
            }
            if segmentStart < n {
                encodeSegment(UnsafeBufferPointer(rebasing: utf8[segmentStart..<n]), state: &state, into: &out)
            }
        }
        return out
    }

    @inline(__always)
    private func matchSpecial(_ utf8: UnsafeBufferPointer<UInt8>, at i: Int, parseSpecial: Bool) -> SpecialToken? {
        let bucket = specialsByFirstByte[Int(utf8[i])]
        if bucket.isEmpty { return nil }
        for candidate in bucket where parseSpecial || !candidate.isControl {
            let m = candidate.bytes.count
            if i + m > utf8.count { continue }
            var equal = true
            for k in 1..<m where utf8[i + k] != candidate.bytes[k] {
                equal = false
                break
            }
            if equal { return candidate }
        }
        return nil
    }

    /// Per-call state: pre-tokenizer buffers, BPE scratch and a cache of already encoded pieces
    /// (prompts repeat words a lot).
    struct EncodeState {
        var pre = PreTokenizerScratch()
        var bpe = BPEScratch()
        var cache: [[UInt8]: [Int32]] = [:]
    }

    private func encodeSegment(_ utf8: UnsafeBufferPointer<UInt8>, state: inout EncodeState, into out: inout [Int32]) {
        // Move the pre-tokenizer buffers out so the closure can mutate the rest of the state.
        var pre = PreTokenizerScratch()
        swap(&pre, &state.pre)
        preTokenizer.split(utf8, scratch: &pre) { range in
            let piece = UnsafeBufferPointer(rebasing: utf8[range])
            encodePiece(piece, state: &state, into: &out)
        }
        state.pre = pre
    }

    private func encodePiece(_ piece: UnsafeBufferPointer<UInt8>, state: inout EncodeState, into out: inout [Int32]) {
        if piece.count == 1 {
            let id = byteToken[Int(piece[0])]
            if id >= 0 { out.append(id) }
            return
        }
        let key = Array(piece)
        if let cached = state.cache[key] {
            out.append(contentsOf: cached)
            return
        }
        let start = out.count
        if ignoreMerges, let whole = tokenToID[ByteLevel.encode(piece)], tokenTypes[Int(whole)] == .normal {
            out.append(whole)
        } else {
            bpe(piece, scratch: &state.bpe, into: &out)
        }
        if state.cache.count < 65536 {
            state.cache[key] = Array(out[start...])
        }
    }

    // MARK: Decoding

    /// The raw bytes a token stands for (control tokens give their literal text).
    public func bytes(of token: Int32) -> ArraySlice<UInt8> {
        guard token >= 0, Int(token) < tokens.count else { return [] }
        return decodedBytes[Int(decodedOffsets[Int(token)])..<Int(decodedOffsets[Int(token) + 1])]
    }

    /// Appends the bytes of `token` to `buffer` (nothing for control tokens unless `includeSpecial`).
    @inline(__always)
    func appendBytes(of token: Int32, includeSpecial: Bool, to buffer: inout [UInt8]) {
        guard token >= 0, Int(token) < tokens.count else { return }
        if !includeSpecial, tokenTypes[Int(token)] == .control { return }
        let lo = Int(decodedOffsets[Int(token)]), hi = Int(decodedOffsets[Int(token) + 1])
        decodedBytes.withUnsafeBufferPointer { all in
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: all[lo..<hi]))
        }
    }

    /// Decodes tokens to text. Control tokens are omitted unless `includeSpecial`; invalid UTF-8
    /// (a sequence cut in the middle of a character) becomes U+FFFD.
    public func decode(_ tokens: [Int32], includeSpecial: Bool = false) -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(tokens.count * 4)
        for t in tokens { appendBytes(of: t, includeSpecial: includeSpecial, to: &buffer) }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// A streaming decoder for generated tokens that only emits complete characters.
    public func streamingDecoder(includeSpecial: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, includeSpecial: includeSpecial)
    }
}
