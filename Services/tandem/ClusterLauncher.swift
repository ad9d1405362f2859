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
    /// Scheduling niceness of the drafter processes (0: the same as everyone's). On one machine drafting
    /// competes with the verifier for the same cores; a positive value lets the shared verifier win.
    var drafterNiceness = 0
    /// The drafters' `--draft-ahead` (docs/design.md §7.4). Off by default: drafters started here run on the
    /// verifier's machine, where drafting during verification takes the verifier's cores; emulated devices
    /// (which burn no CPU) may draft ahead.
    var drafterDraftAhead = "off"
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
    /// How each child was started, by name, so a fault harness can start it again (``restart(_:)``).
    var specs: [String: ChildSpec] = [:]
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

    /// A well-known port's bind endpoint, or port 0 (`*`: the service picks a free port and
    /// reports it on its READY line) in ephemeral mode.
    private func endpoint(_ port: Int) -> String { plan.ephemeral ? "tcp://127.0.0.1:*" : "tcp://127.0.0.1:\(port)" }

    private func spawn(_ name: String, product: String, _ arguments: [String], env: [String: String] = [:]) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment.merging(plan.environment) { $1 }
        environment.merge(env) { $1 }
        return try launch(name, ChildSpec(product: product, arguments: arguments + (plan.extraArguments[product] ?? []),
                                          environment: environment))
    }

    /// Starts `spec` as the child `name` (replacing a child of that name) and records how, for ``restart(_:timeout:)``.
    func launch(_ name: String, _ spec: ChildSpec) throws -> ChildProcess {
        let child = try ChildProcess(
            name: name, executable: (binDirectory as NSString).appendingPathComponent(spec.product),
            arguments: spec.arguments, environment: spec.environment, logDirectory: logDirectory)
        children.removeAll { $0.name == name }
        children.append(child)
        specs[name] = spec
        return child
    }

    /// A bus context for talking to the cluster's sockets, with its CurveZMQ keys when it has them.
    func busContext() throws -> BusContext {
        try BusContext(security: try CommonOptions.busSecurity(
            directory: plan.environment[CurveKeyDirectory.EnvironmentKey.directory]))
    }

    /// The child's READY fields; if it exits first (or stays silent past `timeout`), a
    /// ``LaunchError`` with its exit status and the tail of its output, so the failure says why.
    func ready(_ child: ChildProcess, timeout: Duration = .seconds(60)) async throws -> [String: String] {
        if let fields = await child.waitReady(timeout: timeout) { return fields }
        let what = child.isRunning ? "printed no READY line within \(timeout)" : "exited before its READY line"
        let report = await child.failureReport(what)
        throw LaunchError(report, addressInUse: report.contains("Address already in use"))
    }

    /// An endpoint a service reported on its READY line; in ephemeral mode it must be there
    /// (the configured `*` endpoint is not connectable), otherwise `configured` stands in.
    private func reported(_ key: String, _ fields: [String: String], by child: ChildProcess, configured: String) throws -> String {
        if let value = fields[key], !value.isEmpty { return value }
        guard !plan.ephemeral else { throw LaunchError("\(child.name)'s READY line has no '\(key)=' field: \(fields)") }
        return configured
    }

    /// How many times an ephemeral start is tried when a service could not bind its port
    /// (every attempt uses fresh ports). Binding port 0 makes this all but impossible; it stays
    /// as a net for a port race we do not know of.
    static let ephemeralStartAttempts = 3

    func start() async throws -> ClusterEndpoints {
        var attempt = 1
        while true {
            do {
                return try await startOnce()
            } catch let error as LaunchError where error.addressInUse && plan.ephemeral
                && attempt < Self.ephemeralStartAttempts {
                logger.warning("start-up attempt \(attempt) could not bind a port; stopping and retrying",
                               metadata: ["error": "\(error)"])
                await shutdown(grace: .seconds(5))
                children.removeAll()
                attempt += 1
            }
        }
    }

    /// One start: each service in dependency order, each told the endpoints its predecessors reported.
    ///
    /// In ephemeral mode every socket binds port 0 and the real port comes back on the READY line,
    /// so no port can be taken between picking and binding it. The one exception is the gateway's
    /// control port, which the metrics-store (started first, because the gateway publishes to it)
    /// must be told up front: it is reserved (``FreePort/reserve()``) until the gateway has bound it.
    /// (Before, all eight ports were picked up front with bind-0-and-close: the kernel may return
    /// the same port twice, and ~0.2 % of starts failed in the first second with a service unable
    /// to bind.)
    private func startOnce() async throws -> ClusterEndpoints {
        var reservation: FreePort.Reservation?
        if plan.ephemeral {
            guard let held = FreePort.reserve() else { throw LaunchError("could not reserve a free port on 127.0.0.1") }
            reservation = held
        }
        defer { reservation?.release() }
        let controlBind = reservation.map { "tcp://127.0.0.1:\($0.port)" } ?? "tcp://127.0.0.1:5550"

        let store = try spawn("metrics-store", product: "metrics-store", [
            "--xsub-bind", endpoint(5580), "--xpub-bind", endpoint(5581), "--query-bind", endpoint(5585),
            "--db", (plan.dataDirectory as NSString).appendingPathComponent("metrics.sqlite"),
            "--gateway-control", controlBind,
        ])
        let storeFields = try await ready(store)
        let xsub = try reported("xsub", storeFields, by: store, configured: endpoint(5580))
        let xpub = try reported("xpub", storeFields, by: store, configured: endpoint(5581))
        let query = try reported("query", storeFields, by: store, configured: endpoint(5585))
        // A restarted metrics-store must come back where every publisher already points.
        specs["metrics-store"]?.pin(["--xsub-bind": xsub, "--xpub-bind": xpub, "--query-bind": query])

        let httpBind = plan.ephemeral ? "127.0.0.1:0" : plan.httpBind
        var gatewayArgs = ["--http-bind", httpBind, "--control-bind", controlBind, "--events-pub", xsub,
                           "--metrics-query", query]
        if let model = plan.targetModel { gatewayArgs += ["--model", model] }
        let gateway = try spawn("gateway", product: "gateway", gatewayArgs)
        let gatewayFields = try await ready(gateway)
        reservation?.release()  // the gateway listens on it now
        let http = try reported("http", gatewayFields, by: gateway, configured: "http://\(httpBind)")
        let control = try reported("control", gatewayFields, by: gateway, configured: controlBind)

        let common = ["--gateway-control", control, "--events-pub", xsub, "--events-sub", xpub,
                      "--metrics-query", query]
        let estimator = try spawn("estimator", product: "estimator", ["--bind", endpoint(5570)] + common)
        let advisor = try spawn("config-advisor", product: "config-advisor", ["--bind", endpoint(5575)] + common)
        let estimatorEndpoint = try reported("estimator", try await ready(estimator), by: estimator,
                                             configured: endpoint(5570))
        let advisorEndpoint = try reported("advisor", try await ready(advisor), by: advisor, configured: endpoint(5575))
        let services = common + ["--estimator", estimatorEndpoint, "--advisor", advisorEndpoint]
        var verifiers: [ChildProcess] = []
        for i in 0..<plan.verifiers {
            var args = ["--bind", plan.verifiers > 1 || plan.ephemeral ? "tcp://127.0.0.1:*" : "tcp://127.0.0.1:5560",
                        "--replica-id", "verifier-\(i + 1)"] + services
            if let model = plan.targetModel { args += ["--model", model] }
            verifiers.append(try spawn("verifier-\(i + 1)", product: "verifier", args))
        }
        var drafters: [ChildProcess] = []
        for i in 0..<plan.drafters {
            var args = ["--replica-id", "drafter-\(i + 1)"] + services
            if let model = plan.draftModel { args += ["--model", model] }
            if plan.drafterNiceness > 0 { args += ["--nice", "\(plan.drafterNiceness)"] }
            args += ["--draft-ahead", plan.drafterDraftAhead]
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
        let context = try busContext()
        defer { Task { await context.shutdown() } }
        let client = try BusEndpoint.dealer(context: context, connect: control, logger: logger)
        let deadline = ContinuousClock.now + timeout
        var last: ClusterStatus?
        while ContinuousClock.now < deadline {
            if let died = children.first(where: { !$0.isRunning }) {
                throw LaunchError(await died.failureReport("exited during start-up"))
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

/// How a child was started: enough to start it again.
struct ChildSpec: Sendable {
    var product: String
    var arguments: [String]
    var environment: [String: String]

    /// Replaces the values of `flags` (e.g. an ephemeral `--xsub-bind tcp://127.0.0.1:*` by the endpoint it got).
    mutating func pin(_ flags: [String: String]) {
        for index in arguments.indices.dropLast() {
            if let value = flags[arguments[index]] { arguments[index + 1] = value }
        }
    }
}

struct LaunchError: Error, CustomStringConvertible {
    var description: String
    /// A child failed because its address was in use (an ephemeral start retries on fresh ports).
    var addressInUse = false
    init(_ description: String, addressInUse: Bool = false) {
        self.description = description
        self.addressInUse = addressInUse
    }
}
