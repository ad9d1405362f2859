import ArgumentParser
import Foundation
import Hummingbird
import Logging
import TandemBus
import TandemEngine
import TandemModels
import TandemQuantize
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

    @Option(help: "File of per-device API keys, one 'DEVICE KEY' per line: only a device's key may name it; each is also an API key [TANDEM_DEVICE_KEYS].")
    var deviceKeys: String?

    @Option(help: "Concurrent sessions admitted before answering 429 [TANDEM_MAX_SESSIONS].")
    var maxSessions: Int?

    @Option(help: "End a session that gets no token report for this many seconds with an error (504; streaming: an SSE error event) [TANDEM_SESSION_INACTIVITY_TIMEOUT].")
    var sessionInactivityTimeout: Double?

    @Option(help: "Close an HTTP connection with no request in progress after this many seconds [TANDEM_HTTP_IDLE_TIMEOUT] (default: 60).")
    var httpIdleTimeout: Double?

    @Option(help: "Default serving mode: \(ServingMode.choices) [TANDEM_DEFAULT_MODE].")
    var defaultMode: String?

    @Flag(name: .customLong("ship-models"), inversion: .prefixedNo,
          help: "Serve the model store to drafters started with --model auto (GET /v1/tandem/models).")
    var shipModels = true

    @Option(help: "Model store shipped to drafters [TANDEM_MODELS] (default: ~/.cache/tandem/models).")
    var modelsDir: String?

    @Option(help: "Quantised variants of each stored model offered to drafters, produced on first request; comma-separated types or 'none' [TANDEM_SHIP_VARIANTS] (default: Q8_0,Q4_K,Q4_0).")
    var shipVariants: String?

    @Option(help: "Threads for producing a quantised variant [TANDEM_QUANTIZE_THREADS] (default: 2).")
    var quantizeThreads: Int?

    @Option(help: "Default TTFT SLO in ms [TANDEM_SLO_TTFT_MS].")
    var sloTtftMs: Double?

    @Option(help: "Default TPOT SLO in ms [TANDEM_SLO_TPOT_MS].")
    var sloTpotMs: Double?

    func run() async throws {
        let metrics = TelemetryBootstrap.bootstrap(label: "gateway", level: common.resolvedLogLevel())
        try await ServiceProcess.run(logger: "tandem.gateway", common: common) { process in
            let gateway = try Gateway(
                context: process.context, settings: try settings(), frontend: try frontend(logger: process.logger),
                events: try EventPublisher(context: process.context, connect: try common.eventsPubEndpoint(),
                                           logger: process.logger),
                metrics: metrics, logger: process.logger)
            let app = buildApplication(gateway: gateway) { port in
                // One parseable line for `tandem up` and tests.
                ReadyLine.announce(["http": "http://\(gateway.settings.httpHost):\(port)",
                                    "control": gateway.control.endpoint.boundEndpoint ?? gateway.settings.controlBind])
            }
            try await process.run([app])
        }
    }

    /// The gateway's settings from flags and environment.
    func settings() throws -> Gateway.Settings {
        var settings = Gateway.Settings()
        (settings.httpHost, settings.httpPort) = try Self.parseHostPort(
            Setting.string(httpBind, env: "TANDEM_HTTP_BIND", default: DefaultEndpoints.gatewayHTTP))
        settings.controlBind = try BusAddress.resolve(flag: controlBind, env: "TANDEM_CONTROL_BIND",
                                                      default: DefaultEndpoints.gatewayControl)
        settings.policy = Registry.Policy(
            heartbeatIntervalMs: try Setting.int(heartbeatMs, env: "TANDEM_HEARTBEAT_MS", default: 500),
            missedHeartbeatsAllowed: try Setting.int(missedHeartbeats, env: "TANDEM_MISSED_HEARTBEATS", default: 3))
        settings.maxSessions = try Setting.int(maxSessions, env: "TANDEM_MAX_SESSIONS", default: 64)
        settings.sessionInactivityTimeout = try Self.positiveSeconds(
            sessionInactivityTimeout, env: "TANDEM_SESSION_INACTIVITY_TIMEOUT", default: 120, what: "session inactivity timeout")
        settings.httpIdleTimeout = try Self.positiveSeconds(
            httpIdleTimeout, env: "TANDEM_HTTP_IDLE_TIMEOUT", default: 60, what: "HTTP idle timeout")
        if shipModels {
            let directory = Setting.optionalString(modelsDir, env: "TANDEM_MODELS")
                .map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) } ?? ModelStore.defaultDirectory
            var shelf = ModelShelf.Settings(directory: directory)
            let variants = Setting.string(shipVariants, env: "TANDEM_SHIP_VARIANTS",
                                          default: ModelShelf.defaultVariantTypes.map(\.name).joined(separator: ","))
            do {
                shelf.variantTypes = variants.lowercased() == "none" ? [] : try variants.split(separator: ",")
                    .map { try QuantizationPlan.type(named: $0.trimmingCharacters(in: .whitespaces)) }
            } catch {
                throw ValidationError("--ship-variants: \(error)")
            }
            shelf.quantizeThreads = try Setting.int(quantizeThreads, env: "TANDEM_QUANTIZE_THREADS", default: 2)
            guard shelf.quantizeThreads >= 1 else { throw ValidationError("--quantize-threads must be at least 1") }
            settings.modelShelf = shelf
        }
        return settings
    }

    /// The served model's tokenizer and limits, and the request defaults, from flags and environment.
    func frontend(logger: Logger) throws -> Frontend {
        var frontend = try Frontend(
            model: Setting.string(model, env: "TANDEM_TARGET_MODEL", default: ModelLoader.defaultTarget), logger: logger)
        frontend.apiKey = Setting.optionalString(apiKey, env: "TANDEM_API_KEY")
        if let path = Setting.optionalString(deviceKeys, env: "TANDEM_DEVICE_KEYS") {
            do { frontend.deviceKeys = try Frontend.loadDeviceKeys(path: path) } catch {
                throw ValidationError("\(error)")
            }
        }
        let mode = Setting.string(defaultMode, env: "TANDEM_DEFAULT_MODE", default: ServingMode.standard.rawValue)
        guard let mode = ServingMode(parsing: mode) else { throw ValidationError(ServingMode.invalid("default mode")) }
        frontend.defaultMode = mode
        frontend.slo = SLO(ttftMs: try Setting.double(sloTtftMs, env: "TANDEM_SLO_TTFT_MS", default: 2000),
                           tpotMs: try Setting.double(sloTpotMs, env: "TANDEM_SLO_TPOT_MS", default: 150))
        return frontend
    }

    /// A duration given in seconds (flag, environment, default), refused unless positive and finite.
    static func positiveSeconds(_ flag: Double?, env: String, default value: Double, what: String) throws -> Duration {
        let seconds = try Setting.double(flag, env: env, default: value)
        guard seconds > 0, seconds.isFinite else { throw ValidationError("\(what) must be a positive number of seconds") }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    static func parseHostPort(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("HTTP bind '\(text)' is not host:port")
        }
        return (String(text[..<colon]), port)
    }
}
