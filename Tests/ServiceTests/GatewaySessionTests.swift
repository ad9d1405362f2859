@testable import Gateway
import TandemEngine
import TandemWire
import Testing

/// Token reports through a session: detokenization, stop strings, end of generation, usage counts.
struct GatewaySessionTests {
    /// A byte-level vocabulary: ids 0-255 are single bytes, then `extra` multi-byte tokens, then `<|im_end|>`.
    struct Vocabulary {
        let tokenizer: Tokenizer
        let ids: [[UInt8]: Int32]
        let end: Int32

        init(_ extra: [[UInt8]]) throws {
            // GPT-2's byte-to-character mapping, as vocabulary files spell bytes.
            var scalar = [UInt32](repeating: 0, count: 256)
            var next: UInt32 = 256
            for b in 0..<256 {
                if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                    scalar[b] = UInt32(b)
                } else {
                    scalar[b] = next
                    next += 1
                }
            }
            func spell(_ bytes: [UInt8]) -> String {
                var s = String.UnicodeScalarView()
                for b in bytes { s.append(Unicode.Scalar(scalar[Int(b)])!) }
                return String(s)
            }
            let pieces = (0..<256).map { [UInt8($0)] } + extra
            var ids: [[UInt8]: Int32] = [:]
            for (i, p) in pieces.enumerated() where ids[p] == nil { ids[p] = Int32(i) }
            self.ids = ids
            end = Int32(pieces.count)
            tokenizer = try Tokenizer(tokens: pieces.map(spell) + ["<|im_end|>"], merges: [],
                                      tokenTypes: [Int32](repeating: 1, count: pieces.count) + [3],
                                      preTokenizer: .gpt2, eosID: end)
        }

        func id(_ bytes: [UInt8]) -> Int32 { ids[bytes]! }
        func id(_ text: String) -> Int32 { ids[Array(text.utf8)]! }
    }

    static let grin = Array("😀".utf8)  // F0 9F 98 80

    func session(_ vocabulary: Vocabulary, stop: [String], maxTokens: Int = 100) -> GatewaySession {
        let request = GenerationRequest(promptTokens: [1], sampling: WireSampling(), maxTokens: maxTokens, stop: stop,
                                        slo: SLO(), mode: .coupled, k: nil)
        let (_, continuation) = AsyncStream<SessionUpdate>.makeStream()
        return GatewaySession(id: "s", request: request, drafter: "d", verifier: "v", verifierEndpoint: "",
                              decoder: vocabulary.tokenizer.streamingDecoder(), continuation: continuation)
    }

    func absorb(_ s: GatewaySession, _ v: Vocabulary, _ tokens: [Int32]) -> (text: String, finish: FinishReason?) {
        s.absorb(tokens) { v.tokenizer.isEndOfGeneration($0) }
    }

    @Test func aStopStringSpanningTokensEndsTheTextAndTheCount() throws {
        let v = try Vocabulary(["Hello S", "TO", "P and more", "tail"].map { Array($0.utf8) })
        let s = session(v, stop: ["STOP"])
        let r = absorb(s, v, [v.id("Hello S"), v.id("TO"), v.id("P and more"), v.id("tail")])
        #expect(r.text == "Hello ")
        #expect(r.finish == .stop)
        // Counted up to and including the token that completed the stop string.
        #expect(s.generated == [v.id("Hello S"), v.id("TO"), v.id("P and more")])
        #expect(s.releaseRemaining() == ("", true))
    }

    @Test func aStopStringCompletedInALaterReport() throws {
        let v = try Vocabulary(["Hello S", "TOP", "x"].map { Array($0.utf8) })
        let s = session(v, stop: ["STOP"])
        #expect(absorb(s, v, [v.id("Hello S")]) == ("Hello ", nil))
        #expect(absorb(s, v, [v.id("TOP"), v.id("x")]) == ("", .stop))
        #expect(s.generated.count == 2)
    }

    /// The decoder holds back the start of an emoji after the stop string: it is never released.
    @Test func bytesTheDecoderHeldBackAfterAStopAreDropped() throws {
        let v = try Vocabulary([Array("x STOP".utf8) + Self.grin.prefix(2), Array(Self.grin.suffix(2)) + Array("y".utf8)])
        let s = session(v, stop: ["STOP"])
        let first = v.id(Array("x STOP".utf8) + Self.grin.prefix(2))
        #expect(absorb(s, v, [first, v.id(Array(Self.grin.suffix(2)) + Array("y".utf8))]) == ("x ", .stop))
        #expect(s.generated == [first])
        #expect(s.releaseRemaining() == ("", true))
    }

    /// A stop string that starts with a character split over two tokens matches once the decoder completes it.
    @Test func aStopStringInsideACharacterSplitOverTokens() throws {
        let v = try Vocabulary([Array("ab".utf8) + Self.grin.prefix(2), Array(Self.grin.suffix(2)) + Array("XYZ".utf8)])
        let s = session(v, stop: ["😀X"])
        #expect(absorb(s, v, [v.id(Array("ab".utf8) + Self.grin.prefix(2))]) == ("ab", nil))
        #expect(absorb(s, v, [v.id(Array(Self.grin.suffix(2)) + Array("XYZ".utf8))]) == ("", .stop))
        #expect(s.generated.count == 2)
    }

    @Test func withoutAStopHeldBackTextIsReleasedAtTheEnd() throws {
        let v = try Vocabulary(["abc ST", "hi"].map { Array($0.utf8) })
        let s = session(v, stop: ["STOP"])
        #expect(absorb(s, v, [v.id("abc ST")]) == ("abc ", nil))
        #expect(absorb(s, v, [v.end, v.id("hi")]) == ("", .stop))  // end of generation: counted, no text
        #expect(s.generated == [v.id("abc ST"), v.end])
        #expect(s.releaseRemaining() == ("ST", false))
    }

    @Test func maxTokensCutsAReportThatGoesPastIt() throws {
        let v = try Vocabulary([])
        let s = session(v, stop: [], maxTokens: 2)
        #expect(absorb(s, v, [v.id("a"), v.id("b"), v.id("c")]) == ("ab", .length))
        #expect(s.generated.count == 2)
        #expect(s.releaseRemaining() == ("", false))
    }
}
