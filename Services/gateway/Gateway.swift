import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import TandemBus
import TandemService
import TandemTelemetry
import TandemWire

/// Ties the gateway's parts together: registry, control socket, session manager, HTTP routes.
final class Gateway: Service, Sendable {
    let registry: Registry
    let control: ControlServer
    let sessions: SessionManager
    let frontend: Frontend
    let metrics: PrometheusCollectorRegistry
    let logger: Logger

    init(context: BusContext, controlBind: String, policy: Registry.Policy, frontend: Frontend, maxSessions: Int,
         sessionInactivityTimeout: Duration = .seconds(120), events: EventPublisher?,
         metrics: PrometheusCollectorRegistry, logger: Logger) throws {
        self.registry = Registry(policy: policy, logger: logger)
        self.frontend = frontend
        self.metrics = metrics
        self.logger = logger
        self.control = try ControlServer(context: context, bind: controlBind, registry: registry, logger: logger)
        let sessions = SessionManager(registry: registry, control: control, events: events,
                                      tokenizer: frontend.tokenizer, modelName: frontend.modelName,
                                      maxSessions: maxSessions, inactivityTimeout: sessionInactivityTimeout,
                                      logger: logger)
        self.sessions = sessions
        control.reportHandler.install { report in await sessions.receive(report) }
    }

    /// Sweeps the registry for replicas that stopped heartbeating, until shutdown.
    func run() async throws {
        let sessions = self.sessions
        await registry.setDeathHandler { info in
            // Re-placing talks to other replicas: do not hold up the sweep.
            Task { await sessions.replicaDied(info) }
        }
        let interval = Duration.milliseconds(max(20, registry.policy.heartbeatIntervalMs / 2))
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.registry.sweep(now: ServiceClock.nowMillis())
                await sessions.expireInactive()
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
        await control.endpoint.close()
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        if let key = frontend.apiKey { router.add(middleware: APIKeyMiddleware(key: key, gateway: self)) }
        addOperationalRoutes(to: router)
        addCompletionRoutes(to: router)
        return router
    }
}

/// Requires `Authorization: Bearer <key>` on `/v1/*` when the gateway has an API key.
struct APIKeyMiddleware: RouterMiddleware {
    let key: String
    let gateway: Gateway

    func handle(_ request: Request, context: BasicRequestContext,
                next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        guard request.headers[.authorization] == "Bearer \(key)" else {
            return gateway.errorResponse(GatewayError(status: .unauthorized, type: "invalid_request_error",
                                                      code: "invalid_api_key", message: "Incorrect or missing API key"))
        }
        return try await next(request, context)
    }
}
