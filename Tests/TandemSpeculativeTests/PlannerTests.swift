import TandemTestSupport
import Testing
import TandemSpeculative

@Suite("Speculation math and planner")
struct PlannerTests {
    @Test("expected tokens per round formula")
    func expectedTokens() {
        #expect(abs(SpeculationMath.expectedTokensPerRound(acceptance: 0.5, draftLength: 3) - 1.875) < 1e-12)
        #expect(SpeculationMath.expectedTokensPerRound(acceptance: 1, draftLength: 4) == 5)
        #expect(SpeculationMath.expectedTokensPerRound(acceptance: 0, draftLength: 4) == 1)
        #expect(SpeculationMath.expectedTokensPerRound(acceptance: 0.8, draftLength: 0) == 1)
        // Agrees with a simulation of i.i.d. acceptance.
        var rng = TestRNG(seed: 3)
        var total = 0
        let rounds = 200_000
        for _ in 0..<rounds {
            var n = 0
            while n < 5, Double(rng.next() >> 11) * 0x1p-53 < 0.7 { n += 1 }
            total += n + 1
        }
        let sim = Double(total) / Double(rounds)
        #expect(abs(sim - SpeculationMath.expectedTokensPerRound(acceptance: 0.7, draftLength: 5)) < 0.01)
        // Per-position version reduces to the i.i.d. one.
        #expect(abs(SpeculationMath.expectedTokensPerRound(positionAcceptance: [0.7, 0.7, 0.7], draftLength: 3)
            - SpeculationMath.expectedTokensPerRound(acceptance: 0.7, draftLength: 3)) < 1e-12)
        #expect(SpeculationMath.meanAcceptanceLength(accepted: 30, rounds: 10) == 4)
        #expect(SpeculationMath.acceptanceMLE(accepted: 9, rejections: 1) == 0.9)
    }

    @Test("goodput-optimal K on constructed cases (optima computed independently)")
    func goodputOptimum() {
        // α = 0.8, t_draft = 20 ms, t_verify = 100 ms + 10 ms (K + 1): K* = 3 (14.76 tok/s).
        let a = SpeculationPlanner.optimalDraftLength(acceptance: 0.8, draftSecondsPerToken: 0.02,
                                                      verifySeconds: { 0.1 + 0.01 * Double($0 + 1) })
        #expect(a.draftLength == 3)
        #expect(abs(a.score - 14.76) < 1e-9)
        // α = 0.5, t_draft = t_verify = 100 ms: K* = 1 (7.5 tok/s).
        let b = SpeculationPlanner.optimalDraftLength(acceptance: 0.5, draftSecondsPerToken: 0.1, verifySeconds: { _ in 0.1 })
        #expect(b.draftLength == 1 && abs(b.score - 7.5) < 1e-9)
        // α = 0.9, cheap drafts: K* = 10.
        let c = SpeculationPlanner.optimalDraftLength(acceptance: 0.9, draftSecondsPerToken: 0.01, verifySeconds: { _ in 0.1 })
        #expect(c.draftLength == 10)
        // A round budget excludes long rounds.
        let d = SpeculationPlanner.optimalDraftLength(acceptance: 0.9, draftSecondsPerToken: 0.01, verifySeconds: { _ in 0.1 },
                                                      roundBudgetSeconds: 0.155)
        #expect(d.draftLength == 5)
    }

    @Test("cost and energy objectives")
    func otherObjectives() {
        let profile = DraftProfile(name: "dev", acceptance: 0.8, draftSecondsPerToken: 0.02, drafterPowerWatts: 5,
                                   verify: VerifyTimeModel(fixedSeconds: 0.1, perTokenSeconds: 0.01))
        // Tokens per verifier-second: (1 - 0.8^(K+1)) / 0.2 / (0.1 + 0.01 (K+1)) peaks at K = 6.
        #expect(SpeculationPlanner.optimalDraftLength(profile, objective: .costEfficiency).draftLength == 6)
        // Drafting energy only: E[tokens] / K is decreasing, so K = 1.
        #expect(SpeculationPlanner.optimalDraftLength(profile, objective: .energyEfficiency).draftLength == 1)
        #expect(SpeculationPlanner.optimalDraftLength(profile, objective: .goodput).draftLength == 3)
        // With idle power while waiting, longer drafts amortize the wait.
        var idle = profile
        idle.idlePowerWatts = 3
        #expect(SpeculationPlanner.optimalDraftLength(idle, objective: .energyEfficiency).draftLength > 1)
        let e = SpeculationPlanner.evaluate(profile, draftLength: 2, objective: .energyEfficiency)
        #expect(abs(e.score - (1 + 0.8 + 0.64) / (5 * 0.04)) < 1e-9)
    }

    @Test("best configuration per objective differs (ConfigSpec)")
    func bestConfiguration() {
        let verify = VerifyTimeModel(fixedSeconds: 0.1, perTokenSeconds: 0.01)
        let small = DraftProfile(name: "small", acceptance: 0.6, draftSecondsPerToken: 0.01, drafterPowerWatts: 3, verify: verify)
        let large = DraftProfile(name: "large", acceptance: 0.85, draftSecondsPerToken: 0.06, drafterPowerWatts: 8, verify: verify)
        let candidates = [small, large]
        let goodput = SpeculationPlanner.bestConfiguration(candidates, objective: .goodput)!
        let cost = SpeculationPlanner.bestConfiguration(candidates, objective: .costEfficiency)!
        let energy = SpeculationPlanner.bestConfiguration(candidates, objective: .energyEfficiency)!
        // Cost favours the high-acceptance drafter; energy the low-power one.
        #expect(cost.index == 1)
        #expect(energy.index == 0)
        // Each choice is the max over candidates of their own optimum.
        for (objective, best) in [(SpeculationObjective.goodput, goodput), (.costEfficiency, cost), (.energyEfficiency, energy)] {
            for c in candidates {
                #expect(SpeculationPlanner.optimalDraftLength(c, objective: objective).score <= best.plan.score + 1e-12)
            }
        }
        #expect(SpeculationPlanner.bestConfiguration([], objective: .goodput) == nil)
    }
}
