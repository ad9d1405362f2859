import ArgumentParser
import Foundation
import Hummingbird
import Logging
import TandemBus
import TandemServing
import TandemService
import TandemTelemetry
import TandemWire

/// `gateway`: the OpenAI-compatible HTTP front door, the registry of live replicas (`control`
/// socket), session placement and each session's authoritative token history.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Tandem gateway: OpenAI-compatible HTTP API, replica registry, session placement.")

    @OptionGroup var common: CommonOptions

    @Option(help: "HTTP listen address host:port; port 0 picks a free one [TANDEM_HTTP_BIND].")
    var httpBind: String?

    @Option(help: "Control ROUTER bind endpoint [TANDEM_CONTROL_BIND].")
    var controlBind: String?

    @Option(help: "Expected heartbeat interval of replicas, ms [TANDEM_HEARTBEAT_MS].")
    var heartbeatMs: Int?

    @Option(help: "Missed heartbeats before a replica is marked dead [TANDEM_MISSED_HEARTBEATS].")
    var missedHeartbeats: Int?

    @Option(help: "Served (target) model; the gateway loads only its tokenizer [TANDEM_TARGET_MODEL].")
    var model: String?

    @Option(help: "Require this API key as 'Authorization: Bearer <key>' [TANDEM_API_KEY].")
    var apiKey: String?

    @Option(help: "Concurrent sessions admitted before answering 429 [TANDEM_MAX_SESSIONS].")
    var maxSessions: Int?

    @Option(help: "End a session that gets no token report for this many seconds with an error (504; streaming: an SSE error event) [TANDEM_SESSION_INACTIVITY_TIMEOUT].")
    var sessionInactivityTimeout: Double?

    @Option(help: "Default verification mode: coupled, exact or centralized [TANDEM_DEFAULT_MODE].")
    var defaultMode: String?

    @Option(help: "Default TTFT SLO in ms [TANDEM_SLO_TTFT_MS].")
    var sloTtftMs: Double?

    @Option(help: "Default TPOT SLO in ms [TANDEM_SLO_TPOT_MS].")
    var sloTpotMs: Double?

    func run() async throws {
        let registry = TelemetryBootstrap.bootstrap(label: "gateway", level: common.resolvedLogLevel())
        try await ServiceProcess.run(logger: "tandem.gateway", common: common) { process in
            let (context, logger) = (process.context, process.logger)
            let policy = Registry.Policy(
                heartbeatIntervalMs: try Setting.int(heartbeatMs, env: "TANDEM_HEARTBEAT_MS", default: 500),
                missedHeartbeatsAllowed: try Setting.int(missedHeartbeats, env: "TANDEM_MISSED_HEARTBEATS", default: 3))
            let (host, port) = try Self.parseHostPort(
                Setting.string(httpBind, env: "TANDEM_HTTP_BIND", default: DefaultEndpoints.gatewayHTTP))
            let control = try BusAddress.resolve(flag: controlBind, env: "TANDEM_CONTROL_BIND",
                                                 default: DefaultEndpoints.gatewayControl)

            var frontend = try Frontend(
                model: Setting.string(model, env: "TANDEM_TARGET_MODEL", default: ModelLoader.defaultTarget), logger: logger)
            frontend.apiKey = Setting.optionalString(apiKey, env: "TANDEM_API_KEY")
            frontend.defaultMode = Setting.string(defaultMode, env: "TANDEM_DEFAULT_MODE", default: "coupled")
            guard ["coupled", "exact", "centralized"].contains(frontend.defaultMode) else {
                throw ValidationError("default mode must be coupled, exact or centralized")
            }
            frontend.slo = SLO(ttftMs: try Setting.double(sloTtftMs, env: "TANDEM_SLO_TTFT_MS", default: 2000),
                               tpotMs: try Setting.double(sloTpotMs, env: "TANDEM_SLO_TPOT_MS", default: 150))
            let inactivity = try Setting.double(sessionInactivityTimeout, env: "TANDEM_SESSION_INACTIVITY_TIMEOUT",
                                                default: 120)
            guard inactivity > 0, inactivity.isFinite else {
                throw ValidationError("session inactivity timeout must be a positive number of seconds")
            }
            let events = try EventPublisher(context: context, connect: try common.eventsPubEndpoint(), logger: logger)
            let gateway = try Gateway(
                context: context, controlBind: control, policy: policy, frontend: frontend,
                maxSessions: try Setting.int(maxSessions, env: "TANDEM_MAX_SESSIONS", default: 64),
                sessionInactivityTimeout: .milliseconds(Int64((inactivity * 1000).rounded())), events: events,
                metrics: registry, logger: logger)
            let app = Application(
                router: gateway.makeRouter(),
                configuration: .init(address: .hostname(host, port: port), serverName: "tandem-gateway"),
                onServerRunning: { channel in
                    let bound = channel.localAddress?.port ?? port
                    // One parseable line for `tandem up` and tests.
                    ReadyLine.announce(["http": "http://\(host):\(bound)",
                                        "control": gateway.control.endpoint.boundEndpoint ?? control])
                },
                logger: logger)
            try await process.run([app, gateway])
        }
    }

    static func parseHostPort(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("HTTP bind '\(text)' is not host:port")
        }
        return (String(text[..<colon]), port)
    }
}
