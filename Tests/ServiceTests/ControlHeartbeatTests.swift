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

    @Test func anUpdatedRegistrationReplacesTheGatewaysRecordInPlace() async throws {
        let logger = Logger(label: "test.reregister")
        let context = try BusContext()
        let registry = Registry(policy: Registry.Policy(heartbeatIntervalMs: 50, missedHeartbeatsAllowed: 3), logger: logger)
        let control = try ControlServer(context: context, bind: "tcp://127.0.0.1:*", registry: registry, logger: logger)
        let bound = try #require(control.endpoint.boundEndpoint)
        let agent = try ControlAgent(context: context, gateway: bound,
                                     registration: Registration(role: .drafter, replicaID: "d1", endpoint: nil,
                                                                model: "old-draft", pid: 1, version: "test"),
                                     logger: logger, load: { ReplicaLoad(activeSessions: 3) })
        let running = Task { try await agent.run() }
        for _ in 0..<500 where await registry.info("d1")?.load.activeSessions != 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await registry.info("d1")?.registration.model == "old-draft")

        // A drafter that swapped its model registers again under the new name; the id and role cannot change.
        agent.updateRegistration { $0.model = "new-draft"; $0.replicaID = "other"; $0.attributes["quantization"] = "Q4_0" }
        for _ in 0..<500 where await registry.info("d1")?.registration.model != "new-draft" {
            try await Task.sleep(for: .milliseconds(10))
        }
        let info = try #require(await registry.info("d1"))
        #expect(info.registration.model == "new-draft")
        #expect(info.registration.attributes["quantization"] == "Q4_0")
        #expect(info.alive)
        #expect(await registry.info("other") == nil)
        #expect(agent.registration.replicaID == "d1")
        running.cancel()
        _ = await running.result
        await context.shutdown()
    }
}
