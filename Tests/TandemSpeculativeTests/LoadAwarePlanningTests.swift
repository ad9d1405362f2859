import Testing
import TandemSpeculative

/// Load-aware K (WISP): the drafter learns the verifier's batch cost from verification timings
/// (``VerifierCostModel``) and the controller plans K in 0...max from it.
@Suite("Load-aware planning")
struct LoadAwarePlanningTests {
    /// A CPU-like verifier: 30 ms per batch + 1 ms per sequence + 10 ms per position.
    static func batchSeconds(sequences: Int, positions: Int) -> Double {
        0.030 + 0.001 * Double(sequences) + 0.010 * Double(positions)
    }

    /// A cost model trained on batches of `sessions` sessions, each with `positions` positions.
    static func model(sessions: Int, positionsEach: Int) -> VerifierCostModel {
        var model = VerifierCostModel()
        for round in 0..<60 {
            // The cluster grew to `sessions` sessions; K varies: the coefficients are identifiable.
            let present = 1 + (round * sessions) / 60
            let own = 1 + round % 8
            let positions = (present - 1) * positionsEach + own
            model.observe(sequences: present, positions: positions, contextTokens: present * 200,
                          batchSeconds: batchSeconds(sequences: present, positions: positions),
                          ownPositions: own, ownContext: 200)
        }
        // The last observation is the current load: `sessions` sessions in the batch.
        let positions = (sessions - 1) * positionsEach + 1
        model.observe(sequences: sessions, positions: positions, contextTokens: sessions * 200,
                      batchSeconds: batchSeconds(sequences: sessions, positions: positions), ownPositions: 1, ownContext: 200)
        return model
    }

    static func plannedK(acceptance: Double, draftSecondsPerToken: Double, model: VerifierCostModel,
                         networkSeconds: Double = 0.005) -> Int {
        var controller = SpeculationController(configuration: .init(
            maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: acceptance, priorWeight: 1_000_000))
        controller.recordDraftTime(seconds: draftSecondsPerToken, tokens: 1)
        let round = model.roundModel(contextTokens: 200, networkSeconds: networkSeconds, acceptance: acceptance)
        #expect(round != nil, "enough observations for a round model")
        return controller.beginRound(verifyTime: round, allowNoDraft: true).maxDraftLength
    }

    @Test func theCostModelLearnsTheMarginalCostOfAPosition() {
        let model = Self.model(sessions: 1, positionsEach: 5)
        let round = model.roundModel(contextTokens: 200, networkSeconds: 0)!
        // Alone on the verifier: K drafts cost K + 1 positions at 10 ms each, on top of the fixed part.
        #expect(abs(round.perTokenSeconds - 0.010) < 0.002)
        #expect(abs(round.seconds(draftLength: 4) - Self.batchSeconds(sequences: 1, positions: 5)) < 0.01)
    }

    @Test func highAcceptanceOnAnIdleVerifierDraftsLong() {
        let k = Self.plannedK(acceptance: 0.9, draftSecondsPerToken: 0.005, model: Self.model(sessions: 1, positionsEach: 5))
        #expect(k >= 4)
    }

    @Test func sessionsTakingTurnsOnOneDrafterDraftLessThanOneAlone() {
        // One drafter process drafts for every chat at 10 ms a token; the verifier's curve is flat-then-steep
        // (1.5B on two cores). Alone the session drafts (K = 1 makes 1.85 tokens in 60 ms against 1 in 45 ms);
        // with eight sessions waiting for each other's drafts on the same thread a drafted token costs the
        // round 80 ms, and drafting no longer pays (docs/design.md §7.3).
        let curve = VerifyTimeModel(curveSeconds: [0.045, 0.050, 0.056, 0.062, 0.070, 0.080, 0.090, 0.100, 0.110])
        func k(sharing: Int) -> Int {
            var controller = SpeculationController(configuration: .init(
                maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: 0.85, priorWeight: 1_000_000))
            controller.recordDraftTime(seconds: 0.010, tokens: 1)
            return controller.beginRound(verifyTime: curve, allowNoDraft: true, draftSharing: sharing).maxDraftLength
        }
        #expect(k(sharing: 1) >= 1)
        #expect(k(sharing: 8) == 0)
        #expect(k(sharing: 8) <= k(sharing: 2) && k(sharing: 2) <= k(sharing: 1))
    }

    @Test func plainSessionsSharingADrafterProbeLessOften() {
        // At 35 ms a token drafting does not pay even alone on this curve, so every round is K = 0 except the
        // probes; a probe makes the sessions that share the drafter wait, so S of them probe S times less often.
        let curve = VerifyTimeModel(curveSeconds: [0.045, 0.050, 0.056, 0.062, 0.070, 0.080, 0.090, 0.100, 0.110])
        func probes(sharing: Int) -> Int {
            var controller = SpeculationController(configuration: .init(
                maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: 0.85, priorWeight: 1_000_000))
            controller.recordDraftTime(seconds: 0.035, tokens: 1)
            return (0..<136).filter { _ in
                controller.beginRound(verifyTime: curve, allowNoDraft: true, draftSharing: sharing).maxDraftLength > 0
            }.count
        }
        #expect(probes(sharing: 1) == 8)
        #expect(probes(sharing: 4) == 2)
    }

    @Test func heavyLoadDrivesKToZero() {
        // 16 sessions share every batch and half the drafts are rejected: each rejected position delays all of
        // them for nothing.
        let k = Self.plannedK(acceptance: 0.5, draftSecondsPerToken: 0.005, model: Self.model(sessions: 16, positionsEach: 5))
        #expect(k == 0)
    }

    @Test func nearlyAlwaysAcceptedDraftsKeepPayingUnderLoad() {
        // At 96 % acceptance almost every verified position is an output token: drafting costs the others little.
        let k = Self.plannedK(acceptance: 0.96, draftSecondsPerToken: 0.005, model: Self.model(sessions: 16, positionsEach: 5))
        #expect(k >= 2)
    }

    @Test func batchesCarryingPrefillChunksDoNotTeachTheVerificationLaw() {
        // Chunked prefill: some batches also carry 64 prompt tokens at 40 ms each (prefill is compute-bound,
        // dearer per position than verification). Fitted, they would pull the intercept to zero and make
        // every draft look expensive; skipped, the learned law and the chosen K are those of the clean model.
        let clean = Self.model(sessions: 4, positionsEach: 5)
        var mixed = Self.model(sessions: 4, positionsEach: 5)
        let cleanRound = clean.roundModel(contextTokens: 200, networkSeconds: 0.005, acceptance: 0.96)!
        for _ in 0..<40 {
            let positions = 3 * 5 + 5 + 64
            mixed.observe(sequences: 5, positions: positions, contextTokens: 4 * 200,
                          batchSeconds: Self.batchSeconds(sequences: 4, positions: 20) + 64 * 0.040,
                          ownPositions: 5, ownContext: 200, prefillTokens: 64)
        }
        let mixedRound = mixed.roundModel(contextTokens: 200, networkSeconds: 0.005, acceptance: 0.96)!
        #expect(mixedRound.fixedSeconds == cleanRound.fixedSeconds)
        #expect(mixedRound.perTokenSeconds == cleanRound.perTokenSeconds)
        #expect(Self.plannedK(acceptance: 0.96, draftSecondsPerToken: 0.005, model: mixed)
                == Self.plannedK(acceptance: 0.96, draftSecondsPerToken: 0.005, model: clean))
    }

    @Test func aSlowDeviceFallsBackToPlainDecoding() {
        // The device drafts slower than the verifier decodes: drafting cannot pay even when idle.
        let k = Self.plannedK(acceptance: 0.7, draftSecondsPerToken: 0.080, model: Self.model(sessions: 1, positionsEach: 1))
        #expect(k == 0)
    }

    @Test func loadLowersKMonotonically() {
        let ks = [1, 2, 4, 8, 16].map {
            Self.plannedK(acceptance: 0.8, draftSecondsPerToken: 0.005, model: Self.model(sessions: $0, positionsEach: 4))
        }
        #expect(zip(ks, ks.dropFirst()).allSatisfy { $0 >= $1 }, "K per load: \(ks)")
        #expect(ks.first! > ks.last!, "K per load: \(ks)")
    }

    @Test func plainRoundsProbeADraftNowAndThen() {
        // Drafting does not pay (slow device): K = 0 except one probing round after every 16 plain ones.
        let model = Self.model(sessions: 1, positionsEach: 1)
        var controller = SpeculationController(configuration: .init(
            maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: 0.7, priorWeight: 1_000_000))
        controller.recordDraftTime(seconds: 0.080, tokens: 1)
        let round = model.roundModel(contextTokens: 200, networkSeconds: 0.005, acceptance: 0.7)!
        let ks = (0..<34).map { _ in controller.beginRound(verifyTime: round, allowNoDraft: true).maxDraftLength }
        #expect(ks.enumerated().filter { $0.element > 0 }.map(\.offset) == [16, 33], "K per round: \(ks)")

        var never = SpeculationController(configuration: .init(
            maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: 0.7, priorWeight: 1_000_000, probeInterval: 0))
        never.recordDraftTime(seconds: 0.080, tokens: 1)
        #expect((0..<40).allSatisfy { _ in never.beginRound(verifyTime: round, allowNoDraft: true).maxDraftLength == 0 })
    }

    @Test func aSlowFirstRoundDoesNotEndSpeculationForGood() {
        // The first measured round was slow (say, the draft model also prefilled the prompt); the device
        // really drafts at 5 ms per token. Probes measure the real speed and the session speculates again.
        let model = Self.model(sessions: 1, positionsEach: 1)
        var controller = SpeculationController(configuration: .init(
            maxDraftLength: 8, initialDraftLength: 4, priorAcceptance: 0.8, priorWeight: 1_000_000))
        controller.recordDraftTime(seconds: 0.520, tokens: 4)
        let round = model.roundModel(contextTokens: 200, networkSeconds: 0.005, acceptance: 0.8)!
        var ks: [Int] = []
        for _ in 0..<300 {
            let k = controller.beginRound(verifyTime: round, allowNoDraft: true).maxDraftLength
            ks.append(k)
            if k > 0 {
                controller.recordDraftTime(seconds: 0.005 * Double(k), tokens: k)
                controller.finishRound(drafted: k, accepted: k)
            }
        }
        #expect(ks.first == 0, "K per round: \(ks)")
        #expect(ks.suffix(20).allSatisfy { $0 > 0 }, "K per round: \(ks)")
    }

    /// Drafts tokens with confidence `c` until the controller stops (at most `k`); returns how many.
    static func drafted(_ controller: inout SpeculationController, k: Int, confidence: Float) -> Int {
        var n = 0
        while n < k {
            n += 1
            if !controller.shouldContinue(confidence: confidence) { break }
        }
        return n
    }

    @Test func newSessionsStartFromWhatEarlierSessionsLearned() {
        // Drafts of middling confidence (0.55) that are nearly always accepted: a cold controller believes
        // the confidence and stops early; sessions that learned the truth pass it on to the next one.
        let model = Self.model(sessions: 1, positionsEach: 1)
        let config = SpeculationController.Configuration(maxDraftLength: 8, initialDraftLength: 4)
        let round = model.roundModel(contextTokens: 200, networkSeconds: 0.005, acceptance: 0.99)!
        var knowledge = SpeculationController.emptyKnowledge(config)
        var firstRounds: [Int] = []
        for _ in 0..<4 {
            var session = SpeculationController(configuration: config, warmStart: knowledge)
            session.recordDraftTime(seconds: 0.007, tokens: 1)
            for r in 0..<30 {
                let plan = session.beginRound(verifyTime: round, allowNoDraft: true)
                let n = Self.drafted(&session, k: plan.maxDraftLength, confidence: 0.55)
                if r == 0 { firstRounds.append(n) }
                session.finishRound(drafted: n, accepted: n)
            }
            knowledge.absorb(session)
        }
        #expect(knowledge.sessions == 4)
        #expect(firstRounds.last! > firstRounds.first!, "tokens drafted in each session's first round: \(firstRounds)")
        let cold = SpeculationController(configuration: config)
        let warm = SpeculationController(configuration: config, warmStart: knowledge)
        #expect(warm.acceptanceEstimate > cold.acceptanceEstimate + 0.1)
        #expect(warm.calibratedAcceptance(confidence: 0.55) > 0.8)
        // Scaled down to 20 trials: one bad session still moves the estimate.
        var unlucky = warm
        for _ in 0..<5 { _ = unlucky.beginRound(verifyTime: round); unlucky.finishRound(drafted: 4, accepted: 0) }
        #expect(unlucky.acceptanceEstimate < warm.acceptanceEstimate - 0.1)
    }
}
