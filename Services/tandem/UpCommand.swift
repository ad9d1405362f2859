import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import TandemEngine
import TandemBus
import TandemModels
import TandemService
import TandemWire
import UnixSignals

/// `tandem up`: a whole cluster as local processes.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start gateway, metrics-store, estimator, config-advisor, verifiers and drafters locally.",
        discussion: "Waits until every replica has registered, prints the HTTP endpoint, and stops everything on Ctrl-C.")

    @Option(help: "Drafter replicas.") var drafters = 1
    @Option(help: "Verifier replicas.") var verifiers = 1
    @Flag(help: "Use SmolLM2-135M for both roles (fast).") var small = false
    @Option(help: "Target model (catalog name or GGUF path).") var targetModel: String?
    @Option(help: "Draft model (catalog name or GGUF path).") var draftModel: String?
    @Option(help: "HTTP listen address.") var http = DefaultEndpoints.gatewayHTTP
    @Flag(help: "Bind every socket on a free port (several clusters on one machine, tests).") var ephemeral = false
    @Option(help: "Folder for the metrics database and service logs.") var dataDir = "tandem-data"
    @Flag(help: "Print the cluster status once everyone registered, then shut down.") var exitAfterReady = false
    @Flag(help: "Once ready, send one demo chat request, print the streamed reply, then shut down.") var demo = false
    @Option(help: "The demo's prompt.") var demoPrompt = "Write a Swift function that checks whether a string is a palindrome, with a short explanation."
    @Option(help: "Seconds to wait for every replica to register.") var startTimeout = 300
    @Option(help: "Scheduling niceness of the drafters' compute threads (0-19): on one machine a drafter computes on the verifier's cores, and the shared verifier should win when both want them (docs/measurements.md, TTFT). 0 = same priority.")
    var drafterNice = 10
    @Flag(help: "Secure the bus with CurveZMQ: keys from --curve-keys, else made in <data-dir>/keys (docs/security.md).") var curve = false
    @Option(help: "CurveZMQ key folder (tandem keys init); implies --curve [TANDEM_CURVE_KEYS].") var curveKeys: String?

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "tandem.up")
        var plan = ClusterPlan()
        plan.drafters = drafters
        plan.verifiers = verifiers
        plan.ephemeral = ephemeral
        plan.httpBind = http
        plan.dataDirectory = dataDir
        guard (0...19).contains(drafterNice) else { throw ValidationError("--drafter-nice must be in 0...19") }
        plan.drafterNiceness = drafterNice
        plan.targetModel = targetModel ?? (small ? "smollm2-135m-instruct" : nil)
        plan.draftModel = draftModel ?? (small ? "smollm2-135m-instruct" : nil)
        guard drafters >= 1, verifiers >= 1 else { throw ValidationError("need at least one drafter and one verifier") }
        if curve || curveKeys != nil {
            let folder = URL(fileURLWithPath: curveKeys ?? (dataDir as NSString).appendingPathComponent("keys")).path
            if curveKeys == nil && !FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("server.secret")) {
                try CurveKeyDirectory.create(at: folder)
                say("Made cluster keys in \(folder)")
            }
            plan.environment[CurveKeyDirectory.EnvironmentKey.directory] = folder
        }

        try await fetchMissingModels([plan.targetModel ?? "qwen2.5-coder-1.5b-instruct",
                                      plan.draftModel ?? "qwen2.5-coder-0.5b-instruct"], logger: logger)
        let launcher = try ClusterLauncher(plan: plan, logger: logger)
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        do {
            say("Starting Tandem (\(verifiers) verifier(s), \(drafters) drafter(s)); logs in \(launcher.logDirectory)")
            let endpoints = try await launcher.start()
            let status = try await launcher.waitRegistered(control: endpoints.control, timeout: .seconds(startTimeout))
            say(StatusTable.render(status))
            say("PIDS " + launcher.children.map { "\($0.name)=\($0.pid)" }.joined(separator: " "))
            say("READY http=\(endpoints.http) control=\(endpoints.control)")
            say("Tandem is serving at \(endpoints.http)  (Ctrl-C to stop)")
            if demo {
                try await runDemo(http: endpoints.http)
            } else if !exitAfterReady {
                for await _ in signals { break }
            }
        } catch {
            // On stderr: this is the only word on why `tandem up` exits 1 (a caller that waits for
            // READY on stdout, such as the test harness, reports stderr with the exit status).
            sayError("tandem up failed: \(error)")
            await launcher.shutdown()
            throw ExitCode.failure
        }
        say("Stopping Tandem...")
        await launcher.shutdown()
        say("Stopped.")
    }
}

extension UpCommand {
    /// Fetches catalog models that are not cached yet (with progress); paths are left alone.
    func fetchMissingModels(_ names: [String], logger: Logger) async throws {
        let store = ModelStore(logger: logger)
        for name in Set(names) {
            guard let spec = ModelCatalog.spec(named: name), !store.isVerified(spec),
                  !FileManager.default.fileExists(atPath: store.path(for: spec).path) else { continue }
            say("Fetching \(spec.name) (\(spec.summary))...")
            _ = try await store.fetch(spec) { line in say(line) }
        }
    }

    func runDemo(http: String) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { Task { try? await client.shutdown() } }
        say("\n> \(demoPrompt)\n")
        let result = try await ChatClient(baseURL: http, client: client).chat(
            messages: [["role": "user", "content": demoPrompt]], maxTokens: 256, temperature: 0, seed: 1
        ) { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        say("\n")
        if let error = result.error { throw LaunchError("demo request failed: \(error)") }
        let rate = result.drafted > 0 ? Double(result.accepted) / Double(result.drafted) : 0
        say(String(format: "[%d tokens, finish=%@, TTFT %.0f ms, %.1f tokens/s after the first; drafted %d, accepted %d (%.0f%%), %d rounds]",
                     result.completionTokens, result.finishReason ?? "-", (result.ttft ?? 0) * 1000,
                     result.completionTokens > 1 ? Double(result.completionTokens - 1) / max(1e-9, (result.lastTokenAt ?? 0) - (result.ttft ?? 0)) : 0,
                     result.drafted, result.accepted, rate * 100, result.rounds))
    }
}

/// `tandem status`: the gateway's registry.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "List live replicas.")

    @Option(help: "Gateway control endpoint [TANDEM_GATEWAY_CONTROL].") var gatewayControl: String?
    @Option(help: "CurveZMQ key folder of a secured cluster [TANDEM_CURVE_KEYS].") var curveKeys: String?

    func run() async throws {
        let endpoint = try BusAddress.resolve(flag: gatewayControl, env: "TANDEM_GATEWAY_CONTROL",
                                              default: DefaultEndpoints.gatewayControl)
        let context = try BusContext(security: try CommonOptions.busSecurity(directory: curveKeys))
        let client = try BusEndpoint.dealer(context: context, connect: endpoint)
        defer { Task { await client.close(); await context.shutdown() } }
        let reply = try await client.call(.status(StatusQuery()), timeout: .seconds(3))
        guard case .clusterStatus(let status) = reply else { throw LaunchError("unexpected reply \(reply.kind)") }
        say(StatusTable.render(status))
    }
}

enum StatusTable {
    static func render(_ status: ClusterStatus) -> String {
        let now = Date().timeIntervalSince1970 * 1000
        var rows = [["ROLE", "ID", "STATE", "ENDPOINT", "MODEL", "SESSIONS", "LAST HEARTBEAT"]]
        for r in status.replicas {
            rows.append([r.registration.role.rawValue, r.registration.replicaID, r.alive ? "alive" : "dead",
                         r.registration.endpoint ?? "-", r.registration.model ?? "-", "\(r.load.activeSessions)",
                         String(format: "%.1fs ago", (now - r.lastHeartbeat) / 1000)])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// Writes a line (or, with `terminator: ""`, a fragment) to stdout unbuffered, so streamed demo
/// text and status lines appear in order, live, also through a pipe.
func say(_ text: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((text + terminator).utf8))
}

/// Like ``say(_:terminator:)``, on stderr: failures, so they are not lost among stdout's lines.
func sayError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
