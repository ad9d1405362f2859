import Foundation
import TandemEngine
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// With no drafter alive the gateway places sessions on a verifier alone, which generates them itself and
/// reports tokens like a drafter (docs/design.md, "Serving without a drafter"). Real processes on the
/// synthetic pair: the drafter is killed, then every completion must equal target-only decoding.
@Suite(.serialized, .timeLimit(.minutes(15)))
struct VerifierOnlyServingTests {
    @Test func withNoDrafterAliveTheVerifierServesTargetOnlyOutput() async throws {
        let pair = try await SyntheticPair.make()
        let reference = try TargetOnly(path: pair.target)
        let cluster = try await TestCluster.start(target: pair.target, draft: pair.draft, verifiers: 1, drafters: 1)
        defer { Task { await cluster.stop() } }
        for name in cluster.pids.keys where name.hasPrefix("drafter") { cluster.kill(name) }
        try await Task.sleep(for: .seconds(3))  // > 3 missed heartbeats: the gateway declares it dead

        // Greedy, one session at a time, non-streamed and streamed.
        let prompts = ServingTests.prompts
        let expectedGreedy = try prompts.map { try reference.generate(prompt: $0, params: .greedy, maxTokens: 40) }
        for (prompt, expected) in zip(prompts, expectedGreedy) {
            let body: [String: Any] = ["prompt": prompt, "max_tokens": 40, "temperature": 0]
            let (text, r) = try await cluster.completion(body)
            #expect(r.status == 200, "\(r.text.prefix(300))")
            #expect(text == expected, "greedy prompt \(prompt)")
            let stats = r.json?["tandem"] as? [String: Any]
            #expect(stats?["drafter"] as? String == "", "no drafter placed")
            #expect(stats?["lookup_proposed"] is Int && stats?["lookup_accepted"] is Int)
            let streamed = assemble(try await cluster.streamEvents("/v1/completions", body))
            #expect(streamed.text == expected, "streamed prompt \(prompt)")
            #expect(streamed.sawDone && streamed.finish != nil)
        }

        // Four concurrent sessions batch together on the verifier.
        let concurrent = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<4 {
                group.addTask {
                    let body: [String: Any] = ["prompt": prompts[i % prompts.count], "max_tokens": 40, "temperature": 0]
                    return (i, try await cluster.completion(body).text)
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        for i in 0..<4 { #expect(concurrent[i] == expectedGreedy[i % prompts.count], "concurrent session \(i)") }

        // Seeded sampling (coupled mode) equals the target-only sampler with the same seed.
        let params = SamplingParams(temperature: 0.9, topK: 40, topP: 0.95, seed: 4242)
        let expectedSampled = try reference.generate(prompt: prompts[0], params: params, maxTokens: 40)
        let sampledBody: [String: Any] = ["prompt": prompts[0], "max_tokens": 40, "temperature": 0.9, "top_k": 40,
                                          "top_p": 0.95, "seed": 4242]
        #expect(try await cluster.completion(sampledBody).text == expectedSampled)
        #expect(assemble(try await cluster.streamEvents("/v1/completions", sampledBody)).text == expectedSampled)

        // A chat request streams and ends with [DONE].
        let chatBody: [String: Any] = ["messages": [["role": "user", "content": "hi hi hi hi"]], "max_tokens": 24,
                                       "temperature": 0]
        let chat = assemble(try await cluster.streamEvents("/v1/chat/completions", chatBody))
        #expect(chat.sawDone && chat.finish != nil)

        let metrics = try await cluster.request("GET", "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("tandem_verifier_only_sessions_total") }
        let count = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(count >= 12, "verifier-only sessions are counted: \(line ?? "missing")")
        #expect(metrics.contains("tandem_ngram_num_draft_tokens"))
        await cluster.stop()
    }

    /// The verifier driving a session alone is killed mid-stream: the gateway re-opens the session on the
    /// other verifier from its history, which drives it on; the text is the undisturbed one. SmolLM2-135M
    /// (the synthetic model finishes before a heartbeat can even show the session).
    @Test func aKilledSelfDrivingVerifierIsReplacedMidStream() async throws {
        guard let small = cachedModel("SmolLM2-135M-Instruct.Q4_1.gguf") else {
            print("SKIPPED aKilledSelfDrivingVerifierIsReplacedMidStream: SmolLM2-135M not fetched")
            return
        }
        let cluster = try await TestCluster.start(target: small, draft: small, verifiers: 2, drafters: 1)
        defer { Task { await cluster.stop() } }
        for name in cluster.pids.keys where name.hasPrefix("drafter") { cluster.kill(name) }
        try await Task.sleep(for: .seconds(3))
        var body = FailoverTests.body
        body["k"] = nil  // no drafter: the verifier decodes alone
        let undisturbed = assemble(try await cluster.streamEvents("/v1/chat/completions", body))
        #expect(undisturbed.sawDone && !undisturbed.text.isEmpty)
        try await Task.sleep(for: .seconds(1))  // let heartbeats forget the previous session
        let since = Date().timeIntervalSince1970 * 1000 + 200
        let stream = Task { try await cluster.streamEvents("/v1/chat/completions", body) }
        var victim: String?
        let deadline = ContinuousClock.now + .seconds(20)
        while victim == nil, ContinuousClock.now < deadline {
            victim = try await cluster.busyReplicas(role: "verifier", since: since).first
            if victim == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let killed = try #require(victim, "a verifier reported the session")
        cluster.kill(killed)
        let disturbed = assemble(try await stream.value)
        #expect(disturbed.sawDone, "the stream finishes")
        #expect(disturbed.text == undisturbed.text, "verifier \(killed) killed mid-stream: same text")
        await cluster.stop()
    }
}
