/// A verification request waiting for a batch slot, as the scheduler sees it.
///
/// Times are seconds on one monotonic clock shared with `now` (the verifier converts the wire's epoch
/// milliseconds once on arrival).
public struct PendingVerify: Sendable, Hashable {
    /// Caller's identifier (e.g. a queue slot or correlation id); only used for deterministic tie-breaks.
    public var id: UInt64
    public var arrival: Double
    /// Absolute time by which the answer must be sent for the session to keep its TPOT SLO.
    public var deadline: Double
    /// Positions this request adds to the batch (draft tokens + 1).
    public var newTokens: Int
    /// Context tokens already cached for the session.
    public var contextTokens: Int

    public init(id: UInt64, arrival: Double, deadline: Double, newTokens: Int, contextTokens: Int) {
        self.id = id
        self.arrival = arrival
        self.deadline = deadline
        self.newTokens = newTokens
        self.contextTokens = contextTokens
    }
}

/// The scheduler's choice for the next batch.
public struct BatchSelection: Sendable, Hashable {
    /// Indices into the `pending` array passed in, in selection order.
    public var indices: [Int]
    public var shape: BatchShape
    /// Predicted batch duration.
    public var predictedSeconds: Double
    /// Included requests that are predicted to miss their deadline anyway (already late).
    public var predictedLate: [Int]
}

/// Chooses which pending verification requests go into the next batch (pure logic, no I/O or clock).
///
/// - ``Policy/sloAware`` (WISP): earliest-deadline-first. The earliest-deadline request is always taken
///   (progress: nothing starves, because every waiting request eventually holds the earliest deadline, and
///   ``Configuration/maxWaitSeconds`` makes long waiters jump the queue). Then, in deadline order, each
///   request is added if the predicted time of the enlarged batch still finishes every *on-time* member
///   before its deadline; a candidate that would break one is skipped (a later, smaller one may still fit).
///   Members that are late even when batched first don't block others; they ride along and are reported in
///   ``BatchSelection/predictedLate``. Batch size and total new tokens are capped.
/// - ``Policy/firstCome`` (SLED baseline): arrival order, up to the caps, no time model.
public struct SLOBatchScheduler: Sendable {
    public enum Policy: String, Sendable, Hashable, Codable, CaseIterable {
        case sloAware
        case firstCome
    }

    public struct Configuration: Sendable, Hashable, Codable {
        public var policy: Policy
        public var maxBatchSize: Int
        /// Cap on the total new tokens of a batch (nil = none). The first request is taken even if larger.
        public var maxBatchTokens: Int?
        /// Requests that waited this long are treated as due immediately (aging; nil = off).
        public var maxWaitSeconds: Double?

        public init(policy: Policy = .sloAware, maxBatchSize: Int = 16, maxBatchTokens: Int? = nil,
                    maxWaitSeconds: Double? = nil) {
            precondition(maxBatchSize >= 1, "maxBatchSize must be positive")
            self.policy = policy
            self.maxBatchSize = maxBatchSize
            self.maxBatchTokens = maxBatchTokens
            self.maxWaitSeconds = maxWaitSeconds
        }
    }

    public var configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Selects the next batch from `pending` at time `now`; empty only when `pending` is empty.
    public func selectBatch(from pending: [PendingVerify], now: Double,
                            predictor: some BatchTimePredicting) -> BatchSelection {
        guard !pending.isEmpty else {
            return BatchSelection(indices: [], shape: .empty, predictedSeconds: 0, predictedLate: [])
        }
        switch configuration.policy {
        case .firstCome: return firstCome(pending, predictor)
        case .sloAware: return earliestDeadlineFirst(pending, now, predictor)
        }
    }

    private func firstCome(_ pending: [PendingVerify], _ predictor: some BatchTimePredicting) -> BatchSelection {
        let order = pending.indices.sorted {
            (pending[$0].arrival, pending[$0].id) < (pending[$1].arrival, pending[$1].id)
        }
        var chosen: [Int] = []
        var shape = BatchShape.empty
        for i in order {
            guard chosen.count < configuration.maxBatchSize else { break }
            let r = pending[i]
            if let cap = configuration.maxBatchTokens, !chosen.isEmpty, shape.newTokens + r.newTokens > cap { break }
            chosen.append(i)
            shape = shape.adding(newTokens: r.newTokens, contextTokens: r.contextTokens)
        }
        return BatchSelection(indices: chosen, shape: shape, predictedSeconds: predictor.predictSeconds(shape),
                              predictedLate: [])
    }

    private func earliestDeadlineFirst(_ pending: [PendingVerify], _ now: Double,
                                       _ predictor: some BatchTimePredicting) -> BatchSelection {
        let maxWait = configuration.maxWaitSeconds
        func key(_ i: Int) -> (Double, Double, UInt64) {
            let r = pending[i]
            let aged = maxWait.map { now - r.arrival >= $0 } ?? false
            // Aged requests sort before all others, oldest first.
            return (aged ? -Double.greatestFiniteMagnitude : r.deadline, r.arrival, r.id)
        }
        let order = pending.indices.sorted { key($0) < key($1) }

        let head = order[0]
        var chosen = [head]
        var shape = BatchShape.empty.adding(newTokens: pending[head].newTokens, contextTokens: pending[head].contextTokens)
        var seconds = predictor.predictSeconds(shape)
        // The tightest deadline among members that are (predicted) on time: no addition may push past it.
        var protectedDeadline = now + seconds <= pending[head].deadline ? pending[head].deadline : Double.infinity

        for i in order.dropFirst() {
            guard chosen.count < configuration.maxBatchSize else { break }
            let r = pending[i]
            if let cap = configuration.maxBatchTokens, shape.newTokens + r.newTokens > cap { continue }
            let candidate = shape.adding(newTokens: r.newTokens, contextTokens: r.contextTokens)
            let t = predictor.predictSeconds(candidate)
            guard now + t <= protectedDeadline else { continue }
            chosen.append(i)
            shape = candidate
            seconds = t
            if now + t <= r.deadline { protectedDeadline = min(protectedDeadline, r.deadline) }
        }
        let finish = now + seconds
        let late = chosen.filter { finish > pending[$0].deadline }
        return BatchSelection(indices: chosen, shape: shape, predictedSeconds: seconds, predictedLate: late)
    }
}
