import Foundation
import TandemEngine
import Testing

/// GPT-2's byte-to-character table, written independently of the engine's to cross-check it.
private func byteLevelSpelling(_ bytes: [UInt8]) -> String {
    var printable: [UInt8] = Array(33...126) + Array(161...172) + Array(174...255)
    var map: [UInt8: UInt32] = [:]
    for b in printable { map[b] = UInt32(b) }
    var next: UInt32 = 256
    for b in 0...255 where map[UInt8(b)] == nil {
        map[UInt8(b)] = next
        next += 1
    }
    printable.removeAll()
    return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar(map[$0]!)! }))
}

/// A tokenizer over the 256 byte tokens plus the given merges and special tokens.
private func syntheticTokenizer(
    merges: [String] = [], specials: [(String, TokenType)] = [], pre: PreTokenizer = .gpt2
) throws -> Tokenizer {
    var tokens = (0...255).map { byteLevelSpelling([UInt8($0)]) }
    var types = [Int32](repeating: TokenType.normal.rawValue, count: 256)
    for merge in merges {
        let merged = merge.replacingOccurrences(of: " ", with: "")
        if !tokens.contains(merged) {
            tokens.append(merged)
            types.append(TokenType.normal.rawValue)
        }
    }
    for (text, type) in specials {
        tokens.append(text)
        types.append(type.rawValue)
    }
    return try Tokenizer(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre)
}

/// Deterministic randomness for these tests (64-bit LCG).
private struct TokenizerRNG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state ^ (state >> 29)
    }
}

/// Textbook BPE (repeatedly merge the lowest-ranked adjacent pair, leftmost first) on vocabulary strings.
private func naiveBPE(_ symbols: [String], ranks: [String: Int]) -> [String] {
    var s = symbols
    while s.count > 1 {
        var best: (rank: Int, index: Int)? = nil
        for i in 0..<(s.count - 1) {
            if let r = ranks[s[i] + " " + s[i + 1]], best == nil || r < best!.rank { best = (r, i) }
        }
        guard let b = best else { break }
        s[b.index] += s[b.index + 1]
        s.remove(at: b.index + 1)
    }
    return s
}

struct TokenizerPreTokenizerTests {
    func pieces(_ pre: PreTokenizer, _ text: String) -> [String] {
        let bytes = Array(text.utf8)
        return pre.split(text).map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    @Test func gpt2Splits() {
        #expect(pieces(.gpt2, "Hello world") == ["Hello", " world"])
        #expect(pieces(.gpt2, "I'm  here\n") == ["I", "'m", " ", " here", "\n"])
        #expect(pieces(.gpt2, "a\tb") == ["a", "\t", "b"])
        #expect(pieces(.gpt2, "x   ") == ["x", "   "])
        #expect(pieces(.gpt2, "it's 123abc") == ["it", "'s", " 123", "abc"])
        #expect(pieces(.gpt2, "don'T stop") == ["don", "'", "T", " stop"])
        #expect(pieces(.gpt2, "") == [])
    }

    @Test func smollmIsolatesDigits() {
        #expect(pieces(.smollm, "abc123 def") == ["abc", "1", "2", "3", " def"])
        #expect(pieces(.smollm, "a  1") == ["a", "  ", "1"])
        #expect(pieces(.smollm, "x²") == ["x", "²"])
    }

    @Test func qwen2Splits() {
        #expect(pieces(.qwen2, "Hello world") == ["Hello", " world"])
        #expect(pieces(.qwen2, "It'S") == ["It", "'S"])
        #expect(pieces(.qwen2, "x123") == ["x", "1", "2", "3"])
        #expect(pieces(.qwen2, "  \n\n  foo") == ["  \n\n", " ", " foo"])
        #expect(pieces(.qwen2, "(foo)") == ["(foo", ")"])
        #expect(pieces(.qwen2, "a.\n\nb") == ["a", ".\n\n", "b"])
        #expect(pieces(.qwen2, "\tfoo") == ["\tfoo"])
        #expect(pieces(.qwen2, " {\n") == [" {\n"])
        #expect(pieces(.qwen2, "a  b") == ["a", " ", " b"])
        #expect(pieces(.qwen2, "x \t y") == ["x", " \t", " y"])
        #expect(pieces(.qwen2, "日本語 テスト") == ["日本語", " テスト"])
    }

    @Test func llama3GroupsThreeDigits() {
        #expect(pieces(.llama3, "12345 x") == ["123", "45", " x"])
    }

    @Test func ggufNames() {
        #expect(PreTokenizer(ggufName: "qwen2") == .qwen2)
        #expect(PreTokenizer(ggufName: "smollm") == .smollm)
        #expect(PreTokenizer(ggufName: "llama-bpe") == .llama3)
        #expect(PreTokenizer(ggufName: "gpt-2") == .gpt2)
        #expect(PreTokenizer(ggufName: "something-new") == nil)
    }

    @Test func piecesCoverTheText() {
        for pre in PreTokenizer.allCases {
            for text in TokenizerFixtures.corpus + TokenizerFixtures.fuzzCorpus(count: 200, seed: 9) {
                #expect(pieces(pre, text).joined() == text)
            }
        }
    }
}

struct TokenizerSyntheticTests {
    @Test func mergesApplyInRankOrder() throws {
        let abFirst = try syntheticTokenizer(merges: ["a b", "b c"])
        let bcFirst = try syntheticTokenizer(merges: ["b c", "a b"])
        #expect(abFirst.encode("abc").map { abFirst.tokens[Int($0)] } == ["ab", "c"])
        #expect(bcFirst.encode("abc").map { bcFirst.tokens[Int($0)] } == ["a", "bc"])
        let hello = try syntheticTokenizer(merges: ["h e", "l l", "he ll", "hell o", "Ġ w"])
        #expect(hello.encode("hello").map { hello.tokens[Int($0)] } == ["hello"])
        #expect(hello.encode("hello world").map { hello.tokens[Int($0)] } == ["hello", "Ġw", "o", "r", "l", "d"])
    }

    /// Long pieces take the priority-queue path; it must agree with textbook BPE.
    @Test func longPiecesMatchNaiveBPE() throws {
        var rng = TokenizerRNG(state: 42)
        let alphabet = ["a", "b", "c", "d"]
        var merges: [String] = []
        var symbols = alphabet
        for _ in 0..<40 {
            let l = symbols.randomElement(using: &rng)!, r = symbols.randomElement(using: &rng)!
            let m = "\(l) \(r)"
            if merges.contains(m) || (l + r).count > 12 { continue }
            merges.append(m)
            symbols.append(l + r)
        }
        let tokenizer = try syntheticTokenizer(merges: merges)
        var ranks: [String: Int] = [:]
        for (i, m) in merges.enumerated() where ranks[m] == nil { ranks[m] = i }
        for length in [3, 20, 47, 48, 49, 100, 333, 1000] {
            for _ in 0..<5 {
                let text = String((0..<length).map { _ in Character(alphabet.randomElement(using: &rng)!) })
                let expected = naiveBPE(text.map(String.init), ranks: ranks)
                let got = tokenizer.encode(text).map { tokenizer.tokens[Int($0)] }
                #expect(got == expected, "length \(length)")
                #expect(tokenizer.decode(tokenizer.encode(text)) == text)
            }
        }
    }

    @Test func specialTokens() throws {
        let t = try syntheticTokenizer(
            merges: ["a b"],
            specials: [("<|im_start|>", .control), ("<|im_end|>", .control), ("<tool>", .userDefined)])
        let start = try #require(t.tokenID("<|im_start|>"))
        let end = try #require(t.tokenID("<|im_end|>"))
        let tool = try #require(t.tokenID("<tool>"))
        // Control tokens are matched only on request; user-defined ones always.
        #expect(t.encode("<|im_start|>ab<|im_end|>", parseSpecial: true) == [start, t.tokenID("ab")!, end])
        #expect(!t.encode("<|im_start|>ab", parseSpecial: false).contains(start))
        #expect(t.encode("x<tool>y", parseSpecial: false).contains(tool))
        // Decoding hides control tokens unless asked; user-defined tokens are text.
        #expect(t.decode([start, t.tokenID("ab")!, end]) == "ab")
        #expect(t.decode([start, t.tokenID("ab")!, end], includeSpecial: true) == "<|im_start|>ab<|im_end|>")
        #expect(t.decode([tool]) == "<tool>")
        #expect(t.isEndOfGeneration(end))
        #expect(!t.isEndOfGeneration(start))
        #expect(t.isControl(start) && !t.isControl(tool))
    }

    @Test func bosHandling() throws {
        var tokens = (0...255).map { byteLevelSpelling([UInt8($0)]) }
        tokens.append("<s>")
        let t = try Tokenizer(tokens: tokens, merges: [], preTokenizer: .gpt2, bosID: 256, addBOS: true)
        #expect(t.encode("a") == [256, Int32(tokens.firstIndex(of: "a")!)])
        #expect(t.encode("a", addBOS: false).count == 1)
        #expect(throws: TokenizerError.self) {
            try Tokenizer(tokens: tokens, merges: [], preTokenizer: .gpt2, eosID: 999)
        }
    }

    @Test func everyByteRoundTrips() throws {
        let t = try syntheticTokenizer()
        let allBytes = (0...255).map { UInt8($0) }
        // Valid UTF-8 text covering all ASCII and some multi-byte characters.
        let text = String(decoding: allBytes.prefix(128), as: UTF8.self) + "é日😀"
        #expect(t.decode(t.encode(text)) == text)
        #expect(t.encode(text).count == text.utf8.count)
    }
}

struct TokenizerStreamingTests {
    /// One token per byte, so multi-byte characters are always split across tokens.
    @Test func holdsBackPartialCharacters() throws {
        let t = try syntheticTokenizer()
        let text = "a日本😀é!"
        let tokens = t.encode(text)
        #expect(tokens.count == text.utf8.count)
        var decoder = t.streamingDecoder()
        var outputs: [String] = []
        for token in tokens { outputs.append(decoder.append(token)) }
        outputs.append(decoder.finish())
        #expect(outputs.joined() == text)
        #expect(!outputs.joined().contains("\u{FFFD}"))
        // "a" | "" "" "日" | "" "" "本" | "" "" "" "😀" | "" "é" | "!" | finish ""
        #expect(outputs == ["a", "", "", "日", "", "", "本", "", "", "", "😀", "", "é", "!", ""])
    }

    @Test func finishFlushesIncompleteAndInvalidBytes() throws {
        let t = try syntheticTokenizer()
        let e6 = try #require(t.tokenID(byteLevelSpelling([0xE6])))
        let ff = try #require(t.tokenID(byteLevelSpelling([0xFF])))
        var decoder = t.streamingDecoder()
        #expect(decoder.append(e6) == "")
        #expect(decoder.pendingByteCount == 1)
        #expect(decoder.finish() == "\u{FFFD}")
        #expect(decoder.pendingByteCount == 0)
        // An invalid lead byte is released at once rather than held forever.
        #expect(decoder.append(ff) == "\u{FFFD}")
        // An incomplete sequence interrupted by ASCII is released as U+FFFD followed by the ASCII.
        #expect(decoder.append(e6) == "")
        #expect(decoder.append(t.encode("x")[0]) == "\u{FFFD}x")
    }

    @Test(.enabled(if: TokenizerFixtures.hasQwen, "Qwen2.5-Coder-0.5B GGUF absent"))
    func streamingEqualsBatchDecodeOnQwen() throws {
        let t = try #require(TokenizerFixtures.qwen)
        for text in TokenizerFixtures.corpus + TokenizerFixtures.fuzzCorpus(count: 100, seed: 5) {
            let tokens = t.encode(text, parseSpecial: true)
            var decoder = t.streamingDecoder(includeSpecial: true)
            var out = ""
            for token in tokens {
                let piece = decoder.append(token)
                #expect(!piece.contains("\u{FFFD}") || text.contains("\u{FFFD}"))
                out += piece
            }
            out += decoder.finish()
            #expect(out == text)
        }
    }
}
