import TandemModels
import TandemSpeculative
import TandemWire

/// ConfigSpec's configuration choice as a pure function: from measurements (or priors) to the
/// (draft model, quantization, K) that maximises the query's objective.
///
/// For every candidate configuration and every K in ``kRange``:
/// - expected tokens per round: docs/design.md §6.1, `(1 − α^{K+1}) / (1 − α)` with the measured α of the
///   (draft, target) pair, refined by per-position acceptance where measured (``AcceptanceEstimate``);
/// - drafting time per token `t_draft`: measured profile of this device (as measured: a profile
///   recorded on the device already reflects its throttle), else the fastest profile of the model
///   on any device × the query device's `computeThrottle`, else the prior speed × `computeThrottle`;
/// - verification time `t_verify(K) = a + b·(K+1)`: the line the estimator fitted for the target (a
///   single sequence at a typical context, see ``VerifyLineCache``), else the prior line, rescaled so that
///   it equals the measured median batch latency of the target at the K the rounds were run with;
/// - objective (``SpeculationPlanner``): goodput = tokens / (K·t_draft + t_verify(K));
///   cost = tokens per verifier-second = tokens / t_verify(K); energy = tokens per joule =
///   tokens / (P·K·t_draft [+ P_idle·t_verify(K)]), P the drafting power (profile, else the
///   device's declared power × the model's prior factor). docs/design.md §11 counts drafting energy only
///   (``idlePowerFraction`` = 0); note that then tokens/energy falls with K for every α < 1, so the
///   energy optimum is always the smallest K of the range, as in ConfigSpec's K=2 (the lower end of
///   its grid).
///
/// The best (candidate, K) wins; ties go to the earlier candidate and the smaller K.
struct ConfigAdvisorPolicy: Sendable {
    var priors: AdvisorPriors = .standard
    var kRange: ClosedRange<Int> = 1...16
    /// Rounds of a (draft, target) pair before its measured acceptance replaces the prior.
    var minAcceptanceRounds = 20
    /// Rounds reaching a draft position before its conditional acceptance is used.
    var minPositionRounds = 20
    /// Batches of a target before its measured latency rescales the prior verification line.
    var minLatencySamples = 5
    /// Device power while waiting for verification, as a fraction of drafting power (0: docs/design.md §11).
    var idlePowerFraction = 0.0
    /// Alignment profiles read from files (`--alignment`): the joint (draft variant, K) choice for queries
    /// carrying an edge profile (ConfigAdvisorPolicy+Joint.swift).
    var alignmentFiles: [AlignmentProfile] = []

    /// Where one input of a candidate came from.
    enum Source: String, Sendable, Hashable {
        case measured, scaled, prior
    }

    /// One configuration evaluated at its best K (kept for logs, health and tests).
    struct Evaluation: Sendable, Hashable {
        var draftModel: String
        var quantization: String
        var acceptance: AcceptanceEstimate
        var draftSecondsPerToken: Double
        var powerWatts: Double
        var verify: VerifyTimeModel
        var acceptanceSource: Source
        var speedSource: Source
        var verifySource: Source
        /// The best K's plan; `score` is the objective value.
        var plan: SpeculationPlan

        var isMeasured: Bool {
            acceptanceSource != .prior || speedSource != .prior || verifySource != .prior
        }
    }

    struct Decision: Sendable, Hashable {
        var recommendation: AdvisorRecommendation
        /// Every candidate at its own best K, best first.
        var evaluations: [Evaluation]
    }

    /// The recommendation for `query`; throws `not_found` when no candidate draft model is known
    /// for the target, `invalid_argument` for an unusable device profile.
    func recommend(_ query: AdvisorQuery, measurements: AdvisorMeasurements) throws(ErrorReply) -> Decision {
        guard query.device.computeThrottle.isFinite, query.device.computeThrottle > 0,
              query.device.powerWatts.isFinite, query.device.powerWatts >= 0 else {
            throw ErrorReply(code: .invalidArgument,
                             message: "device computeThrottle must be > 0 and powerWatts >= 0")
        }
        let target = ModelCatalog.canonicalName(query.targetModel)
        let verify = verifyModel(target: target, measurements: measurements)
        var evaluations: [Evaluation] = []
        for draft in candidates(query, target: target, measurements: measurements) {
            guard priors.compatible(draft: draft, target: target) else { continue }
            let acceptance = acceptanceEstimate(draft: draft, target: target, measurements: measurements)
            for config in drafting(draft: draft, device: query.device, measurements: measurements) {
                let plan = bestPlan(acceptance: acceptance.estimate, secondsPerToken: config.secondsPerToken,
                                    powerWatts: config.powerWatts, verify: verify.model, objective: query.objective)
                evaluations.append(Evaluation(
                    draftModel: draft, quantization: config.quantization, acceptance: acceptance.estimate,
                    draftSecondsPerToken: config.secondsPerToken, powerWatts: config.powerWatts,
                    verify: verify.model, acceptanceSource: acceptance.source, speedSource: config.source,
                    verifySource: verify.source, plan: plan))
            }
        }
        // Stable: ties keep candidate order.
        let ranked = evaluations.enumerated().sorted {
            $0.element.plan.score != $1.element.plan.score ? $0.element.plan.score > $1.element.plan.score
                                                           : $0.offset < $1.offset
        }.map(\.element)
        guard let best = ranked.first else {
            throw ErrorReply(code: .notFound,
                             message: "no draft model known for target '\(query.targetModel)'; pass candidates")
        }
        return Decision(
            recommendation: AdvisorRecommendation(
                draftModel: best.draftModel, quantization: best.quantization, k: best.plan.draftLength,
                expectedTokensPerRound: best.plan.expectedTokens, objectiveValue: best.plan.score,
                basis: best.isMeasured ? "measured" : "prior"),
            evaluations: ranked)
    }

    /// Scores every K of ``kRange`` and returns the best (ties: smaller K).
    func bestPlan(acceptance: AcceptanceEstimate, secondsPerToken: Double, powerWatts: Double,
                  verify: VerifyTimeModel, objective: Objective) -> SpeculationPlan {
        var best: SpeculationPlan?
        for k in kRange {
            let plan = evaluate(acceptance: acceptance, secondsPerToken: secondsPerToken, powerWatts: powerWatts,
                                verify: verify, k: k, objective: objective)
            if best == nil || plan.score > best!.score { best = plan }
        }
        return best!
    }

    /// One K scored with ``SpeculationPlanner``; when per-position acceptance is measured the planner's
    /// geometric token count is replaced by the position curve (every objective is proportional to it).
    func evaluate(acceptance: AcceptanceEstimate, secondsPerToken: Double, powerWatts: Double,
                  verify: VerifyTimeModel, k: Int, objective: Objective) -> SpeculationPlan {
        var plan = SpeculationPlanner.evaluate(
            acceptance: acceptance.alpha, draftSecondsPerToken: secondsPerToken,
            verifySeconds: verify.seconds(draftLength: k), drafterPowerWatts: powerWatts,
            idlePowerWatts: powerWatts * idlePowerFraction, draftLength: k, objective: objective.planner)
        let tokens = acceptance.expectedTokens(draftLength: k)
        if plan.expectedTokens > 0, tokens != plan.expectedTokens, plan.score.isFinite {
            plan.score *= tokens / plan.expectedTokens
            plan.expectedTokens = tokens
        }
        return plan
    }

    // MARK: Inputs

    /// The query's candidates, or (when it names none) every draft model seen with this target or this
    /// device in the store, then the prior drafts, without duplicates.
    func candidates(_ query: AdvisorQuery, target: String, measurements: AdvisorMeasurements) -> [String] {
        var names: [String]
        if !query.candidates.isEmpty {
            names = query.candidates.map(ModelCatalog.canonicalName)
        } else {
            names = measurements.acceptance.filter { ModelCatalog.canonicalName($0.targetModel) == target }
                .map { ModelCatalog.canonicalName($0.draftModel) }
            names += measurements.profiles.filter { $0.device == query.device.name }
                .map { ModelCatalog.canonicalName($0.draftModel) }
            names += priors.draftCandidates(target: target)
        }
        var seen = Set<String>()
        return names.filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    func acceptanceEstimate(draft: String, target: String,
                            measurements: AdvisorMeasurements) -> (estimate: AcceptanceEstimate, source: Source) {
        let rows = measurements.acceptance.filter {
            ModelCatalog.canonicalName($0.draftModel) == draft && ModelCatalog.canonicalName($0.targetModel) == target
        }
        if let measured = AcceptanceEstimate.measured(rows, minRounds: minAcceptanceRounds,
                                                      minPositionRounds: minPositionRounds) {
            return (measured, .measured)
        }
        return (.prior(priors.acceptance(draft: draft, target: target)), .prior)
    }

    struct DraftingConfig: Sendable, Hashable {
        var quantization: String
        var secondsPerToken: Double
        var powerWatts: Double
        var source: Source
    }

    /// The ways the device can run `draft`: one per profiled quantization of this device; else one per
    /// quantization profiled on other devices (fastest speed there × throttle); else the prior.
    func drafting(draft: String, device: DeviceProfile, measurements: AdvisorMeasurements) -> [DraftingConfig] {
        let prior = priors.drafts[draft]
        let priorPower = device.powerWatts * (prior?.powerFactor ?? 1)
        let rows = measurements.profiles.filter {
            ModelCatalog.canonicalName($0.draftModel) == draft && $0.samples > 0 && $0.draftTokensPerSecond > 0
                && $0.draftTokensPerSecond.isFinite
        }
        let own = rows.filter { $0.device == device.name }
        if !own.isEmpty {
            return own.map {
                DraftingConfig(quantization: $0.quantization, secondsPerToken: 1 / $0.draftTokensPerSecond,
                               powerWatts: $0.powerWatts > 0 ? $0.powerWatts : priorPower, source: .measured)
            }
        }
        if !rows.isEmpty {
            var fastest: [String: Double] = [:]
            for row in rows { fastest[row.quantization] = max(fastest[row.quantization] ?? 0, row.draftTokensPerSecond) }
            return fastest.keys.sorted().map { quantization in
                DraftingConfig(quantization: quantization,
                               secondsPerToken: 1 / (fastest[quantization]! * device.computeThrottle),
                               powerWatts: priorPower, source: .scaled)
            }
        }
        let speed = (prior?.tokensPerSecond ?? priors.defaultTokensPerSecond) * device.computeThrottle
        return [DraftingConfig(quantization: prior?.quantization ?? priors.defaultQuantization,
                               secondsPerToken: 1 / speed, powerWatts: priorPower, source: .prior)]
    }

    /// The target's verification line: the estimator's fitted line when it has one; else the prior, rescaled to the measured median batch latency at the
    /// rounds' mean K when the store has enough batches of this target. The median, not the mean: the
    /// store's batch latency mixes prefill batches (whole prompts) with verification batches, and the
    /// far more numerous verification batches set the median.
    func verifyModel(target: String, measurements: AdvisorMeasurements) -> (model: VerifyTimeModel, source: Source) {
        if let line = measurements.verifyLines[target] { return (line, .measured) }
        let prior = priors.verifyModel(target: target)
        let rows = measurements.batchLatency.filter { ModelCatalog.canonicalName($0.key) == target }
        let count = rows.reduce(0) { $0 + $1.count }
        guard count >= max(1, minLatencySamples) else { return (prior, .prior) }
        let meanSeconds = rows.reduce(0.0) { $0 + Double($1.count) * $1.p50Ms } / Double(count) / 1000
        let targetRounds = measurements.acceptance.filter { ModelCatalog.canonicalName($0.targetModel) == target }
        let totalRounds = targetRounds.reduce(0) { $0 + $1.rounds }
        let typicalK = totalRounds > 0
            ? Int((targetRounds.reduce(0.0) { $0 + Double($1.rounds * $1.k) } / Double(totalRounds)).rounded())
            : priors.typicalK
        let anchor = prior.seconds(draftLength: typicalK)
        guard meanSeconds.isFinite, meanSeconds > 0, anchor > 0 else { return (prior, .prior) }
        let scale = meanSeconds / anchor
        return (VerifyTimeModel(fixedSeconds: prior.fixedSeconds * scale, perTokenSeconds: prior.perTokenSeconds * scale),
                .measured)
    }
}

extension Objective {
    /// The planner's name for this objective.
    var planner: SpeculationObjective {
        switch self {
        case .goodput: .goodput
        case .cost: .costEfficiency
        case .energy: .energyEfficiency
        }
    }
}
