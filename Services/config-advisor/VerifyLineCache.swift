import Logging
import TandemBus
import TandemService
import TandemSpeculative
import TandemWire

/// Verification time vs K for a target, from the estimator's fitted batch-time model, cached per
/// target for a few seconds.
///
/// Asks the estimator to predict a single-sequence verification of 2 and of 10 positions at
/// `contextTokens` of context, and turns the two predictions into the line
/// `t_verify(K) = a + b·(K+1)`. Used only when the estimator's model rests on at least
/// `minSamples` batches; otherwise (or when the estimator is unreachable) nil, and the advisor uses
/// the metrics-store's batch latency or its prior.
actor VerifyLineCache {
    typealias Query = @Sendable (EstimateQuery) async -> EstimateReply?

    let ttl: Duration
    let contextTokens: Int
    let minSamples: Int
    private let query: Query
    private var lines: [String: (line: VerifyTimeModel?, at: ContinuousClock.Instant)] = [:]

    init(ttl: Duration = .seconds(5), contextTokens: Int = 512, minSamples: Int = 20, query: @escaping Query) {
        self.ttl = ttl
        self.contextTokens = contextTokens
        self.minSamples = minSamples
        self.query = query
    }

    /// The line for `target` (a canonical model name), or nil when the estimator has too little data.
    func line(for target: String) async -> VerifyTimeModel? {
        if let cached = lines[target], ContinuousClock.now - cached.at < ttl { return cached.line }
        let short = BatchFeatures(sequences: 1, newTokens: 2, contextTokens: contextTokens)
        let long = BatchFeatures(sequences: 1, newTokens: 10, contextTokens: contextTokens)
        var line: VerifyTimeModel?
        if let reply = await query(EstimateQuery(model: target, batches: [short, long])),
           reply.samples >= minSamples, reply.predictedMs.count == 2 {
            line = Self.line(twoPositionsMs: reply.predictedMs[0], tenPositionsMs: reply.predictedMs[1])
        }
        lines[target] = (line, .now)
        return line
    }

    /// The line through (2 positions, t2) and (10 positions, t10); nil unless time grows with positions.
    static func line(twoPositionsMs t2: Double, tenPositionsMs t10: Double) -> VerifyTimeModel? {
        guard t2.isFinite, t10.isFinite, t2 > 0, t10 > t2 else { return nil }
        let perToken = (t10 - t2) / 8 / 1000
        let fixed = max(t2 / 1000 - 2 * perToken, 0)
        return VerifyTimeModel(fixedSeconds: fixed, perTokenSeconds: perToken)
    }

    /// A query function over a DEALER connected to the estimator.
    static func estimatorQuery(endpoint: BusEndpoint, timeout: Duration, logger: Logger) -> Query {
        { query in
            do {
                guard case .estimateReply(let reply) = try await endpoint.call(.estimate(query), timeout: timeout) else {
                    return nil
                }
                return reply
            } catch {
                logger.debug("estimator query failed", metadata: ["model": "\(query.model)", "error": "\(error)"])
                return nil
            }
        }
    }
}
