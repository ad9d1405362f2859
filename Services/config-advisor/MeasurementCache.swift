import TandemService
import TandemWire

/// Caches the metrics-store's answers for a few seconds, so a burst of advisor queries (every drafter
/// asks on start) costs one round of store queries, and a store that is down is not asked again
/// for every query.
///
/// Each of the three answers is kept separately with the time it was last fetched successfully: a
/// failed fetch keeps the previous answer until it is `staleLimit` old, then the advisor falls back to
/// priors for that input. Concurrent callers share one in-flight fetch.
actor MeasurementCache {
    /// One fetch round: nil for an answer that could not be obtained (timeout, error, store down).
    struct Fetched: Sendable {
        var acceptance: [AcceptanceRow]?
        var profiles: [ProfileRow]?
        var batchLatency: [LatencyRow]?
        /// Optional part: a store without the `alignment` query leaves it nil without failing the round.
        var alignment: [AlignmentRow]?
        init(acceptance: [AcceptanceRow]? = nil, profiles: [ProfileRow]? = nil, batchLatency: [LatencyRow]? = nil,
             alignment: [AlignmentRow]? = nil) {
            self.alignment = alignment
            self.acceptance = acceptance
            self.profiles = profiles
            self.batchLatency = batchLatency
        }
    }

    private struct Part<Value: Sendable>: Sendable {
        var value: Value
        var at: ContinuousClock.Instant?
    }

    let ttl: Duration
    let staleLimit: Duration
    private let fetch: @Sendable () async -> Fetched
    private var acceptance = Part<[AcceptanceRow]>(value: [], at: nil)
    private var profiles = Part<[ProfileRow]>(value: [], at: nil)
    private var latency = Part<[LatencyRow]>(value: [], at: nil)
    private var alignment = Part<[AlignmentRow]>(value: [], at: nil)
    private var fetchedAt: ContinuousClock.Instant?
    private var inFlight: Task<Void, Never>?
    /// Fetch rounds, and rounds in which at least one answer failed (health).
    private(set) var fetches = 0
    private(set) var failedFetches = 0

    init(ttl: Duration = .seconds(5), staleLimit: Duration = .seconds(60),
         fetch: @escaping @Sendable () async -> Fetched) {
        self.ttl = ttl
        self.staleLimit = staleLimit
        self.fetch = fetch
    }

    /// The current measurements, fetched again when older than `ttl`.
    func measurements() async -> AdvisorMeasurements {
        let now = ContinuousClock.now
        if let fetchedAt, now - fetchedAt < ttl { return current }
        if let inFlight {
            await inFlight.value
            return current
        }
        let fetch = self.fetch
        let task = Task {
            let fetched = await fetch()
            self.apply(fetched, at: .now)
        }
        inFlight = task
        await task.value
        return current
    }

    /// Seconds since the last fetch round (nil before the first).
    func age() -> Double? {
        fetchedAt.map { (ContinuousClock.now - $0).milliseconds / 1000 }
    }

    private var current: AdvisorMeasurements {
        AdvisorMeasurements(acceptance: acceptance.value, profiles: profiles.value, batchLatency: latency.value,
                            alignment: alignment.value)
    }

    private func apply(_ fetched: Fetched, at now: ContinuousClock.Instant) {
        fetches += 1
        if fetched.acceptance == nil || fetched.profiles == nil || fetched.batchLatency == nil { failedFetches += 1 }
        update(&acceptance, with: fetched.acceptance, now: now)
        update(&profiles, with: fetched.profiles, now: now)
        update(&latency, with: fetched.batchLatency, now: now)
        update(&alignment, with: fetched.alignment, now: now)
        fetchedAt = now
        inFlight = nil
    }

    private func update<Value: Sendable>(_ part: inout Part<[Value]>, with value: [Value]?, now: ContinuousClock.Instant) {
        if let value {
            part = Part(value: value, at: now)
        } else if let at = part.at, now - at > staleLimit {
            part = Part(value: [], at: nil)
        }
    }
}
