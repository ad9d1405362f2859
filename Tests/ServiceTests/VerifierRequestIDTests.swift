import Foundation
import Logging
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// A drafter's retry (same request id) is verified once, whether the first request is still queued, inside
/// a batch or already answered; a request long past its deadline is dropped with a clear error instead of
/// taking a place in a batch. In-process, on the synthetic target.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct VerifierRequestIDTests {
    static let prompt: [Int32] = [72, 101, 108, 108, 111]

    static func core(_ configure: (inout VerifierCore.Configuration) -> Void = { _ in }) async throws -> VerifierCore {
        let pair = try await SyntheticPair.make()
        let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        var config = VerifierCore.Configuration()
        configure(&config)
        let core = VerifierCore(engine: ForwardEngine(model: model, threads: 1), modelName: "syn", replicaID: "v-test",
                                configuration: config, events: nil, logger: Logger(label: "test"))
        guard case .sessionOpened? = await core.handle(VerifierChunkedPrefillTests.openMessage("s", prompt)) else {
            core.shutdown()
            throw TestFailure("session open failed")
        }
        return core
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func request(id: UInt64?, draft: [Int32] = [1, 2], steps: Int? = nil,
                        deadline: EpochMillis = ServiceClock.nowMillis() + 10_000) -> WireMessage {
        .verify(VerifyRequest(session: "s", position: prompt.count, tokens: draft, lastToken: prompt.last!,
                              deadline: deadline, draftMs: 0, k: draft.count, decodeSteps: steps, requestID: id))
    }

    @Test func aRetryArrivingWhileTheFirstIsQueuedIsVerifiedOnce() async throws {
        let core = try await Self.core()
        defer { core.shutdown() }
        // Both arrive within one batch window.
        async let first = core.handle(Self.request(id: 7))
        async let retry = core.handle(Self.request(id: 7))
        let (a, b) = await (first, retry)
        guard case .verified(let resultA)? = a, case .verified(let resultB)? = b else {
            Issue.record("expected two verified answers, got \(String(describing: a)) and \(String(describing: b))")
            return
        }
        #expect(resultA == resultB)
        #expect(core.counters.verified == 1)
        #expect(core.counters.duplicates == 1)
    }

    @Test func aRetryAfterTheAnswerGetsTheSameAnswerWithoutASecondVerification() async throws {
        let core = try await Self.core()
        defer { core.shutdown() }
        let a = await core.handle(Self.request(id: 11))
        let b = await core.handle(Self.request(id: 11))
        guard case .verified(let resultA)? = a, case .verified = b else {
            Issue.record("expected two verified answers, got \(String(describing: a)) and \(String(describing: b))")
            return
        }
        #expect(a == b)
        #expect(resultA.position == Self.prompt.count)
        #expect(core.counters.verified == 1)
        // A different id is a new round: verified again.
        guard case .verified? = await core.handle(Self.request(id: 12)) else {
            Issue.record("a new request id was not verified")
            return
        }
        #expect(core.counters.verified == 2)
    }

    @Test func aRetryArrivingWhileTheFirstIsInABatchWaitsForItsAnswer() async throws {
        let core = try await Self.core()
        defer { core.shutdown() }
        let steps = 32
        async let first = core.handle(Self.request(id: 21, draft: [], steps: steps))
        // The multi-step decode is in the batches (one step per batch) when the retry arrives.
        for _ in 0..<2000 where core.counters.verified < 2 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(core.counters.verified >= 2)
        let retry = await core.handle(Self.request(id: 21, draft: [], steps: steps))
        let original = await first
        guard case .verified(let a)? = original, case .verified(let b)? = retry else {
            Issue.record("expected two verified answers, got \(String(describing: original)) and \(String(describing: retry))")
            return
        }
        #expect(a == b)
        #expect(a.tokens.count == steps)
        // One verification per step at most (fewer when the verifier's own prompt lookup accepts several
        // tokens in one step): the retry added none.
        #expect(core.counters.verified <= steps)
        #expect(core.counters.duplicates == 1)
    }

    @Test func aRequestWithoutAnIDIsNotDeduplicated() async throws {
        let core = try await Self.core()
        defer { core.shutdown() }
        _ = await core.handle(Self.request(id: nil))
        _ = await core.handle(Self.request(id: nil))
        #expect(core.counters.verified == 2)
        #expect(core.counters.duplicates == 0)
    }

    @Test func aRequestLongPastItsDeadlineIsDroppedWithAClearError() async throws {
        let core = try await Self.core { $0.expiryGraceMs = 200 }
        defer { core.shutdown() }
        let stale = await core.handle(Self.request(id: 31, deadline: ServiceClock.nowMillis() - 1_000))
        guard case .error(let error)? = stale else {
            Issue.record("expected an error, got \(String(describing: stale))")
            return
        }
        #expect(error.code == .deadlineExceeded)
        #expect(core.counters.expired == 1)
        #expect(core.counters.verified == 0)
        // Past its deadline, but not long past: still verified.
        guard case .verified? = await core.handle(Self.request(id: 32, deadline: ServiceClock.nowMillis() - 50)) else {
            Issue.record("a request just past its deadline was dropped")
            return
        }
        #expect(core.counters.verified == 1)
    }
}
