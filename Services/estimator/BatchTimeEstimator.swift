import Foundation
import TandemModels
import TandemSpeculative
import TandemWire

/// WISP's verification-time estimator, one online least-squares model per target model.
///
/// Each `batch` event a verifier publishes is one observation: its wall time against the batch's
/// features (sequences, new tokens = Σ tokensPerSequence, context tokens = Σ contextLengths), fitted
/// by ``LinearBatchTimeModel`` (ridge-regularised towards a prior, so the first few batches do not
/// produce wild coefficients). Models are keyed by the *target model* (``BatchEvent/model``), not by
/// verifier replica: replicas of one model on one machine class share the law, and pooling them gives
/// every replica a fitted model sooner. A model never seen answers with the prior coefficients and
/// `samples = 0`, which callers treat as "no data".
///
/// Reported error (``EstimateReply/rmseMs`` and ``EstimateReply/meanRelativeError``) is prequential
/// (see ``PrequentialError``): the error of each prediction made *before* its observation was added,
/// over the most recent window, counting only predictions from a fitted model. While the model is not
/// fitted yet (fewer than `minSamples` observations) the error of the prior on the observations so far
/// is reported instead.
actor BatchTimeEstimator {
    struct Configuration: Sendable {
        /// Fit settings shared by every model (prior, ridge, forgetting, error window).
        var model: LinearBatchTimeModel.Configuration
        /// Recent predictions the prequential error is averaged over.
        var errorWindow: Int
        /// Most distinct models tracked (bounds memory against garbage model names).
        var maxModels: Int

        init(model: LinearBatchTimeModel.Configuration = BatchTimeEstimator.defaultModelConfiguration(),
             errorWindow: Int = 256, maxModels: Int = 64) {
            self.model = model
            self.errorWindow = errorWindow
            self.maxModels = maxModels
        }
    }

    /// The fit settings the service uses: the shared model's default prior coefficients, but a prior worth
    /// 0.02 pseudo-observations instead of 1, and 8 observations before the fit replaces the prior.
    ///
    /// Why: ``LinearBatchTimeModel`` scales its prior pseudo-observation by each feature's mean square,
    /// not by the feature's variance left after the other features. Verification batches have strongly
    /// correlated features (new tokens ≈ (K+1)·sequences), so one pseudo-observation biased the
    /// per-sequence coefficient by ~17% after 400 batches of synthetic data with 1% noise (prequential
    /// error 1.7% instead of 0.5%). At 0.02 the bias is negligible after a few dozen batches, and
    /// `minSamples` = 8 keeps the first fits from being wild.
    static func defaultModelConfiguration(forgetting: Double = 1, errorWindow: Int = 256)
        -> LinearBatchTimeModel.Configuration {
        LinearBatchTimeModel.Configuration(priorWeight: 0.02, forgetting: forgetting, minSamples: 8,
                                           errorWindow: errorWindow)
    }

    /// What the estimator knows about one model (health replies and tests).
    struct ModelSummary: Sendable, Hashable {
        var samples: Int
        var coefficients: [Double]
        var rmseMs: Double
        var meanRelativeError: Double
        /// Mean relative error of the predictions verifiers attached to their events
        /// (`BatchEvent.predictedMs`): what the scheduler actually experienced. nil without any.
        var reportedMeanRelativeError: Double?
        var verifiers: Set<ReplicaID>
    }

    private struct Entry {
        var model: LinearBatchTimeModel
        var prequential: PrequentialError
        var reported: PrequentialError
        var verifiers: Set<ReplicaID> = []
    }

    let configuration: Configuration
    private var entries: [String: Entry] = [:]
    /// Events that were not used (inconsistent features, bad wall time, too many models).
    private(set) var rejectedEvents = 0
    /// Events used.
    private(set) var acceptedEvents = 0

    init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The key a model name is stored under: ``ModelCatalog/canonicalName(_:)``, the key the
    /// config-advisor and the metrics use too.
    static func modelKey(_ name: String) -> String { ModelCatalog.canonicalName(name) }

    /// The regression features of one batch event; nil when the event is inconsistent.
    static func shape(of event: BatchEvent) -> BatchShape? {
        guard event.sequences > 0, event.tokensPerSequence.count == event.sequences,
              event.contextLengths.isEmpty || event.contextLengths.count == event.sequences,
              event.tokensPerSequence.allSatisfy({ $0 >= 0 }), event.contextLengths.allSatisfy({ $0 >= 0 })
        else { return nil }
        return BatchShape(sequences: event.sequences, newTokens: event.tokensPerSequence.reduce(0, +),
                          contextTokens: event.contextLengths.reduce(0, +))
    }

    /// Adds one measured batch. Returns false when the event was rejected.
    @discardableResult
    func observe(_ event: BatchEvent) -> Bool {
        guard let shape = Self.shape(of: event), event.wallMs.isFinite, event.wallMs >= 0 else {
            rejectedEvents += 1
            return false
        }
        let key = Self.modelKey(event.model)
        guard !key.isEmpty, entries[key] != nil || entries.count < configuration.maxModels else {
            rejectedEvents += 1
            return false
        }
        var entry = entries[key] ?? Entry(model: LinearBatchTimeModel(configuration: configuration.model),
                                          prequential: PrequentialError(window: configuration.errorWindow),
                                          reported: PrequentialError(window: configuration.errorWindow))
        let seconds = event.wallMs / 1000
        if entry.model.isFitted {
            entry.prequential.record(predicted: entry.model.predictSeconds(shape), observed: seconds)
        }
        if let reported = event.predictedMs, reported.isFinite, reported >= 0 {
            entry.reported.record(predicted: reported / 1000, observed: seconds)
        }
        entry.model.observe(shape, seconds: seconds)
        entry.verifiers.insert(event.verifierID)
        entries[key] = entry
        acceptedEvents += 1
        return true
    }

    /// Predicts every batch of the query with the model's current fit (the prior for an unknown model).
    /// - Throws: ``ErrorReply`` (`invalid_argument`) for negative features.
    func estimate(_ query: EstimateQuery) throws(ErrorReply) -> EstimateReply {
        for batch in query.batches where batch.sequences < 0 || batch.newTokens < 0 || batch.contextTokens < 0 {
            throw ErrorReply(code: .invalidArgument, message: "batch features must be non-negative: \(batch)")
        }
        let entry = entries[Self.modelKey(query.model)]
        let model = entry?.model ?? LinearBatchTimeModel(configuration: configuration.model)
        let predicted = query.batches.map { batch in
            model.predictSeconds(BatchShape(sequences: batch.sequences, newTokens: batch.newTokens,
                                            contextTokens: batch.contextTokens)) * 1000
        }
        guard let entry else {
            return EstimateReply(predictedMs: predicted, samples: 0, rmseMs: 0, meanRelativeError: 0)
        }
        let (rmse, relative) = Self.error(of: entry)
        return EstimateReply(predictedMs: predicted, samples: entry.model.sampleCount, rmseMs: rmse * 1000,
                             meanRelativeError: relative)
    }

    /// Everything known, by model key.
    func summaries() -> [String: ModelSummary] {
        entries.mapValues { entry in
            let (rmse, relative) = Self.error(of: entry)
            return ModelSummary(samples: entry.model.sampleCount, coefficients: entry.model.coefficients,
                                rmseMs: rmse * 1000, meanRelativeError: relative,
                                reportedMeanRelativeError: entry.reported.count > 0
                                    ? entry.reported.meanRelativeError : nil,
                                verifiers: entry.verifiers)
        }
    }

    /// Prequential error when any fitted prediction was scored, else the prior's error on the data so far.
    private static func error(of entry: Entry) -> (rmse: Double, relative: Double) {
        if entry.prequential.count > 0 {
            return (entry.prequential.rmse, entry.prequential.meanRelativeError)
        }
        let fit = entry.model.fitError
        return (fit.rmse, fit.meanRelativeError)
    }
}
