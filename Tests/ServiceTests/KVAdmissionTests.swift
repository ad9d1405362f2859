import Foundation
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import DrafterAgent
@testable import Verifier

/// Admission by memory (docs/design.md, "Admission by memory"), in-process on the synthetic pair: with a
/// KV budget for two sessions, a third is refused with `resource_exhausted` and a retry hint while the two
/// are active, and admitted once they are idle, by evicting an idle session's cache; the evicted session
/// rebuilds its cache when it returns and still produces the target-only output. The same on the
/// drafter's draft caches. The gateway's answers (another replica, verifier-only serving, 429) are in
/// `GatewayAdmissionTests`.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct KVAdmissionTests {
    static let greedy = WireSampling(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0)
    static let prompts: [String: [Int32]] = [
        "a": [72, 101, 108, 108, 111], "b": [40, 32, 108, 105, 107], "c": [100, 101, 102, 32, 102],
    ]
    /// Capacity that makes a session's charge its tokens plus a whole block.
    static let capacity = 5 + KVCache.blockPositions + 40

    static func open(_ session: String, capacity: Int = capacity) -> WireMessage {
        let prompt = prompts[session]!
        return .sessionOpen(SessionOpen(session: session, tokens: prompt, promptLength: prompt.count, sampling: greedy,
                                        mode: .coupled, capacity: capacity))
    }

    static func verifier(budgetSessions: Double, activeWindowMs: Double) async throws
        -> (core: VerifierCore, engine: ForwardEngine, endOfGeneration: Set<Int32>) {
        let pair = try await SyntheticPair.make()
        let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let engine = ForwardEngine(model: model, threads: 1)
        var config = VerifierCore.Configuration()
        config.endOfGeneration = try Tokenizer(gguf: model.gguf).endOfGenerationIDs
        config.kvBudgetBytes = Int(budgetSessions * Double(engine.kvBytesPerPosition * (5 + KVCache.blockPositions)))
        config.activeWindowMs = activeWindowMs
        let core = VerifierCore(engine: engine, modelName: "syn", replicaID: "v-test", configuration: config,
                                events: nil, logger: Logger(label: "test"))
        return (core, engine, config.endOfGeneration)
    }

    @Test func aThirdActiveSessionIsRefusedAndAnIdleSessionsCacheIsEvictedInstead() async throws {
        let (core, engine, eog) = try await Self.verifier(budgetSessions: 2.5, activeWindowMs: 400)
        defer { core.shutdown() }
        for session in ["a", "b"] {
            guard case .sessionOpened? = await core.handle(Self.open(session)) else {
                Issue.record("open \(session) failed")
                return
            }
        }
        // a and b were just prefilled: active. c would need the memory of one of them.
        guard case .error(let refusal)? = await core.handle(Self.open("c")) else {
            Issue.record("a third active session was admitted")
            return
        }
        #expect(refusal.code == .resourceExhausted)
        #expect((1...400).contains(refusal.retryAfterMs ?? 0), "retry hint: \(String(describing: refusal.retryAfterMs))")
        #expect(core.counters.refusedSessions == 1)
        #expect(core.counters.evictedForAdmission == 0)
        guard case .healthReply(let health)? = await core.handle(.health(HealthQuery())) else {
            Issue.record("no health reply")
            return
        }
        #expect(health.details["refused_sessions"] == "1")
        #expect(core.load.activeSessions == 2, "a refused session leaves nothing behind")

        // Both go idle; b decodes again (active), a stays idle: c is admitted by evicting a's cache.
        try await Task.sleep(for: .milliseconds(600))
        let b1 = await VerifierChunkedPrefillTests.decode(core, "b", after: Self.prompts["b"]!, steps: 1)
        guard case .verified? = b1 else {
            Issue.record("decode of b failed: \(String(describing: b1))")
            return
        }
        guard case .sessionOpened? = await core.handle(Self.open("c")) else {
            Issue.record("c was refused although a is idle")
            return
        }
        #expect(core.counters.evictedForAdmission == 1)
        #expect(core.counters.refusedSessions == 1)

        // a comes back: its cache is rebuilt from its committed tokens, and the output is the target's own.
        for session in ["a", "c", "b"] {
            let prompt = Self.prompts[session]!
            let expected = try TargetOnlyTokens.generate(engine, prompt: prompt, params: .greedy, maxTokens: 24,
                                                         isEndOfGeneration: { eog.contains($0) })
            var committed = prompt
            var generated: [Int32] = []
            while generated.count < expected.count {
                let reply = await VerifierChunkedPrefillTests.decode(core, session, after: committed,
                                                                     steps: min(8, expected.count - generated.count))
                guard case .verified(let result)? = reply else {
                    Issue.record("decode of \(session) failed: \(String(describing: reply))")
                    return
                }
                committed += result.tokens
                generated += result.tokens
                if result.tokens.contains(where: { eog.contains($0) }) { break }
            }
            #expect(Array(generated.prefix(expected.count)) == expected, "session \(session)")
        }
    }

    @Test func aSessionLargerThanTheWholeBudgetIsAdmittedWhenNothingIsActive() async throws {
        let (core, _, _) = try await Self.verifier(budgetSessions: 0.5, activeWindowMs: 400)
        defer { core.shutdown() }
        guard case .sessionOpened? = await core.handle(Self.open("a")) else {
            Issue.record("a session alone was refused")
            return
        }
        guard case .error(let refusal)? = await core.handle(Self.open("b")) else {
            Issue.record("b was admitted beside an active session")
            return
        }
        #expect(refusal.code == .resourceExhausted)
    }

    // MARK: Drafter

    /// Holds verify requests until opened, so a drafter's sessions wait for their verifier (idle) with their
    /// draft caches built.
    final class Gate: Sendable {
        private let open = Atomic<Bool>(false)
        func release() { open.store(true, ordering: .relaxed) }
        func wait() async {
            while !open.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(5)) }
        }
    }

    /// Token reports per session, applied like the gateway does (duplicates dropped).
    final class Histories: Sendable {
        private let state = Mutex<[SessionID: (tokens: [Int32], finished: Bool)]>([:])
        func apply(_ report: TokenReport) {
            state.withLock { s in
                var entry = s[report.session] ?? ([], false)
                let skip = entry.tokens.count - report.offset
                if skip >= 0, skip <= report.tokens.count { entry.tokens += report.tokens.dropFirst(skip) }
                if report.finish != nil { entry.finished = true }
                s[report.session] = entry
            }
        }
        func finished(_ sessions: [SessionID]) -> Bool { state.withLock { s in sessions.allSatisfy { s[$0]?.finished == true } } }
        func tokens(_ session: SessionID) -> [Int32] { state.withLock { $0[session]?.tokens ?? [] } }
    }

    @Test func theDrafterRefusesAThirdDraftingSessionAndEvictsAnIdleOnesCache() async throws {
        let pair = try await SyntheticPair.make()
        let targetModel = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let targetEngine = ForwardEngine(model: targetModel, threads: 1)
        let eog = try Tokenizer(gguf: targetModel.gguf).endOfGenerationIDs
        var verifierConfig = VerifierCore.Configuration()
        verifierConfig.endOfGeneration = eog
        let verifier = VerifierCore(engine: targetEngine, modelName: "syn", replicaID: "v-test",
                                    configuration: verifierConfig, events: nil, logger: Logger(label: "test"))
        defer { verifier.shutdown() }
        let context = try BusContext()
        let gate = Gate()
        let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
        try router.serve(logger: Logger(label: "test.verifier")) { envelope, _ in
            if case .verify = envelope.message { await gate.wait() }
            return await verifier.handle(envelope.message)
        }
        let maxTokens = 24
        // A session's draft cache is charged min(capacity, tokens + block) = prompt + max_tokens + K + 2 here.
        let charge = 5 + maxTokens + 4 + 2
        var configuration = DrafterCore.Configuration()
        configuration.maxK = 4
        let (drafter, _) = try await SyntheticPair.drafterCore(context: context, configuration: configuration, pair: pair,
                                                                kvBudgetPositions: 2 * charge + charge / 2,
                                                                activeWindowMs: 300)
        let histories = Histories()
        drafter.setReportTransport { histories.apply($0) }
        func start(_ session: String) -> WireMessage {
            .sessionStart(SessionStart(session: session, promptTokens: Self.prompts[session]!, sampling: Self.greedy,
                                       maxTokens: maxTokens, mode: .coupled, verifierID: "v-test",
                                       verifierEndpoint: router.boundEndpoint!, k: 4,
                                       arrivedAt: ServiceClock.nowMillis()))
        }
        for session in ["a", "b", "c"] {
            guard case .sessionOpened? = await verifier.handle(Self.open(session, capacity: 5 + maxTokens + 16)) else {
                Issue.record("verifier open \(session) failed")
                return
            }
        }
        for session in ["a", "b"] {
            guard case .ack? = await drafter.handle(start(session)) else {
                Issue.record("drafter start \(session) failed")
                return
            }
        }
        guard case .error(let refusal)? = await drafter.handle(start("c")) else {
            Issue.record("the drafter admitted a third drafting session")
            return
        }
        #expect(refusal.code == .resourceExhausted)
        #expect(refusal.retryAfterMs != nil)
        guard case .healthReply(let health)? = await drafter.handle(.health(HealthQuery())) else {
            Issue.record("no health reply")
            return
        }
        #expect(health.details["refused_sessions"] == "1")

        // a and b drafted their first round and wait for the (held) verifier: idle once the window passes.
        try await Task.sleep(for: .milliseconds(500))
        guard case .ack? = await drafter.handle(start("c")) else {
            Issue.record("c was refused although a and b are idle")
            return
        }
        #expect(drafter.source.admissionCounts.evicted >= 1)
        gate.release()

        // Every session finishes with the target's own greedy output, the evicted one included.
        let deadline = ContinuousClock.now + .seconds(60)
        while !histories.finished(["a", "b", "c"]), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        for session in ["a", "b", "c"] {
            let expected = try TargetOnlyTokens.generate(targetEngine, prompt: Self.prompts[session]!, params: .greedy,
                                                         maxTokens: maxTokens, isEndOfGeneration: { eog.contains($0) })
            #expect(histories.tokens(session) == expected, "session \(session)")
        }
        await drafter.shutdown()
        await router.close()
        await context.shutdown()
    }
}
