import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemModels
import TandemService
import TandemServing
import TandemWire

/// `tandem bench fleet`: many edge devices drafting for one shared verifier, against centralized serving,
/// on one machine (docs/fleet.md).
///
/// The verifier is real (target model on this machine's cores); the devices are emulated: one
/// `drafter-agent --emulate` process replays the real draft model's proposals from a recorded trace and
/// charges each device the draft and network time of a device profile, so no draft compute steals the
/// verifier's cores. Every mode runs its own fresh cluster with the same prompts, seeds and SLO, in one
/// run: `centralized` (the verifier decodes every session, continuous batching), `sled` (fixed K,
/// first-come batching, no early stop) and `tandem` (controller, load-aware K including K = 0, SLO-aware
/// scheduler). Users are closed-loop: each device sends its next request when the last one finishes.
struct BenchFleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Emulated edge devices vs centralized serving: goodput, SLO attainment and capacity per device count.")

    @OptionGroup var trace: FleetTraceOptions

    @Option(help: "Device counts (comma separated).") var devices = "1,2,4,8,16"
    @Option(help: "Modes (comma separated): centralized, sled, tandem.") var modes = "centralized,sled,tandem"
    @Option(name: .customLong("requests-per-device"), help: "Requests each device sends per (mode, N).")
    var requestsPerDevice = 2
    @Option(name: .customLong("think-ms"), help: "Pause between a device's requests, ms.") var thinkMs = 0.0
    @Option(name: .customLong("stagger-ms"),
            help: "Device d sends its first request (d - 1) x this many ms after the run starts (0: all at once).")
    var staggerMs = 0.0
    @Option(help: "Device profile: a name in compose/profiles or a JSON file.") var profile = "raspberry-pi-5"
    @Option(help: "Fixed K of the sled mode.") var k = 4
    @Option(help: "The tandem mode's --draft-ahead: auto, on or off (sled and centralized never draft ahead).")
    var draftAhead = "auto"
    @Option(name: .customLong("slo-ttft-ms"), help: "TTFT SLO, ms.") var sloTTFTMs = 2000.0
    @Option(name: .customLong("slo-tpot-ms"), help: "TPOT SLO, ms.") var sloTPOTMs = 150.0
    @Option(name: .customLong("verifier-threads"), help: "Compute threads of the verifier.") var verifierThreads = 2
    @Option(help: "Write the results (one object per mode and N, plus capacity) to this JSON file.") var json: String?
    @Option(help: "Plot goodput and SLO attainment against N to this PNG (needs python3 with matplotlib).")
    var plot: String?
    @Option(name: .customLong("data-dir"), help: "Where the clusters keep logs and data.") var dataDir = "tandem-data/fleet"

    func run() async throws {
        let logger = Logger(label: "tandem.bench.fleet")
        let counts = try Self.list(devices).map { s -> Int in
            guard let n = Int(s), n >= 1 else { throw ValidationError("--devices takes positive integers") }
            return n
        }
        let modeList = try Self.list(modes).map { m -> FleetMode in
            guard let mode = FleetMode(rawValue: m) else { throw ValidationError("unknown mode '\(m)' (centralized, sled, tandem)") }
            return mode
        }
        guard requestsPerDevice >= 1 else { throw ValidationError("--requests-per-device must be at least 1") }
        let profilePath = Self.profilePath(profile)
        let deviceProfile = try EdgeDeviceProfile.load(path: profilePath)
        let tracePath = try await trace.recordIfMissing(out: nil, threads: 2, logger: logger)
        let recorded = try FleetTrace.load(path: tracePath)
        guard !recorded.entries.isEmpty else { throw ValidationError("the trace has no prompts") }
        // The texts every lossless session must produce, to check that no token is lost or changed.
        let targetPath = try ModelStore(logger: logger).resolve(trace.target).path
        let tokenizer = try Tokenizer(gguf: try GGUFFile(path: targetPath), logger: logger)
        let expected = recorded.entries.map { tokenizer.decode($0.output.filter { !tokenizer.isEndOfGeneration($0) }) }

        say("""
            tandem bench fleet — EMULATED edge devices: drafts replayed exactly from \(recorded.draftModel) (trace \(tracePath)),
            device time from profile '\(deviceProfile.name)' (\(deviceProfile.source));
            verifier: \(recorded.targetModel), real, \(verifierThreads) threads on this machine.
            SLO: TTFT \(Int(sloTTFTMs)) ms, TPOT \(Int(sloTPOTMs)) ms; \(recorded.entries.count) prompts, \(recorded.maxTokens) tokens each; \
            \(requestsPerDevice) requests per device; modes \(modeList.map(\.rawValue).joined(separator: ", ")).
            """)
        let maxDevices = counts.max()!
        var rows: [FleetRow] = []
        let started = ContinuousClock.now
        // Modes side by side at each N (a fresh cluster per mode and N): the host's speed drifts over
        // minutes, so comparing modes measured minutes apart would compare the host with itself.
        for n in counts {
            for mode in modeList {
                rows.append(try await run(mode: mode, devices: n, maxDevices: maxDevices, tracePath: tracePath,
                                          profilePath: profilePath, trace: recorded, expected: expected, started: started,
                                          logger: logger))
                say("\r\u{1B}[K" + FleetTable.line(rows[rows.count - 1]))
            }
        }
        let order = Dictionary(uniqueKeysWithValues: modeList.enumerated().map { ($1.rawValue, $0) })
        rows.sort { (order[$0.mode] ?? 0, $0.devices) < (order[$1.mode] ?? 0, $1.devices) }
        let report = FleetReport(
            trace: tracePath, draftModel: recorded.draftModel, targetModel: recorded.targetModel,
            promptSet: recorded.promptSet, prompts: recorded.entries.count, maxTokens: recorded.maxTokens,
            profile: deviceProfile.name, profileSource: deviceProfile.source, sloTTFTMs: sloTTFTMs, sloTPOTMs: sloTPOTMs,
            sledK: k, requestsPerDevice: requestsPerDevice, staggerMs: staggerMs, thinkMs: thinkMs,
            verifierThreads: verifierThreads, startedAt: ISO8601DateFormatter().string(from: Date()),
            rows: rows, capacity: FleetReport.capacity(of: rows))
        say("")
        say(FleetTable.render(report))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            say("results: \(json)")
            if let plot { try FleetPlot.render(json: json, png: plot) }
        } else if let plot {
            let temporary = NSTemporaryDirectory() + "tandem-fleet-\(getpid()).json"
            try JSONEncoder().encode(report).write(to: URL(fileURLWithPath: temporary))
            try FleetPlot.render(json: temporary, png: plot)
        }
    }

    // MARK: Cluster per mode and N

    /// Starts a cluster for `mode`, sends one uncounted request (first batches, the controller's priors),
    /// measures N devices, and stops the cluster.
    private func run(mode: FleetMode, devices n: Int, maxDevices: Int, tracePath: String, profilePath: String,
                     trace recorded: FleetTrace, expected: [String], started: ContinuousClock.Instant,
                     logger: Logger) async throws -> FleetRow {
        var plan = clusterPlan(mode: mode, tracePath: tracePath, profilePath: profilePath, devices: maxDevices)
        plan.dataDirectory = (dataDir as NSString).appendingPathComponent("\(mode.rawValue)-\(n)")
        let launcher = try ClusterLauncher(plan: plan, logger: logger)
        let endpoints: ClusterEndpoints
        do {
            endpoints = try await launcher.start()
            _ = try await launcher.waitRegistered(control: endpoints.control, timeout: .seconds(120))
        } catch {
            await launcher.shutdown()
            throw error
        }
        // One streaming connection per device: the default pool allows 8 per host and times out the rest.
        var httpConfig = HTTPClient.Configuration()
        httpConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, n + 4))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)
        let batches = try BatchWatcher(eventsSub: endpoints.eventsSub, logger: logger)
        defer { Task { try? await http.shutdown() } }
        do {
            let client = ChatClient(baseURL: endpoints.http, client: http)
            _ = try await request(client: client, mode: mode, entry: recorded.entries[0], trace: recorded, device: "dev-1")
            let row = try await measure(mode: mode, devices: n, client: client, trace: recorded, expected: expected,
                                        batches: batches, elapsed: started)
            await batches.close()
            await launcher.shutdown()
            return row
        } catch {
            await batches.close()
            await launcher.shutdown()
            throw error
        }
    }

    private func clusterPlan(mode: FleetMode, tracePath: String, profilePath: String, devices: Int) -> ClusterPlan {
        var plan = ClusterPlan()
        plan.ephemeral = true
        plan.targetModel = trace.target
        plan.dataDirectory = (dataDir as NSString).appendingPathComponent(mode.rawValue)
        var drafter = ["--emulate", tracePath, "--profile", profilePath, "--devices", "\(devices)", "--device-prefix", "dev"]
        var verifier = ["--threads", "\(verifierThreads)", "--max-batch", "\(max(16, devices))"]
        switch mode {
        case .centralized:
            verifier += ["--scheduler", "firstCome"]
        case .sled:
            verifier += ["--scheduler", "firstCome"]
            drafter += ["--no-dynamic", "--k", "\(k)", "--k-max", "\(max(k, trace.kMax))"]
        case .tandem:
            verifier += ["--scheduler", "sloAware"]
            drafter += ["--k-max", "\(trace.kMax)"]
            plan.drafterDraftAhead = draftAhead
        }
        plan.extraArguments = ["drafter-agent": drafter, "verifier": verifier]
        return plan
    }

    // MARK: Closed-loop users

    private func request(client: ChatClient, mode: FleetMode, entry: FleetTrace.Entry, trace: FleetTrace,
                         device: String) async throws -> ChatClient.Result {
        var extra: [String: Any] = ["tandem_device": device, "slo_ttft_ms": sloTTFTMs, "slo_tpot_ms": sloTPOTMs]
        switch mode {
        case .centralized: extra["tandem_mode"] = ServingMode.centralized.rawValue
        case .sled: extra["k"] = k
        case .tandem: break
        }
        return try await client.chat(messages: entry.messages.map { ["role": $0.role, "content": $0.content] },
                                     maxTokens: trace.maxTokens, temperature: Double(trace.temperature),
                                     seed: Int(trace.seed), extra: extra)
    }

    private func measure(mode: FleetMode, devices n: Int, client: ChatClient, trace: FleetTrace, expected: [String],
                         batches: BatchWatcher, elapsed: ContinuousClock.Instant) async throws -> FleetRow {
        let total = n * requestsPerDevice
        let progress = FleetProgress()
        batches.reset()
        let begin = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: [(FleetSample?, String?)].self) { group in
            for d in 1...n {
                group.addTask {
                    var out: [(FleetSample?, String?)] = []
                    if staggerMs > 0, d > 1 { try await Task.sleep(for: .milliseconds(staggerMs * Double(d - 1))) }
                    for r in 0..<requestsPerDevice {
                        // Device d starts at its own prompt, so devices do not all send the same one.
                        let index = ((d - 1) * requestsPerDevice + r) % trace.entries.count
                        let entry = trace.entries[index]
                        // A request that fails at the HTTP level is this row's error, not the end of the run.
                        let result: ChatClient.Result
                        do {
                            result = try await request(client: client, mode: mode, entry: entry, trace: trace,
                                                       device: "dev-\(d)")
                        } catch {
                            var failed = ChatClient.Result()
                            failed.error = "\(error)"
                            result = failed
                        }
                        if let error = result.error {
                            out.append((nil, error))
                        } else {
                            out.append((sample(result, device: "dev-\(d)", expected: expected[index]), nil))
                        }
                        let (done, errors) = progress.state.withLock { p -> (Int, Int) in
                            p.done += 1
                            if result.error != nil { p.errors += 1 }
                            return (p.done, p.errors)
                        }
                        FileHandle.standardOutput.write(Data(String(
                            format: "\r\u{1B}[K  %@ N=%d: %d/%d requests, %d errors, %.0f s elapsed",
                            mode.rawValue, n, done, total, errors, (ContinuousClock.now - elapsed).milliseconds / 1000).utf8))
                        if thinkMs > 0 { try await Task.sleep(for: .milliseconds(thinkMs)) }
                    }
                    return out
                }
            }
            var all: [(FleetSample?, String?)] = []
            for try await part in group { all += part }
            return all
        }
        let seconds = (ContinuousClock.now - begin).milliseconds / 1000
        let errors = results.compactMap(\.1)
        if let first = errors.first { sayError("\n\(mode.rawValue) N=\(n): \(errors.count) errors, first: \(first)") }
        return FleetRow(mode: mode.rawValue, devices: n, samples: results.compactMap(\.0), errors: errors.count,
                        seconds: seconds, batches: batches.take())
    }

    private func sample(_ r: ChatClient.Result, device: String, expected: String) -> FleetSample {
        let ttftMs = (r.ttft ?? 0) * 1000
        let tpotMs = r.tpot.map { $0 * 1000 }
        let met = ttftMs <= sloTTFTMs && (tpotMs ?? 0) <= sloTPOTMs
        return FleetSample(device: device, tokens: r.completionTokens, ttftMs: ttftMs, tpotMs: tpotMs, metSLO: met,
                           drafted: r.drafted, accepted: r.accepted, rounds: r.rounds, plainRounds: r.plainRounds,
                           wastedDraftMs: r.wastedDraftMs, aheadDrafts: r.aheadDrafts, aheadHits: r.aheadHits,
                           identical: r.text == expected)
    }

    // MARK: Helpers

    static func list(_ s: String) throws -> [String] {
        let items = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("empty list '\(s)'") }
        return items
    }

    /// A profile name resolves to `compose/profiles/NAME.json` (from the working directory or the
    /// repository holding this binary); anything with a slash or `.json` is a path.
    static func profilePath(_ name: String) -> String {
        if name.contains("/") || name.hasSuffix(".json") { return name }
        let candidates = [FileManager.default.currentDirectoryPath,
                          (ClusterLauncher.executableDirectory() as NSString).appendingPathComponent("../../..")]
        for base in candidates {
            let path = ((base as NSString).appendingPathComponent("compose/profiles/\(name).json") as NSString).standardizingPath
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return "compose/profiles/\(name).json"
    }
}

/// Requests finished so far in one (mode, N) run, for the progress line.
final class FleetProgress: Sendable {
    let state = Mutex<(done: Int, errors: Int)>((0, 0))
}

/// The serving setups the fleet benchmark compares (docs/fleet.md): a ``ServingMode`` plus the cluster's
/// scheduler and draft-length settings (`BenchFleetCommand.clusterPlan`).
enum FleetMode: String, Sendable, CaseIterable {
    case centralized, sled, tandem
}

/// Collects the verifier's batch events (positions, wall time) from the metrics-store's event proxy.
final class BatchWatcher: Sendable {
    typealias Batch = (positions: Int, wallMs: Double, prefill: Bool)

    private final class Log: Sendable {
        let batches = Mutex<[Batch]>([])
    }

    private let subscriber: BusSubscriber
    private let log = Log()
    private let task: Task<Void, Never>

    init(eventsSub: String, logger: Logger) throws {
        let context = try BusContext(security: try CommonOptions.busSecurity(directory: nil))
        let subscriber = try BusSubscriber(context: context, connect: eventsSub, topics: ["batch"], logger: logger)
        self.subscriber = subscriber
        let log = self.log
        task = Task {
            for await message in subscriber.messages {
                guard let envelope = try? WireCodec.decode(message.payload), case .batch(let b) = envelope.message else {
                    continue
                }
                // Verified positions only: prompt chunks prefilled in the same batch are not verification work.
                let positions = b.tokensPerSequence.reduce(0, +) - (b.prefillTokens ?? 0)
                log.batches.withLock { $0.append((positions, b.wallMs, b.prefill ?? false)) }
            }
        }
    }

    func reset() { log.batches.withLock { $0.removeAll() } }

    func take() -> [Batch] {
        log.batches.withLock { b in
            defer { b.removeAll() }
            return b
        }
    }

    func close() async {
        await subscriber.close()
        task.cancel()
    }
}
