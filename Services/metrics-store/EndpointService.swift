import ServiceLifecycle
import TandemBus

/// Keeps a serving endpoint (the query ROUTER) open until graceful shutdown, then closes it.
struct EndpointService: Service {
    let endpoint: BusEndpoint

    func run() async throws {
        try? await gracefulShutdown()
        await endpoint.close()
    }
}
