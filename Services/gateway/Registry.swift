import Foundation
import Logging
import TandemWire

/// The gateway's registry of live replicas (docs/design.md §2).
///
/// Replicas register on start and heartbeat; one that misses `missedHeartbeatsAllowed`
/// consecutive heartbeats is marked dead (kept in the listing, excluded from placement) until it
/// registers again. Time is passed in so tests can drive it without sleeping.
public actor Registry {
    public struct Policy: Sendable {
        public var heartbeatIntervalMs: Int
        public var missedHeartbeatsAllowed: Int
        public init(heartbeatIntervalMs: Int = 500, missedHeartbeatsAllowed: Int = 3) {
            self.heartbeatIntervalMs = heartbeatIntervalMs
            self.missedHeartbeatsAllowed = missedHeartbeatsAllowed
        }
        /// A replica silent for longer than this is dead.
        public var deadAfterMs: Double { Double(heartbeatIntervalMs * missedHeartbeatsAllowed) }
    }

    public let policy: Policy
    private var replicas: [ReplicaID: ReplicaInfo] = [:]
    private let logger: Logger
    /// Called when a replica goes from alive to dead (the session manager re-places its sessions).
    private var onDeath: (@Sendable (ReplicaInfo) async -> Void)?

    public init(policy: Policy = Policy(), logger: Logger) {
        self.policy = policy
        self.logger = logger
    }

    public func setDeathHandler(_ handler: @escaping @Sendable (ReplicaInfo) async -> Void) {
        onDeath = handler
    }

    public func register(_ registration: Registration, now: EpochMillis) -> RegistrationAck {
        let previous = replicas[registration.replicaID]
        replicas[registration.replicaID] = ReplicaInfo(
            registration: registration, registeredAt: now, lastHeartbeat: now, alive: true,
            load: previous?.load ?? ReplicaLoad())
        logger.info("replica registered", metadata: [
            "role": "\(registration.role.rawValue)", "id": "\(registration.replicaID)",
            "endpoint": "\(registration.endpoint ?? "-")", "model": "\(registration.model ?? "-")",
        ])
        return RegistrationAck(heartbeatIntervalMs: policy.heartbeatIntervalMs,
                               missedHeartbeatsAllowed: policy.missedHeartbeatsAllowed)
    }

    /// Records a heartbeat. Returns false for a replica the registry does not consider alive
    /// (unknown, or already marked dead): it must register again.
    public func heartbeat(_ beat: Heartbeat, now: EpochMillis) -> Bool {
        guard var info = replicas[beat.replicaID], info.alive else { return false }
        info.lastHeartbeat = now
        info.load = beat.load
        replicas[beat.replicaID] = info
        return true
    }

    /// Marks replicas dead whose last heartbeat is older than the policy allows; returns them.
    @discardableResult
    public func sweep(now: EpochMillis) async -> [ReplicaInfo] {
        var died: [ReplicaInfo] = []
        for (id, info) in replicas where info.alive && now - info.lastHeartbeat > policy.deadAfterMs {
            replicas[id]?.alive = false
            died.append(replicas[id]!)
            logger.warning("replica missed \(policy.missedHeartbeatsAllowed) heartbeats; marked dead",
                           metadata: ["role": "\(info.registration.role.rawValue)", "id": "\(id)"])
        }
        if let onDeath {
            for info in died { await onDeath(info) }
        }
        return died
    }

    /// Marks one replica dead at once (e.g. it stopped answering requests).
    public func markDead(_ id: ReplicaID) async {
        guard let info = replicas[id], info.alive else { return }
        replicas[id]?.alive = false
        logger.warning("replica marked dead", metadata: ["id": "\(id)"])
        if let onDeath { await onDeath(replicas[id]!) }
    }

    /// Removes a replica that said goodbye or should be forgotten.
    public func remove(_ id: ReplicaID) { replicas[id] = nil }

    public func status() -> ClusterStatus {
        ClusterStatus(replicas: replicas.values.sorted {
            ($0.registration.role.rawValue, $0.registration.replicaID) < ($1.registration.role.rawValue, $1.registration.replicaID)
        })
    }

    public func info(_ id: ReplicaID) -> ReplicaInfo? { replicas[id] }

    public func alive(role: Role) -> [ReplicaInfo] {
        replicas.values.filter { $0.alive && $0.registration.role == role }
            .sorted { $0.registration.replicaID < $1.registration.replicaID }
    }

    /// Applies a load change the gateway itself caused (a session placed or closed), so that
    /// placement between heartbeats sees it.
    public func adjustLoad(_ id: ReplicaID, sessions delta: Int) {
        guard var info = replicas[id] else { return }
        info.load.activeSessions = max(0, info.load.activeSessions + delta)
        replicas[id] = info
    }
}
