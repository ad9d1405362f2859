import Foundation
import Testing
import TandemSpeculative
import TandemWire
@testable import ConfigAdvisor
@testable import TandemCLI

/// The advisor over (draft variant, K) on constructed profiles: the choice follows the objective.
@Suite("ConfigAdvisor: joint (draft variant, K)")
struct JointAdvisorTests {
    /// A profile may name the shipped draft by file, the device by catalog name: one model, one key.
    @Test func aCatalogFileAndItsCatalogNameAreOneVariant() {
        #expect(JointConfigEvaluator.modelKey("/models/Qwen2.5-Coder-0.5B-Instruct.gguf")
                == JointConfigEvaluator.modelKey("qwen2.5-coder-0.5b-instruct"))
        #expect(JointConfigEvaluator.modelKey("/tmp/My-Variant-Q4_0.GGUF") == "my-variant-q4_0")
    }

    /// A device 2 ms per drafted token behind a 100 ms link (cellular), drafting at 5 W, 0.05 J/token.
    static func fastDevice(rttMs: Double = 100, joules: Double? = 0.05, watts: Double? = 5) -> EdgeDeviceProfile {
        EdgeDeviceProfile(name: "fast", hardware: "constructed", source: "test", draftModel: "accurate",
                          decodeTokensPerSecond: 500, draftMs: (1...8).map { Double($0) * 2 },
                          joulesPerToken: joules, powerWatts: watts,
                          network: .init(rttMs: rttMs, uplinkMbps: 50, downlinkMbps: 100))
    }

    /// Strong first two positions, then 0.7: the bonus token makes short rounds cheap per token.
    static let accurateCurve = [0.9, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    static let fastCurve = [0.7, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    static let verify = VerifyTimeModel(fixedSeconds: 0.01, perTokenSeconds: 0.01)

    static func alignment(_ name: String, curve: [Double], tokensPerSecond: Double) -> AlignmentProfile {
        let acceptance = AlignmentProfile.Acceptance(perPosition: curve, perPositionUnconditional: [], perK: [])
        return AlignmentProfile(
            draftModel: name, draftQuantization: name == "accurate" ? "Q8_0" : "Q4_0", draftBytes: nil,
            targetModel: "target", targetQuantization: "Q4_K", promptSet: "constructed", prompts: 1, maxTokens: 64,
            kMax: curve.count, positions: 64, greedy: acceptance, temperature: 1, sampled: acceptance,
            klDivergence: 0.1, klMax: 0.2, draftPerplexity: 1.2, targetPerplexity: 1.1,
            draftTokensPerSecond: tokensPerSecond, source: "constructed")
    }

    func choose(_ objective: JointConfigEvaluator.Objective, device: EdgeDeviceProfile,
                profiles: [AlignmentProfile], idle: Double = 0.3) throws -> (String, Int) {
        let d = JointConfigEvaluator.Device(device)
        let variants = JointConfigEvaluator.variants(from: profiles, device: d)
        let r = try JointConfigEvaluator.evaluate(device: d, variants: variants, verify: Self.verify, objective: objective,
                                                  kRange: 1...8, idlePowerFraction: idle)
        return (variants[r.choice.variant].name, r.choice.k)
    }

    @Test("one draft: K = 2 for cost and energy, a larger K for goodput on a fast device")
    func objectiveChangesK() throws {
        let profiles = [Self.alignment("accurate", curve: Self.accurateCurve, tokensPerSecond: 100)]
        let device = Self.fastDevice()
        let goodput = try choose(.goodput, device: device, profiles: profiles)
        #expect(goodput.1 == 5, "T(K)/(2 ms·K + 100 ms + 10 ms + 10 ms·(K+1)) peaks at K = 5")
        #expect(try choose(.cost, device: device, profiles: profiles).1 == 2)
        #expect(try choose(.energy, device: device, profiles: profiles).1 == 2)
        // Drafting energy only: every extra draft costs more than it returns, so the smallest K.
        #expect(try choose(.energy, device: device, profiles: profiles, idle: 0).1 == 1)
        // A short link removes the reason for long rounds: goodput's K falls.
        #expect(try choose(.goodput, device: Self.fastDevice(rttMs: 5), profiles: profiles).1 < goodput.1)
    }

    @Test("two variants: a slow device drafts with the fast variant for goodput, cost takes the accurate one")
    func objectiveChangesVariant() throws {
        // The fast variant decodes 10/3 x faster here; the device profile is for the accurate one (40 ms/token).
        let profiles = [Self.alignment("accurate", curve: Self.accurateCurve, tokensPerSecond: 30),
                        Self.alignment("fast", curve: Self.fastCurve, tokensPerSecond: 100)]
        let slow = EdgeDeviceProfile(name: "slow", hardware: "constructed", source: "test", draftModel: "accurate.gguf",
                                     decodeTokensPerSecond: 25, draftMs: (1...8).map { Double($0) * 40 },
                                     joulesPerToken: 0.4, powerWatts: 10,
                                     network: .init(rttMs: 100, uplinkMbps: 50, downlinkMbps: 100))
        let variants = JointConfigEvaluator.variants(from: profiles, device: JointConfigEvaluator.Device(slow))
        #expect(variants[0].timeScale == 1 && abs(variants[1].timeScale - 0.3) < 1e-12)
        #expect(try choose(.goodput, device: slow, profiles: profiles) == ("fast", 2))
        #expect(try choose(.cost, device: slow, profiles: profiles).0 == "accurate")
    }

    @Test("energy without joules/token or power is refused with a message naming the device")
    func energyNeedsAFigure() throws {
        let device = JointConfigEvaluator.Device(Self.fastDevice(joules: nil, watts: nil))
        let variants = JointConfigEvaluator.variants(
            from: [Self.alignment("accurate", curve: Self.accurateCurve, tokensPerSecond: 100)], device: device)
        #expect(throws: JointConfigEvaluator.Failure.noEnergyFigure(device: "fast")) {
            try JointConfigEvaluator.evaluate(device: device, variants: variants, verify: Self.verify, objective: .energy,
                                              kRange: 1...8)
        }
        // Goodput is still computed, and its rows say energy is unknown.
        let r = try JointConfigEvaluator.evaluate(device: device, variants: variants, verify: Self.verify,
                                                  objective: .goodput, kRange: 1...8)
        #expect(r.candidates.allSatisfy { $0.joulesPerToken == nil })
    }

    @Test("the service: an advise query carrying the device profile gets the joint choice; live acceptance overrides")
    func serviceAnswersWithJointChoice() throws {
        var policy = ConfigAdvisorPolicy()
        policy.kRange = 1...8
        policy.idlePowerFraction = 0.3
        policy.priors.verify["target"] = Self.verify
        policy.alignmentFiles = [Self.alignment("accurate", curve: Self.accurateCurve, tokensPerSecond: 100)]
        func ask(_ objective: Objective, _ m: AdvisorMeasurements = .none) throws -> AdvisorRecommendation? {
            let query = AdvisorQuery(device: DeviceProfile(name: "fast", powerWatts: 5), objective: objective,
                                     targetModel: "target", edgeProfile: Self.fastDevice())
            return try policy.jointRecommend(query, measurements: m)?.recommendation
        }
        #expect(try ask(.goodput)?.k == 5)
        #expect(try ask(.cost)?.k == 2)
        #expect(try ask(.energy)?.k == 2)
        #expect(try ask(.goodput)?.basis == "alignment")
        // Without the edge profile the query takes the per-token path.
        let plain = AdvisorQuery(device: DeviceProfile(name: "fast", powerWatts: 5), objective: .goodput,
                                 targetModel: "target")
        #expect(try policy.jointRecommend(plain, measurements: .none) == nil)
        // Live rounds say the draft is rejected at position 2 half the time more: goodput's K drops.
        let live = AdvisorMeasurements(acceptance: [
            ConfigAdvisorTestSupport.row(draft: "accurate", target: "target", k: 8, rounds: 400,
                                         conditional: [0.6, 0.3, 0.3])])
        let measured = try ask(.goodput, live)
        #expect(measured?.basis == "measured")
        #expect((measured?.k ?? 99) < 5)
        // Alignment rows from the metrics-store count too.
        policy.alignmentFiles = []
        let row = AlignmentRow(device: "host", draftModel: "accurate", quantization: "Q8_0", targetModel: "target",
                               samples: 1, perPosition: Self.accurateCurve, sampledPerPosition: Self.accurateCurve,
                               temperature: 1, klDivergence: 0.1, perplexity: 1.2, positions: 64,
                               draftTokensPerSecond: 100, at: 1)
        #expect(try ask(.cost, AdvisorMeasurements(alignment: [row]))?.k == 2)
    }

    @Test("the new optional wire fields are backward compatible: old JSON decodes, new round-trips")
    func wireCompatibility() throws {
        let oldQuery = #"{"device":{"name":"pi","powerWatts":6,"computeThrottle":1,"threads":1},"objective":"cost","targetModel":"t","candidates":[]}"#
        let decoded = try JSONDecoder().decode(AdvisorQuery.self, from: Data(oldQuery.utf8))
        #expect(decoded.edgeProfile == nil && decoded.objective == .cost)
        let query = AdvisorQuery(device: DeviceProfile(name: "fast", powerWatts: 5), objective: .energy,
                                 targetModel: "t", edgeProfile: Self.fastDevice())
        #expect(try WireCodec.decode(WireCodec.encode(.advise(query))).message == .advise(query))
        let oldEvent = #"{"device":"d","draftModel":"m","quantization":"Q4_0","draftTokensPerSecond":9,"powerWatts":0,"at":1}"#
        #expect(try JSONDecoder().decode(ProfileEvent.self, from: Data(oldEvent.utf8)).alignment == nil)
    }

    @Test("tandem advise prints every candidate and the choice")
    func adviseCommandReport() throws {
        let command = try AdviseCommand.parse(["--device", "x", "--objective", "cost", "--alignment", "a.json",
                                               "--verify-fixed-ms", "10", "--verify-per-token-ms", "10",
                                               "--idle-power-fraction", "0.3"])
        let report = try command.report(profile: Self.fastDevice(),
                                        alignment: [Self.alignment("accurate", curve: Self.accurateCurve, tokensPerSecond: 100)])
        #expect(report.contains("choice for cost: accurate (Q8_0), K = 2"), "\(report)")
        #expect(report.split(separator: "\n").filter { $0.contains("[0]") && !$0.contains("time x") }.count == 8)
        #expect(throws: (any Error).self) { try AdviseCommand.parse(["--device", "x", "--objective", "speed", "--alignment", "a"]) }
    }
}
