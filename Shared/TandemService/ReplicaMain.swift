import Foundation
import Logging
import ServiceLifecycle
import TandemBus
import TandemWire

/// The common life of a replica: register with the gateway (and heartbeat), run the service's
/// own parts, shut down on SIGTERM/SIGINT. Each service's `main` builds its sockets and calls this.
public enum ReplicaMain {
    public static func run(
        role: Role, common: CommonOptions, context: BusContext, logger: Logger,
        advertisedEndpoint: String? = nil, model: String? = nil, device: DeviceProfile? = nil,
        attributes: [String: String] = [:], services: [any Service] = [],
        load: @escaping @Sendable () async -> ReplicaLoad = { ReplicaLoad() },
        handler: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage? = { _, _ in nil },
        agentReady: (ControlAgent) -> Void = { _ in }
    ) async throws {
        let registration = Registration(
            role: role, replicaID: common.resolvedReplicaID(role: role.rawValue), endpoint: advertisedEndpoint,
            model: model, device: device, pid: ProcessInfo.processInfo.processIdentifier, version: TandemVersion.current,
            attributes: attributes)
        let agent = try ControlAgent(context: context, gateway: try common.gatewayControlEndpoint(),
                                     registration: registration, logger: logger, load: load, handler: handler)
        agentReady(agent)
        var fields: KeyValuePairs<String, String> = ["id": registration.replicaID]
        if let advertisedEndpoint { fields = ["id": registration.replicaID, "endpoint": advertisedEndpoint] }
        ReadyLine.announce(fields)
        try await ServiceRunner.run([agent] + services, context: context, logger: logger)
    }
}

/// The version string every replica reports at registration.
public enum TandemVersion {
    public static let current = "0.1.0"
}
