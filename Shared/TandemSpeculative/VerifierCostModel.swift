/// What one more verified position costs on the verifier right now, as a drafter sees it (WISP's
/// verification interference), learned from the timings every verification result carries.
///
/// A verification batch takes `β0 + β1·sequences + β2·positions + β3·context` (``LinearBatchTimeModel``,
/// with forgetting so it follows load). The round model handed to the planner for a session is
/// - fixed: the predicted time of the batch the session would join (the other sessions' positions, as
///   last observed) plus the network round trip;
/// - per position: `β2` times the number of sessions in that batch, because every position a session
///   adds delays every session of the batch, not only its own. On an idle verifier this is the plain
///   marginal cost; under load it grows until drafting stops paying and the planner picks K = 0.
public struct VerifierCostModel: Sendable {
    private var model: LinearBatchTimeModel
    /// The batch around this drafter's last request, without the request itself.
    private var others = BatchShape.empty

    public init(configuration: LinearBatchTimeModel.Configuration = .init(
        priorCoefficients: [0.03, 0.002, 0.004, 0.000_002], forgetting: 0.97)) {
        model = LinearBatchTimeModel(configuration: configuration)
    }

    /// Observations so far.
    public var samples: Int { model.sampleCount }

    /// Records one verification: the batch's shape and time, and this request's part of it.
    public mutating func observe(sequences: Int, positions: Int, contextTokens: Int?, batchSeconds: Double,
                                 ownPositions: Int, ownContext: Int) {
        let context = contextTokens ?? (sequences * ownContext)
        model.observe(BatchShape(sequences: sequences, newTokens: positions, contextTokens: context), seconds: batchSeconds)
        others = BatchShape(sequences: max(0, sequences - 1), newTokens: max(0, positions - ownPositions),
                            contextTokens: max(0, context - ownContext))
    }

    /// The planner's round model for a session with `contextTokens` committed tokens.
    public func roundModel(contextTokens: Int, networkSeconds: Double) -> VerifyTimeModel? {
        guard model.sampleCount >= model.configuration.minSamples else { return nil }
        let c = model.coefficients
        let perPosition = max(c[2], 0) * Double(others.sequences + 1)
        let base = model.predictSeconds(others.adding(newTokens: 0, contextTokens: contextTokens))
        return VerifyTimeModel(fixedSeconds: max(base, 0) + max(networkSeconds, 0), perTokenSeconds: perPosition)
    }
}
