import Foundation
import Logging
import TandemBus
import TandemService
import TandemWire

/// What `tandem up` starts.
struct ClusterPlan: Sendable {
    var drafters = 1
    var verifiers = 1
    var targetModel: String?
    var draftModel: String?
    /// Bind every socket on an ephemeral port (tests, several clusters on one machine).
    var ephemeral = false
    var httpBind = DefaultEndpoints.gatewayHTTP
    var dataDirectory = "tandem-data"
    /// Extra flags per service, e.g. `["verifier": ["--k", "4"]]`.
    var extraArguments: [String: [String]] = [:]
    var environment: [String: String] = [:]
}

/// Where a started cluster listens.
struct ClusterEndpoints: Sendable {
    var http: String
    var control: String
    var eventsPub: String
    var eventsSub: String
    var metricsQuery: String
    var estimator: String
    var advisor: String
}

/// Starts the six services as local processes in dependency order, learns their (possibly
/// ephemeral) endpoints from their READY lines, waits until every replica has registered with
/// the gateway, and stops them all on shutdown (SIGTERM, then SIGKILL after a grace period).
final class ClusterLauncher: @unchecked Sendable {
    let plan: ClusterPlan
    let binDirectory: String
    let logDirectory: String
    private(set) var children: [ChildProcess] = []
    private let logger: Logger

    init(plan: ClusterPlan, logger: Logger) throws {
        self.plan = plan
        self.logger = logger
        self.binDirectory = ClusterLauncher.executableDirectory()
        self.logDirectory = (plan.dataDirectory as NSString).appendingPathComponent("logs")
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        for product in ["gateway", "metrics-store", "estimator", "config-advisor", "verifier", "drafter-agent"] {
            let path = (binDirectory as NSString).appendingPathComponent(product)
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LaunchError("'\(product)' is not built next to tandem (\(binDirectory)); run `swift build` first")
            }
        }
    }

    /// The folder holding this `tandem` binary (the other products are built next to it).
    static func executableDirectory() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// Well-known ports, or free ports picked up front in ephemeral mode (so every service can be
    /// told every endpoint before it starts, in any order).
    private lazy var ports: [Int: Int] = {
        var map: [Int: Int] = [:]
        for port in [5550, 5560, 5570, 5575, 5580, 5581, 5585, 8080] {
            map[port] = plan.ephemeral ? FreePort.pick() : port
        }
        return map
    }()

    private func bind(_ port: Int) -> String { "tcp://127.0.0.1:\(ports[port] ?? port)" }

    private func spawn(_ name: String, product: String, _ arguments: [String], env: [String: String] = [:]) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment.merging(plan.environment) { $1 }
        environment.merge(env) { $1 }
        let child = try ChildProcess(
            name: name, executable: (binDirectory as NSString).appendingPathComponent(product),
            arguments: arguments + (plan.extraArguments[product] ?? []), environment: environment,
            logDirectory: logDirectory)
        children.append(child)
        return child
    }

    private func ready(_ child: ChildProcess, timeout: Duration = .seconds(60)) async throws -> [String: String] {
        guard let fields = await child.waitReady(timeout: timeout) else {
            throw LaunchError("\(child.name) did not start (see \(child.logPath))")
        }
        return fields
    }

    func start() async throws -> ClusterEndpoints {
        let control = bind(5550), xsub = bind(5580), xpub = bind(5581), query = bind(5585)
        let store = try spawn("metrics-store", product: "metrics-store", [
            "--xsub-bind", xsub, "--xpub-bind", xpub, "--query-bind", query,
            "--db", (plan.dataDirectory as NSString).appendingPathComponent("metrics.sqlite"),
            "--gateway-control", control,
        ])
        _ = try await ready(store)
        let httpBind = plan.ephemeral ? "127.0.0.1:\(ports[8080]!)" : plan.httpBind
        var gatewayArgs = ["--http-bind", httpBind, "--control-bind", control, "--events-pub", xsub,
                           "--metrics-query", query]
        if let model = plan.targetModel { gatewayArgs += ["--model", model] }
        let gateway = try spawn("gateway", product: "gateway", gatewayArgs)
        let gatewayFields = try await ready(gateway)
        let http = gatewayFields["http"] ?? "http://\(httpBind)"
        let common = ["--gateway-control", control, "--events-pub", xsub, "--events-sub", xpub,
                      "--metrics-query", query]
        let estimator = try spawn("estimator", product: "estimator", ["--bind", bind(5570)] + common)
        let advisor = try spawn("config-advisor", product: "config-advisor", ["--bind", bind(5575)] + common)
        _ = try await ready(estimator)
        _ = try await ready(advisor)
        let estimatorEndpoint = bind(5570), advisorEndpoint = bind(5575)
        let services = common + ["--estimator", estimatorEndpoint, "--advisor", advisorEndpoint]
        var verifiers: [ChildProcess] = []
        for i in 0..<plan.verifiers {
            var args = ["--bind", plan.verifiers > 1 || plan.ephemeral ? "tcp://127.0.0.1:*" : bind(5560),
                        "--replica-id", "verifier-\(i + 1)"] + services
            if let model = plan.targetModel { args += ["--model", model] }
            verifiers.append(try spawn("verifier-\(i + 1)", product: "verifier", args))
        }
        var drafters: [ChildProcess] = []
        for i in 0..<plan.drafters {
            var args = ["--replica-id", "drafter-\(i + 1)"] + services
            if let model = plan.draftModel { args += ["--model", model] }
            drafters.append(try spawn("drafter-\(i + 1)", product: "drafter-agent", args))
        }
        for child in verifiers + drafters { _ = try await ready(child, timeout: .seconds(300)) }
        return ClusterEndpoints(http: http, control: control, eventsPub: xsub, eventsSub: xpub, metricsQuery: query,
                                estimator: estimatorEndpoint, advisor: advisorEndpoint)
    }

    /// Polls the gateway until every started replica is registered and alive.
    func waitRegistered(control: String, timeout: Duration) async throws -> ClusterStatus {
        let expected: [Role: Int] = [.metricsStore: 1, .estimator: 1, .configAdvisor: 1,
                                     .verifier: plan.verifiers, .drafter: plan.drafters]
        let context = try BusContext()
        defer { Task { await context.shutdown() } }
        let client = try BusEndpoint.dealer(context: context, connect: control, logger: logger)
        let deadline = ContinuousClock.now + timeout
        var last: ClusterStatus?
        while ContinuousClock.now < deadline {
            if let died = children.first(where: { !$0.isRunning }) {
                throw LaunchError("\(died.name) exited during start-up (see \(died.logPath))")
            }
            if case .clusterStatus(let status)? = try? await client.call(.status(StatusQuery()), timeout: .seconds(1)) {
                last = status
                let alive = Dictionary(grouping: status.replicas.filter(\.alive), by: \.registration.role).mapValues(\.count)
                if expected.allSatisfy({ alive[$0.key, default: 0] >= $0.value }) {
                    await client.close()
                    return status
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        await client.close()
        throw LaunchError("not every replica registered within \(timeout); registry: \(last.map(String.init(describing:)) ?? "unreachable")")
    }

    /// SIGTERM to everyone (drafters first, metrics-store last), then SIGKILL whoever is left after `grace`.
    func shutdown(grace: Duration = .seconds(10)) async {
        for child in children.reversed() { child.signal(SIGTERM) }
        let deadline = ContinuousClock.now + grace
        for child in children.reversed() {
            let left = deadline - ContinuousClock.now
            if await !waitExit(child, timeout: max(left, .zero)) {
                logger.warning("\(child.name) did not stop in time; killing it")
                child.signal(SIGKILL)
            }
        }
    }

    private func waitExit(_ child: ChildProcess, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while child.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !child.isRunning
    }
}

struct LaunchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
