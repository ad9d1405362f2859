// Registration, heartbeats, health and cluster status: the `control` flows of docs/design.md §2.

/// A replica announces itself to the gateway's `control` socket on start (and again when the
/// gateway answers a heartbeat with `known: false`, e.g. after a gateway restart).
public struct Registration: Codable, Sendable, Hashable {
    public var role: Role
    public var replicaID: ReplicaID
    /// The endpoint this replica binds and others connect to (verifier `verify`, estimator, ...), if any.
    public var endpoint: String?
    /// Model served (verifier: target; drafter: draft), as a catalog name or file name.
    public var model: String?
    public var device: DeviceProfile?
    public var pid: Int32
    public var version: String
    /// Extra facts (e.g. `target_model`, `max_sessions`), for operators and placement.
    public var attributes: [String: String]
    /// Edge devices this drafter hosts (one process can stand for many emulated devices). A request that
    /// names one of them (`X-Tandem-Device`) is drafted by this replica on that device.
    public var devices: [String]?

    public init(role: Role, replicaID: ReplicaID, endpoint: String? = nil, model: String? = nil,
                device: DeviceProfile? = nil, pid: Int32, version: String, attributes: [String: String] = [:],
                devices: [String]? = nil) {
        self.role = role
        self.replicaID = replicaID
        self.endpoint = endpoint
        self.model = model
        self.device = device
        self.pid = pid
        self.version = version
        self.attributes = attributes
        self.devices = devices
    }
}

/// The gateway's answer to a ``Registration``: how often to heartbeat.
public struct RegistrationAck: Codable, Sendable, Hashable {
    public var heartbeatIntervalMs: Int
    /// Missed heartbeats after which the gateway marks the replica dead.
    public var missedHeartbeatsAllowed: Int
    public init(heartbeatIntervalMs: Int, missedHeartbeatsAllowed: Int) {
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.missedHeartbeatsAllowed = missedHeartbeatsAllowed
    }
}

public struct Heartbeat: Codable, Sendable, Hashable {
    public var replicaID: ReplicaID
    public var role: Role
    public var load: ReplicaLoad
    public init(replicaID: ReplicaID, role: Role, load: ReplicaLoad = ReplicaLoad()) {
        self.replicaID = replicaID
        self.role = role
        self.load = load
    }
}

public struct HeartbeatAck: Codable, Sendable, Hashable {
    /// False when the gateway does not know this replica (it restarted or marked it dead): re-register.
    public var known: Bool
    public init(known: Bool) { self.known = known }
}

/// Liveness probe every service answers.
public struct HealthQuery: Codable, Sendable, Hashable {
    public init() {}
}

public struct HealthReply: Codable, Sendable, Hashable {
    public var role: Role
    public var replicaID: ReplicaID
    public var status: String
    public var uptimeSeconds: Double
    public var details: [String: String]
    public init(role: Role, replicaID: ReplicaID, status: String = "ok", uptimeSeconds: Double,
                details: [String: String] = [:]) {
        self.role = role
        self.replicaID = replicaID
        self.status = status
        self.uptimeSeconds = uptimeSeconds
        self.details = details
    }
}

/// Asks the gateway for its registry (what `tandem status` prints).
public struct StatusQuery: Codable, Sendable, Hashable {
    public init() {}
}

public struct ReplicaInfo: Codable, Sendable, Hashable {
    public var registration: Registration
    public var registeredAt: EpochMillis
    public var lastHeartbeat: EpochMillis
    public var alive: Bool
    public var load: ReplicaLoad
    public init(registration: Registration, registeredAt: EpochMillis, lastHeartbeat: EpochMillis, alive: Bool,
                load: ReplicaLoad) {
        self.registration = registration
        self.registeredAt = registeredAt
        self.lastHeartbeat = lastHeartbeat
        self.alive = alive
        self.load = load
    }
}

public struct ClusterStatus: Codable, Sendable, Hashable {
    public var replicas: [ReplicaInfo]
    /// The gateway's HTTP address as it listens (`http://host:port`): where a drafter started with
    /// `--model auto` downloads its model (docs/model-shipping.md). Optional and additive: a status from
    /// an older gateway lacks it, and older readers ignore it.
    public var gatewayHTTP: String?
    public init(replicas: [ReplicaInfo], gatewayHTTP: String? = nil) {
        self.replicas = replicas
        self.gatewayHTTP = gatewayHTTP
    }
}

/// Stable error codes carried by ``ErrorReply``.
public enum ErrorCode: String, Codable, Sendable, Hashable {
    case badMessage = "bad_message"
    case unsupportedVersion = "unsupported_version"
    case unknownKind = "unknown_kind"
    case unexpectedKind = "unexpected_kind"
    case unknownSession = "unknown_session"
    case contextMismatch = "context_mismatch"
    case overloaded
    case deadlineExceeded = "deadline_exceeded"
    case notFound = "not_found"
    case invalidArgument = "invalid_argument"
    /// The message belongs to an abandoned placement of its session (an older placement epoch).
    case staleEpoch = "stale_epoch"
    /// The replica has no room for the session now (its KV cache budget is held by active sessions): try
    /// another replica, or again after ``ErrorReply/retryAfterMs`` (docs/protocol.md, "Admission by memory").
    case resourceExhausted = "resource_exhausted"
    case `internal`
}

/// The answer to any request that could not be served.
public struct ErrorReply: Codable, Sendable, Hashable, Error {
    public var code: ErrorCode
    public var message: String
    /// When asking again may succeed, in milliseconds from now (``ErrorCode/resourceExhausted``); nil: no hint.
    public var retryAfterMs: Int? = nil
    public init(code: ErrorCode, message: String, retryAfterMs: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterMs = retryAfterMs
    }

    /// The refusal of a session a replica has no KV cache memory for without evicting active sessions.
    public static func kvCacheFull(_ message: String, retryAfterMs: Int) -> ErrorReply {
        ErrorReply(code: .resourceExhausted, message: message, retryAfterMs: retryAfterMs)
    }
}

/// A plain acknowledgement for requests whose only answer is "done".
public struct Ack: Codable, Sendable, Hashable {
    public init() {}
}
