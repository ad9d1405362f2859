@testable import Gateway
import Logging
import Synchronization
import TandemWire
import Testing

/// The gateway's replica registry in-process, with time passed in (no sockets, no sleeping): when a replica
/// counts as dead, who hears of it and how often, how it comes back, and what placement sees.
struct RegistryTests {
    static let policy = Registry.Policy(heartbeatIntervalMs: 100, missedHeartbeatsAllowed: 3)

    static func registration(_ id: String, _ role: Role) -> Registration {
        Registration(role: role, replicaID: id, endpoint: "tcp://10.0.0.1:5555", model: "m", pid: 1, version: "test")
    }

    static func registry() -> Registry {
        Registry(policy: policy, logger: Logger(label: "test.registry"))
    }

    /// Who the death handler heard of, in order.
    final class Deaths: Sendable {
        let ids = Mutex<[ReplicaID]>([])
    }

    @Test func aReplicaDiesOnlyAfterItsMissedHeartbeatsAndIsReportedOnce() async {
        let registry = Self.registry(), deaths = Deaths()
        await registry.setDeathHandler { info in deaths.ids.withLock { $0.append(info.registration.replicaID) } }
        let ack = await registry.register(Self.registration("v1", .verifier), now: 1_000)
        #expect(ack.heartbeatIntervalMs == 100 && ack.missedHeartbeatsAllowed == 3)

        // Silent for exactly the allowed window: still alive. A heartbeat restarts the window.
        #expect(await registry.sweep(now: 1_300).isEmpty)
        #expect(await registry.heartbeat(Heartbeat(replicaID: "v1", role: .verifier), now: 1_250))
        #expect(await registry.sweep(now: 1_540).isEmpty)
        // One millisecond past the window: dead, reported to the handler once, however often we sweep.
        let died = await registry.sweep(now: 1_551)
        #expect(died.map(\.registration.replicaID) == ["v1"])
        #expect(await registry.sweep(now: 5_000).isEmpty)
        await registry.markDead("v1")
        #expect(deaths.ids.withLock { $0 } == ["v1"])
        #expect(await registry.info("v1")?.alive == false, "a dead replica stays listed")
        #expect(await registry.status().replicas.count == 1)
    }

    @Test func aDeadReplicaMustRegisterAgainAndKeepsItsLoadWhenItDoes() async {
        let registry = Self.registry()
        _ = await registry.register(Self.registration("d1", .drafter), now: 0)
        let load = ReplicaLoad(activeSessions: 3, queuedRequests: 1, kvBytes: 4096)
        #expect(await registry.heartbeat(Heartbeat(replicaID: "d1", role: .drafter, load: load), now: 50))
        #expect(await registry.info("d1")?.load == load)
        await registry.markDead("d1")
        // A late heartbeat from the dead replica is refused: it is told to register again.
        #expect(await registry.heartbeat(Heartbeat(replicaID: "d1", role: .drafter), now: 60) == false)
        #expect(await registry.heartbeat(Heartbeat(replicaID: "unknown", role: .drafter), now: 60) == false)
        _ = await registry.register(Self.registration("d1", .drafter), now: 70)
        let info = await registry.info("d1")
        #expect(info?.alive == true)
        #expect(info?.registeredAt == 70)
        #expect(info?.load == load, "the sessions it still holds stay counted for placement")
    }

    @Test func placementSeesOnlyLiveReplicasOfTheRoleInIdOrder() async {
        let registry = Self.registry()
        for (id, role) in [("v2", Role.verifier), ("d1", .drafter), ("v1", .verifier), ("v3", .verifier)] {
            _ = await registry.register(Self.registration(id, role), now: 0)
        }
        await registry.markDead("v3")
        #expect(await registry.alive(role: .verifier).map(\.registration.replicaID) == ["v1", "v2"])
        #expect(await registry.alive(role: .drafter).map(\.registration.replicaID) == ["d1"])
        #expect(await registry.alive(role: .estimator).isEmpty)
        #expect(await registry.status().replicas.map(\.registration.replicaID) == ["d1", "v1", "v2", "v3"],
                "the listing is sorted by role, then id")
        await registry.remove("v1")
        #expect(await registry.alive(role: .verifier).map(\.registration.replicaID) == ["v2"])
    }

    @Test func loadTheGatewayCausesIsSeenBetweenHeartbeatsAndNeverGoesNegative() async {
        let registry = Self.registry()
        _ = await registry.register(Self.registration("v1", .verifier), now: 0)
        await registry.adjustLoad("v1", sessions: 2)
        #expect(await registry.info("v1")?.load.activeSessions == 2)
        await registry.adjustLoad("v1", sessions: -5)
        #expect(await registry.info("v1")?.load.activeSessions == 0)
        // The next heartbeat's own count replaces the gateway's estimate.
        _ = await registry.heartbeat(Heartbeat(replicaID: "v1", role: .verifier, load: ReplicaLoad(activeSessions: 7)),
                                     now: 10)
        #expect(await registry.info("v1")?.load.activeSessions == 7)
        await registry.adjustLoad("nobody", sessions: 1)
        #expect(await registry.info("nobody") == nil)
    }
}
