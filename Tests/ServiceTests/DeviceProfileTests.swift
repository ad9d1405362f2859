import Foundation
import Logging
import Testing
@testable import TandemCLI
import TandemWire

/// Device profiles are inputs to the fleet emulation: the committed ones must decode, validate and say
/// where their figures come from, and `tandem profile` must produce one that satisfies the same rules.
@Suite(.serialized) struct DeviceProfileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let profilesDirectory = root.appendingPathComponent("compose/profiles")

    static func profileFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: profilesDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// The rules every profile (committed or freshly measured) must satisfy.
    static func checkRules(_ p: EdgeDeviceProfile, file: String) throws {
        try p.validate()
        #expect(p.schema == EdgeDeviceProfile.currentSchema, "\(file): schema")
        #expect(p.source.hasPrefix("measured:") || p.source.hasPrefix("cited:"),
                "\(file): source must start with 'measured:' or 'cited:'")
        #expect(p.source.count > 40, "\(file): source must say where the figures come from")
        #expect(!p.hardware.isEmpty, "\(file): hardware")
        #expect(!p.draftModel.isEmpty, "\(file): draft_model")
        #expect(!p.draftMs.isEmpty, "\(file): draft_ms")
        #expect(p.draftMs.allSatisfy { $0 > 0 }, "\(file): draft_ms positive")
        #expect(zip(p.draftMs, p.draftMs.dropFirst()).allSatisfy { $0 < $1 }, "\(file): draft_ms increasing: \(p.draftMs)")
        #expect(p.network.rttMs > 0 && p.network.uplinkMbps > 0 && p.network.downlinkMbps > 0,
                "\(file): the assumed network must be stated")
        // Drafting K tokens can't beat decoding K tokens by much, nor take far longer: a profile whose
        // draft_ms and decode speed disagree by more than 2x was scaled wrongly.
        let perToken = 1000 / p.decodeTokensPerSecond
        let lastPerToken = p.draftMs[p.draftMs.count - 1] / Double(p.draftMs.count)
        #expect(lastPerToken > perToken / 2 && lastPerToken < perToken * 2,
                "\(file): draft_ms (\(lastPerToken) ms/token) vs decode (\(perToken) ms/token)")
        if let j = p.joulesPerToken, let w = p.powerWatts {
            #expect(abs(j * p.decodeTokensPerSecond - w) <= 0.05 * w, "\(file): power_watts = joules_per_token x tok/s")
        }
    }

    @Test func everyCommittedProfileDecodesValidatesAndStatesItsSource() throws {
        let files = try Self.profileFiles()
        #expect(files.count >= 5, "compose/profiles holds the device classes and this machine")
        #expect(files.contains { $0.lastPathComponent == "this-machine-1-core.json" })
        for url in files {
            let p = try JSONDecoder().decode(EdgeDeviceProfile.self, from: Data(contentsOf: url))
            let file = url.lastPathComponent
            try Self.checkRules(p, file: file)
            #expect(p.name == url.deletingPathExtension().lastPathComponent, "\(file): name matches the file name")
            #expect(p.draftMs.count == 8, "\(file): K = 1 ... 8")
        }
    }

    @Test func jsonUsesTheSchemaKeys() throws {
        let p = EdgeDeviceProfile(name: "x", hardware: "h", source: "cited: test", draftModel: "m", quantization: "Q8_0",
                                  threads: 4, decodeTokensPerSecond: 50, draftMs: [20, 40], peakRSSMB: 500,
                                  joulesPerToken: 0.1, powerWatts: 5,
                                  network: .init(rttMs: 10, uplinkMbps: 20, downlinkMbps: 100))
        let json = try #require(String(data: try JSONEncoder().encode(p), encoding: .utf8))
        for key in ["\"schema\"", "\"draft_model\"", "\"decode_tokens_per_second\"", "\"draft_ms\"", "\"peak_rss_mb\"",
                    "\"joules_per_token\"", "\"power_watts\"", "\"rtt_ms\"", "\"uplink_mbps\"", "\"downlink_mbps\""] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        #expect(try JSONDecoder().decode(EdgeDeviceProfile.self, from: Data(json.utf8)) == p)
    }

    @Test func draftSecondsUsesMeasuredKAndExtendsLinearly() {
        func profile(_ ms: [Double], tps: Double = 100) -> EdgeDeviceProfile {
            EdgeDeviceProfile(name: "t", hardware: "h", source: "cited: test", draftModel: "m",
                              decodeTokensPerSecond: tps, draftMs: ms,
                              network: .init(rttMs: 10, uplinkMbps: 10, downlinkMbps: 10))
        }
        let p = profile([12, 20, 28, 36])
        #expect(p.draftSeconds(k: 0) == 0)
        #expect(abs(p.draftSeconds(k: 1) - 0.012) < 1e-12)
        #expect(abs(p.draftSeconds(k: 3) - 0.028) < 1e-12)
        #expect(abs(p.draftSeconds(k: 4) - 0.036) < 1e-12)
        // Beyond K = 4: the last measured step (8 ms) per extra token.
        #expect(abs(p.draftSeconds(k: 6) - 0.052) < 1e-12)
        // One measured K: extra tokens at the decode speed (100 tok/s = 10 ms).
        #expect(abs(profile([15]).draftSeconds(k: 3) - 0.035) < 1e-12)
        // None measured: the decode speed alone.
        #expect(abs(profile([], tps: 50).draftSeconds(k: 4) - 0.08) < 1e-12)
        // A last step that went down (noise) never makes longer drafts cheaper.
        #expect(profile([10, 30, 29]).draftSeconds(k: 5) >= profile([10, 30, 29]).draftSeconds(k: 3))
        // Increasing in K for every committed-style profile.
        let ks = (1...12).map { p.draftSeconds(k: $0) }
        #expect(zip(ks, ks.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func raplCounterWrapIsHandled() {
        typealias Z = RAPLReader.Zone
        let maxRange: UInt64 = 262_143_328_850
        let before = RAPLReader.Reading.zones([Z(name: "intel-rapl:0(package-0)", energyMicrojoules: maxRange - 1_000_000,
                                                maxRangeMicrojoules: maxRange)])
        let after = RAPLReader.Reading.zones([Z(name: "intel-rapl:0(package-0)", energyMicrojoules: 500_000,
                                               maxRangeMicrojoules: maxRange)])
        guard case .measured(let joules, _) = RAPLReader.joules(from: before, to: after) else {
            Issue.record("expected a measurement")
            return
        }
        #expect(abs(joules - 1.5) < 1e-9)
        guard case .unavailable = RAPLReader.joules(from: .unavailable("none"), to: after) else {
            Issue.record("unavailable before means unavailable")
            return
        }
    }

    /// The code path of `tandem profile` (parsed like the command line) on the small test model.
    @Test(.timeLimit(.minutes(5))) func profileCommandMeasuresSmolLM2() throws {
        guard let small = cachedModel("SmolLM2-135M-Instruct.Q4_1.gguf") else {
            print("SKIPPED profileCommandMeasuresSmolLM2: SmolLM2-135M not fetched (tandem models fetch smollm2-135m-instruct)")
            return
        }
        let command = try ProfileCommand.parse(["--model", small, "--threads", "1", "--repeats", "5",
                                                "--prompt-tokens", "64", "--decode-tokens", "32",
                                                "--name", "smollm2-test", "--rtt-ms", "5"])
        let report = try command.measure(logger: Logger(label: "test.profile"))
        let p = report.profile
        print(report.table())
        try Self.checkRules(p, file: "measured")
        #expect(p.draftMs.count == 8)
        #expect(p.name == "smollm2-test")
        #expect(p.threads == 1)
        #expect(p.network.rttMs == 5)
        #expect(p.source.hasPrefix("measured: tandem profile on "))
        #expect(p.quantization == "Q4_1")
        #expect((p.peakRSSMB ?? 0) > 50)
        if !FileManager.default.fileExists(atPath: RAPLReader.root) {
            #expect(p.joulesPerToken == nil && p.powerWatts == nil)
        }
    }
}
