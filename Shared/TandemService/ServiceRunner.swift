import Logging
import ServiceLifecycle
import TandemBus
import UnixSignals

/// Runs a service's long-lived parts until SIGTERM/SIGINT, then shuts down gracefully:
/// every service's `run()` returns (or is cancelled), then the ZeroMQ context is terminated
/// (sockets use a short linger, so this cannot hang).
public enum ServiceRunner {
    public static func run(_ services: [any Service], context: BusContext, logger: Logger) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("service stopped with an error", metadata: ["error": "\(error)"])
            await context.shutdown()
            throw error
        }
        await context.shutdown()
        logger.info("shut down cleanly")
    }
}

/// A service made of a closure, for small long-running loops (heartbeat monitors, queues).
public struct ClosureService: Service {
    private let body: @Sendable () async throws -> Void
    public init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }
    public func run() async throws { try await body() }
}
