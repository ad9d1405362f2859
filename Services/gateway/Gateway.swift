import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import TandemBus
import TandemService
import TandemServing
import TandemTelemetry
import TandemWire

/// Ties the gateway's parts together: registry, control socket, session manager; its extensions
/// hold the HTTP route handlers (`Gateway+Completions.swift`, `Gateway+Operational.swift`), which
/// `buildRouter` (`Gateway+Build.swift`) mounts.
final class Gateway: Service, Sendable {
    let settings: Settings
    let registry: Registry
    let control: ControlServer
    let sessions: SessionManager
    let frontend: Frontend
    /// The models drafters can download (`Gateway+Models.swift`); nil: no model endpoint.
    let shelf: ModelShelf?
    let metrics: PrometheusCollectorRegistry
    let logger: Logger

    /// What the gateway is configured with, read from flags and environment by `GatewayCommand`
    /// (tests set it directly). The served model's limits and defaults live in ``Frontend``.
    struct Settings: Sendable {
        /// HTTP listen host and port (0 picks a free port; the bound one is in the READY line).
        var httpHost = "127.0.0.1"
        var httpPort = 0
        /// Where the control ROUTER binds (`tcp://127.0.0.1:*` picks a free port).
        var controlBind = "tcp://127.0.0.1:*"
        var policy = Registry.Policy()
        /// Concurrent sessions admitted before answering 429.
        var maxSessions = 64
        /// A session with no accepted token report for this long ends with a 504.
        var sessionInactivityTimeout: Duration = .seconds(120)
        /// An HTTP connection with no request in progress for this long is closed: idle keep-alives and
        /// clients that connect and never finish their headers cannot pile up.
        var httpIdleTimeout: Duration = .seconds(60)
        /// The model store shipped to drafters started with `--model auto` (docs/model-shipping.md);
        /// nil serves no model endpoint.
        var modelShelf: ModelShelf.Settings?
    }

    /// Binds the control socket and creates the registry and session manager. The HTTP side is built
    /// separately by ``buildApplication(gateway:onServerRunning:)``, which runs this gateway as a service.
    init(context: BusContext, settings: Settings, frontend: Frontend, events: EventPublisher?,
         metrics: PrometheusCollectorRegistry, logger: Logger) throws {
        self.settings = settings
        self.registry = Registry(policy: settings.policy, logger: logger)
        self.frontend = frontend
        self.metrics = metrics
        self.logger = logger
        self.control = try ControlServer(context: context, bind: settings.controlBind, registry: registry, logger: logger)
        self.shelf = settings.modelShelf.map {
            ModelShelf(settings: $0, target: ModelShipping.Target(
                name: frontend.modelName, tokenizer: ModelShipping.tokenizerFingerprint(tokens: frontend.tokenizer.tokens)),
                       logger: logger)
        }
        let sessions = SessionManager(registry: registry, control: control, events: events,
                                      tokenizer: frontend.tokenizer, modelName: frontend.modelName,
                                      maxSessions: settings.maxSessions, inactivityTimeout: settings.sessionInactivityTimeout,
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
}

/// Requires `Authorization: Bearer <key>` on `/v1/*` when the gateway has an API key.
struct APIKeyMiddleware: RouterMiddleware {
    let gateway: Gateway

    func handle(_ request: Request, context: BasicRequestContext,
                next: (Request, BasicRequestContext) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        guard gateway.frontend.accepts(authorization: request.headers[.authorization]) else {
            return gateway.errorResponse(GatewayError(status: .unauthorized, type: "invalid_request_error",
                                                      code: "invalid_api_key", message: "Incorrect or missing API key"))
        }
        return try await next(request, context)
    }
}
