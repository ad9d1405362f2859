import Testing
import TandemSpeculative

/// A K = 0 round over the network asks the verifier for several decode steps per round trip, so the planner
/// must price its round trip per token (``VerifyTimeModel/amortizingPlainRounds(networkSeconds:steps:maxDraftLength:)``):
/// a device that drafts slower than the verifier decodes should then stop drafting.
@Suite("Plain rounds priced per token")
struct PlainRoundPricingTests {
    /// A CPU-like verifier (30 ms for one position, 8 ms per extra position, as `tandem bench engine` measures
    /// the 1.5B target) behind a 20 ms round trip.
    static let network = 0.020
    static let model = VerifyTimeModel(curveSeconds: (0...8).map { 0.030 + 0.008 * Double($0) + network })

    /// K for a device drafting 40 ms per token at 99 % acceptance.
    static func plannedK(_ model: VerifyTimeModel) -> Int {
        SpeculationPlanner.optimalDraftLength(acceptance: 0.99, draftSecondsPerToken: 0.040,
                                              verifySeconds: { model.seconds(draftLength: $0) }, range: 0...8).draftLength
    }

    @Test func aSlowDeviceStopsDraftingOncePlainRoundsArePricedPerToken() {
        // Charging the whole round trip to one plain token, drafting looks better...
        #expect(Self.plannedK(Self.model) >= 1)
        // ...but a plain round decodes 10 tokens per round trip: 30 + 2 ms a token beats a 40 ms-per-token device.
        let amortized = Self.model.amortizingPlainRounds(networkSeconds: Self.network, steps: 10, maxDraftLength: 8)
        #expect(abs(amortized.seconds(draftLength: 0) - 0.032) < 1e-9)
        #expect(Self.plannedK(amortized) == 0)
        // Drafting rounds keep their price.
        for k in 1...8 { #expect(abs(amortized.seconds(draftLength: k) - Self.model.seconds(draftLength: k)) < 1e-12) }
    }

    @Test func oneStepOrNoNetworkChangesNothing() {
        #expect(Self.model.amortizingPlainRounds(networkSeconds: Self.network, steps: 1, maxDraftLength: 8) == Self.model)
        #expect(Self.model.amortizingPlainRounds(networkSeconds: 0, steps: 10, maxDraftLength: 8) == Self.model)
    }

    @Test func aFastAccurateDeviceStillDrafts() {
        // 7 ms per drafted token at 96 % acceptance: drafting wins even against amortized plain rounds.
        let amortized = Self.model.amortizingPlainRounds(networkSeconds: Self.network, steps: 10, maxDraftLength: 8)
        let k = SpeculationPlanner.optimalDraftLength(acceptance: 0.96, draftSecondsPerToken: 0.007,
                                                      verifySeconds: { amortized.seconds(draftLength: $0) },
                                                      range: 0...8).draftLength
        #expect(k >= 3)
    }
}
