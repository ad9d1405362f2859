/// Turns generated tokens into text one token at a time, emitting only complete characters.
///
/// Byte-level BPE tokens can end in the middle of a UTF-8 sequence (an emoji or a CJK character is
/// often split over two or three tokens). Decoding each token on its own would print U+FFFD; this
/// decoder holds back an incomplete trailing sequence until the bytes that complete it arrive.
/// Bytes that can never become valid UTF-8 are emitted as U+FFFD rather than held forever.
///
/// ```swift
/// var decoder = tokenizer.streamingDecoder()
/// for token in generated { send(decoder.append(token)) }
/// send(decoder.finish())
/// ```
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    /// Whether control tokens (`<|im_end|>`) are rendered.
    public let includeSpecial: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, includeSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.includeSpecial = includeSpecial
        pending.reserveCapacity(64)
    }

    /// Bytes held back waiting for the rest of a character.
    public var pendingByteCount: Int { pending.count }

    /// Adds a token and returns the text that is now complete (possibly empty).
    public mutating func append(_ token: Int32) -> String {
        tokenizer.appendBytes(of: token, includeSpecial: includeSpecial, to: &pending)
        let complete = StreamingDecoder.completePrefixLength(pending)
        if complete == 0 { return "" }
        let text: String
        if complete == pending.count {
            text = String(decoding: pending, as: UTF8.self)
            pending.removeAll(keepingCapacity: true)
        } else {
            text = pending.withUnsafeBufferPointer {
                String(decoding: UnsafeBufferPointer(rebasing: $0[0..<complete]), as: UTF8.self)
            }
            pending.removeFirst(complete)
        }
        return text
    }

    /// Flushes whatever is held back (an unfinished character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll(keepingCapacity: true) }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence that could
    /// still be completed. A trailing lead byte followed by fewer continuation bytes than it announces
    /// is held back; anything malformed is released (and will decode as U+FFFD).
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // Look back at most 3 bytes for the lead byte of the last sequence.
        var i = n - 1
        let lowest = max(0, n - 4)
        while i >= lowest {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {
                // `b` is ASCII or a lead byte.
                let need: Int
                if b < 0x80 { need = 1 }
                else if b & 0xE0 == 0xC0 { need = 2 }
                else if b & 0xF0 == 0xE0 { need = 3 }
                else if b & 0xF8 == 0xF0 { need = 4 }
                else { return n }  // invalid lead byte: release everything
                let have = n - i
                return have < need ? i : n
            }
            i -= 1
        }
        // Only continuation bytes at the end, with no lead byte in reach: malformed, release.
        return n
    }
}
