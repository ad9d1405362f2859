import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import TandemBus
import TandemEngine
import TandemWire
import Testing
@testable import Verifier

/// What the gateway does when a replica refuses a session for memory (`resource_exhausted`; docs/protocol.md,
/// "Admission by memory"): another verifier or drafter with room takes it, a session no drafter has room for
/// is served by its verifier alone, and a request no verifier has room for is a 429 with `Retry-After` and
/// an OpenAI error body. In process: the real gateway with scripted replicas, and once with the real
/// verifier core behind it (its own refusal, then target-only output once the active sessions went idle).
@Suite(.timeLimit(.minutes(5)))
struct GatewayAdmissionTests {
    static func refusal(retryAfterMs: Int) -> WireMessage {
        .error(.kvCacheFull("no room", retryAfterMs: retryAfterMs))
    }

    static func metric(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func aFullVerifierIsPassedOverForOneWithRoom() async throws {
        let g = try InProcessGateway()
        try await g.addReplica("v-a-full", role: .verifier) { _, message in
            guard case .sessionOpen = message else { return nil }
            return Self.refusal(retryAfterMs: 500)
        }
        try await g.addVerifier("v-b")
        try await g.addDrafter("d1")
        try await g.test { client in
            let r = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 5])
            #expect(r.status == .ok, "\(r.text.prefix(300))")
            #expect((r.json?["tandem"] as? [String: Any])?["verifier"] as? String == "v-b")
            #expect((r.json?["choices"] as? [[String: Any]])?.first?["text"] as? String == "Hello")
            let metrics = try await client.get("/metrics").text
            #expect(Self.metric(metrics, #"tandem_kv_admission_refusals_total{role="verifier"}"#) == 1, "\(metrics)")
        }
    }

    @Test func whenNoVerifierHasRoomTheRequestIsA429WithRetryAfter() async throws {
        let g = try InProcessGateway()
        for (id, ms) in [("v1", 2_500), ("v2", 7_000)] {
            try await g.addReplica(id, role: .verifier) { _, message in
                guard case .sessionOpen = message else { return nil }
                return Self.refusal(retryAfterMs: ms)
            }
        }
        try await g.addDrafter("d1")
        try await g.test { client in
            let r = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 5])
            #expect(r.status == .tooManyRequests, "\(r.text.prefix(300))")
            #expect(r.headers[.retryAfter] == "3", "the soonest retry a verifier suggested, in whole seconds")
            let error = try #require(r.json?["error"] as? [String: Any])
            #expect(Set(error.keys) == ["message", "type", "param", "code"])
            #expect(error["type"] as? String == "rate_limit_error")
            #expect(error["code"] as? String == "kv_cache_full")
            #expect((error["message"] as? String)?.contains("KV cache") == true)
            #expect(g.sent.starts.withLock { $0.isEmpty }, "no drafter was started")
            #expect(await g.gateway.sessions.activeCount == 0)
            let metrics = try await client.get("/metrics").text
            #expect(Self.metric(metrics, #"tandem_kv_admission_refusals_total{role="verifier"}"#) == 2, "\(metrics)")
            #expect(Self.metric(metrics, #"tandem_requests_rejected_total{code="kv_cache_full"}"#) == 1, "\(metrics)")
        }
    }

    @Test func aFullDrafterIsPassedOverAndWithNoneLeftTheVerifierServesAlone() async throws {
        let g = try InProcessGateway()
        let tokens = Array("Hello".utf8).map { g.vocabulary.id([$0]) }
        // A verifier that, asked to drive a session itself, reports "Hello" as a drafter would.
        try await g.addReplica("v1", role: .verifier) { replica, message in
            guard case .sessionOpen(let open) = message else { return nil }
            g.sent.opens.withLock { $0.append(open) }
            if open.selfDrive != nil {
                Task {
                    var report = TokenReport(session: open.session, offset: 0, tokens: tokens, finish: .length)
                    report.epoch = open.epoch
                    try? await replica.post(.tokens(report))
                }
            }
            return .sessionOpened(SessionOpened(session: open.session, cachedTokens: 0, prefillMs: 0))
        }
        try await g.addReplica("d-a-full", role: .drafter) { _, message in
            guard case .sessionStart = message else { return nil }
            return Self.refusal(retryAfterMs: 1_000)
        }
        try await g.addDrafter("d-b")
        try await g.test { client in
            let r = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 5])
            #expect(r.status == .ok, "\(r.text.prefix(300))")
            #expect((r.json?["tandem"] as? [String: Any])?["drafter"] as? String == "d-b")
            #expect(g.sent.opens.withLock { $0.count } == 1, "the verifier session is kept while drafters are tried")
        }
        // Only full drafters: the session is opened again on its verifier, which drives it.
        let alone = try InProcessGateway()
        let aloneTokens = Array("Hello".utf8).map { alone.vocabulary.id([$0]) }
        try await alone.addReplica("v1", role: .verifier) { replica, message in
            guard case .sessionOpen(let open) = message else { return nil }
            alone.sent.opens.withLock { $0.append(open) }
            if open.selfDrive != nil {
                Task {
                    var report = TokenReport(session: open.session, offset: 0, tokens: aloneTokens, finish: .length)
                    report.epoch = open.epoch
                    try? await replica.post(.tokens(report))
                }
            }
            return .sessionOpened(SessionOpened(session: open.session, cachedTokens: 0, prefillMs: 0))
        }
        for id in ["d1", "d2"] {
            try await alone.addReplica(id, role: .drafter) { _, message in
                guard case .sessionStart = message else { return nil }
                return Self.refusal(retryAfterMs: 1_000)
            }
        }
        try await alone.test { client in
            let r = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 5])
            #expect(r.status == .ok, "\(r.text.prefix(300))")
            #expect((r.json?["choices"] as? [[String: Any]])?.first?["text"] as? String == "Hello")
            #expect((r.json?["tandem"] as? [String: Any])?["drafter"] as? String == "")
            let opens = alone.sent.opens.withLock { $0 }
            #expect(opens.map { $0.selfDrive != nil } == [false, true], "opened for a drafter, then to drive alone")
            let metrics = try await client.get("/metrics").text
            #expect(Self.metric(metrics, #"tandem_kv_admission_refusals_total{role="drafter"}"#) == 2, "\(metrics)")
            #expect(Self.metric(metrics, "tandem_verifier_only_sessions_total") == 1, "\(metrics)")
        }
    }

    /// The real verifier core behind the gateway, with a KV budget for two sessions: while two sessions
    /// opened on it are active a request is a 429 with `Retry-After`; once they are idle the request is
    /// admitted by evicting one's cache and its text is the target's own (served by the verifier alone),
    /// and the evicted session still decodes the target-only continuation.
    @Test func theVerifiersOwnRefusalBecomesA429AndIdleSessionsMakeRoom() async throws {
        let pair = try await SyntheticPair.make()
        let (core, engine, eog) = try await KVAdmissionTests.verifier(budgetSessions: 2.1, activeWindowMs: 1_500)
        defer { core.shutdown() }
        let reference = try TargetOnly(path: pair.target)
        let g = try InProcessGateway(model: pair.target)
        let replica = try await g.addReplica("v1", role: .verifier) { _, message in await core.handle(message) }
        core.selfDriven.attach { report in try? await replica.post(.tokens(report)) }
        for session in ["a", "b"] {
            guard case .sessionOpened? = await core.handle(KVAdmissionTests.open(session)) else {
                Issue.record("open \(session) failed")
                return
            }
        }
        let prompt: [Int32] = [100, 101, 102, 32, 102]
        try await g.test { client in
            let body: [String: Any] = ["prompt": prompt, "max_tokens": 24, "temperature": 0]
            let refused = try await client.post("/v1/completions", body)
            #expect(refused.status == .tooManyRequests, "\(refused.text.prefix(300))")
            #expect(refused.headers[.retryAfter].flatMap(Int.init).map { (1...2).contains($0) } == true,
                    "Retry-After: \(String(describing: refused.headers[.retryAfter]))")
            #expect((refused.json?["error"] as? [String: Any])?["code"] as? String == "kv_cache_full")
            #expect(core.counters.refusedSessions == 1)

            try await Task.sleep(for: .milliseconds(1_700))
            let served = try await client.post("/v1/completions", body)
            #expect(served.status == .ok, "\(served.text.prefix(300))")
            let text = (served.json?["choices"] as? [[String: Any]])?.first?["text"] as? String
            #expect(text == (try reference.generate(prompt: prompt, params: .greedy, maxTokens: 24)))
            #expect(core.counters.evictedForAdmission >= 1)
        }
        // The evicted session comes back and decodes the target's own continuation.
        let a = KVAdmissionTests.prompts["a"]!
        let expected = try TargetOnlyTokens.generate(engine, prompt: a, params: .greedy, maxTokens: 8,
                                                     isEndOfGeneration: { eog.contains($0) })
        guard case .verified(let result)? = await VerifierChunkedPrefillTests.decode(core, "a", after: a, steps: expected.count) else {
            Issue.record("the evicted session could not decode")
            return
        }
        #expect(result.tokens == expected)
    }
}
