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
        attributes: [String: String] = [:], devices: [String]? = nil, services: [any Service] = [],
        load: @escaping @Sendable () async -> ReplicaLoad = { ReplicaLoad() },
        handler: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage? = { _, _ in nil },
        agentReady: (ControlAgent) -> Void = { _ in }
    ) async throws {
        let agent = try ControlAgent.forReplica(
            role: role, common: common, context: context, logger: logger, advertisedEndpoint: advertisedEndpoint,
            model: model, device: device, attributes: attributes, devices: devices, load: load, handler: handler)
        agentReady(agent)
        let id = agent.registration.replicaID
        var fields: KeyValuePairs<String, String> = ["id": id]
        if let advertisedEndpoint { fields = ["id": id, "endpoint": advertisedEndpoint] }
        ReadyLine.announce(fields)
        try await ServiceRunner.run([agent] + services, context: context, logger: logger)
    }
}

extension ControlAgent {
    /// The control agent of this process's replica: its registration (id from the common options,
    /// this process's pid, ``TandemVersion/current``) with the gateway named by the common options.
    public static func forReplica(
        role: Role, common: CommonOptions, context: BusContext, logger: Logger,
        advertisedEndpoint: String? = nil, model: String? = nil, device: DeviceProfile? = nil,
        attributes: [String: String] = [:], devices: [String]? = nil,
        load: @escaping @Sendable () async -> ReplicaLoad = { ReplicaLoad() },
        handler: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage? = { _, _ in nil }
    ) throws -> ControlAgent {
        let registration = Registration(
            role: role, replicaID: common.resolvedReplicaID(role: role.rawValue), endpoint: advertisedEndpoint,
            model: model, device: device, pid: ProcessInfo.processInfo.processIdentifier,
            version: TandemVersion.current, attributes: attributes, devices: devices)
        return try ControlAgent(context: context, gateway: try common.gatewayControlEndpoint(),
                                registration: registration, logger: logger, load: load, handler: handler)
    }
}

/// The version string every replica reports at registration.
public enum TandemVersion {
    public static let current = "0.1.0"
}
