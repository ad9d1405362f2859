import Foundation
import Testing

/// The fleet benchmark's own smoke run (docs/fleet.md): `tandem bench fleet` records a trace with the
/// real models, starts a cluster per mode with emulated devices, runs N = 1 and 2, and writes its JSON.
/// SmolLM2-135M drafts for itself here (fast); what is checked is the instrument, not the speed-up:
/// every mode and N is measured, every text equals the target-only output, and the fields are filled.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct FleetBenchTests {
    @Test func smokeRunMeasuresEveryModeAndLosesNoToken() async throws {
        guard let small = cachedModel("SmolLM2-135M-Instruct.Q4_1.gguf") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("SmolLM2-135M not fetched in CI") }
            print("SKIPPED smokeRunMeasuresEveryModeAndLosesNoToken: SmolLM2-135M not fetched")
            return
        }
        let dir = NSTemporaryDirectory() + "tandem-fleet-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            {"prompt": "Write a Python function that adds two numbers."}
            {"messages": [{"role": "user", "content": "Name three colors."}]}
            """.write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        try """
            {"schema": "tandem.device-profile/1", "name": "smoke", "hardware": "test", "source": "cited: test fixture",
             "draft_model": "smollm2-135m-instruct", "decode_tokens_per_second": 200,
             "draft_ms": [5, 10, 15, 20, 25, 30, 35, 40], "network": {"rtt_ms": 4, "uplink_mbps": 50, "downlink_mbps": 100}}
            """.write(toFile: dir + "/profile.json", atomically: true, encoding: .utf8)
        let tandem = try ProductLocator.url(for: "tandem").path
        let (status, output) = try await runProcess([
            tandem, "bench", "fleet", "--draft", small, "--target", small, "--prompts", dir + "/prompts.jsonl",
            "--limit", "2", "--max-tokens", "12", "--devices", "1,2", "--requests-per-device", "1",
            "--profile", dir + "/profile.json", "--json", dir + "/fleet.json", "--data-dir", dir + "/data",
        ], mergeStandardError: true)
        let log = String(decoding: output, as: UTF8.self)
        try #require(status == 0, "tandem bench fleet exited \(status):\n\(log.suffix(4000))")
        #expect(log.contains("EMULATED"), "the output must say that devices are emulated")

        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/fleet.json"))) as? [String: Any])
        #expect(report["emulated_devices"] as? Bool == true)
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.count == 6, "3 modes x 2 device counts")
        for row in rows {
            let mode = row["mode"] as? String ?? "?"
            let n = row["devices"] as? Int ?? 0
            #expect(row["errors"] as? Int == 0, "\(mode) N=\(n)")
            #expect(row["requests"] as? Int == n, "\(mode) N=\(n): one request per device")
            #expect(row["identical"] as? Int == n, "\(mode) N=\(n): every text equals the target-only output")
            for field in ["throughput_tps", "goodput_tps", "slo_attainment", "ttft_ms_p50", "tpot_ms_p50",
                          "batch_positions_mean", "verifier_busy", "wasted_draft_s"] {
                #expect(Self.number(row[field]) != nil, "\(mode) N=\(n): \(field)")
            }
            #expect((Self.number(row["throughput_tps"]) ?? 0) > 0)
            if mode == "centralized" { #expect(Self.number(row["mean_k"]) == 0, "centralized never drafts") }
            if mode == "sled" {
                #expect((Self.number(row["mean_k"]) ?? 0) > 1, "sled drafts K = 4")
                #expect(Self.number(row["acceptance"]) == 1, "a model drafting for itself is always accepted")
            }
        }
        let capacity = try #require(report["capacity"] as? [String: Int])
        #expect(Set(capacity.keys) == ["centralized", "sled", "tandem"])
    }

    /// A JSON number as Double, whether JSONSerialization made it an integer or a floating-point value.
    static func number(_ value: Any?) -> Double? {
        if let d = value as? Double { return d }
        if let i = value as? Int { return Double(i) }
        return nil
    }
}
