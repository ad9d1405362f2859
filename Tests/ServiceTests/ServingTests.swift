import Foundation
import Logging
import TandemEngine
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Synthetic target + noisy synthetic draft (same vocabulary): speculative rejections happen.
enum SyntheticPair {
    struct Paths: Sendable {
        let target: String
        let draft: String
    }

    static func make() async throws -> Paths {
        let dir = NSTemporaryDirectory() + "tandem-syn-\(UUID().uuidString.prefix(8))"
        let (status, data) = try await runProcess(
            ["python3", referenceDirectory.appendingPathComponent("make_synthetic.py").path,
             "--out-dir", dir, "--arch", "qwen2", "--types", "Q8_0", "--draft"])
        guard status == 0,
              let list = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]],
              let target = list.first(where: { $0["role"] as? String == "target" })?["path"] as? String,
              let draft = list.first(where: { $0["role"] as? String == "draft" })?["path"] as? String
        else { throw ReferenceError("make_synthetic.py failed: \(String(decoding: data, as: UTF8.self))") }
        return Paths(target: target, draft: draft)
    }
}

struct ReferenceError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Target-only decoding with the engine in this process: what the cluster must reproduce.
struct TargetOnly {
    let model: LanguageModel
    let tokenizer: Tokenizer
    let engine: ForwardEngine

    init(path: String) throws {
        model = try LanguageModel.load(path: path, logger: Logger(label: "test"))
        tokenizer = try Tokenizer(gguf: model.gguf)
        engine = ForwardEngine(model: model, threads: 1)
    }

    func generate(prompt: [Int32], params: SamplingParams, maxTokens: Int) throws -> String {
        let cache = engine.makeCache(capacity: prompt.count + maxTokens + 2)
        let sampler = Sampler(vocabSize: model.config.vocabularySize)
        var position = prompt.count
        var out: [Int32] = []
        var result = try engine.forward([ForwardRequest(cache: cache, tokens: prompt, logits: .last)])
        while out.count < maxTokens {
            let token = sampler.sample(logits: result.lastLogits(request: 0), params: params, position: position)
            if tokenizer.isEndOfGeneration(token) { break }
            out.append(token)
            position += 1
            result = try engine.forward([ForwardRequest(cache: cache, tokens: [token], logits: .last)])
        }
        return tokenizer.decode(out)
    }
}

/// End to end through real processes: gateway, drafter-agent, verifier (and the rest), on a
/// synthetic model pair that disagrees often enough for rejections to happen. The gateway's HTTP
/// behaviour alone (validation, error bodies, auth, unknown devices) is tested in process
/// (`GatewayHTTPTests`).
@Suite(.serialized, .timeLimit(.minutes(15)))
struct ServingTests {
    static let prompts: [[Int32]] = [[72, 101, 108, 108, 111], [40, 32, 108, 105, 107, 101, 32], [100, 101, 102, 32, 102]]

    @Test func speculativeOutputEqualsTheTargetsOwnOutput() async throws {
        let pair = try await SyntheticPair.make()
        let reference = try TargetOnly(path: pair.target)
        let cluster = try await TestCluster.start(target: pair.target, draft: pair.draft, verifiers: 1, drafters: 2)
        defer { Task { await cluster.stop() } }
        var drafted = 0, accepted = 0

        // Greedy, K in {1, 4, 8}, one session at a time.
        for prompt in Self.prompts {
            let expected = try reference.generate(prompt: prompt, params: .greedy, maxTokens: 40)
            for k in [1, 4, 8] {
                let (text, r) = try await cluster.completion(["prompt": prompt, "max_tokens": 40, "temperature": 0, "k": k])
                #expect(r.status == 200, "\(r.text)")
                #expect(text == expected, "greedy K=\(k) prompt \(prompt)")
                let stats = r.json?["tandem"] as? [String: Any]
                drafted += stats?["drafted"] as? Int ?? 0
                accepted += stats?["accepted"] as? Int ?? 0
            }
        }
        #expect(drafted > 0)
        #expect(accepted < drafted, "the noisy draft must be rejected sometimes (accepted \(accepted) of \(drafted))")
        #expect(accepted > 0, "and accepted sometimes")

        // Greedy with 4 concurrent sessions (batched verification).
        let expectedGreedy = try Self.prompts.map { try reference.generate(prompt: $0, params: .greedy, maxTokens: 40) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<4 {
                group.addTask {
                    let prompt = Self.prompts[i % Self.prompts.count]
                    return (i, try await cluster.completion(["prompt": prompt, "max_tokens": 40, "temperature": 0, "k": 4]).text)
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        for i in 0..<4 { #expect(concurrent[i] == expectedGreedy[i % Self.prompts.count], "concurrent session \(i)") }

        // A request may name the device that drafts it: a drafter without hosted devices is its own device.
        let (onDevice, placed) = try await cluster.completion(["prompt": Self.prompts[0], "max_tokens": 40, "temperature": 0,
                                                               "tandem_device": "drafter-2"])
        #expect(placed.status == 200, "\(placed.text)")
        #expect(onDevice == expectedGreedy[0])
        #expect((placed.json?["tandem"] as? [String: Any])?["drafter"] as? String == "drafter-2")

        // Seeded sampling (coupled mode): equal to the target-only sampler, across runs and batch compositions.
        let params = SamplingParams(temperature: 0.9, topK: 40, topP: 0.95, seed: 4242)
        let expectedSampled = try reference.generate(prompt: Self.prompts[0], params: params, maxTokens: 40)
        @Sendable func sampledBody(seed: Int = 4242, prompt: [Int32] = Self.prompts[0]) -> [String: Any] {
            ["prompt": prompt, "max_tokens": 40, "temperature": 0.9, "top_k": 40, "top_p": 0.95, "seed": seed, "k": 4]
        }
        let body = sampledBody()
        let alone = try await cluster.completion(body).text
        #expect(alone == expectedSampled)
        let batched = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<4 {
                group.addTask {
                    let b = i == 0 ? sampledBody() : sampledBody(seed: 4242 + i, prompt: Self.prompts[i % Self.prompts.count])
                    let text = try await cluster.completion(b).text
                    return i == 0 ? text : ""
                }
            }
            return try await group.reduce(into: "") { $0 += $1 }
        }
        #expect(batched == expectedSampled, "same seed, batched with other sessions")
        let exact = try await cluster.completion(body.merging(["tandem_mode": "exact"]) { $1 })
        #expect(exact.result.status == 200)
        let exactAgain = try await cluster.completion(body.merging(["tandem_mode": "exact"]) { $1 })
        #expect(exact.text == exactAgain.text, "exact mode is reproducible with a seed")

        // Streaming: chunks concatenate to the non-streamed text; finish_reason; [DONE].
        let streamed = assemble(try await cluster.streamEvents("/v1/completions", body))
        #expect(streamed.text == alone)
        #expect(streamed.finish == "length" || streamed.finish == "stop")
        #expect(streamed.sawDone)
        let chatBody: [String: Any] = ["messages": [["role": "user", "content": "hi"]], "max_tokens": 30,
                                       "temperature": 0, "k": 4]
        let chat = try await cluster.post("/v1/chat/completions", chatBody)
        #expect(chat.status == 200)
        let chatText = ((chat.json?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        let chatStream = assemble(try await cluster.streamEvents("/v1/chat/completions", chatBody))
        #expect(chatStream.text == chatText)
        #expect(chatStream.sawDone && chatStream.finish != nil)
        await cluster.stop()
    }
}
