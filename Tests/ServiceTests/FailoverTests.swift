import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Faults on real processes with SmolLM2-135M as draft and target: SIGKILL the verifier or the
/// drafter serving a streamed request; the stream must complete with exactly the undisturbed text.
@Suite(.serialized, .timeLimit(.minutes(15)))
struct FailoverTests {
    static var body: [String: Any] {
        ["messages": [["role": "user", "content": "Write a long story about a lighthouse keeper and the sea."]],
         "max_tokens": 160, "temperature": 0.8, "seed": 99, "k": 4]
    }

    @Test func killedVerifierOrDrafterMidStreamGivesTheSameText() async throws {
        guard let small = cachedModel("SmolLM2-135M-Instruct.Q4_1.gguf") else {
            print("SKIPPED killedVerifierOrDrafterMidStreamGivesTheSameText: SmolLM2-135M not fetched (tandem models fetch smollm2-135m-instruct)")
            return
        }
        let cluster = try await TestCluster.start(target: small, draft: small, verifiers: 2, drafters: 2)
        defer { Task { await cluster.stop() } }
        let undisturbed = assemble(try await cluster.streamEvents("/v1/chat/completions", Self.body))
        #expect(undisturbed.sawDone && !undisturbed.text.isEmpty)

        for role in ["verifier", "drafter-agent"] {
            try await Task.sleep(for: .seconds(1))  // let heartbeats forget the previous session
            let since = Date().timeIntervalSince1970 * 1000 + 200
            let stream = Task { try await cluster.streamEvents("/v1/chat/completions", Self.body) }
            // Find the replica serving the session (heartbeats report its session count) and kill it.
            var victim: String?
            let deadline = ContinuousClock.now + .seconds(20)
            while victim == nil, ContinuousClock.now < deadline {
                victim = try await cluster.busyReplicas(role: role, since: since).first
                if victim == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            guard let victim else {
                Issue.record("no \(role) reported the session")
                break
            }
            cluster.kill(victim)
            let disturbed = assemble(try await stream.value)
            #expect(disturbed.sawDone, "\(role) killed: stream must finish")
            #expect(disturbed.text == undisturbed.text, "\(role) \(victim) killed mid-stream: same text")
        }

        // With no verifier left the client gets a clean error, not a hang.
        for name in cluster.pids.keys where name.hasPrefix("verifier") { cluster.kill(name) }
        try await Task.sleep(for: .seconds(3))  // > 3 missed heartbeats
        let start = ContinuousClock.now
        let r = try await cluster.post("/v1/chat/completions", Self.body)
        #expect(r.status == 503, "\(r.status) \(r.text.prefix(200))")
        #expect((r.json?["error"] as? [String: Any])?["message"] is String)
        #expect(ContinuousClock.now - start < .seconds(10))
        await cluster.stop()
    }
}
