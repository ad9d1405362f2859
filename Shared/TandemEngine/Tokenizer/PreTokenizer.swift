/// Splits text into the "words" that byte-level BPE merges within, following the regular expression
/// of each model family (GGUF `tokenizer.ggml.pre`).
///
/// The expressions are implemented by hand as small state machines over Unicode scalars rather than
/// with a regex engine: they are fixed, a hand-written matcher is an order of magnitude faster, and the
/// behaviour (greedy runs, the `\s+(?!\S)` backtrack, optional prefixes) is spelled out explicitly.
/// Character classes follow the regexes: `\p{L}` is general category L*, `\p{N}` is N*, `\s` is the
/// Unicode `White_Space` property.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// StarCoder / SmolLM: every `\p{N}` is its own piece, then the GPT-2 expression on the rest.
    case smollm
    /// Qwen2: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case qwen2
    /// Llama 3: like Qwen2 but numbers in runs of up to three digits (`\p{N}{1,3}`).
    case llama3

    /// Maps a GGUF `tokenizer.ggml.pre` name to a pre-tokenizer, or nil when the name is unknown.
    public init?(ggufName: String) {
        switch ggufName.lowercased() {
        case "gpt2", "gpt-2", "default", "mpt", "olmo", "jais":
            self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            self = .smollm
        case "qwen2", "stablelm2", "deepseek-r1-qwen", "hunyuan":
            self = .qwen2
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral":
            self = .llama3
        default:
            return nil
        }
    }

    /// Splits `text` into pieces and returns their UTF-8 byte ranges relative to the start of `text`.
    public func split(_ text: String) -> [Range<Int>] {
        var text = text
        return text.withUTF8 { utf8 in
            var scratch = PreTokenizerScratch()
            var out: [Range<Int>] = []
            split(utf8, scratch: &scratch) { out.append($0) }
            return out
        }
    }

    /// Splits UTF-8 bytes into pieces, calling `emit` with each piece's byte range in order.
    func split(_ utf8: UnsafeBufferPointer<UInt8>, scratch: inout PreTokenizerScratch, emit: (Range<Int>) -> Void) {
        scratch.load(utf8)
        let n = scratch.classes.count
        if n == 0 { return }
        scratch.classes.withUnsafeBufferPointer { cls in
            scratch.scalars.withUnsafeBufferPointer { cps in
                scratch.offsets.withUnsafeBufferPointer { off in
                    func emitScalars(_ start: Int, _ end: Int) {
                        emit(Int(off[start])..<Int(off[end]))
                    }
                    switch self {
                    case .gpt2:
                        PreTokenizer.splitGPT2(cls, cps, 0, n, emitScalars)
                    case .smollm:
                        // Isolate every number character, then run GPT-2 on the stretches between them.
                        var start = 0
                        for i in 0..<n where cls[i] & CharClass.number != 0 {
                            if start < i { PreTokenizer.splitGPT2(cls, cps, start, i, emitScalars) }
                            emitScalars(i, i + 1)
                            start = i + 1
                        }
                        if start < n { PreTokenizer.splitGPT2(cls, cps, start, n, emitScalars) }
                    case .qwen2:
                        PreTokenizer.splitQwen(cls, cps, 0, n, maxDigits: 1, emitScalars)
                    case .llama3:
                        PreTokenizer.splitQwen(cls, cps, 0, n, maxDigits: 3, emitScalars)
                    }
                }
            }
        }
    }

    // MARK: Matchers (scalar indices; `end` is exclusive)

    /// Length of an English contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, or 0.
    @inline(__always)
    static func contraction(_ cps: UnsafeBufferPointer<UInt32>, _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard cps[i] == 0x27, i + 1 < end else { return 0 }  // '
        func lower(_ c: UInt32) -> UInt32 {
            caseInsensitive && c >= 0x41 && c <= 0x5A ? c + 0x20 : c
        }
        let c1 = lower(cps[i + 1])
        switch c1 {
        case 0x73, 0x74, 0x6D, 0x64:  // s t m d
            return 2
        case 0x72, 0x76:  // r v -> 're 've
            if i + 2 < end, lower(cps[i + 2]) == 0x65 { return 3 }
        case 0x6C:  // l -> 'll
            if i + 2 < end, lower(cps[i + 2]) == 0x6C { return 3 }
        default:
            break
        }
        return 0
    }

    /// Index after a run of scalars starting at `i` whose class contains any bit of `mask`.
    @inline(__always)
    static func run(_ cls: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int, _ mask: UInt8) -> Int {
        var j = i
        while j < end, cls[j] & mask != 0 { j += 1 }
        return j
    }

    /// Index after a run of "other" scalars (not whitespace, letter or number).
    @inline(__always)
    static func otherRun(_ cls: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        var j = i
        while j < end, cls[j] & (CharClass.letter | CharClass.number | CharClass.space) == 0 { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at `i` (which must be whitespace): the whole run when it reaches the end or
    /// is length 1, otherwise the run minus its last character (left for the next piece's prefix).
    @inline(__always)
    static func whitespace(_ cls: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let j = run(cls, i, end, CharClass.space)
        if j == end || j - i == 1 { return j }
        return j - 1
    }

    static func splitGPT2(
        _ cls: UnsafeBufferPointer<UInt8>, _ cps: UnsafeBufferPointer<UInt32>, _ start: Int, _ end: Int,
        _ emit: (Int, Int) -> Void
    ) {
        var i = start
        while i < end {
            var j: Int
            let k = contraction(cps, i, end, caseInsensitive: false)
            if k > 0 {
                j = i + k
            } else {
                // ` ?X+` for X in letters, numbers, others: an optional single space prefix.
                var p = i
                if cps[i] == 0x20, i + 1 < end, cls[i + 1] & CharClass.space == 0 { p = i + 1 }
                let cp = cls[p]
                if cp & CharClass.letter != 0 {
                    j = run(cls, p, end, CharClass.letter)
                } else if cp & CharClass.number != 0 {
                    j = run(cls, p, end, CharClass.number)
                } else if cp & CharClass.space == 0 {
                    j = otherRun(cls, p, end)
                } else {
                    j = whitespace(cls, i, end)
                }
            }
            emit(i, j)
            i = j
        }
    }

    static func splitQwen(
        _ cls: UnsafeBufferPointer<UInt8>, _ cps: UnsafeBufferPointer<UInt32>, _ start: Int, _ end: Int,
        maxDigits: Int, _ emit: (Int, Int) -> Void
    ) {
        var i = start
        while i < end {
            let c = cls[i]
            var j: Int
            let k = contraction(cps, i, end, caseInsensitive: true)
            if k > 0 {
                j = i + k
            } else if c & CharClass.letter != 0 {
                // \p{L}+
                j = run(cls, i, end, CharClass.letter)
            } else if c & (CharClass.newline | CharClass.number) == 0, i + 1 < end, cls[i + 1] & CharClass.letter != 0 {
                // [^\r\n\p{L}\p{N}]\p{L}+ : one non-letter, non-number, non-newline prefix (space, tab, punctuation).
                j = run(cls, i + 1, end, CharClass.letter)
            } else if c & CharClass.number != 0 {
                // \p{N}{1,maxDigits}
                j = i + 1
                while j < end, j - i < maxDigits, cls[j] & CharClass.number != 0 { j += 1 }
            } else if c & CharClass.space == 0 || (cps[i] == 0x20 && i + 1 < end
                && cls[i + 1] & (CharClass.letter | CharClass.number | CharClass.space) == 0)
            {
                // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                let p = c & CharClass.space == 0 ? i : i + 1
                j = otherRun(cls, p, end)
                j = run(cls, j, end, CharClass.newline)
            } else {
                // Whitespace. `\s*[\r\n]+`: through the last newline of the run, if it has one.
                let r = run(cls, i, end, CharClass.space)
                var lastNewline = -1
                var q = r - 1
                while q >= i {
                    if cls[q] & CharClass.newline != 0 { lastNewline = q; break }
                    q -= 1
                }
                if lastNewline >= 0 {
                    j = lastNewline + 1
                } else {
                    j = whitespace(cls, i, end)
                }
            }
            emit(i, j)
            i = j
        }
    }
}

/// Character class bits used by the pre-tokenizers.
enum CharClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    /// `\r` or `\n` (also has `space`).
    static let newline: UInt8 = 8

    /// Classes of the Basic Multilingual Plane, computed once.
    static let bmp: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 {
            if let s = Unicode.Scalar(UInt32(v)) { table[v] = compute(s) }
        }
        return table
    }()

    static func compute(_ s: Unicode.Scalar) -> UInt8 {
        if s.value == 0x0A || s.value == 0x0D { return space | newline }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return 0
        }
    }

    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        if v < 0x10000 { return bmp[Int(v)] }
        guard let s = Unicode.Scalar(v) else { return 0 }
        return compute(s)
    }
}

/// Reusable buffers for splitting (scalars, their classes and byte offsets).
struct PreTokenizerScratch {
    var scalars: [UInt32] = []
    var classes: [UInt8] = []
    /// Byte offset of each scalar, plus one final entry for the end.
    var offsets: [Int32] = []

    /// Decodes UTF-8 (assumed valid, as it comes from a Swift String) into scalars and classes.
    mutating func load(_ utf8: UnsafeBufferPointer<UInt8>) {
        scalars.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        scalars.reserveCapacity(utf8.count)
        classes.reserveCapacity(utf8.count)
        offsets.reserveCapacity(utf8.count + 1)
        let n = utf8.count
        var i = 0
        while i < n {
            let b0 = UInt32(utf8[i])
            var v: UInt32
            var len: Int
            if b0 < 0x80 {
                v = b0; len = 1
            } else if b0 < 0xE0, i + 1 < n {
                v = (b0 & 0x1F) << 6 | (UInt32(utf8[i + 1]) & 0x3F); len = 2
            } else if b0 < 0xF0, i + 2 < n {
                v = (b0 & 0x0F) << 12 | (UInt32(utf8[i + 1]) & 0x3F) << 6 | (UInt32(utf8[i + 2]) & 0x3F); len = 3
            } else if i + 3 < n {
                v = (b0 & 0x07) << 18 | (UInt32(utf8[i + 1]) & 0x3F) << 12 | (UInt32(utf8[i + 2]) & 0x3F) << 6
                    | (UInt32(utf8[i + 3]) & 0x3F)
                len = 4
            } else {
                v = 0xFFFD; len = 1
            }
            scalars.append(v)
            classes.append(CharClass.of(v))
            offsets.append(Int32(i))
            i += len
        }
        offsets.append(Int32(n))
    }
}
