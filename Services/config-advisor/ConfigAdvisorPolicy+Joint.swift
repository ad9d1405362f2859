import TandemModels
import TandemSpeculative
import TandemWire

/// The advisor over the joint space (draft variant, K) for a device that sent its measured profile
/// (docs/alignment.md). Used instead of the per-token-speed choice when the query carries an
/// `EdgeDeviceProfile` and alignment profiles of the target are known (files given with `--alignment`,
/// or `alignment` rows in the metrics-store published by `tandem profile --pair --publish`).
///
/// Acceptance per variant: the live per-position acceptance of the metrics-store's rounds of that draft
/// model and target when it has `minAcceptanceRounds` rounds (what the variant really does in this
/// cluster), else the alignment profile's greedy curve. Verification time: ``verifyModel(target:measurements:)``
/// (estimator line, store latency, or prior), as for the per-token choice.
extension ConfigAdvisorPolicy {
    struct JointDecision: Sendable {
        var recommendation: AdvisorRecommendation
        var result: JointConfigEvaluator.Result
        var variants: [JointConfigEvaluator.Variant]
        var verify: VerifyTimeModel
    }

    /// Alignment profiles of `target` from the configured files and the store (a file wins over a store row of
    /// the same draft model and quantization).
    func alignmentProfiles(target: String, measurements: AdvisorMeasurements) -> [AlignmentProfile] {
        var profiles = alignmentFiles.filter { ModelCatalog.canonicalName($0.targetModel) == target }
        let known = Set(profiles.map { JointConfigEvaluator.modelKey($0.draftModel) + "|" + $0.draftQuantization })
        for row in measurements.alignment where ModelCatalog.canonicalName(row.targetModel) == target {
            guard !known.contains(JointConfigEvaluator.modelKey(row.draftModel) + "|" + row.quantization),
                  let p = AlignmentProfile(row: row) else { continue }
            profiles.append(p)
        }
        return profiles
    }

    /// The joint choice, or nil when the query has no edge profile or no alignment profile of its target is known.
    func jointRecommend(_ query: AdvisorQuery,
                        measurements: AdvisorMeasurements) throws(ErrorReply) -> JointDecision? {
        guard let edge = query.edgeProfile else { return nil }
        let target = ModelCatalog.canonicalName(query.targetModel)
        var profiles = alignmentProfiles(target: target, measurements: measurements)
        if !query.candidates.isEmpty {
            let wanted = Set(query.candidates.map(JointConfigEvaluator.modelKey))
            profiles = profiles.filter { wanted.contains(JointConfigEvaluator.modelKey($0.draftModel)) }
        }
        guard !profiles.isEmpty else { return nil }
        let device = JointConfigEvaluator.Device(edge)
        var live: [String: [Double]] = [:]
        let kMax = profiles.map(\.kMax).max() ?? kRange.upperBound
        for p in profiles {
            let draft = ModelCatalog.canonicalName(p.draftModel)
            let (estimate, source) = acceptanceEstimate(draft: draft, target: target, measurements: measurements)
            if source == .measured {
                var curve = Array(estimate.conditional.prefix(kMax))
                if curve.count < kMax { curve += Array(repeating: estimate.alpha, count: kMax - curve.count) }
                live[JointConfigEvaluator.modelKey(p.draftModel)] = curve
            }
        }
        let variants = JointConfigEvaluator.variants(from: profiles, device: device, live: live)
        let verify = verifyModel(target: target, measurements: measurements).model
        let objective = JointConfigEvaluator.Objective(rawValue: query.objective.rawValue) ?? .goodput
        let upper = max(kRange.lowerBound, min(kRange.upperBound, kMax))
        let result: JointConfigEvaluator.Result
        do {
            result = try JointConfigEvaluator.evaluate(device: device, variants: variants, verify: verify,
                                                       objective: objective, kRange: kRange.lowerBound...upper,
                                                       idlePowerFraction: idlePowerFraction)
        } catch {
            throw ErrorReply(code: .invalidArgument, message: error.description)
        }
        let best = result.choice
        let variant = variants[best.variant]
        // Oriented like the per-token answer: tokens/s, tokens per verifier-second, tokens per joule.
        let value: Double = switch objective {
        case .goodput: best.goodput
        case .cost: 1 / best.verifierSecondsPerToken
        case .energy: best.joulesPerToken.map { 1 / $0 } ?? 0
        }
        return JointDecision(
            recommendation: AdvisorRecommendation(
                draftModel: variant.name, quantization: variant.quantization, k: best.k,
                expectedTokensPerRound: best.expectedTokens, objectiveValue: value,
                basis: variant.acceptanceSource == "live" ? "measured" : "alignment"),
            result: result, variants: variants, verify: verify)
    }
}

extension JointConfigEvaluator.Device {
    /// The evaluator's view of a device profile.
    init(_ p: EdgeDeviceProfile) {
        self.init(name: p.name, draftModel: p.draftModel, draftMs: p.draftMs,
                  decodeTokensPerSecond: p.decodeTokensPerSecond, rttSeconds: p.network.rttMs / 1000,
                  joulesPerToken: p.joulesPerToken, powerWatts: p.powerWatts)
    }
}

extension AlignmentProfile {
    /// A profile from the metrics-store's `alignment` row (per-K tables are not stored: the advisor needs
    /// only the position curves and the speed); nil for a row without positions.
    init?(row: AlignmentRow) {
        let k = row.perPosition.count
        guard k > 0, row.sampledPerPosition.count == k, row.draftTokensPerSecond > 0 else { return nil }
        self.init(draftModel: row.draftModel, draftQuantization: row.quantization, draftBytes: nil,
                  targetModel: row.targetModel, targetQuantization: "?", promptSet: "?", prompts: 0, maxTokens: 0,
                  kMax: k, positions: row.positions,
                  greedy: .init(perPosition: row.perPosition, perPositionUnconditional: [], perK: []),
                  temperature: row.temperature,
                  sampled: .init(perPosition: row.sampledPerPosition, perPositionUnconditional: [], perK: []),
                  klDivergence: row.klDivergence, klMax: row.klDivergence, draftPerplexity: row.perplexity,
                  targetPerplexity: 0, draftTokensPerSecond: row.draftTokensPerSecond,
                  source: "metrics-store alignment row from \(row.device)")
    }
}
