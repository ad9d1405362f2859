import ArgumentParser
import Foundation
import Logging
import TandemBus

/// Flags every Tandem service accepts. Each also reads an environment variable (in brackets),
/// so compose files configure services without changing commands.
public struct CommonOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "Gateway control endpoint to register with [TANDEM_GATEWAY_CONTROL].")
    public var gatewayControl: String?

    @Option(name: .long, help: "Metrics-store XSUB endpoint to publish events to [TANDEM_EVENTS_PUB].")
    public var eventsPub: String?

    @Option(name: .long, help: "Metrics-store XPUB endpoint to subscribe to events [TANDEM_EVENTS_SUB].")
    public var eventsSub: String?

    @Option(name: .long, help: "Metrics-store query endpoint [TANDEM_METRICS_QUERY].")
    public var metricsQuery: String?

    @Option(name: .long, help: "Estimator endpoint [TANDEM_ESTIMATOR].")
    public var estimator: String?

    @Option(name: .long, help: "Config-advisor endpoint [TANDEM_ADVISOR].")
    public var advisor: String?

    @Option(name: .long, help: "Host others use to reach this replica's bound sockets; 'auto' picks this machine's first non-loopback IPv4 address [TANDEM_ADVERTISE_HOST].")
    public var advertiseHost: String?

    @Option(name: .long, help: "Replica id (default: <role>-<host>-<pid>) [TANDEM_REPLICA_ID].")
    public var replicaID: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical [TANDEM_LOG_LEVEL].")
    public var logLevel: String?

    @Option(name: .long, help: "CurveZMQ key folder from `tandem keys`: encrypt the bus and accept only authorised clients (docs/security.md) [TANDEM_CURVE_KEYS].")
    public var curveKeys: String?

    public init() {}

    /// The bus's CURVE settings from `--curve-keys` and the `TANDEM_CURVE_*` environment; nil for
    /// a plain-text bus.
    public func busSecurity() throws -> BusSecurity? {
        try Self.busSecurity(directory: curveKeys)
    }

    /// ``busSecurity()`` for tools that take the folder from a flag of their own.
    public static func busSecurity(directory flag: String?) throws -> BusSecurity? {
        try CurveKeyDirectory.load(
            directory: Setting.optionalString(flag, env: CurveKeyDirectory.EnvironmentKey.directory)
                .map { ($0 as NSString).expandingTildeInPath },
            environment: ProcessInfo.processInfo.environment)
    }

    public func gatewayControlEndpoint() throws -> String {
        try BusAddress.resolve(flag: gatewayControl, env: "TANDEM_GATEWAY_CONTROL", default: DefaultEndpoints.gatewayControl)
    }
    public func eventsPubEndpoint() throws -> String {
        try BusAddress.resolve(flag: eventsPub, env: "TANDEM_EVENTS_PUB", default: DefaultEndpoints.eventsPublish)
    }
    public func eventsSubEndpoint() throws -> String {
        try BusAddress.resolve(flag: eventsSub, env: "TANDEM_EVENTS_SUB", default: DefaultEndpoints.eventsSubscribe)
    }
    public func metricsQueryEndpoint() throws -> String {
        try BusAddress.resolve(flag: metricsQuery, env: "TANDEM_METRICS_QUERY", default: DefaultEndpoints.metricsQuery)
    }
    public func estimatorEndpoint() throws -> String {
        try BusAddress.resolve(flag: estimator, env: "TANDEM_ESTIMATOR", default: DefaultEndpoints.estimator)
    }
    public func advisorEndpoint() throws -> String {
        try BusAddress.resolve(flag: advisor, env: "TANDEM_ADVISOR", default: DefaultEndpoints.advisor)
    }

    public func resolvedAdvertiseHost() -> String {
        let raw = Setting.string(advertiseHost, env: "TANDEM_ADVERTISE_HOST", default: "127.0.0.1")
        return raw == "auto" ? AdvertisedHost.firstNonLoopbackIPv4() ?? "127.0.0.1" : raw
    }

    public func resolvedReplicaID(role: String) -> String {
        Setting.string(replicaID, env: "TANDEM_REPLICA_ID",
                       default: "\(role)-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)")
    }

    public func resolvedLogLevel() -> Logger.Level {
        let raw = Setting.string(logLevel, env: "TANDEM_LOG_LEVEL", default: "info")
        return Logger.Level(rawValue: raw.lowercased()) ?? .info
    }
}
