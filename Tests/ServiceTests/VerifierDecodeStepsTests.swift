import Foundation
import Logging
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// A K = 0 round may ask the verifier for several tokens (``VerifyRequest/decodeSteps``): the verifier
/// decodes them step by step in its batches and answers once. In-process, on the synthetic target.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct VerifierDecodeStepsTests {
    static let prompt: [Int32] = [72, 101, 108, 108, 111]

    static func core() async throws -> (VerifierCore, ForwardEngine) {
        let pair = try await SyntheticPair.make()
        let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let engine = ForwardEngine(model: model, threads: 1)
        var config = VerifierCore.Configuration()
        config.endOfGeneration = try Tokenizer(gguf: model.gguf).endOfGenerationIDs
        return (VerifierCore(engine: engine, modelName: "syn", replicaID: "v-test", configuration: config, events: nil,
                             logger: Logger(label: "test")), engine)
    }

    static func open(_ core: VerifierCore, session: String) async throws {
        let reply = await core.handle(.sessionOpen(SessionOpen(
            session: session, tokens: prompt, promptLength: prompt.count,
            sampling: WireSampling(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0),
            mode: .coupled, capacity: prompt.count + 64)))
        guard case .sessionOpened? = reply else { throw ReferenceError("open failed: \(String(describing: reply))") }
    }

    @Test func severalDecodeStepsAnswerTheTargetsOwnTokensAtOnce() async throws {
        let (core, engine) = try await Self.core()
        defer { core.shutdown() }
        let expected = try TargetOnlyTokens.generate(engine, prompt: Self.prompt, params: .greedy, maxTokens: 12,
                                                     isEndOfGeneration: { _ in false })
        try await Self.open(core, session: "a")
        var committed = Self.prompt
        // 5 steps, then one plain step, then 6 steps: each continues where the last answer ended.
        for steps in [5, 1, 6] {
            let reply = await core.handle(.verify(VerifyRequest(
                session: "a", position: committed.count, tokens: [], lastToken: committed.last!,
                deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: 0, decodeSteps: steps)))
            guard case .verified(let result)? = reply else {
                Issue.record("verify failed: \(String(describing: reply))")
                return
            }
            #expect(result.tokens.count == steps)
            #expect(result.position == committed.count)
            #expect(result.accepted == 0)
            committed += result.tokens
        }
        #expect(Array(committed.dropFirst(Self.prompt.count)) == Array(expected.prefix(12)))
    }

    /// A new session's open may ask for its first tokens (``SessionOpen/firstTokens``): they come back with the
    /// answer, are the target's own, and the session continues from them as a drafter's rounds would.
    @Test func anOpenReturnsTheFirstTokensAndTheSessionContinuesFromThem() async throws {
        let (core, engine) = try await Self.core()
        defer { core.shutdown() }
        let expected = try TargetOnlyTokens.generate(engine, prompt: Self.prompt, params: .greedy, maxTokens: 6,
                                                     isEndOfGeneration: { _ in false })
        var open = SessionOpen(session: "f", tokens: Self.prompt, promptLength: Self.prompt.count,
                               sampling: WireSampling(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0),
                               mode: .coupled, capacity: Self.prompt.count + 64)
        open.firstTokens = 2
        guard case .sessionOpened(let opened)? = await core.handle(.sessionOpen(open)) else {
            Issue.record("open failed")
            return
        }
        #expect(opened.tokens == Array(expected.prefix(2)))
        let committed = Self.prompt + (opened.tokens ?? [])
        let reply = await core.handle(.verify(VerifyRequest(
            session: "f", position: committed.count, tokens: [], lastToken: committed.last!,
            deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: 0, decodeSteps: 4)))
        guard case .verified(let result)? = reply else {
            Issue.record("verify after the first tokens failed: \(String(describing: reply))")
            return
        }
        #expect(opened.tokens! + result.tokens == expected)

        // Without the field nothing is decoded; an absurd count is refused before anything is opened.
        open.session = "g"
        open.firstTokens = nil
        guard case .sessionOpened(let plain)? = await core.handle(.sessionOpen(open)) else {
            Issue.record("open without first tokens failed")
            return
        }
        #expect(plain.tokens == nil)
        open.session = "h"
        open.firstTokens = 100_000
        guard case .error(let refusal)? = await core.handle(.sessionOpen(open)) else {
            Issue.record("an absurd first_tokens was accepted")
            return
        }
        #expect(refusal.message.contains("first_tokens"))
    }

    @Test func anOutOfRangeStepCountIsRefused() async throws {
        let (core, _) = try await Self.core()
        defer { core.shutdown() }
        try await Self.open(core, session: "b")
        let reply = await core.handle(.verify(VerifyRequest(
            session: "b", position: Self.prompt.count, tokens: [], lastToken: Self.prompt.last!,
            deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: 0, decodeSteps: 10_000)))
        guard case .error(let error)? = reply else {
            Issue.record("expected an error, got \(String(describing: reply))")
            return
        }
        #expect(error.code == .invalidArgument)
    }
}
