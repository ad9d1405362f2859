import ArgumentParser
import Foundation
import Logging

/// `tandem chaos`: start a local cluster and inject faults under load (``ChaosRun``, docs/chaos.md).
/// Exits 1 when a stream lost or changed text, a request failed, a replica crashed, or a fault
/// missed every live stream. `make chaos` runs it for minutes; the test suite runs a short one.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos", abstract: "Kill, freeze and restart replicas under load; check that no token is lost.")

    @Option(help: "Target model (catalog name or GGUF path).") var targetModel = "smollm2-135m-instruct"
    @Option(help: "Draft model (catalog name or GGUF path); a different model from the target exercises rejections.")
    var draftModel: String
    @Option(help: "Verifier replicas (at least 2, so a session always has somewhere to go).") var verifiers = 2
    @Option(help: "Drafter replicas (at least 2).") var drafters = 2
    @Option(help: "Seconds of faults.") var duration = 60
    @Option(help: "Concurrent streams.") var concurrency = 3
    @Option(help: "Seconds between faults.") var faultInterval = 4.0
    @Option(help: "Faults to inject at the least, even past --duration (5 covers every kind once).") var minFaults = 5
    @Option(help: "Tokens per request.") var maxTokens = 48
    @Option(help: "Seconds a frozen replica stays stopped (SIGSTOP); longer than the heartbeat window.") var freezeSeconds = 3.0
    @Option(help: "Seed of the victims' choice.") var seed: UInt64 = 1
    @Option(help: "Folder for the cluster's logs and database (default: a fresh temporary one).") var dataDir: String?
    @Option(help: "Write the report as JSON here.") var json: String?

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "tandem.chaos")
        guard verifiers >= 2, drafters >= 2 else { throw ValidationError("chaos needs at least 2 verifiers and 2 drafters") }
        guard duration > 0, concurrency > 0, faultInterval > 0, maxTokens > 0, freezeSeconds > 0 else {
            throw ValidationError("duration, concurrency, fault interval, max tokens and freeze seconds must be positive")
        }
        var plan = ClusterPlan()
        plan.verifiers = verifiers
        plan.drafters = drafters
        plan.ephemeral = true
        plan.targetModel = targetModel
        plan.draftModel = draftModel
        plan.dataDirectory = dataDir ?? NSTemporaryDirectory() + "tandem-chaos-\(UUID().uuidString.prefix(8))"
        let launcher = try ClusterLauncher(plan: plan, logger: logger)
        let report: ChaosRun.Report
        do {
            say("chaos: starting \(verifiers) verifier(s), \(drafters) drafter(s); logs in \(launcher.logDirectory)")
            let endpoints = try await launcher.start()
            _ = try await launcher.waitRegistered(control: endpoints.control, timeout: .seconds(300))
            var settings = ChaosRun.Settings()
            settings.duration = .seconds(duration)
            settings.concurrency = concurrency
            settings.faultInterval = .milliseconds(Int64(faultInterval * 1000))
            settings.maxTokens = maxTokens
            settings.minFaults = minFaults
            settings.stopFor = .milliseconds(Int64(freezeSeconds * 1000))
            settings.seed = seed
            report = try await ChaosRun(launcher: launcher, http: endpoints.http, control: endpoints.control,
                                        settings: settings, logger: logger).run()
        } catch {
            sayError("tandem chaos failed: \(error)")
            await launcher.shutdown()
            throw ExitCode.failure
        }
        await launcher.shutdown()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
        let byKind = Dictionary(grouping: report.faults, by: \.kind.rawValue).mapValues(\.count)
        say("""
            chaos report (\(String(format: "%.0f", report.seconds)) s, target \(report.target), draft \(report.draft)):
              faults injected  \(report.faults.count)  \(byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
              faults that hit a live stream  \(report.faults.filter(\.hitLiveStream).count) (tries that moved no session and were repeated: \(report.faults.map { $0.attempts - ($0.hitLiveStream ? 1 : 0) }.reduce(0, +)))
              streams  \(report.streams), identical to the undisturbed run  \(report.identical)
              mismatched  \(report.mismatched.count), errors  \(report.errors.count), crashes  \(report.crashes.count)
            """)
        for line in report.mismatched + report.errors + report.crashes { say("  " + line) }
        if !report.passed { throw ExitCode.failure }
    }
}
