/// WISP-style dynamic drafting: how many tokens to draft this round, and when to stop early.
///
/// ## The rule
/// At the start of a round, ``beginRound(verifyTime:roundBudgetSeconds:)`` picks `K_max` with
/// ``SpeculationPlanner`` (objective from the configuration, default goodput) from the current acceptance
/// estimate, the measured draft time per token and the verifier's time model, limited by an optional round
/// time budget (from the TPOT SLO) and by ``Configuration/maxDraftLength``.
///
/// While drafting, after draft token `j` (1-based) with confidence `c_j` (its draft distribution's top
/// probability), the controller predicts the conditional acceptance of that token as
/// `π_j = (1 - β) · cal(c_j) + β · a_j`, where `cal` is an online calibration of confidence → acceptance
/// (EWMA per confidence decile, prior = the confidence itself) and `a_j` the EWMA acceptance of position `j`
/// given the previous ones were accepted. `P_j = π_1 ⋯ π_j` is the predicted probability that all `j` drafts
/// survive. Drafting continues with token `j + 1` only if `j < K_max` and `P_j · a_(j+1) ≥ θ`: the predicted
/// probability that the *next* draft token would be accepted must be worth its drafting time. `θ` is either
/// fixed (``Configuration/stopThreshold``) or, with ``Configuration/adaptiveThreshold``, the break-even
/// value `(t_draft + t_verify per token) · E[tokens] / T_round` (drafting one more token costs its time and
/// gains `P · a` tokens, each worth `T_round / E[tokens]` seconds at the current rate), clamped to [0.05, 0.9].
///
/// After the verifier answers, ``finishRound(drafted:accepted:)`` updates the estimates with censoring: only
/// positions up to the first rejection were evaluated. With ``Configuration/fixedDraftLength`` set the
/// controller behaves like SLED (always that K, no early stop), still collecting statistics.
///
/// A value type with fixed-size storage: no allocation per token. Keep one per session.
public struct SpeculationController: Sendable {
    public struct Configuration: Sendable, Hashable, Codable {
        /// Hard cap on drafts per round.
        public var maxDraftLength: Int
        /// Drafts per round before any timing is known.
        public var initialDraftLength: Int
        /// Fixed K (SLED baseline / explicit request): disables planning and early stopping.
        public var fixedDraftLength: Int?
        /// θ when not adaptive.
        public var stopThreshold: Double
        /// Derive θ from timings (see the type's documentation).
        public var adaptiveThreshold: Bool
        /// β: weight of the per-position estimate against the confidence calibration.
        public var positionWeight: Double
        /// EWMA weight of a new observation (per position and per confidence bucket).
        public var learningRate: Double
        /// Decay of the acceptance counts per round (1 = no forgetting).
        public var acceptanceDecay: Double
        /// Prior acceptance rate and its weight in pseudo-trials.
        public var priorAcceptance: Double
        public var priorWeight: Double
        /// Objective for choosing K_max.
        public var objective: SpeculationObjective
        /// After this many K = 0 rounds in a row, one round drafts anyway (the best K ≥ 1): plain rounds
        /// teach the controller nothing about acceptance or draft time, so without a probe one bad estimate
        /// (a slow first round, an unlucky stretch of text) would keep a session unspeculated for good.
        /// 0 disables probing.
        public var probeInterval: Int

        public init(maxDraftLength: Int = 8, initialDraftLength: Int = 4, fixedDraftLength: Int? = nil,
                    stopThreshold: Double = 0.35, adaptiveThreshold: Bool = true, positionWeight: Double = 0.3,
                    learningRate: Double = 0.1, acceptanceDecay: Double = 0.98, priorAcceptance: Double = 0.7,
                    priorWeight: Double = 4, objective: SpeculationObjective = .goodput, probeInterval: Int = 16) {
            precondition(maxDraftLength >= 1, "maxDraftLength must be positive")
            self.maxDraftLength = maxDraftLength
            self.initialDraftLength = min(max(1, initialDraftLength), maxDraftLength)
            self.fixedDraftLength = fixedDraftLength
            self.stopThreshold = stopThreshold
            self.adaptiveThreshold = adaptiveThreshold
            self.positionWeight = positionWeight
            self.learningRate = learningRate
            self.acceptanceDecay = acceptanceDecay
            self.priorAcceptance = priorAcceptance
            self.priorWeight = priorWeight
            self.objective = objective
            self.probeInterval = max(0, probeInterval)
        }
    }

    /// The controller's decision for one round.
    public struct RoundPlan: Sendable, Hashable {
        public var maxDraftLength: Int
        public var stopThreshold: Double
        /// Expected emitted tokens at `maxDraftLength` under the current acceptance estimate.
        public var expectedTokens: Double
    }

    public let configuration: Configuration
    /// `a_j` for j = 1...maxDraftLength (index j - 1).
    private var position: [Double]
    /// Calibration per confidence decile.
    private var calibration: [Double]
    private var acceptedCount: Double = 0
    private var trialCount: Double = 0
    private var draftSeconds: Double?
    private var confidences: [Float]
    private var survive: Double = 1
    private var plan: RoundPlan
    /// K = 0 rounds chosen in a row (see ``Configuration/probeInterval``).
    private var plainStreak = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        position = [Double](repeating: configuration.priorAcceptance, count: configuration.maxDraftLength + 1)
        calibration = (0..<10).map { (Double($0) + 0.5) / 10 }
        confidences = []
        confidences.reserveCapacity(configuration.maxDraftLength + 1)
        let k = configuration.fixedDraftLength ?? configuration.initialDraftLength
        plan = RoundPlan(maxDraftLength: k, stopThreshold: configuration.stopThreshold,
                         expectedTokens: SpeculationMath.expectedTokensPerRound(acceptance: configuration.priorAcceptance,
                                                                                draftLength: k))
    }

    /// Current per-token acceptance estimate (censored MLE with decay, shrunk towards the prior).
    public var acceptanceEstimate: Double {
        let c = configuration
        return (acceptedCount + c.priorAcceptance * c.priorWeight) / (trialCount + c.priorWeight)
    }

    /// EWMA acceptance of draft position `j` (1-based) given the previous drafts were accepted.
    public func positionAcceptance(_ j: Int) -> Double {
        position[min(max(j, 1), position.count) - 1]
    }

    /// Learned acceptance for a draft confidence.
    public func calibratedAcceptance(confidence: Float) -> Double {
        calibration[Self.bucket(confidence)]
    }

    /// `π_j`: predicted probability that draft `j` with this confidence is accepted (given j-1 were).
    public func predictedAcceptance(confidence: Float, position j: Int) -> Double {
        let b = configuration.positionWeight
        return (1 - b) * calibratedAcceptance(confidence: confidence) + b * positionAcceptance(j)
    }

    /// Measured draft time per token (EWMA), if any.
    public var draftSecondsPerToken: Double? { draftSeconds }

    /// The plan of the current round.
    public var currentPlan: RoundPlan { plan }

    /// Starts a round: chooses `K_max` and the stop threshold.
    /// - Parameters:
    ///   - verifyTime: the verifier's time for a round of K drafts (from the estimator); nil keeps K_max at
    ///     the initial value until it is known.
    ///   - roundBudgetSeconds: longest acceptable round (e.g. TPOT SLO × expected tokens); nil = none.
    ///   - allowNoDraft: K = 0 (the verifier decodes one token alone) is a candidate too: when the verifier's
    ///     marginal cost makes drafting a loss, the round falls back to plain decoding.
    ///   - draftSharing: sessions (this one included) drafting in turn on the same device: each drafted token
    ///     costs the round that many draft times (the others' drafts are waited for).
    ///   - draftHidden: share of the drafting time that leaves the round because the device drafts it ahead,
    ///     during the previous round's verification (docs/design.md §7.4); 0 when it does not.
    @discardableResult
    public mutating func beginRound(verifyTime: VerifyTimeModel?, roundBudgetSeconds: Double? = nil,
                                    allowNoDraft: Bool = false, draftSharing: Int = 1,
                                    draftHidden: Double = 0) -> RoundPlan {
        confidences.removeAll(keepingCapacity: true)
        survive = 1
        let c = configuration
        let alpha = acceptanceEstimate
        if let fixed = c.fixedDraftLength {
            plan = RoundPlan(maxDraftLength: fixed, stopThreshold: 0,
                             expectedTokens: SpeculationMath.expectedTokensPerRound(acceptance: alpha, draftLength: fixed))
            return plan
        }
        guard let ownDraft = draftSeconds, let vt = verifyTime else {
            plan = RoundPlan(maxDraftLength: c.initialDraftLength, stopThreshold: c.stopThreshold,
                             expectedTokens: SpeculationMath.expectedTokensPerRound(acceptance: alpha,
                                                                                    draftLength: c.initialDraftLength))
            return plan
        }
        // Sessions sharing the drafting compute take turns: each drafted token of the round costs the
        // session the drafts of the others too.
        let td = ownDraft * Double(max(draftSharing, 1)) * (1 - min(max(draftHidden, 0), 1))
        var best = SpeculationPlanner.optimalDraftLength(
            acceptance: alpha, draftSecondsPerToken: td, verifySeconds: { vt.seconds(draftLength: $0) },
            objective: c.objective, range: (allowNoDraft ? 0 : 1)...c.maxDraftLength,
            roundBudgetSeconds: roundBudgetSeconds)
        if best.draftLength == 0 {
            plainStreak += 1
            // A probe drafts (and first feeds the draft model every token of the plain rounds) while the
            // sessions sharing the drafter wait: with S of them it comes S times less often.
            if c.probeInterval > 0, plainStreak > c.probeInterval * max(draftSharing, 1) {
                plainStreak = 0
                best = SpeculationPlanner.optimalDraftLength(
                    acceptance: alpha, draftSecondsPerToken: td, verifySeconds: { vt.seconds(draftLength: $0) },
                    objective: c.objective, range: 1...c.maxDraftLength, roundBudgetSeconds: roundBudgetSeconds)
            }
        } else {
            plainStreak = 0
        }
        var threshold = c.stopThreshold
        if c.adaptiveThreshold, best.roundSeconds > 0 {
            // The price of one drafted position: drafting it plus its share of the plan's verification time.
            // For a line that is the slope; for a measured curve the plan's mean step, not the step past the
            // plan: a CPU curve is flat and then turns steep, and the step beyond the chosen K (past the bend,
            // which is why K stops there) would stop every round after a token or two (measured: 1.0 drafted
            // per round at 100 % acceptance in a fleet run where a fixed K = 4 was 1.2-1.5x faster).
            let step = best.draftLength > 0
                ? (vt.seconds(draftLength: best.draftLength) - vt.seconds(draftLength: 0)) / Double(best.draftLength)
                : vt.marginalSeconds(at: 0)
            threshold = min(max((td + step) * best.expectedTokens / best.roundSeconds, 0.05), 0.9)
        }
        plan = RoundPlan(maxDraftLength: best.draftLength, stopThreshold: threshold, expectedTokens: best.expectedTokens)
        return plan
    }

    /// Records draft token `j = drafted so far` and says whether to draft another one this round.
    public mutating func shouldContinue(afterDrafting step: DraftStep) -> Bool {
        shouldContinue(confidence: step.confidence)
    }

    /// See ``shouldContinue(afterDrafting:)``.
    public mutating func shouldContinue(confidence: Float) -> Bool {
        if confidences.count < configuration.maxDraftLength + 1 { confidences.append(confidence) }
        let j = confidences.count
        survive *= predictedAcceptance(confidence: confidence, position: j)
        guard j < plan.maxDraftLength else { return false }
        if configuration.fixedDraftLength != nil { return true }
        return survive * positionAcceptance(j + 1) >= plan.stopThreshold
    }

    /// This controller with the current round's drafting forgotten: what a device drafting the next round
    /// ahead stops by (docs/design.md §7.4), the current plan's K and threshold standing in for the next
    /// round's. The copy learns nothing back; the session's own controller decides again once the verifier
    /// has answered.
    public func roundAhead() -> SpeculationController {
        var copy = self
        copy.confidences.removeAll(keepingCapacity: true)
        copy.survive = 1
        return copy
    }

    /// Feeds back the verifier's answer for the round (`drafted` tokens sent, `accepted` of them accepted).
    public mutating func finishRound(drafted: Int, accepted: Int) {
        let c = configuration
        let a = min(max(accepted, 0), drafted)
        let evaluated = min(drafted, a + 1)
        let lr = c.learningRate
        for j in 0..<min(evaluated, position.count) {
            let outcome: Double = j < a ? 1 : 0
            position[j] += lr * (outcome - position[j])
            if j < confidences.count {
                let b = Self.bucket(confidences[j])
                calibration[b] += lr * (outcome - calibration[b])
            }
        }
        acceptedCount = acceptedCount * c.acceptanceDecay + Double(a)
        trialCount = trialCount * c.acceptanceDecay + Double(evaluated)
        confidences.removeAll(keepingCapacity: true)
        survive = 1
    }

    /// What a controller has learned that outlives its session: per-position acceptance, the confidence
    /// calibration, the acceptance counts and the draft time per token. A drafter keeps one per target
    /// (``absorb(_:)`` at each session's end) and starts new sessions from it (``init(configuration:warmStart:)``):
    /// a 128-token session lasts ~30 rounds, too few to unlearn the prior, so cold sessions spent most of
    /// their life drafting shorter than their acceptance warranted (measured: K 2.9 where acceptance was 99 %).
    public struct Knowledge: Sendable, Hashable {
        public var position: [Double]
        public var calibration: [Double]
        public var acceptedCount: Double
        public var trialCount: Double
        public var draftSeconds: Double?
        /// Sessions folded in.
        public var sessions: Int

        /// Folds a finished session's controller in (EWMA over sessions, weight `1 / min(sessions, 8)`), so
        /// the knowledge follows drift in the text while no single session dominates.
        public mutating func absorb(_ controller: SpeculationController) {
            guard controller.trialCount > 0 else { return }
            sessions += 1
            let w = 1 / Double(min(sessions, 8))
            let k = controller.knowledge
            for j in position.indices where j < k.position.count { position[j] += w * (k.position[j] - position[j]) }
            for b in calibration.indices where b < k.calibration.count {
                calibration[b] += w * (k.calibration[b] - calibration[b])
            }
            acceptedCount += w * (k.acceptedCount - acceptedCount)
            trialCount += w * (k.trialCount - trialCount)
            if let d = k.draftSeconds { draftSeconds = draftSeconds.map { $0 + w * (d - $0) } ?? d }
        }
    }

    /// This controller's learned state (see ``Knowledge``).
    public var knowledge: Knowledge {
        Knowledge(position: position, calibration: calibration, acceptedCount: acceptedCount,
                  trialCount: trialCount, draftSeconds: draftSeconds, sessions: trialCount > 0 ? 1 : 0)
    }

    /// An empty ``Knowledge`` to absorb sessions into (the configuration's priors).
    public static func emptyKnowledge(_ configuration: Configuration) -> Knowledge {
        let fresh = SpeculationController(configuration: configuration)
        var k = fresh.knowledge
        k.sessions = 0
        return k
    }

    /// A controller that starts from what earlier sessions learned instead of the priors. The acceptance
    /// counts are scaled down to at most 20 trials, so the new session still adapts within a few rounds.
    public init(configuration: Configuration, warmStart: Knowledge?) {
        self.init(configuration: configuration)
        guard let w = warmStart, w.sessions > 0 else { return }
        for j in position.indices where j < w.position.count { position[j] = w.position[j] }
        for b in calibration.indices where b < w.calibration.count { calibration[b] = w.calibration[b] }
        let scale = w.trialCount > 20 ? 20 / w.trialCount : 1
        acceptedCount = w.acceptedCount * scale
        trialCount = w.trialCount * scale
        draftSeconds = w.draftSeconds
    }

    /// Feeds back measured drafting time (EWMA of seconds per token).
    public mutating func recordDraftTime(seconds: Double, tokens: Int) {
        guard tokens > 0, seconds >= 0 else { return }
        let per = seconds / Double(tokens)
        if let d = draftSeconds { draftSeconds = d + 0.2 * (per - d) } else { draftSeconds = per }
    }

    private static func bucket(_ c: Float) -> Int {
        guard c.isFinite else { return 0 }
        return min(max(Int(c * 10), 0), 9)
    }
}
