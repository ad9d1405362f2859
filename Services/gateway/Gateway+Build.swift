import Hummingbird
import NIOCore
import Logging

// The gateway's HTTP application, built the way Hummingbird's own templates build an app: a
// `buildApplication` that takes the already-made dependencies (here a `Gateway`: registry, control
// socket, session manager, frontend) and returns something to run, and a `buildRouter` that mounts
// the routes. `GatewayCommand.run` only reads flags, makes the `Gateway` and runs what
// `buildApplication` returns; tests build the same application around an in-process `Gateway` and
// drive it with HummingbirdTesting's client (`app.test(.router)`), without a process or a port.

/// The HTTP application serving `gateway`'s routes, with `gateway` itself (its registry sweep) as one
/// of the application's services, so that running the application runs the whole gateway and stops
/// it in order: the HTTP server first, then the sweep and the control socket.
/// - Parameter onServerRunning: called with the bound HTTP port once the server listens.
func buildApplication(gateway: Gateway,
                      onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
    let (host, port) = (gateway.settings.httpHost, gateway.settings.httpPort)
    var app = Application(
        router: buildRouter(gateway: gateway),
        server: .http1(configuration: .init(idleTimeout: TimeAmount(gateway.settings.httpIdleTimeout))),
        configuration: .init(address: .hostname(host, port: port), serverName: "tandem-gateway"),
        onServerRunning: { channel in
            let bound = channel.localAddress?.port ?? port
            // Told to replicas in the cluster status: where a drafter with `--model auto` downloads its model.
            gateway.control.setHTTPEndpoint("http://\(host.contains(":") ? "[\(host)]" : host):\(bound)")
            await onServerRunning(bound)
        },
        logger: gateway.logger)
    app.addServices(gateway)
    return app
}

/// Every route of the gateway: `/health`, `/v1/cluster`, `/metrics` (`Gateway+Operational.swift`),
/// the OpenAI endpoints (`Gateway+Completions.swift`) and the model endpoint (`Gateway+Models.swift`),
/// behind ``APIKeyMiddleware`` when the frontend has an API key.
func buildRouter(gateway: Gateway) -> Router<BasicRequestContext> {
    let router = Router()
    if gateway.frontend.requiresKey { router.add(middleware: APIKeyMiddleware(gateway: gateway)) }
    gateway.addOperationalRoutes(to: router)
    gateway.addCompletionRoutes(to: router)
    gateway.addModelRoutes(to: router)
    return router
}
