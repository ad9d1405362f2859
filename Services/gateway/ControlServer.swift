import Logging
import TandemBus
import TandemService
import TandemWire

/// The gateway's `control` ROUTER: registrations, heartbeats, status queries, and the messages
/// replicas send about sessions (token reports). Requests *to* replicas (session start/open/close)
/// go out through the same socket, addressed by replica id.
final class ControlServer: Sendable {
    let endpoint: BusEndpoint
    let registry: Registry
    private let logger: Logger

    init(context: BusContext, bind: String, registry: Registry, logger: Logger,
         sessionMessages: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage? = { _, _ in nil }) throws {
        self.endpoint = try BusEndpoint.router(context: context, bind: bind, logger: logger)
        self.registry = registry
        self.logger = logger
        try endpoint.serve(logger: logger) { envelope, incoming in
            let now = ServiceClock.nowMillis()
            switch envelope.message {
            case .register(let registration):
                return .registered(await registry.register(registration, now: now))
            case .heartbeat(let beat):
                return .heartbeatAck(HeartbeatAck(known: await registry.heartbeat(beat, now: now)))
            case .status:
                return .clusterStatus(await registry.status())
            case .health:
                return .healthReply(HealthReply(role: .gateway, replicaID: "gateway", uptimeSeconds: 0))
            default:
                return await sessionMessages(envelope, incoming)
            }
        }
    }

    /// Sends a request to a registered replica (by its id, which is its DEALER identity).
    func call(_ message: WireMessage, replica: ReplicaID, timeout: Duration) async throws -> WireMessage {
        try await endpoint.call(message, to: PeerID(replica), timeout: timeout)
    }

    func post(_ message: WireMessage, replica: ReplicaID) async throws {
        try await endpoint.post(message, to: PeerID(replica))
    }
}
