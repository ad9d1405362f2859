import Foundation
@testable import TandemCLI
import Testing

/// The fault harness, short: `tandem chaos` on real processes with a synthetic target and a
/// different (noisy) draft, so rejections happen while replicas are killed, frozen and restarted.
/// `make chaos` runs the same for minutes on SmolLM2 (docs/chaos.md).
@Suite(.serialized, .timeLimit(.minutes(10)))
struct ChaosHarnessTests {
    @Test func everyStreamKeepsItsTextThroughKillsFreezesAndRestarts() async throws {
        let pair = try await SyntheticPair.make()
        let json = NSTemporaryDirectory() + "chaos-\(UUID().uuidString.prefix(8)).json"
        defer { try? FileManager.default.removeItem(atPath: json) }
        let chaos = try ProductProcess(product: "tandem", arguments: [
            "chaos", "--target-model", pair.target, "--draft-model", pair.draft, "--duration", "25",
            "--fault-interval", "2.5", "--concurrency", "3", "--max-tokens", "40", "--json", json])
        let status = await chaos.waitForExit(timeout: .seconds(540))
        if status == nil { await chaos.kill() }
        let output = chaos.stdoutLines.joined(separator: "\n")
        let data = try #require(FileManager.default.contents(atPath: json), "no report; exit \(String(describing: status)):\n\(output)\n\(chaos.logTail())")
        let report = try JSONDecoder().decode(ChaosRun.Report.self, from: data)

        // Every kind of fault happened, and each one provably hit streams that were running.
        #expect(Set(report.faults.map(\.kind)) == Set(ChaosRun.FaultKind.allCases), "\(output)")
        for fault in report.faults {
            #expect(fault.hitLiveStream, "\(fault.kind) \(fault.victim) hit no live stream: \(fault)")
            #expect(fault.streamsInFlight > 0)
            if fault.kind != .restartMetricsStore { #expect(fault.failoversAfter > fault.failoversBefore) }
        }
        // Nothing lost, nothing changed, nothing crashed.
        #expect(report.streams >= 10, "\(output)")
        #expect(report.identical == report.streams, "\(output)")
        #expect(report.mismatched.isEmpty, "\(report.mismatched)")
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.crashes.isEmpty, "\(report.crashes)")
        #expect(status == 0, "\(output)")
    }
}
