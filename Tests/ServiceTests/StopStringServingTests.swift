import Foundation
import TandemEngine
import Testing

/// Stop strings end to end through real processes: the gateway cuts the text before the stop string,
/// identically streamed and not, with `finish_reason` "stop" and usage counting up to the stopping token.
@Suite(.serialized, .timeLimit(.minutes(15)))
struct StopStringServingTests {
    /// The target's greedy tokens (without the end-of-generation token), as the cluster must produce them.
    func greedyTokens(_ reference: TargetOnly, prompt: [Int32], maxTokens: Int) throws -> [Int32] {
        let cache = reference.engine.makeCache(capacity: prompt.count + maxTokens + 2)
        let sampler = Sampler(vocabSize: reference.model.config.vocabularySize)
        var out: [Int32] = []
        var result = try reference.engine.forward([ForwardRequest(cache: cache, tokens: prompt, logits: .last)])
        while out.count < maxTokens {
            let token = sampler.sample(logits: result.lastLogits(request: 0), params: .greedy,
                                       position: prompt.count + out.count)
            if reference.tokenizer.isEndOfGeneration(token) { break }
            out.append(token)
            result = try reference.engine.forward([ForwardRequest(cache: cache, tokens: [token], logits: .last)])
        }
        return out
    }

    /// A printable-ASCII stop string whose first occurrence straddles a token boundary in the second
    /// half of the output (so the matcher must hold back across tokens), if there is one.
    func spanningStop(_ tokens: [Int32], _ tokenizer: Tokenizer) -> String? {
        var bytes: [UInt8] = []
        var starts: [Int] = []
        for t in tokens {
            starts.append(bytes.count)
            bytes.append(contentsOf: tokenizer.bytes(of: t))
        }
        func printable(_ b: UInt8) -> Bool { (0x21...0x7E).contains(b) }
        for boundary in starts.dropFirst(tokens.count / 3) where boundary > 0 {
            for (before, after) in [(2, 2), (1, 2), (2, 1), (1, 1)] {
                let range = (boundary - before)..<(boundary + after)
                guard range.lowerBound >= 0, range.upperBound <= bytes.count,
                      bytes[range].allSatisfy(printable) else { continue }
                let stop = Array(bytes[range])
                if firstIndex(of: stop, in: bytes) == range.lowerBound { return String(decoding: stop, as: UTF8.self) }
            }
        }
        return nil
    }

    func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    /// The text before the first occurrence of `stop` (byte-wise), or nil if it does not occur.
    func prefix(_ text: String, before stop: String) -> String? {
        let bytes = Array(text.utf8)
        return firstIndex(of: Array(stop.utf8), in: bytes).map { String(decoding: bytes[..<$0], as: UTF8.self) }
    }

    func usage(_ json: [String: Any]?) -> (prompt: Int, completion: Int, total: Int)? {
        guard let u = json?["usage"] as? [String: Any], let p = u["prompt_tokens"] as? Int,
              let c = u["completion_tokens"] as? Int, let t = u["total_tokens"] as? Int else { return nil }
        return (p, c, t)
    }

    func streamUsage(_ events: [String]) -> (prompt: Int, completion: Int, total: Int)? {
        events.compactMap { usage((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]) }.last
    }

    @Test func aStopStringCutsStreamedAndNonStreamedOutputAlike() async throws {
        let pair = try await SyntheticPair.make()
        let reference = try TargetOnly(path: pair.target)
        let tokenizer = reference.tokenizer
        var chosen: (prompt: [Int32], tokens: [Int32], stop: String)?
        for prompt in ServingTests.prompts {
            let tokens = try greedyTokens(reference, prompt: prompt, maxTokens: 40)
            if let stop = spanningStop(tokens, tokenizer) {
                chosen = (prompt, tokens, stop)
                break
            }
        }
        let (prompt, tokens, stop) = try #require(chosen, "no greedy output with a printable stop string across tokens")
        let full = tokenizer.decode(tokens)
        let expected = try #require(prefix(full, before: stop))
        // Tokens up to and including the one that completes the stop string.
        let expectedCount = try #require((1...tokens.count).first { prefix(tokenizer.decode(Array(tokens[..<$0])), before: stop) != nil })
        #expect(expectedCount < tokens.count || tokens.count == 40)
        print("stop \(stop.debugDescription): \(expected.utf8.count) of \(full.utf8.count) bytes, \(expectedCount) of \(tokens.count) tokens")

        let cluster = try await TestCluster.start(target: pair.target, draft: pair.draft)
        defer { Task { await cluster.stop() } }
        let body: [String: Any] = ["prompt": prompt, "max_tokens": 40, "temperature": 0, "k": 4, "stop": [stop, "\u{1}never"]]
        let (text, r) = try await cluster.completion(body)
        #expect(r.status == 200, "\(r.text)")
        #expect(text == expected, "stop \(stop.debugDescription) in \(full.debugDescription)")
        #expect((r.json?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "stop")
        let u = try #require(usage(r.json))
        #expect(u.prompt == prompt.count && u.completion == expectedCount && u.total == u.prompt + u.completion)

        var streamBody = body
        streamBody["stream_options"] = ["include_usage": true]
        let events = try await cluster.streamEvents("/v1/completions", streamBody)
        let streamed = assemble(events)
        #expect(streamed.text == expected)
        #expect(streamed.finish == "stop")
        #expect(streamed.sawDone)
        let su = try #require(streamUsage(events))
        #expect(su.completion == expectedCount && su.total == su.prompt + su.completion)

        // Chat: cut at a stop string taken from the unstopped reply, streamed and not alike.
        let chatBody: [String: Any] = ["messages": [["role": "user", "content": "hi"]], "max_tokens": 30,
                                       "temperature": 0, "k": 4]
        let whole = try await cluster.post("/v1/chat/completions", chatBody)
        let wholeText = ((whole.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
        let wholeUsage = try #require(usage(whole.json))
        let scalars = Array(wholeText.unicodeScalars)
        if let i = scalars.indices.dropFirst(scalars.count / 2).first(where: { i in
            i + 1 < scalars.count && scalars[i...(i + 1)].allSatisfy { (0x21...0x7E).contains($0.value) }
        }) {
            var chatStop = String.UnicodeScalarView()
            chatStop.append(contentsOf: scalars[i...(i + 1)])
            let stopText = String(chatStop)
            print("chat stop \(stopText.debugDescription) in \(wholeText.debugDescription)")
            let expectedChat = try #require(prefix(wholeText, before: stopText))
            let stopped = try await cluster.post("/v1/chat/completions", chatBody.merging(["stop": stopText]) { $1 })
            let choice = (stopped.json?["choices"] as? [[String: Any]])?.first
            #expect((choice?["message"] as? [String: Any])?["content"] as? String == expectedChat)
            #expect(choice?["finish_reason"] as? String == "stop")
            let cu = try #require(usage(stopped.json))
            #expect(cu.completion <= wholeUsage.completion && cu.total == cu.prompt + cu.completion)
            var chatStream = chatBody.merging(["stop": stopText]) { $1 }
            chatStream["stream_options"] = ["include_usage": true]
            let chatEvents = try await cluster.streamEvents("/v1/chat/completions", chatStream)
            let chatStreamed = assemble(chatEvents)
            #expect(chatStreamed.text == expectedChat && chatStreamed.finish == "stop" && chatStreamed.sawDone)
            #expect(streamUsage(chatEvents)?.completion == cu.completion)
        } else {
            Issue.record("the chat reply \(wholeText.debugDescription) has no printable pair to stop at")
        }
        await cluster.stop()
    }
}
