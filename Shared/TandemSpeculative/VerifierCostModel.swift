/// What one more verified position costs on the verifier right now, as a drafter sees it (WISP's
/// verification interference), learned from the timings every verification result carries.
///
/// A verification batch takes `β0 + β2·positions + β3·context` (``LinearBatchTimeModel`` without its
/// sequences term). The law is the verifier's hardware and model, which do not drift, so the fit keeps
/// all history: batches seen at light load are what pins the intercept down when load is heavy (under
/// a steady load every batch has about the same size, and a forgetting fit loses the intercept). The
/// current load is the last observed batch. The round model handed to the planner prices a session's round
/// as if the verifier served it alone, plus what its positions cost the others:
/// - fixed: `β0 + β3·context` (the session's own share of a batch) plus the network round trip;
/// - per position: `β2` for the session itself, plus `β2 · (1 − α)` for each other session of the batch it
///   joins (as last observed): a rejected position delays every session of the batch for nothing.
/// The other sessions' positions are deliberately left out of the fixed part: they lengthen the round
/// whatever K this session picks, and counting them would make a long shared batch look like a reason
/// to draft more (each session amortising the others' cost), which is exactly the interference that
/// sinks a shared verifier. On an idle verifier the price is the plain marginal cost; as sessions join,
/// it grows until drafting stops paying and the planner picks K = 0.
///
/// When the verifier publishes its measured cost curve (``observeCurve(positions:seconds:secondsPerContextToken:)``,
/// docs/design.md §7) the line is not used: a CPU batch's time is concave in its positions, and a line fitted
/// to the batches of a steady load loses its intercept. The round is then priced from the curve as the
/// batch would be if every session in it drafted the same K (they run the same planner): `f(N·(K+1)) + γ·C`,
/// with N the sessions of the last batch and C their context. One session alone reads the curve as measured;
/// in a full batch each drafted position costs N positions' worth of verifier time, which is what a rejected
/// position really costs the batch (WISP's interference), with no separate waste factor.
public struct VerifierCostModel: Sendable {
    private var model: LinearBatchTimeModel
    /// The batch around this drafter's last request, without the request itself.
    private var others = BatchShape.empty
    /// The verifier's published curve: positions → seconds at no context, and seconds per context token.
    private var curve: (positions: [Int], seconds: [Double], perContextToken: Double)?

    public init(configuration: LinearBatchTimeModel.Configuration = .init(
        priorCoefficients: [0.03, 0, 0.004, 0.000_002], forgetting: 1)) {
        model = LinearBatchTimeModel(configuration: configuration)
    }

    /// Observations so far.
    public var samples: Int { model.sampleCount }

    /// Records one verification: the batch's shape and time, and this request's part of it.
    ///
    /// A batch that also prefilled prompt chunks (`prefillTokens` of its `positions`) is skipped: its time
    /// is not the verification law, and the load stays as last seen in a verification-only batch. Prefill positions cost far more per position than verified
    /// ones at this batch size, and fitting them drives the intercept towards zero, which makes every draft
    /// look expensive and pushes K to 0 exactly when long shared batches make drafting pay most.
    public mutating func observe(sequences: Int, positions: Int, contextTokens: Int?, batchSeconds: Double,
                                 ownPositions: Int, ownContext: Int, prefillTokens: Int = 0) {
        let context = contextTokens ?? (sequences * ownContext)
        if prefillTokens > 0 { return }
        // Sequences are left out of the fit: every session brings K + 1 positions, so sequences and
        // positions rise together and their split is not identifiable from a running cluster; a
        // session's fixed cost lands on its positions instead (a slightly higher price per position).
        // (The sequences feature is held at 1, where it merges with the intercept.)
        model.observe(BatchShape(sequences: 1, newTokens: positions, contextTokens: context), seconds: batchSeconds)
        others = BatchShape(sequences: max(0, sequences - 1), newTokens: max(0, positions - ownPositions),
                            contextTokens: max(0, context - ownContext))
    }

    /// Takes the verifier's published batch-time curve (the newest replaces the previous one). A curve
    /// whose points do not match or do not increase is ignored.
    public mutating func observeCurve(positions: [Int], seconds: [Double], secondsPerContextToken: Double) {
        guard !positions.isEmpty, positions.count == seconds.count, positions[0] >= 1,
              zip(positions, positions.dropFirst()).allSatisfy({ $0 < $1 }),
              seconds.allSatisfy({ $0.isFinite && $0 >= 0 }), secondsPerContextToken.isFinite else { return }
        curve = (positions, seconds, max(secondsPerContextToken, 0))
    }

    /// The planner's round model for a session with `contextTokens` committed tokens and draft acceptance
    /// `acceptance`. Only the positions the session can expect to see rejected delay the others for
    /// nothing: an accepted position replaces one this session would otherwise need in a later round
    /// (where it would cost a whole sequence's share of a batch). So each of the other sessions charges
    /// `(1 − acceptance)` of a position's time.
    public func roundModel(contextTokens: Int, networkSeconds: Double, acceptance: Double = 0,
                           maxDraftLength: Int = 16) -> VerifyTimeModel? {
        if let curve {
            let n = others.sequences + 1
            let context = Double(others.contextTokens + max(contextTokens, 0)) * curve.perContextToken
            let network = max(networkSeconds, 0)
            return VerifyTimeModel(curveSeconds: (0...max(maxDraftLength, 1)).map { k in
                BatchCostCurve.evaluate(knots: curve.positions, values: curve.seconds, positions: n * (k + 1))
                    + context + network
            })
        }
        guard model.sampleCount >= model.configuration.minSamples else { return nil }
        let c = model.coefficients
        let waste = 1 - min(max(acceptance, 0), 1)
        let perPosition = max(c[2], 0) * (1 + Double(others.sequences) * waste)
        let own = model.predictSeconds(BatchShape(sequences: 1, newTokens: 0, contextTokens: contextTokens))
        return VerifyTimeModel(fixedSeconds: max(own, 0) + max(networkSeconds, 0), perTokenSeconds: perPosition)
    }
}
