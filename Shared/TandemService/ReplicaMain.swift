import Foundation
import Logging
import ServiceLifecycle
import TandemBus
import TandemWire

/// The common life of a replica: register with the gateway (and heartbeat), print the READY line,
/// run the service's own parts, shut down on SIGTERM/SIGINT. Every replica's command builds its
/// sockets inside ``ServiceProcess/run(_:logger:common:replica:_:)`` and ends by calling this.
public enum ReplicaMain {
    /// - Parameters:
    ///   - register: false runs the replica standalone (no control agent), for tests and tools.
    ///   - services: the replica's own long-lived parts, started in order.
    ///   - ready: the READY line's fields; by default `id=<replica id>` and, when advertised,
    ///     `endpoint=<advertised endpoint>`.
    public static func run(
        role: Role, process: ServiceProcess, register: Bool = true,
        advertisedEndpoint: String? = nil, model: String? = nil, device: DeviceProfile? = nil,
        attributes: [String: String] = [:], devices: [String]? = nil, services: [any Service] = [],
        ready: KeyValuePairs<String, String>? = nil,
        load: @escaping @Sendable () async -> ReplicaLoad = { ReplicaLoad() },
        handler: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage? = { _, _ in nil },
        agentReady: (ControlAgent) -> Void = { _ in }
    ) async throws {
        var running = services
        if register {
            let agent = try ControlAgent.forReplica(
                role: role, common: process.common, context: process.context, logger: process.logger,
                advertisedEndpoint: advertisedEndpoint, model: model, device: device, attributes: attributes,
                devices: devices, load: load, handler: handler)
            agentReady(agent)
            // Last, so it is the first to stop (a group stops in reverse order): the gateway stops
            // sending work before the parts that do it wind down.
            running.append(agent)
        }
        ReadyLine.announce(ready ?? defaultReadyFields(id: process.common.replicaID(of: role),
                                                       endpoint: advertisedEndpoint))
        try await process.run(running)
    }

    private static func defaultReadyFields(id: String, endpoint: String?) -> KeyValuePairs<String, String> {
        if let endpoint { return ["id": id, "endpoint": endpoint] }
        return ["id": id]
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
