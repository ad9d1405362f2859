import Foundation
@testable import Gateway
import Logging
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import DrafterAgent
@testable import Verifier

/// Placement epochs fence abandoned placements: once a session is placed again, the verifier refuses
/// the old drafter's requests and reopens, the drafter refuses an older start or close, and the gateway
/// ignores the old placement's token reports. In-process, on the synthetic models and a real control socket.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct PlacementEpochTests {
    static let prompt: [Int32] = [72, 101, 108, 108, 111]

    static func open(epoch: UInt64?) -> WireMessage {
        var open = SessionOpen(session: "s", tokens: prompt, promptLength: prompt.count, sampling: WireSampling(),
                               mode: .coupled, capacity: prompt.count + 64)
        open.epoch = epoch
        return .sessionOpen(open)
    }

    static func verify(epoch: UInt64?, draft: [Int32] = [1, 2]) -> WireMessage {
        var request = VerifyRequest(session: "s", position: prompt.count, tokens: draft, lastToken: prompt.last!,
                                    deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: draft.count)
        request.epoch = epoch
        return .verify(request)
    }

    @Test func twoDraftersDrivingOneVerifierSessionTheOlderPlacementIsRefused() async throws {
        let pair = try await SyntheticPair.make()
        let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let core = VerifierCore(engine: ForwardEngine(model: model, threads: 1), modelName: "syn", replicaID: "v-test",
                                configuration: VerifierCore.Configuration(), events: nil, logger: Logger(label: "test"))
        defer { core.shutdown() }
        // Drafter A drives placement 1.
        guard case .sessionOpened? = await core.handle(Self.open(epoch: 1)),
              case .verified? = await core.handle(Self.verify(epoch: 1)) else {
            Issue.record("placement 1 was not served")
            return
        }
        // The gateway re-places the session: drafter B reopens it with epoch 2 and verifies.
        guard case .sessionOpened? = await core.handle(Self.open(epoch: 2)),
              case .verified? = await core.handle(Self.verify(epoch: 2)) else {
            Issue.record("placement 2 was not served")
            return
        }
        // Drafter A, still running, is refused: its requests, its reopen and its close.
        for message in [Self.verify(epoch: 1), Self.open(epoch: 1)] {
            guard case .error(let error)? = await core.handle(message) else {
                Issue.record("the older placement was served: \(message.kind)")
                continue
            }
            #expect(error.code == .staleEpoch)
        }
        var close = SessionClose(session: "s", reason: "old")
        close.epoch = 1
        _ = await core.handle(.sessionClose(close))
        #expect(core.load.activeSessions == 1)
        guard case .verified? = await core.handle(Self.verify(epoch: 2)) else {
            Issue.record("the current placement lost its session")
            return
        }
        // A third placement fences the second in turn.
        guard case .sessionOpened? = await core.handle(Self.open(epoch: 3)) else {
            Issue.record("placement 3 was not opened")
            return
        }
        guard case .error(let error)? = await core.handle(Self.verify(epoch: 2)) else {
            Issue.record("placement 2 was served after placement 3")
            return
        }
        #expect(error.code == .staleEpoch)
    }

    @Test func theDrafterRefusesAStartOrCloseOfAnOlderPlacement() async throws {
        let context = try BusContext()
        let (core, _) = try await SyntheticPair.drafterCore(context: context)
        func start(_ epoch: UInt64) -> WireMessage {
            var start = SessionStart(session: "s", promptTokens: Self.prompt, sampling: WireSampling(), maxTokens: 4,
                                     verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0)
            start.epoch = epoch
            return .sessionStart(start)
        }
        guard case .ack? = await core.handle(start(2)) else {
            Issue.record("placement 2 was refused")
            return
        }
        guard case .error(let error)? = await core.handle(start(1)) else {
            Issue.record("placement 1 was started after placement 2")
            return
        }
        #expect(error.code == .staleEpoch)
        var close = SessionClose(session: "s", reason: "old")
        close.epoch = 1
        _ = await core.handle(.sessionClose(close))
        #expect(core.load.activeSessions == 1)
        close.epoch = 2
        _ = await core.handle(.sessionClose(close))
        #expect(core.load.activeSessions == 0)
        await core.shutdown()
        await context.shutdown()
    }

    @Test func theGatewayIgnoresTokenReportsOfAnOlderPlacement() async throws {
        let harness = try await SessionInactivityTests.Harness(timeout: .seconds(60))
        let (id, stream) = try await harness.start()
        var old = TokenReport(session: id, offset: 0, tokens: [72])  // "H"
        old.epoch = 0
        await harness.manager.receive(old)
        var current = TokenReport(session: id, offset: 0, tokens: [105], finish: .length)  // "i"
        current.epoch = 1
        await harness.manager.receive(current)
        var text = ""
        for await update in stream {
            if case .text(let piece) = update { text += piece }
        }
        #expect(text == "i")
        await harness.stop()
    }

    @Test func onFailoverTheReplicaDeclaredDeadIsToldToCloseAndItsReportsAreIgnored() async throws {
        let h = try await SessionInactivityTests.Harness(timeout: .seconds(60))
        let (id, stream) = try await h.start()
        var first = TokenReport(session: id, offset: 0, tokens: [72])  // "H", placement 1
        first.epoch = 1
        await h.manager.receive(first)
        // The drafter is declared dead (it may only be paused): the session is placed again.
        let dead = try #require(await h.control.registry.info("d1"))
        await h.manager.replicaDied(dead)
        let deadline = ContinuousClock.now + .seconds(5)
        while !h.closes.ids.withLock({ $0.contains("d1") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(h.closes.ids.withLock { $0.contains("d1") }, "the replica declared dead was not told to close")
        // The paused drafter resumes and reports with its old epoch: not history.
        var late = TokenReport(session: id, offset: 1, tokens: [88])  // "X"
        late.epoch = 1
        await h.manager.receive(late)
        var current = TokenReport(session: id, offset: 1, tokens: [105], finish: .length)  // "i", placement 2
        current.epoch = 2
        await h.manager.receive(current)
        var text = ""
        for await update in stream {
            if case .text(let piece) = update { text += piece }
        }
        #expect(text == "Hi")
        await h.stop()
    }
}
