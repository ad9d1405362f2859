import Foundation
import TandemEngine
import Testing

/// Encodings must match an independent tokenizer (Hugging Face `tokenizers`) built from the same GGUF
/// vocabulary, merges and pre-tokenizer expression.
@Suite(.serialized)
struct TokenizerReferenceTests {
    static let skipMessage: Comment =
        "needs the model file and python3 with gguf + tokenizers (Tests/Reference/tokenizer_reference.py)"

    func compare(_ tokenizer: Tokenizer, gguf: String, seed: UInt64) throws {
        let plain = TokenizerFixtures.corpus + TokenizerFixtures.fuzzCorpus(count: 500, seed: seed)
        let special = TokenizerFixtures.corpus
        let reference = try TokenizerFixtures.reference(
            gguf: gguf, batches: [(plain, false), (special, true)])
        try #require(reference.batches.count == 2)
        for (texts, parseSpecial, batch) in [(plain, false, reference.batches[0]), (special, true, reference.batches[1])] {
            try #require(batch.ids.count == texts.count)
            var mismatches = 0
            for (i, text) in texts.enumerated() {
                let ours = tokenizer.encode(text, addBOS: false, parseSpecial: parseSpecial)
                if ours != batch.ids[i] {
                    mismatches += 1
                    if mismatches <= 5 {
                        Issue.record("""
                            encoding differs for \(text.debugDescription) (parseSpecial \(parseSpecial))
                              ours:      \(ours)
                              reference: \(batch.ids[i])
                            """)
                    }
                }
                // Decoding the reference ids gives back the text (byte-level BPE is lossless).
                #expect(tokenizer.decode(batch.ids[i], includeSpecial: true) == text)
            }
            #expect(mismatches == 0, "\(mismatches) of \(texts.count) texts encode differently (parseSpecial \(parseSpecial))")
            print("tokenizer reference (\(reference.pre), parseSpecial \(parseSpecial)): \(texts.count - mismatches)/\(texts.count) identical")
        }
    }

    @Test(.enabled(if: TokenizerFixtures.hasSmol && TokenizerFixtures.referenceAvailable, skipMessage))
    func smolLM2MatchesReference() throws {
        let tokenizer = try #require(TokenizerFixtures.smol)
        #expect(tokenizer.preTokenizer == .smollm)
        try compare(tokenizer, gguf: TokenizerFixtures.smolPath, seed: 1)
    }

    @Test(.enabled(if: TokenizerFixtures.hasQwen && TokenizerFixtures.referenceAvailable, skipMessage))
    func qwenMatchesReference() throws {
        let tokenizer = try #require(TokenizerFixtures.qwen)
        #expect(tokenizer.preTokenizer == .qwen2)
        try compare(tokenizer, gguf: TokenizerFixtures.qwenPath, seed: 2)
    }
}
