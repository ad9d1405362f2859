import Foundation
import Synchronization
import Logging
import ServiceLifecycle
import TandemBus
import TandemWire

/// A replica's link to the gateway's `control` socket: registers on start, heartbeats, re-registers
/// when the gateway has forgotten it, and answers the gateway's requests (health, and whatever the
/// service handles: session start/open/close...).
///
/// The DEALER's identity is the replica id, so the gateway can address this replica directly.
public final class ControlAgent: Service, Sendable {
    public let endpoint: BusEndpoint
    /// What this replica registered as (``updateRegistration(_:)`` changes it and registers again).
    public var registration: Registration { state.withLock { $0.registration } }
    private let logger: Logger
    private let load: @Sendable () async -> ReplicaLoad
    private let started = ContinuousClock.now
    private let state: Mutex<AgentState>

    struct AgentState {
        var registration: Registration
        var registered = false
        var heartbeatInterval: Duration = .milliseconds(500)
    }

    /// - Parameters:
    ///   - load: current load, sent with each heartbeat (the gateway places sessions by it).
    ///   - handler: requests from the gateway other than `health`; return the reply (nil = unsupported).
    public init(context: BusContext, gateway: String, registration: Registration, logger: Logger,
                load: @escaping @Sendable () async -> ReplicaLoad = { ReplicaLoad() },
                handler: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage? = { _, _ in nil }) throws {
        self.state = Mutex(AgentState(registration: registration))
        self.logger = logger
        self.load = load
        self.endpoint = try BusEndpoint.dealer(context: context, connect: gateway,
                                               identity: PeerID(registration.replicaID), logger: logger)
        let role = registration.role
        let replicaID = registration.replicaID
        let started = self.started
        try endpoint.serve(logger: logger) { envelope, incoming in
            if case .health = envelope.message {
                return .healthReply(HealthReply(role: role, replicaID: replicaID,
                                                uptimeSeconds: ServiceClock.millis(since: started) / 1000))
            }
            return await handler(envelope, incoming)
        }
    }

    public var isRegistered: Bool { state.withLock { $0.registered } }

    /// Changes what the replica registers as (a drafter that swapped its draft model, say) and registers
    /// again at the next beat: the gateway replaces its record of the replica in place (load and sessions
    /// stay), so status, `/v1/models` and placement see the change. The replica id cannot change.
    public func updateRegistration(_ change: (inout Registration) -> Void) {
        state.withLock {
            let id = $0.registration.replicaID, role = $0.registration.role
            change(&$0.registration)
            $0.registration.replicaID = id
            $0.registration.role = role
            $0.registered = false
        }
    }

    /// Registers, then heartbeats until graceful shutdown (or cancellation).
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.loop()
        }
        await endpoint.close()
    }

    private func loop() async {
        while !Task.isCancelled {
            if !isRegistered {
                await register()
            } else {
                await heartbeat()
            }
            let interval = isRegistered ? state.withLock { $0.heartbeatInterval } : .milliseconds(250)
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    private func register() async {
        let registration = self.registration
        do {
            let reply = try await endpoint.call(.register(registration), timeout: .seconds(1))
            guard case .registered(let ack) = reply else {
                logger.warning("gateway answered registration with '\(reply.kind.rawValue)'")
                return
            }
            state.withLock {
                // An update that arrived during the call registers again at the next beat.
                guard $0.registration == registration else { return }
                $0.registered = true
                $0.heartbeatInterval = .milliseconds(max(50, ack.heartbeatIntervalMs))
            }
            logger.info("registered with gateway",
                        metadata: ["role": "\(registration.role.rawValue)", "id": "\(registration.replicaID)",
                                   "endpoint": "\(registration.endpoint ?? "-")"])
        } catch {
            logger.debug("gateway not reachable yet", metadata: ["error": "\(error)"])
        }
    }

    private func heartbeat() async {
        let registration = self.registration
        let beat = Heartbeat(replicaID: registration.replicaID, role: registration.role, load: await load())
        do {
            let reply = try await endpoint.call(.heartbeat(beat), timeout: .seconds(1))
            if case .heartbeatAck(let ack) = reply, !ack.known {
                logger.notice("gateway forgot this replica; registering again")
                state.withLock { $0.registered = false }
            }
        } catch {
            logger.debug("heartbeat failed", metadata: ["error": "\(error)"])
        }
    }
}
