import Testing
import TandemSpeculative

/// The verifier's batch-time curve (``BatchCostCurve``) and the drafter's planning from it
/// (``VerifierCostModel/observeCurve(positions:seconds:secondsPerContextToken:)``).
@Suite("Batch cost curve")
struct BatchCostCurveTests {
    /// A CPU-like verifier: a forward streams the weights (45 ms) and stays nearly flat up to 8 positions
    /// (1.5 ms each), then pays 6 ms per position; 3 µs per cached context token.
    static func law(_ positions: Int, context: Int = 0) -> Double {
        let p = Double(positions)
        return 0.045 + 0.0015 * min(p, 8) + 0.006 * max(p - 8, 0) + 3e-6 * Double(context)
    }

    /// Deterministic noise source (xorshift), uniform in [-1, 1).
    struct Noise {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        mutating func next() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state % 1_000_000) / 500_000 - 1
        }
    }

    @Test func theCurveLearnsAConcaveLawFromLiveBatches() {
        var curve = BatchCostCurve()
        var noise = Noise()
        for _ in 0..<600 {
            let positions = 1 + Int((noise.next() + 1) * 32)
            let context = Int((noise.next() + 1) * 2000)
            curve.observe(positions: positions, contextTokens: context,
                          seconds: Self.law(positions, context: context) * (1 + 0.02 * noise.next()))
        }
        for p in [1, 4, 8, 16, 32, 60] {
            let predicted = curve.predictSeconds(positions: p, contextTokens: 1000)
            let truth = Self.law(p, context: 1000)
            #expect(abs(predicted - truth) / truth < 0.05, "P = \(p): \(predicted) vs \(truth)")
        }
        // The flat start and the steep end stay apart: one more position costs ~1.5 ms at 2, ~6 ms at 40.
        let early = curve.predictSeconds(positions: 3, contextTokens: 0) - curve.predictSeconds(positions: 2, contextTokens: 0)
        let late = curve.predictSeconds(positions: 41, contextTokens: 0) - curve.predictSeconds(positions: 40, contextTokens: 0)
        #expect(early < 0.003 && late > 0.004, "marginal \(early) at 2 positions, \(late) at 40")
        #expect(abs(curve.secondsPerContextToken - 3e-6) < 1e-6)
    }

    @Test func aCalibrationSeedsTheCurveAndUntouchedKnotsFollowTheirNeighbours() {
        var curve = BatchCostCurve()
        let sizes = [1, 2, 4, 8, 16, 32]
        curve.calibrate(sizes.map { ($0, Self.law($0)) })
        let values = curve.secondsAtKnots
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 }, "more positions never take less time")
        for p in [1, 3, 6, 12, 24] {  // measured or between measured sizes (the law is linear between them)
            #expect(abs(curve.predictSeconds(positions: p, contextTokens: 0) - Self.law(p)) < 0.003, "P = \(p)")
        }
        // Past the calibration the last measured slope continues (6 ms a position), not the prior's 4 ms.
        let at64 = curve.predictSeconds(positions: 64, contextTokens: 0)
        #expect(abs(at64 - Self.law(64)) < 0.01, "P = 64: \(at64) vs \(Self.law(64))")
    }

    @Test func aFewBadBatchesDoNotMakeMorePositionsCheaper() {
        var curve = BatchCostCurve()
        curve.calibrate([1, 2, 4, 8, 16].map { ($0, Self.law($0)) })
        // A stall made some 4-position batches look slow; the curve may rise there but must not fall after.
        for _ in 0..<20 { curve.observe(positions: 4, contextTokens: 0, seconds: 0.2) }
        let values = curve.secondsAtKnots
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(curve.predictSeconds(positions: 8, contextTokens: 0) >= curve.predictSeconds(positions: 4, contextTokens: 0))
    }

    @Test func oneSlowCalibrationForwardDoesNotLiftTheTail() {
        // A stall made the 6-position forward take 4x its time (seen on a shared host).
        var curve = BatchCostCurve()
        curve.calibrate([1, 2, 4, 6, 8, 12, 16, 24, 32].map { ($0, $0 == 6 ? 4 * Self.law($0) : Self.law($0)) })
        for p in [16, 24, 32] {
            let predicted = curve.predictSeconds(positions: p, contextTokens: 0)
            #expect(abs(predicted - Self.law(p)) / Self.law(p) < 0.05, "P = \(p): \(predicted) vs \(Self.law(p))")
        }
        let values = curve.secondsAtKnots
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
    }

    /// The planner's K from a published curve, for a session whose last batch had `sessions` sessions.
    static func plannedK(sessions: Int, acceptance: Double, draftSeconds: Double) -> Int {
        var curve = BatchCostCurve()
        curve.calibrate([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64].map { ($0, Self.law($0)) })
        var model = VerifierCostModel()
        model.observeCurve(positions: curve.knots, seconds: curve.secondsAtKnots,
                           secondsPerContextToken: 3e-6)
        model.observe(sequences: sessions, positions: sessions * 3, contextTokens: sessions * 200,
                      batchSeconds: Self.law(sessions * 3, context: sessions * 200), ownPositions: 3, ownContext: 200)
        var controller = SpeculationController(configuration: .init(
            maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: acceptance, priorWeight: 1_000_000))
        controller.recordDraftTime(seconds: draftSeconds, tokens: 1)
        let round = model.roundModel(contextTokens: 200, networkSeconds: 0.005, acceptance: acceptance)
        return controller.beginRound(verifyTime: round, allowNoDraft: true).maxDraftLength
    }

    /// The K that is best under the true law when all `sessions` sessions of a batch draft K.
    static func bestK(sessions: Int, acceptance: Double, draftSeconds: Double) -> Int {
        (0...8).max { a, b in
            func rate(_ k: Int) -> Double {
                SpeculationMath.expectedTokensPerRound(acceptance: acceptance, draftLength: k)
                    / (Double(k) * draftSeconds + 0.005 + Self.law(sessions * (k + 1), context: sessions * 200))
            }
            return rate(a) < rate(b)
        }!
    }

    @Test func theCurvePlansTheKThatIsBestUnderTheTrueLaw() {
        for sessions in [1, 2, 4, 8] {
            let k = Self.plannedK(sessions: sessions, acceptance: 0.8, draftSeconds: 0.005)
            #expect(k == Self.bestK(sessions: sessions, acceptance: 0.8, draftSeconds: 0.005), "\(sessions) sessions")
        }
        // Alone on the flat start of the curve, drafting is nearly free: K is long. A full batch is past the
        // bend, where every position costs 6 ms for each of its sessions: K falls to 0 or 1.
        #expect(Self.plannedK(sessions: 1, acceptance: 0.8, draftSeconds: 0.005) >= 4)
        #expect(Self.plannedK(sessions: 8, acceptance: 0.8, draftSeconds: 0.005) <= 1)
        #expect(Self.plannedK(sessions: 16, acceptance: 0.5, draftSeconds: 0.005) == 0)
    }

    @Test func aLineFittedUnderSteadyLoadLosesTheFixedCostTheCurveKeeps() {
        // Four sessions drafting 2-5 tokens each, for a long time: every batch has 12-24 positions, past the
        // bend. A line through those batches puts the 45 ms of streaming the weights into the slope.
        var line = VerifierCostModel()
        var noise = Noise()
        for round in 0..<200 {
            let own = 3 + round % 4, others = 9 + (round / 4) % 4
            let seconds = Self.law(own + others, context: 800) * (1 + 0.01 * noise.next())
            line.observe(sequences: 4, positions: own + others, contextTokens: 800, batchSeconds: seconds,
                         ownPositions: own, ownContext: 200)
        }
        var curved = line
        var curve = BatchCostCurve()
        curve.calibrate([1, 2, 3, 4, 6, 8, 12, 16, 24, 32].map { ($0, Self.law($0)) })
        curved.observeCurve(positions: curve.knots, seconds: curve.secondsAtKnots, secondsPerContextToken: 3e-6)
        let lineRound = line.roundModel(contextTokens: 200, networkSeconds: 0, acceptance: 0.8)!
        let curveRound = curved.roundModel(contextTokens: 200, networkSeconds: 0, acceptance: 0.8)!
        // What a K = 0 round of the four sessions really takes: one forward of 4 positions over 800 tokens.
        let truth = Self.law(4, context: 800)
        #expect(abs(curveRound.seconds(draftLength: 0) - truth) / truth < 0.05)
        #expect(abs(lineRound.seconds(draftLength: 0) - truth) / truth > 0.25,
                "line K=0 \(lineRound.seconds(draftLength: 0)) s, truth \(truth) s")
    }

    @Test func confidentDraftsRunToThePlannedKWhenThePlanEndsAtTheBend() {
        // Two sessions: K = 3-4 makes a batch of 8-10 positions, at the end of the flat part. The step past
        // the plan is steep (6 ms a position for both sessions); the plan's own steps are cheap, and a
        // confident draft must not stop before K.
        var curve = BatchCostCurve()
        curve.calibrate([1, 2, 3, 4, 6, 8, 12, 16, 24, 32].map { ($0, Self.law($0)) })
        var model = VerifierCostModel()
        model.observeCurve(positions: curve.knots, seconds: curve.secondsAtKnots, secondsPerContextToken: 3e-6)
        model.observe(sequences: 2, positions: 6, contextTokens: 400, batchSeconds: Self.law(6, context: 400),
                      ownPositions: 3, ownContext: 200)
        var controller = SpeculationController(configuration: .init(
            maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: 0.95, priorWeight: 1_000_000))
        controller.recordDraftTime(seconds: 0.005, tokens: 1)
        let plan = controller.beginRound(verifyTime: model.roundModel(contextTokens: 200, networkSeconds: 0.005,
                                                                      acceptance: 0.95), allowNoDraft: true)
        #expect(plan.maxDraftLength >= 3)
        var drafted = 0
        repeat { drafted += 1 } while controller.shouldContinue(confidence: 0.97)
        #expect(drafted == plan.maxDraftLength, "stop threshold \(plan.stopThreshold)")
    }

    @Test func aPointByPointModelExtendsItsLastStep() {
        let model = VerifyTimeModel(curveSeconds: [0.05, 0.052, 0.055])
        #expect(model.seconds(draftLength: 1) == 0.052)
        #expect(abs(model.seconds(draftLength: 4) - 0.061) < 1e-12)
        #expect(abs(model.marginalSeconds(at: 0) - 0.002) < 1e-12)
        #expect(VerifyTimeModel(curveSeconds: []).seconds(draftLength: 3) == 0)
    }
}
