/// Verification time as a function of the draft length: `fixedSeconds + perTokenSeconds * (K + 1)`, or, when
/// the time is not a line (a verifier's measured cost curve, docs/design.md §7), the time per K given
/// point by point.
public struct VerifyTimeModel: Sendable, Hashable, Codable {
    public var fixedSeconds: Double
    public var perTokenSeconds: Double
    /// Seconds of a round with draft length K = 0, 1, 2, …; past its end the last step continues. nil: the line.
    public var curveSeconds: [Double]?
    public init(fixedSeconds: Double, perTokenSeconds: Double) {
        self.fixedSeconds = fixedSeconds
        self.perTokenSeconds = perTokenSeconds
    }
    /// A model given point by point (`seconds[k]` for draft length k); the line fields hold the first point
    /// and the mean step, for readers that only know lines.
    public init(curveSeconds points: [Double]) {
        let seconds = points.isEmpty ? [0] : points
        let step = seconds.count > 1 ? (seconds[seconds.count - 1] - seconds[0]) / Double(seconds.count - 1) : 0
        self.fixedSeconds = seconds[0] - step
        self.perTokenSeconds = step
        self.curveSeconds = seconds
    }
    public func seconds(draftLength k: Int) -> Double {
        guard let c = curveSeconds, !c.isEmpty else { return fixedSeconds + perTokenSeconds * Double(k + 1) }
        if k < c.count { return c[max(k, 0)] }
        let step = c.count > 1 ? c[c.count - 1] - c[c.count - 2] : perTokenSeconds
        return c[c.count - 1] + step * Double(k - c.count + 1)
    }
    /// What drafting one more token costs at draft length `k`: `seconds(k + 1) - seconds(k)`.
    public func marginalSeconds(at k: Int) -> Double { seconds(draftLength: k + 1) - seconds(draftLength: k) }

    /// This model with its K = 0 round priced per token when such a round decodes `steps` tokens for one
    /// network round trip of `networkSeconds` (included in every point): a K = 0 round over the network asks
    /// the verifier for several decode steps at once (docs/design.md §7.3), so per token it pays the round
    /// trip once per `steps`. Without this the planner charged a whole round trip to every plain token and
    /// kept drafting on a device slower than the verifier's own decoding (measured: K = 1, TPOT 40.7 ms
    /// against 21.3 ms centralized, emulated 40 ms-per-token device).
    public func amortizingPlainRounds(networkSeconds: Double, steps: Int, maxDraftLength: Int) -> VerifyTimeModel {
        guard steps > 1, networkSeconds > 0 else { return self }
        var points = (0...max(maxDraftLength, 1)).map { seconds(draftLength: $0) }
        points[0] = max(0, points[0] - networkSeconds * (1 - 1 / Double(steps)))
        var model = VerifyTimeModel(curveSeconds: points)
        if curveSeconds == nil {
            // Keep the line's own fields for readers that only know lines.
            model.fixedSeconds = fixedSeconds
            model.perTokenSeconds = perTokenSeconds
        }
        return model
    }
}

/// A profiled drafting configuration (ConfigSpec): one (device, draft model, quantization) combination.
public struct DraftProfile: Sendable, Hashable, Codable {
    /// Free-form identifier, e.g. "pi5/SmolLM2-135M/Q4_1".
    public var name: String
    /// Per-token acceptance rate of this draft model against the target.
    public var acceptance: Double
    /// Device time to draft one token.
    public var draftSecondsPerToken: Double
    /// Device power while drafting (W).
    public var drafterPowerWatts: Double
    /// Device power while waiting for verification (W); 0 counts drafting energy only, as docs/design.md §11 does.
    public var idlePowerWatts: Double
    /// Verification time of one round as a function of K.
    public var verify: VerifyTimeModel
    /// Network round trip added to every round.
    public var networkSeconds: Double

    public init(name: String, acceptance: Double, draftSecondsPerToken: Double, drafterPowerWatts: Double,
                idlePowerWatts: Double = 0, verify: VerifyTimeModel, networkSeconds: Double = 0) {
        self.name = name
        self.acceptance = acceptance
        self.draftSecondsPerToken = draftSecondsPerToken
        self.drafterPowerWatts = drafterPowerWatts
        self.idlePowerWatts = idlePowerWatts
        self.verify = verify
        self.networkSeconds = networkSeconds
    }
}

/// What a configuration is chosen for (ConfigSpec): the three optima conflict, so the objective is explicit.
public enum SpeculationObjective: String, Sendable, Hashable, Codable, CaseIterable {
    /// Output tokens per second of one session: `E[tokens] / (K t_draft + t_verify(K) + t_net)`.
    case goodput
    /// Tokens per verifier-second: `E[tokens] / t_verify(K)`.
    case costEfficiency
    /// Tokens per joule of device energy: `E[tokens] / (P_draft K t_draft + P_idle (t_verify(K) + t_net))`.
    case energyEfficiency
}

/// The evaluation of one draft length.
public struct SpeculationPlan: Sendable, Hashable, Codable {
    public var draftLength: Int
    public var expectedTokens: Double
    /// Wall time of one round (drafting + verification + network).
    public var roundSeconds: Double
    /// Value of the objective (tokens/s, tokens per verifier-second, or tokens/J).
    public var score: Double
}

/// ConfigSpec-style choice of the draft length K (and of the configuration among profiled candidates).
///
/// Tokens counted by every objective are the *emitted* tokens `(1 - α^(K+1)) / (1 - α)`: accepted drafts plus
/// the bonus/correction token that each verification yields (ConfigSpec's "bonus-token effect" is why cost
/// and energy prefer short K). K = 0 (no drafting) is allowed only when `range` includes it.
public enum SpeculationPlanner {
    /// Scores draft length `k` for `objective` with an arbitrary verification time function.
    public static func evaluate(acceptance: Double, draftSecondsPerToken: Double, verifySeconds: Double,
                                networkSeconds: Double = 0, drafterPowerWatts: Double = 1, idlePowerWatts: Double = 0,
                                draftLength k: Int, objective: SpeculationObjective) -> SpeculationPlan {
        let tokens = SpeculationMath.expectedTokensPerRound(acceptance: acceptance, draftLength: k)
        let drafting = Double(k) * draftSecondsPerToken
        let round = drafting + verifySeconds + networkSeconds
        let score: Double
        switch objective {
        case .goodput:
            score = round > 0 ? tokens / round : .infinity
        case .costEfficiency:
            score = verifySeconds > 0 ? tokens / verifySeconds : .infinity
        case .energyEfficiency:
            let joules = drafterPowerWatts * drafting + idlePowerWatts * (verifySeconds + networkSeconds)
            score = joules > 0 ? tokens / joules : .infinity
        }
        return SpeculationPlan(draftLength: k, expectedTokens: tokens, roundSeconds: round, score: score)
    }

    /// Scores `k` for a profile.
    public static func evaluate(_ profile: DraftProfile, draftLength k: Int, objective: SpeculationObjective) -> SpeculationPlan {
        evaluate(acceptance: profile.acceptance, draftSecondsPerToken: profile.draftSecondsPerToken,
                 verifySeconds: profile.verify.seconds(draftLength: k), networkSeconds: profile.networkSeconds,
                 drafterPowerWatts: profile.drafterPowerWatts, idlePowerWatts: profile.idlePowerWatts,
                 draftLength: k, objective: objective)
    }

    /// The best K in `range` for an acceptance rate, draft time and verification-time function
    /// (ties go to the smaller K). Exhaustive: K is small and the objective need not be unimodal.
    public static func optimalDraftLength(acceptance: Double, draftSecondsPerToken: Double,
                                          verifySeconds: (Int) -> Double, networkSeconds: Double = 0,
                                          drafterPowerWatts: Double = 1, idlePowerWatts: Double = 0,
                                          objective: SpeculationObjective = .goodput,
                                          range: ClosedRange<Int> = 1...16,
                                          roundBudgetSeconds: Double? = nil) -> SpeculationPlan {
        var best: SpeculationPlan?
        for k in range {
            let plan = evaluate(acceptance: acceptance, draftSecondsPerToken: draftSecondsPerToken,
                                verifySeconds: verifySeconds(k), networkSeconds: networkSeconds,
                                drafterPowerWatts: drafterPowerWatts, idlePowerWatts: idlePowerWatts,
                                draftLength: k, objective: objective)
            if let budget = roundBudgetSeconds, plan.roundSeconds > budget, k > range.lowerBound { continue }
            if best == nil || plan.score > best!.score { best = plan }
        }
        return best!
    }

    /// The best K in `range` for a profile.
    public static func optimalDraftLength(_ profile: DraftProfile, objective: SpeculationObjective,
                                          range: ClosedRange<Int> = 1...16) -> SpeculationPlan {
        optimalDraftLength(acceptance: profile.acceptance, draftSecondsPerToken: profile.draftSecondsPerToken,
                           verifySeconds: { profile.verify.seconds(draftLength: $0) },
                           networkSeconds: profile.networkSeconds, drafterPowerWatts: profile.drafterPowerWatts,
                           idlePowerWatts: profile.idlePowerWatts, objective: objective, range: range)
    }

    /// The best (configuration, K) among profiled candidates for an objective; nil when there are none.
    public static func bestConfiguration(_ candidates: [DraftProfile], objective: SpeculationObjective,
                                         range: ClosedRange<Int> = 1...16) -> (index: Int, plan: SpeculationPlan)? {
        var best: (index: Int, plan: SpeculationPlan)?
        for (i, c) in candidates.enumerated() {
            let plan = optimalDraftLength(c, objective: objective, range: range)
            if best == nil || plan.score > best!.plan.score { best = (i, plan) }
        }
        return best
    }
}
