import Foundation
@testable import Gateway
import Logging
import Synchronization
import TandemBus
import TandemService
import TandemWire
import Testing

/// Heartbeats have their own path through the gateway's control socket: a flood of token reports that the
/// session manager applies slowly does not delay them, so a live replica is never declared dead for the
/// gateway's own load. Reports are still applied in the order they were sent. In-process, real sockets.
@Suite(.timeLimit(.minutes(2)))
struct ControlHeartbeatTests {
    @Test func aFloodOfTokenReportsDoesNotMakeAHeartbeatingReplicaDie() async throws {
        let logger = Logger(label: "test.heartbeat")
        let context = try BusContext()
        // Dead after 3 missed heartbeats of 200 ms.
        let registry = Registry(policy: Registry.Policy(heartbeatIntervalMs: 200, missedHeartbeatsAllowed: 3), logger: logger)
        let control = try ControlServer(context: context, bind: "tcp://127.0.0.1:*", registry: registry, logger: logger)
        // A busy session manager: 20 ms per report.
        let applied = Mutex<[Int]>([])
        control.reportHandler.install { report in
            try? await Task.sleep(for: .milliseconds(20))
            applied.withLock { $0.append(report.offset) }
        }
        let bound = try #require(control.endpoint.boundEndpoint)
        let agent = try ControlAgent(context: context, gateway: bound,
                                     registration: Registration(role: .drafter, replicaID: "d1", endpoint: nil, pid: 1,
                                                                version: "test"),
                                     logger: logger)
        let running = Task { try await agent.run() }
        for _ in 0..<500 where !agent.isRegistered { try await Task.sleep(for: .milliseconds(10)) }
        #expect(agent.isRegistered)

        // 150 reports (3 s of session work) on the same DEALER as the heartbeats.
        let reports = 150
        for i in 0..<reports {
            try await agent.endpoint.post(.tokens(TokenReport(session: "s", offset: i, tokens: [1])))
        }
        var deaths = 0
        let until = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < until {
            try await Task.sleep(for: .milliseconds(50))
            deaths += await registry.sweep(now: ServiceClock.nowMillis()).count
        }
        #expect(deaths == 0, "a heartbeating replica was declared dead while the gateway applied token reports")
        #expect(await registry.info("d1")?.alive == true)
        #expect(applied.withLock { $0.count } < reports, "the reports were applied too fast to load the gateway")

        // Every report is applied, in order.
        for _ in 0..<500 where applied.withLock({ $0.count }) < reports { try await Task.sleep(for: .milliseconds(10)) }
        #expect(applied.withLock { $0 } == Array(0..<reports))
        running.cancel()
        _ = await running.result
        await context.shutdown()
    }
}
