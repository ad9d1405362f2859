import Logging
import ServiceLifecycle
import TandemBus
import TandemTelemetry
import TandemWire

/// What every Tandem process starts with once its flags are read: the common options, its logger
/// and one ZeroMQ context. Services get these from ``run(_:logger:common:replica:_:)`` rather than
/// making them, so each service's command is left with only its own options and parts.
public struct ServiceProcess: Sendable {
    public let common: CommonOptions
    public let logger: Logger
    public let context: BusContext

    /// Bootstraps logging and metrics at `--log-level` (under `name`), then runs `body` as
    /// ``run(logger:common:replica:_:)`` does.
    /// - Parameter replica: tags every log line with this role's replica id.
    public static func run(_ name: String, logger label: String, common: CommonOptions, replica: Role? = nil,
                           _ body: (ServiceProcess) async throws -> Void) async throws {
        TelemetryBootstrap.bootstrap(label: name, level: common.resolvedLogLevel())
        try await run(logger: label, common: common, replica: replica, body)
    }

    /// Runs `body` with a fresh context, for a process that bootstrapped telemetry itself (the
    /// gateway keeps the metrics registry to serve `/metrics`). The context is shut down if `body`
    /// throws, so a start that fails half way (a port in use, a bad endpoint) leaves no socket
    /// threads behind; after a normal run ``run(_:)`` has already shut it down.
    public static func run(logger label: String, common: CommonOptions, replica: Role? = nil,
                           _ body: (ServiceProcess) async throws -> Void) async throws {
        var logger = Logger(label: label)
        if let replica { logger[metadataKey: "replica"] = "\(common.replicaID(of: replica))" }
        let security = try common.busSecurity()
        let context = try BusContext(security: security, logger: logger)
        if let security {
            logger.notice("bus secured with CurveZMQ", metadata: [
                "server_key": "\(security.serverPublicKey.prefix(8))…", "client_key": "\(security.client.publicKey.prefix(8))…",
                "binds": "\(security.server != nil)"])
        }
        do {
            try await body(ServiceProcess(common: common, logger: logger, context: context))
        } catch {
            await context.shutdown()
            throw error
        }
    }

    /// Runs the process's long-lived parts until SIGTERM/SIGINT (``ServiceRunner``).
    public func run(_ services: [any Service]) async throws {
        try await ServiceRunner.run(services, context: context, logger: logger)
    }
}
