import TandemTestSupport
import Testing
import TandemSpeculative

@Suite("Speculation controller")
struct SpeculationControllerTests {
    @Test("without timings it drafts the initial length; fixed K disables early stopping")
    func initialAndFixed() {
        var c = SpeculationController(configuration: .init(initialDraftLength: 3))
        let plan = c.beginRound(verifyTime: nil)
        #expect(plan.maxDraftLength == 3)
        var fixed = SpeculationController(configuration: .init(fixedDraftLength: 5))
        #expect(fixed.beginRound(verifyTime: VerifyTimeModel(fixedSeconds: 0.1, perTokenSeconds: 0)).maxDraftLength == 5)
        var n = 0
        repeat { n += 1 } while fixed.shouldContinue(confidence: 0.01)
        #expect(n == 5)
    }

    @Test("confident drafts run to K_max, unconfident drafts stop early")
    func earlyStop() {
        var c = SpeculationController(configuration: .init(maxDraftLength: 8, stopThreshold: 0.35, adaptiveThreshold: false))
        c.recordDraftTime(seconds: 0.01, tokens: 1)
        let plan = c.beginRound(verifyTime: VerifyTimeModel(fixedSeconds: 0.1, perTokenSeconds: 0.001))
        #expect(plan.maxDraftLength >= 4)
        var n = 0
        repeat { n += 1 } while c.shouldContinue(confidence: 0.99)
        #expect(n == plan.maxDraftLength)
        c.finishRound(drafted: n, accepted: n)

        c.beginRound(verifyTime: VerifyTimeModel(fixedSeconds: 0.1, perTokenSeconds: 0.001))
        var m = 0
        repeat { m += 1 } while c.shouldContinue(confidence: 0.15)
        #expect(m <= 2)
        // The rule: continue iff P_j · a_(j+1) ≥ θ.
        let pi1 = c.predictedAcceptance(confidence: 0.15, position: 1)
        #expect(pi1 * c.positionAcceptance(2) < 0.35)
    }

    @Test("acceptance estimates learn from verified rounds")
    func learning() {
        var c = SpeculationController(configuration: .init(maxDraftLength: 6, adaptiveThreshold: false))
        var rng = TestRNG(seed: 8)
        // Simulate i.i.d. acceptance 0.9 with K = 6 and always-confident drafts.
        for _ in 0..<400 {
            c.beginRound(verifyTime: nil)
            for _ in 0..<6 { _ = c.shouldContinue(confidence: 0.95) }
            var a = 0
            while a < 6, Double(rng.next() >> 11) * 0x1p-53 < 0.9 { a += 1 }
            c.finishRound(drafted: 6, accepted: a)
        }
        #expect(abs(c.acceptanceEstimate - 0.9) < 0.05)
        #expect(abs(c.positionAcceptance(1) - 0.9) < 0.1)
        #expect(abs(c.calibratedAcceptance(confidence: 0.95) - 0.9) < 0.1)

        // Low acceptance shrinks the planned K under a goodput objective.
        var low = SpeculationController(configuration: .init(maxDraftLength: 8))
        low.recordDraftTime(seconds: 0.02, tokens: 1)
        for _ in 0..<200 {
            low.beginRound(verifyTime: nil)
            _ = low.shouldContinue(confidence: 0.5)
            low.finishRound(drafted: 4, accepted: 0)
        }
        let vt = VerifyTimeModel(fixedSeconds: 0.05, perTokenSeconds: 0.005)
        #expect(low.beginRound(verifyTime: vt).maxDraftLength == 1)
        var high = SpeculationController(configuration: .init(maxDraftLength: 8))
        high.recordDraftTime(seconds: 0.02, tokens: 1)
        for _ in 0..<200 {
            high.beginRound(verifyTime: nil)
            high.finishRound(drafted: 4, accepted: 4)
        }
        #expect(high.beginRound(verifyTime: vt).maxDraftLength >= 5)
    }
}
