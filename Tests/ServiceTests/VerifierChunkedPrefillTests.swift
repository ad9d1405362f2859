import Foundation
import Logging
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// A new session's prompt is prefilled in chunks inside the verifier's batches, so sessions already
/// running keep getting answers while it is prefilled; bad input is refused per request, never per batch.
/// In-process, on the synthetic target.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct VerifierChunkedPrefillTests {
    static let shortPrompt: [Int32] = [72, 101, 108, 108, 111]
    /// 61 tokens: at most 4 per batch, at least 15 batches of prefill.
    static let longPrompt: [Int32] = (0..<61).map { Int32(32 + ($0 * 37) % 90) }
    static let greedy = WireSampling(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0)

    static func core(maxChunk: Int = 4, minChunk: Int = 2) async throws -> (VerifierCore, ForwardEngine) {
        let pair = try await SyntheticPair.make()
        let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let engine = ForwardEngine(model: model, threads: 1)
        var config = VerifierCore.Configuration()
        config.maxPrefillChunk = maxChunk
        config.minPrefillChunk = minChunk
        return (VerifierCore(engine: engine, modelName: "syn", replicaID: "v-test", configuration: config, events: nil,
                             logger: Logger(label: "test")), engine)
    }

    static func openMessage(_ session: String, _ prompt: [Int32]) -> WireMessage {
        .sessionOpen(SessionOpen(session: session, tokens: prompt, promptLength: prompt.count, sampling: greedy,
                                 mode: .coupled, capacity: prompt.count + 64))
    }

    static func decode(_ core: VerifierCore, _ session: String, after committed: [Int32], steps: Int) async -> WireMessage? {
        await core.handle(.verify(VerifyRequest(
            session: session, position: committed.count, tokens: [], lastToken: committed.last!,
            deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: 0, decodeSteps: steps)))
    }

    /// Order in which answers arrive.
    final class Arrivals: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        func add(_ name: String) { lock.withLock { names.append(name) } }
        var order: [String] { lock.withLock { names } }
    }

    @Test func runningSessionsAreAnsweredWhileALongPromptIsPrefilled() async throws {
        let (core, engine) = try await Self.core()
        defer { core.shutdown() }
        guard case .sessionOpened? = await core.handle(Self.openMessage("a", Self.shortPrompt)) else {
            Issue.record("open a failed")
            return
        }
        let arrivals = Arrivals()
        async let longOpen: WireMessage? = {
            let reply = await core.handle(Self.openMessage("b", Self.longPrompt))
            arrivals.add("b opened")
            return reply
        }()
        // Wait until b exists (its prefill is queued), then ask for 6 tokens of a.
        for _ in 0..<500 where core.load.activeSessions < 2 { try await Task.sleep(for: .milliseconds(2)) }
        let decoded = await Self.decode(core, "a", after: Self.shortPrompt, steps: 6)
        arrivals.add("a decoded")
        let opened = await longOpen
        #expect(arrivals.order == ["a decoded", "b opened"])
        guard case .verified(let a)? = decoded, case .sessionOpened(let b)? = opened else {
            Issue.record("unexpected replies: \(String(describing: decoded)), \(String(describing: opened))")
            return
        }
        #expect(b.cachedTokens == Self.longPrompt.count - 1)
        // The chunked prefill left b's cache exactly as a one-call prefill would: same greedy continuation.
        let expectedA = try TargetOnlyTokens.generate(engine, prompt: Self.shortPrompt, params: .greedy, maxTokens: 6,
                                                      isEndOfGeneration: { _ in false })
        #expect(a.tokens == Array(expectedA.prefix(6)))
        guard case .verified(let bTokens)? = await Self.decode(core, "b", after: Self.longPrompt, steps: 8) else {
            Issue.record("decode of b failed")
            return
        }
        let expectedB = try TargetOnlyTokens.generate(engine, prompt: Self.longPrompt, params: .greedy, maxTokens: 8,
                                                      isEndOfGeneration: { _ in false })
        #expect(bTokens.tokens == Array(expectedB.prefix(8)))
    }

    @Test func aPromptWithATokenOutsideTheVocabularyIsRefused() async throws {
        let (core, _) = try await Self.core()
        defer { core.shutdown() }
        let reply = await core.handle(Self.openMessage("x", [72, 1 << 30, 5]))
        guard case .error(let error)? = reply else {
            Issue.record("expected an error, got \(String(describing: reply))")
            return
        }
        #expect(error.code == .invalidArgument)
        #expect(core.load.activeSessions == 0)
    }

    @Test func aBadDraftFailsOnlyItsOwnRequest() async throws {
        let (core, engine) = try await Self.core()
        defer { core.shutdown() }
        for name in ["good", "bad"] {
            guard case .sessionOpened? = await core.handle(Self.openMessage(name, Self.shortPrompt)) else {
                Issue.record("open \(name) failed")
                return
            }
        }
        func verify(_ session: String, _ draft: [Int32]) async -> WireMessage? {
            await core.handle(.verify(VerifyRequest(
                session: session, position: Self.shortPrompt.count, tokens: draft, lastToken: Self.shortPrompt.last!,
                deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: draft.count)))
        }
        // Both requests arrive within one batch window.
        async let good = verify("good", [1, 2, 3])
        async let bad = verify("bad", [1, -7, 3])
        let (goodReply, badReply) = await (good, bad)
        guard case .error(let error)? = badReply else {
            Issue.record("expected an error, got \(String(describing: badReply))")
            return
        }
        #expect(error.code == .invalidArgument)
        guard case .verified(let result)? = goodReply else {
            Issue.record("the good request failed with the bad one: \(String(describing: goodReply))")
            return
        }
        let expected = try TargetOnlyTokens.generate(engine, prompt: Self.shortPrompt, params: .greedy, maxTokens: 1,
                                                     isEndOfGeneration: { _ in false })
        #expect(result.tokens.first == expected.first)
    }

    @Test func closingASessionDuringItsPrefillAnswersTheOpenWithAnError() async throws {
        let (core, _) = try await Self.core(maxChunk: 2, minChunk: 1)
        defer { core.shutdown() }
        async let open = core.handle(Self.openMessage("c", Self.longPrompt))
        for _ in 0..<500 where core.load.activeSessions < 1 { try await Task.sleep(for: .milliseconds(1)) }
        _ = await core.handle(.sessionClose(SessionClose(session: "c", reason: "test")))
        guard case .error(let error)? = await open else {
            Issue.record("expected an error")
            return
        }
        #expect(error.code == .unknownSession)
    }
}
