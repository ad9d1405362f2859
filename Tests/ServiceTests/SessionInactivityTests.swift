import Foundation
@testable import Gateway
import Logging
import Synchronization
import TandemBus
import TandemService
import TandemWire
import Testing

/// A session whose replicas stop reporting ends with a clear error and is cleaned up, in process:
/// a real control socket and session manager, with fake verifier and drafter replicas that accept the
/// session and then never report.
@Suite(.timeLimit(.minutes(2)))
struct SessionInactivityTests {
    /// The gateway side plus two fake replicas that record the session messages they get.
    final class Harness: Sendable {
        let context: BusContext
        let control: ControlServer
        let manager: SessionManager
        let replicas: [BusEndpoint]
        /// Replicas that were told to close the session.
        let closes: Recorder
        let vocabulary: GatewaySessionTests.Vocabulary

        init(timeout: Duration) async throws {
            let logger = Logger(label: "test.inactivity")
            let context = try BusContext()
            self.context = context
            let registry = Registry(logger: logger)
            let control = try ControlServer(context: context, bind: "tcp://127.0.0.1:*", registry: registry, logger: logger)
            self.control = control
            let vocabulary = try GatewaySessionTests.Vocabulary([])
            self.vocabulary = vocabulary
            let manager = SessionManager(registry: registry, control: control, events: nil,
                                         tokenizer: vocabulary.tokenizer, modelName: "m", maxSessions: 4,
                                         inactivityTimeout: timeout, logger: logger)
            self.manager = manager
            let closes = Recorder()
            self.closes = closes
            control.reportHandler.install { await manager.receive($0) }
            guard let bound = control.endpoint.boundEndpoint else { throw BusError.invalidEndpoint("control not bound") }
            var replicas: [BusEndpoint] = []
            for (id, role) in [("v1", Role.verifier), ("d1", Role.drafter)] {
                let replica = try BusEndpoint.dealer(context: context, connect: bound, identity: PeerID(id))
                try replica.serve(logger: logger) { envelope, _ in
                    switch envelope.message {
                    case .sessionOpen(let open):
                        return .sessionOpened(SessionOpened(session: open.session, cachedTokens: 0, prefillMs: 0))
                    case .sessionStart: return .ack(Ack())
                    case .sessionClose: closes.ids.withLock { $0.append(id) }
                    default: break
                    }
                    return nil
                }
                replicas.append(replica)
                _ = await registry.register(Registration(role: role, replicaID: id, endpoint: "tcp://127.0.0.1:1", pid: 1,
                                                         version: "test"), now: ServiceClock.nowMillis())
            }
            self.replicas = replicas
            // The control ROUTER can address a replica once its DEALER has said hello.
            let deadline = ContinuousClock.now + .seconds(10)
            while ["v1", "d1"].contains(where: { control.endpoint.lastSeenMillis(PeerID($0)) == nil }),
                  ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        func start(promptTokens: [Int32] = [1, 2]) async throws -> (SessionID, AsyncStream<SessionUpdate>) {
            let request = GenerationRequest(promptTokens: promptTokens, sampling: WireSampling(), maxTokens: 50, stop: [],
                                            slo: SLO(), mode: .coupled, k: nil)
            return try await manager.start(request)
        }

        func stop() async {
            await context.shutdown()
        }
    }

    final class Recorder: Sendable {
        let ids = Mutex<[String]>([])
    }

    @Test func aLongPromptGetsTimeForTheDraftersPrefillBeforeItsFirstReport() async throws {
        let h = try await Harness(timeout: .seconds(2))
        let (id, _) = try await h.start(promptTokens: [Int32](repeating: 1, count: 2000))
        let t0 = ContinuousClock.now
        // 2,000 context tokens: 2 s + 120 s before the first report.
        await h.manager.expireInactive(now: t0 + .seconds(100))
        #expect(await h.manager.activeCount == 1)
        await h.manager.expireInactive(now: t0 + .seconds(123))
        #expect(await h.manager.activeCount == 0)
        // After a first report the plain timeout applies again.
        let (next, _) = try await h.start(promptTokens: [Int32](repeating: 1, count: 2000))
        let t1 = ContinuousClock.now
        await h.manager.receive(TokenReport(session: next, offset: 0, tokens: [h.vocabulary.id("a")]))
        await h.manager.expireInactive(now: t1 + .seconds(4))
        #expect(await h.manager.activeCount == 0)
        _ = id
        await h.stop()
    }

    @Test func aSessionWithoutReportsEndsWithA504AndIsCleanedUp() async throws {
        let h = try await Harness(timeout: .seconds(2))
        let (id, updates) = try await h.start()
        let t0 = ContinuousClock.now
        await h.manager.receive(TokenReport(session: id, offset: 0, tokens: [h.vocabulary.id("a")]))
        // Not yet inactive: nothing happens.
        await h.manager.expireInactive(now: t0 + .seconds(1))
        #expect(await h.manager.activeCount == 1)
        await h.manager.expireInactive(now: t0 + .seconds(4))
        #expect(await h.manager.activeCount == 0)

        var seen: [SessionUpdate] = []
        for await update in updates { seen.append(update) }
        #expect(seen.count == 2)
        if case .text(let text) = seen.first { #expect(text == "a") } else { Issue.record("first update: \(seen)") }
        guard case .failed(let error) = seen.last else {
            Issue.record("the session must end with an error, got \(seen)")
            return
        }
        #expect(error.status == .gatewayTimeout)
        #expect(error.code == "session_inactive" && error.type == "server_error")
        #expect(error.message.contains("2 s"))
        // Both replicas are told to close the session.
        let deadline = ContinuousClock.now + .seconds(5)
        while h.closes.ids.withLock({ Set($0) }) != ["v1", "d1"], ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(h.closes.ids.withLock { Set($0) } == ["v1", "d1"])
        // Later reports for the ended session are ignored.
        await h.manager.receive(TokenReport(session: id, offset: 1, tokens: [h.vocabulary.id("b")]))
        #expect(await h.manager.activeCount == 0)
        await h.stop()
    }

    /// Accepted reports count as progress; a report that leaves a gap (one was lost before it) does not,
    /// so it cannot keep a stuck session alive.
    @Test func onlyAcceptedReportsKeepASessionAlive() async throws {
        let h = try await Harness(timeout: .seconds(2))
        let (id, updates) = try await h.start()
        let t0 = ContinuousClock.now
        await h.manager.receive(TokenReport(session: id, offset: 0, tokens: [h.vocabulary.id("a")]))
        try await Task.sleep(for: .milliseconds(1200))
        let t1 = ContinuousClock.now
        await h.manager.receive(TokenReport(session: id, offset: 1, tokens: [h.vocabulary.id("c")]))
        await h.manager.expireInactive(now: t0 + .milliseconds(2600))
        #expect(await h.manager.activeCount == 1, "the report at t1 is progress")
        try await Task.sleep(for: .milliseconds(1200))
        await h.manager.receive(TokenReport(session: id, offset: 5, tokens: [h.vocabulary.id("x")]))
        await h.manager.expireInactive(now: t1 + .milliseconds(2600))
        #expect(await h.manager.activeCount == 0, "a report with a gap is not progress")
        var texts = ""
        var failed = false
        for await update in updates {
            switch update {
            case .text(let t): texts += t
            case .failed(let e): failed = e.code == "session_inactive"
            case .finished: Issue.record("must not finish normally")
            }
        }
        #expect(texts == "ac" && failed)
        await h.stop()
    }
}
