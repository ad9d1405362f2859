import AsyncHTTPClient
import Foundation
import Logging
import Synchronization
import TandemBus
import TandemService
import TandemWire

#if canImport(Glibc)
import Glibc
#endif

/// The fault harness behind `tandem chaos` (docs/chaos.md): a local cluster of real processes under
/// a steady load of streamed requests, while replicas are killed, frozen and restarted one fault at
/// a time. Every stream must end with exactly the text of an undisturbed run of the same request
/// (greedy and seeded sampling alike), no replica may die on its own, and each fault must be shown
/// to have hit a live stream.
final class ChaosRun: @unchecked Sendable {
    struct Settings: Sendable {
        var duration: Duration = .seconds(60)
        var concurrency = 3
        var faultInterval: Duration = .seconds(4)
        var maxTokens = 48
        /// Faults injected at the least, even when `duration` has passed (so a short run covers every kind).
        var minFaults = 0
        /// How long a frozen replica stays stopped: longer than the gateway's heartbeat window.
        var stopFor: Duration = .seconds(3)
        var seed: UInt64 = 1
    }

    enum FaultKind: String, Codable, CaseIterable, Sendable {
        case killVerifier = "kill-verifier"
        case killDrafter = "kill-drafter"
        case freezeVerifier = "freeze-verifier"
        case restartMetricsStore = "restart-metrics-store"
        case freezeDrafter = "freeze-drafter"
    }

    struct Fault: Codable, Sendable {
        var kind: FaultKind
        var victim: String
        var atSeconds: Double
        var streamsInFlight: Int
        /// `tandem_session_failovers_total` before and after: a kill or freeze hit a live stream when it rose.
        var failoversBefore: Int
        var failoversAfter: Int
        var hitLiveStream: Bool
        /// Tries it took to hit a live stream (kills and freezes; at most ``ChaosRun/attempts``).
        var attempts = 1
        var note: String?
    }

    struct Report: Codable, Sendable {
        var target: String
        var draft: String
        var seconds: Double
        var faults: [Fault]
        var streams: Int
        var identical: Int
        var mismatched: [String]
        var errors: [String]
        var crashes: [String]
        /// Nothing lost, nothing crashed, and every fault hit a live stream.
        var passed: Bool {
            mismatched.isEmpty && errors.isEmpty && crashes.isEmpty && !faults.isEmpty && faults.allSatisfy(\.hitLiveStream)
        }
    }

    /// One request of the load, replayed again and again.
    struct Request: Sendable {
        var prompt: String
        var temperature: Double
        var seed: Int
        var label: String { "\(temperature == 0 ? "greedy" : "T=\(temperature) seed \(seed)") '\(prompt.prefix(30))'" }
    }

    static let prompts = [
        "Write a short story about a lighthouse keeper and the sea.",
        "Explain how a hash map works, step by step.",
        "List five uses of a paperclip and say why each works.",
        "Describe the water cycle to a ten-year-old.",
    ]

    let launcher: ClusterLauncher
    let http: String
    let control: String
    let settings: Settings
    let logger: Logger
    private let client = HTTPClient(eventLoopGroupProvider: .singleton)
    private let tally = Mutex(Tally())
    private var random: SplitMix

    private struct Tally {
        var stopped = false
        var inFlight = 0
        var streams = 0
        var identical = 0
        var mismatched: [String] = []
        var errors: [String] = []
    }

    init(launcher: ClusterLauncher, http: String, control: String, settings: Settings, logger: Logger) {
        self.launcher = launcher
        self.http = http
        self.control = control
        self.settings = settings
        self.logger = logger
        self.random = SplitMix(seed: settings.seed)
    }

    func run() async throws -> Report {
        defer { Task { [client] in try? await client.shutdown() } }
        let requests = Self.prompts.enumerated().flatMap { index, prompt in
            [Request(prompt: prompt, temperature: 0, seed: 0),
             Request(prompt: prompt, temperature: 0.8, seed: 100 + index)]
        }
        say("chaos: \(requests.count) undisturbed reference runs")
        var texts: [String] = []
        for request in requests {
            let result = try await stream(request)
            guard result.error == nil, result.sawDone, !result.text.isEmpty else {
                throw LaunchError("reference run \(request.label) failed: \(result.error ?? "stream cut short")")
            }
            texts.append(result.text)
        }
        let references = texts

        let context = try launcher.busContext()
        let registry = try BusEndpoint.dealer(context: context, connect: control, logger: logger)
        defer { Task { await context.shutdown() } }

        let start = ContinuousClock.now
        say("chaos: \(settings.concurrency) concurrent streams, a fault every \(settings.faultInterval) for \(settings.duration)")
        let load = (0..<settings.concurrency).map { worker in
            Task {
                var next = worker
                while !self.tally.withLock({ $0.stopped }) {
                    let index = next % requests.count
                    next += settings.concurrency
                    await self.check(requests[index], expected: references[index])
                }
            }
        }

        var faults: [Fault] = []
        var crashes: [String] = []
        while ContinuousClock.now - start < settings.duration || faults.count < settings.minFaults {
            try await Task.sleep(for: settings.faultInterval)
            let kind = FaultKind.allCases[faults.count % FaultKind.allCases.count]
            var fault = try await inject(kind, registry: registry)
            fault.atSeconds = (ContinuousClock.now - start).milliseconds / 1000
            say("chaos: \(fault.kind.rawValue) \(fault.victim): \(fault.streamsInFlight) stream(s) in flight, failovers \(fault.failoversBefore) -> \(fault.failoversAfter), hit \(fault.hitLiveStream)\(fault.attempts > 1 ? " on try \(fault.attempts)" : "")\(fault.note.map { " (\($0))" } ?? "")")
            faults.append(fault)
            crashes += await crashed()
        }
        tally.withLock { $0.stopped = true }
        for task in load { await task.value }
        crashes += await crashed()
        await registry.close()

        let final = tally.withLock { $0 }
        return Report(target: launcher.plan.targetModel ?? "-", draft: launcher.plan.draftModel ?? "-",
                      seconds: (ContinuousClock.now - start).milliseconds / 1000, faults: faults,
                      streams: final.streams, identical: final.identical, mismatched: final.mismatched,
                      errors: final.errors, crashes: crashes)
    }

    // MARK: Load

    private func stream(_ request: Request) async throws -> ChatClient.Result {
        try await ChatClient(baseURL: http, client: client).chat(
            messages: [["role": "user", "content": request.prompt]], maxTokens: settings.maxTokens,
            temperature: request.temperature, seed: request.seed, extra: ["k": 4])
    }

    private func check(_ request: Request, expected: String) async {
        tally.withLock { $0.inFlight += 1 }
        let outcome: Result<ChatClient.Result, any Error>
        do { outcome = .success(try await stream(request)) } catch { outcome = .failure(error) }
        tally.withLock { tally in
            tally.inFlight -= 1
            tally.streams += 1
            switch outcome {
            case .failure(let error):
                tally.errors.append("\(request.label): \(error)")
            case .success(let result) where result.error != nil || !result.sawDone:
                tally.errors.append("\(request.label): \(result.error ?? "stream ended without [DONE]")")
            case .success(let result) where result.text != expected:
                tally.mismatched.append("\(request.label): got \(result.text.count) characters, expected \(expected.count); first difference at \(zip(result.text, expected).prefix { $0 == $1 }.count)")
            case .success:
                tally.identical += 1
            }
        }
    }

    // MARK: Faults

    private func inject(_ kind: FaultKind, registry: BusEndpoint) async throws -> Fault {
        if kind == .restartMetricsStore { return try await restartMetricsStore() }
        // A heartbeat that reported a session may be a few ms older than the session's end: a fault that
        // moved no session is tried again on a busy replica (the miss is counted, not hidden).
        var attempt = 1
        while true {
            var fault = try await strike(kind, registry: registry, failoversBefore: await failovers())
            fault.attempts = attempt
            if fault.hitLiveStream || attempt == Self.attempts { return fault }
            attempt += 1
        }
    }

    /// SIGTERM to the metrics-store, then the same store again on its endpoints.
    private func restartMetricsStore() async throws -> Fault {
        let inFlight = tally.withLock { $0.inFlight }
        let before = await failovers()
        var fault = Fault(kind: .restartMetricsStore, victim: "metrics-store", atSeconds: 0, streamsInFlight: inFlight,
                          failoversBefore: before, failoversAfter: before, hitLiveStream: false)
        guard let store = launcher.child(named: "metrics-store") else { fault.note = "no metrics-store"; return fault }
        store.signal(SIGTERM)
        if await !exited(store, within: .seconds(10)) { store.signal(SIGKILL); _ = await exited(store, within: .seconds(5)) }
        _ = try await launcher.restart("metrics-store")
        // It serves no session: it hit live streams when some were running through it.
        fault.hitLiveStream = inFlight > 0 && tally.withLock { $0.inFlight } > 0
        fault.failoversAfter = await failovers()
        return fault
    }

    static let attempts = 3

    /// One kill or freeze of a replica that reports a session, then its restart or wake-up.
    private func strike(_ kind: FaultKind, registry: BusEndpoint, failoversBefore before: Int) async throws -> Fault {
        var fault = Fault(kind: kind, victim: "-", atSeconds: 0, streamsInFlight: 0, failoversBefore: before,
                          failoversAfter: before, hitLiveStream: false)
        let role: Role = kind == .killVerifier || kind == .freezeVerifier ? .verifier : .drafter
        guard let victim = try await busyReplica(role, registry: registry) else {
            fault.note = "no \(role.rawValue) reported a session within 10 s"
            return fault
        }
        fault.victim = victim
        guard let child = launcher.child(named: victim) else { fault.note = "\(victim) is not a child"; return fault }
        fault.streamsInFlight = tally.withLock { $0.inFlight }
        if kind == .killVerifier || kind == .killDrafter {
            child.signal(SIGKILL)
            fault.failoversAfter = await failovers(above: before, within: .seconds(15))
            _ = await exited(child, within: .seconds(5))
            _ = try await launcher.restart(victim)
            try await waitAlive(victim, registry: registry)
        } else {
            child.signal(SIGSTOP)
            try await Task.sleep(for: settings.stopFor)
            fault.failoversAfter = await failovers(above: before, within: .seconds(10))
            child.signal(SIGCONT)
            try await Task.sleep(for: .seconds(2))  // it wakes up fenced: it must notice, not crash
        }
        fault.hitLiveStream = fault.failoversAfter > before && fault.streamsInFlight > 0
        return fault
    }

    /// A replica of `role` serving a session right now (heartbeat after this call began), in a random order.
    private func busyReplica(_ role: Role, registry: BusEndpoint) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(10)
        let since = Envelope.now()
        while ContinuousClock.now < deadline {
            if case .clusterStatus(let status)? = try? await registry.call(.status(StatusQuery()), timeout: .seconds(2)) {
                let busy = ClusterLauncher.busy(status, role: role, since: since)
                if !busy.isEmpty { return busy[Int(random.next() % UInt64(busy.count))] }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    private func waitAlive(_ replica: String, registry: BusEndpoint) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        let since = Envelope.now()
        while ContinuousClock.now < deadline {
            if case .clusterStatus(let status)? = try? await registry.call(.status(StatusQuery()), timeout: .seconds(2)),
               status.replicas.contains(where: { $0.registration.replicaID == replica && $0.alive && $0.lastHeartbeat > since }) {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LaunchError("\(replica) did not register again within 60 s of its restart")
    }

    /// The gateway's `tandem_session_failovers_total`, waiting up to `within` for it to exceed `above`.
    private func failovers(above: Int = .max, within: Duration = .zero) async -> Int {
        let deadline = ContinuousClock.now + within
        var value = 0
        repeat {
            value = await readFailovers()
            if value > above { return value }
            try? await Task.sleep(for: .milliseconds(100))
        } while ContinuousClock.now < deadline
        return value
    }

    private func readFailovers() async -> Int {
        guard let response = try? await client.execute(HTTPClientRequest(url: http + "/metrics"), timeout: .seconds(5)),
              let body = try? await response.body.collect(upTo: 8 << 20) else { return 0 }
        return String(buffer: body).split(separator: "\n")
            .filter { $0.hasPrefix("tandem_session_failovers_total") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0) { $0 + Int($1) }
    }

    private func exited(_ child: ChildProcess, within: Duration) async -> Bool {
        let deadline = ContinuousClock.now + within
        while child.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !child.isRunning
    }

    /// Children that exited without being told to, with how and the end of their log; each is reported once.
    private var reported: Set<Int32> = []
    private func crashed() async -> [String] {
        var found: [String] = []
        for child in launcher.children where !child.isRunning && !reported.contains(child.pid) {
            reported.insert(child.pid)
            let tail = await child.logTail(600)
            found.append("\(child.name) \(child.exitDescription): \(tail)")
        }
        return found
    }
}

/// A small seeded generator, so a run's choice of victims can be repeated.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
