import ServiceLifecycle
import TandemBus

/// Keeps the event proxy (XSUB→XPUB) forwarding until graceful shutdown, then stops it.
struct ProxyService: Service {
    let proxy: BusProxy

    func run() async throws {
        try? await gracefulShutdown()
        await proxy.stop()
    }
}
