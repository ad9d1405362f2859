import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import TandemBus
import TandemService
import TandemWire

/// Ties the gateway's parts together: registry, control socket, HTTP routes.
final class Gateway: Service, Sendable {
    let registry: Registry
    let control: ControlServer
    let metrics: PrometheusCollectorRegistry
    let logger: Logger

    init(context: BusContext, controlBind: String, policy: Registry.Policy, metrics: PrometheusCollectorRegistry,
         logger: Logger) throws {
        self.registry = Registry(policy: policy, logger: logger)
        self.metrics = metrics
        self.logger = logger
        self.control = try ControlServer(context: context, bind: controlBind, registry: registry, logger: logger)
    }

    /// Sweeps the registry for replicas that stopped heartbeating, until shutdown.
    func run() async throws {
        let interval = Duration.milliseconds(max(20, registry.policy.heartbeatIntervalMs / 2))
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.registry.sweep(now: ServiceClock.nowMillis())
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
        await control.endpoint.close()
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        addOperationalRoutes(to: router)
        return router
    }
}
