import DequeModule
import Foundation
import Logging
import Synchronization
import TandemEngine
import TandemServing
import TandemService
import TandemSpeculative
import TandemTelemetry
import TandemWire

/// The verifier's engine room: sessions, KV caches under a memory budget, and batched
/// verification. Every engine call and every session mutation happens on one `ComputeThread`;
/// the bus handlers only enqueue work and await its answer.
final class VerifierCore: @unchecked Sendable {
    struct Configuration: Sendable {
        var maxBatchSequences = 16
        /// How long the first request of an idle verifier waits for company.
        var batchWindow: Duration = .milliseconds(2)
        /// Total KV cache memory for all sessions (docs/design.md, "Admission by memory"): a new session is
        /// admitted when it fits, evicting idle sessions' caches (least recently used first) if needed, and
        /// refused with ``ErrorCode/resourceExhausted`` when it would need to evict an active session's.
        var kvBudgetBytes = 2 << 30
        /// A session that was opened, prefilled, verified or decoded within this many milliseconds (or has a
        /// request or prefill queued) is active: admitting another session never evicts its cache.
        var activeWindowMs = 5_000.0
        var policy: SLOBatchScheduler.Policy = .sloAware
        /// Tokens that end a generation: a multi-step decode request (``VerifyRequest/decodeSteps``) stops there.
        var endOfGeneration: Set<Int32> = []
        /// Most prompt tokens one batch prefills (when nothing else waits, and the cap otherwise).
        var maxPrefillChunk = 256
        /// Fewest prompt tokens a batch prefills while sessions are being verified, so a new session always
        /// makes progress however tight the running sessions' deadlines are.
        var minPrefillChunk = 16
        /// Prompt lookup (n-gram drafts made on the verifier from the session's own tokens) for decode steps;
        /// nil: off. How many tokens a step proposes is chosen from the batch-time model.
        var promptLookup: PromptLookupDrafter.Configuration? = PromptLookupDrafter.Configuration()
        /// Most tokens one decode step proposes by prompt lookup (0: off).
        var maxLookupTokens = 8
        /// Propose every matched token whatever it costs (vLLM's `ngram` behaviour), instead of only what the
        /// batch-time model says pays: for ablations and for tests of the acceptance path.
        var lookupIgnoresCost = false
        /// A queued verify request is dropped (answered ``ErrorCode/deadlineExceeded``) once its deadline is
        /// past by more than `expiryFactor` times its window (deadline minus arrival) and at least
        /// `expiryGraceMs`: its drafter has given up on it, so it must not take a place in a batch.
        var expiryFactor = 2.0
        var expiryGraceMs = 5_000.0
        /// How long the answer to a request id is kept for a retry of that id.
        var replyRetentionMs = 30_000.0
    }

    /// What the verifier did with the verify requests it received (health details, tests).
    struct Counters: Sendable, Equatable {
        /// Requests verified (each step of a multi-step decode counts once).
        var verified = 0
        /// Retries answered with the answer of the request they repeat (no second verification).
        var duplicates = 0
        /// Requests dropped because their deadline was long past.
        var expired = 0
        /// Requests refused because a field failed validation.
        var invalid = 0
        /// Sessions refused (`resource_exhausted`) because their KV cache did not fit beside the active sessions'.
        var refusedSessions = 0
        /// Idle sessions' caches evicted to admit a new session.
        var evictedForAdmission = 0
    }

    /// Most tokens one multi-step decode request may ask for.
    static let maxDecodeSteps = 64

    let engine: ForwardEngine
    let modelName: String
    let replicaID: ReplicaID
    let configuration: Configuration
    let compute: ComputeThread
    let logger: Logger
    private let events: EventPublisher?
    private let verifier: SpeculativeVerifier
    private let scheduler: SLOBatchScheduler
    /// Sessions this verifier generates alone (no drafter): `VerifierCore+SelfDriven.swift`.
    let selfDriven = SelfDrivenSessions()

    // Compute-thread state.
    private var sessions: [SessionID: VerifierSession] = [:]
    private var useClock: UInt64 = 0
    private(set) var timeModel = LinearBatchTimeModel()
    /// Measured batch time over positions (VerifierCore+CostCurve.swift), and the copy results carry.
    var costCurve = BatchCostCurve()
    var publishedCostCurve: VerifierCostCurve?
    /// Requests of the batch being run that the scheduler predicted late (served best effort).
    private var batchLate = 0
    /// Moving average of the measured time of batches that verified or decoded without prefill (seconds): the
    /// floor of what prompt lookup prices a decode batch at when the linear model's fit is poor.
    private(set) var recentDecodeBatchSeconds = 0.0

    // Shared with bus handlers.
    private let pending = Mutex<PendingState>(PendingState())
    /// Newest placement epoch per session: messages of an abandoned placement are refused.
    let fence = EpochFence()
    private let countersState = Mutex<Counters>(Counters())
    var counters: Counters { countersState.withLock { $0 } }

    struct PendingState {
        var jobs: [VerifyJob] = []
        /// Sessions whose prompt is still being prefilled, first come first served; each stays until its
        /// cache holds the whole prompt (the `session_opened` answer goes out then).
        var prefills: [PrefillJob] = []
        var batchScheduled = false
        var nextID: UInt64 = 0
        /// Answers (given or coming) by request id, kept `replyRetentionMs` for retries; `replyOrder` is
        /// their arrival order, oldest first.
        var replies: [ReplyKey: VerifyReply] = [:]
        var replyOrder = Deque<(key: ReplyKey, at: Double)>()

        mutating func pruneReplies(olderThan limit: Double) {
            while let oldest = replyOrder.first, oldest.at < limit {
                replies[oldest.key] = nil
                replyOrder.removeFirst()
            }
        }
    }

    struct ReplyKey: Hashable {
        let session: SessionID
        let id: UInt64
    }

    struct PrefillJob {
        let id: UInt64
        let session: SessionID
        let started: ContinuousClock.Instant
        let continuation: CheckedContinuation<WireMessage, Never>
    }

    struct VerifyJob {
        let id: UInt64
        /// Advanced step by step for a multi-step decode (position, last token, steps left).
        var request: VerifyRequest
        let arrived: ContinuousClock.Instant
        let arrivedMillis: Double
        /// The answer, shared with retries of the same request id.
        let continuation: VerifyReply
        /// Tokens decoded by earlier steps of a multi-step decode, answered together at the end.
        var collected: [Int32] = []
        /// Prompt-lookup tokens proposed for (and accepted in) this request's steps so far.
        var lookupProposed = 0
        var lookupAccepted = 0
        /// When the current step's deadline was set (arrival, then the end of the previous step): each step
        /// of a multi-step decode gets the same allowance `deadline - stepStartedMillis` as the first.
        var stepStartedMillis: Double
    }

    init(engine: ForwardEngine, modelName: String, replicaID: ReplicaID, configuration: Configuration,
         events: EventPublisher?, logger: Logger) {
        self.engine = engine
        self.modelName = modelName
        self.replicaID = replicaID
        self.configuration = configuration
        self.events = events
        self.logger = logger
        self.compute = ComputeThread(name: "verifier-compute")
        self.verifier = SpeculativeVerifier(vocabSize: engine.model.config.vocabularySize)
        var schedulerConfig = SLOBatchScheduler.Configuration()
        schedulerConfig.policy = configuration.policy
        schedulerConfig.maxBatchSize = configuration.maxBatchSequences
        self.scheduler = SLOBatchScheduler(configuration: schedulerConfig)
    }

    func shutdown() { compute.stop() }

    // MARK: Load (heartbeats)

    private let loadSnapshot = Mutex<ReplicaLoad>(ReplicaLoad())
    var load: ReplicaLoad {
        var l = loadSnapshot.withLock { $0 }
        l.queuedRequests = pending.withLock { $0.jobs.count + $0.prefills.count }
        return l
    }

    private func refreshLoad() {
        let kv = sessions.values.reduce(0) { $0 + ($1.cache?.byteCount ?? 0) }
        let count = sessions.count
        loadSnapshot.withLock { $0.activeSessions = count; $0.kvBytes = kv }
    }

    // MARK: Messages

    func handle(_ message: WireMessage) async -> WireMessage? {
        switch message {
        case .sessionOpen(let open):
            guard fence.admit(open.session, epoch: open.epoch) else { return stale(open.session, open.epoch) }
            // The session is created at once; its prompt is prefilled in chunks inside the coming batches
            // (docs/fleet.md, "Chunked prefill"), and the answer waits for the last chunk.
            let refused = await run { self.open(open) ?? .ack(Ack()) }
            guard case .ack = refused else { return refused }
            if open.selfDrive == nil { selfDriven.stop(open.session) }  // a drafter drives it from now on
            if open.selfDrive != nil && !selfDriven.canReport {
                return .error(ErrorReply(code: .internal, message: "this verifier cannot report tokens to a gateway"))
            }
            let opened = await enqueuePrefill(open.session)
            if let plan = open.selfDrive, case .sessionOpened = opened { drive(open, plan) }
            if open.selfDrive == nil, let n = open.firstTokens, n > 0, case .sessionOpened(var answer) = opened {
                answer.tokens = await firstTokens(of: open, count: n)
                return .sessionOpened(answer)
            }
            return opened
        case .sessionClose(let close):
            // A close from an abandoned placement must not end the session its new placement runs.
            guard fence.admit(close.session, epoch: close.epoch) else { return .ack(Ack()) }
            selfDriven.stop(close.session)
            return await run {
                self.sessions[close.session] = nil
                self.refreshLoad()
                return .ack(Ack())
            }
        case .verify(let request):
            if let refusal = refuse(request.problem(limits)) { return refusal }
            guard fence.admit(request.session, epoch: request.epoch) else { return stale(request.session, request.epoch) }
            return await enqueue(request)
        case .health:
            return .healthReply(HealthReply(role: .verifier, replicaID: replicaID, uptimeSeconds: 0,
                                            details: healthDetails))
        default:
            return nil
        }
    }

    /// What a message is checked against before use (``VerifyRequest/problem(_:)``).
    private var limits: WireLimits {
        WireLimits(vocabularySize: engine.model.config.vocabularySize, contextLength: engine.model.config.contextLength,
                   maxDecodeSteps: Self.maxDecodeSteps)
    }

    /// The refusal of a message from an abandoned placement.
    private func stale(_ session: SessionID, _ epoch: UInt64?) -> WireMessage {
        logger.info("refused a message of an older placement", metadata: ["session": "\(session)", "epoch": "\(epoch ?? 0)"])
        return .error(.staleEpoch(session, epoch: epoch, newest: fence.newest(session)))
    }

    /// The error reply for an invalid message (counted), or nil when `problem` is nil.
    private func refuse(_ problem: String?) -> WireMessage? {
        guard let problem else { return nil }
        countersState.withLock { $0.invalid += 1 }
        logger.debug("refused an invalid message", metadata: ["problem": "\(problem)"])
        return .error(ErrorReply(code: .invalidArgument, message: problem))
    }

    private var healthDetails: [String: String] {
        let c = counters
        return ["model": modelName, "sessions": "\(load.activeSessions)", "verified_requests": "\(c.verified)",
                "duplicate_requests": "\(c.duplicates)", "expired_requests": "\(c.expired)",
                "invalid_requests": "\(c.invalid)", "refused_sessions": "\(c.refusedSessions)",
                "evicted_for_admission": "\(c.evictedForAdmission)", "kv_budget_bytes": "\(configuration.kvBudgetBytes)"]
    }

    private func run(_ body: @escaping @Sendable () -> WireMessage) async -> WireMessage {
        do {
            return try await compute.run(body)
        } catch {
            return .error(ErrorReply(code: .internal, message: "\(error)"))
        }
    }

    // MARK: Sessions (compute thread)

    private func touch(_ session: VerifierSession) {
        useClock += 1
        session.lastUsed = useClock
        session.lastActive = ServiceClock.nowMillis()
    }

    /// Validates, admits and creates the session and its cache (compute thread); returns the refusal, or nil
    /// when the session now waits for its prefill.
    private func open(_ open: SessionOpen) -> WireMessage? {
        if let refusal = refuse(open.problem(limits)) { return refusal }
        let capacity = min(engine.model.config.contextLength, max(open.capacity, open.tokens.count + 16))
        if let refusal = admit(open, capacity: capacity) { return refusal }
        let session = VerifierSession(open: open, capacity: capacity)
        // Opened again (a drafter's reopen, a placement that now self-drives): the old cache keeps what the
        // new committed sequence still shares, so only the rest is prefilled.
        if let previous = sessions[open.session], let cache = previous.cache, cache.capacity >= capacity {
            let limit = min(cache.count, previous.committed.count, open.tokens.count)
            var common = 0
            while common < limit && previous.committed[common] == open.tokens[common] { common += 1 }
            cache.truncate(to: common)
            session.cache = cache
        }
        sessions[open.session] = session
        touch(session)
        allocateCache(session)
        refreshLoad()
        return nil
    }

    /// Bytes a session is charged against the budget: what its cache holds, and at least its committed
    /// tokens plus one block (what a cache being prefilled will soon hold; caches commit memory in blocks).
    private func charge(_ session: VerifierSession) -> Int {
        max(session.cache?.residentBytes ?? 0, charge(tokens: session.committed.count, capacity: session.capacity))
    }

    private func charge(tokens: Int, capacity: Int) -> Int {
        engine.kvBytesPerPosition * min(capacity, tokens + KVCache.blockPositions)
    }

    /// Admission by memory (docs/design.md, "Admission by memory"): nil when the new session fits in the KV
    /// budget, after evicting idle sessions' caches (least recently used first) if it must; the
    /// `resource_exhausted` refusal (counted) when it would need the memory of active sessions. A session
    /// larger than the whole budget is admitted when no active session holds memory (nothing to protect).
    private func admit(_ open: SessionOpen, capacity: Int) -> WireMessage? {
        let budget = configuration.kvBudgetBytes, window = configuration.activeWindowMs
        let needed = charge(tokens: open.tokens.count, capacity: capacity)
        let now = ServiceClock.nowMillis()
        let queued = pending.withLock { state in
            Set(state.jobs.map(\.request.session)).union(state.prefills.map(\.session))
        }
        var activeBytes = 0, idleBytes = 0
        var idle: [VerifierSession] = []
        var soonestIdleMs = window
        for session in sessions.values where session.id != open.session && session.cache != nil {
            let bytes = charge(session)
            if !queued.contains(session.id) && now - session.lastActive > window {
                idleBytes += bytes
                idle.append(session)
            } else {
                activeBytes += bytes
                soonestIdleMs = min(soonestIdleMs, session.lastActive + window - now)
            }
        }
        guard activeBytes + idleBytes + needed > budget else { return nil }
        if activeBytes + needed > budget && activeBytes > 0 {
            let retryMs = Int(min(window, max(500, soonestIdleMs)).rounded(.up))
            countersState.withLock { $0.refusedSessions += 1 }
            logger.notice("refused a session: KV cache budget held by active sessions", metadata: [
                "session": "\(open.session)", "needed_bytes": "\(needed)", "active_bytes": "\(activeBytes)",
                "budget_bytes": "\(budget)", "retry_after_ms": "\(retryMs)"])
            return .error(.kvCacheFull(
                "verifier \(replicaID) has no KV cache memory for session \(open.session): it needs "
                    + "\(needed >> 20) MiB and active sessions hold \(activeBytes >> 20) of \(budget >> 20) MiB",
                retryAfterMs: retryMs))
        }
        var used = activeBytes + idleBytes
        for victim in idle.sorted(by: { $0.lastUsed < $1.lastUsed }) where used + needed > budget {
            used -= charge(victim)
            victim.cache = nil
            countersState.withLock { $0.evictedForAdmission += 1 }
            logger.info("evicted an idle session's KV cache to admit a new one",
                        metadata: ["session": "\(victim.id)", "admitted": "\(open.session)"])
        }
        if used + needed > budget {
            logger.warning("admitted a session larger than the KV cache budget",
                           metadata: ["session": "\(open.session)", "needed_bytes": "\(needed)", "budget_bytes": "\(budget)"])
        }
        return nil
    }

    /// Gives the session a cache if it has none, evicting least recently used sessions' caches to stay
    /// within the budget (a session coming back after its cache was evicted).
    /// Sessions in `busy` (the batch being built) are never evicted.
    private func allocateCache(_ session: VerifierSession, busy: Set<SessionID> = []) {
        if session.cache == nil {
            let needed = charge(tokens: session.committed.count, capacity: session.capacity)
            var used = sessions.values.reduce(0) { $0 + ($1.cache == nil || $1 === session ? 0 : charge($1)) }
            while used + needed > configuration.kvBudgetBytes,
                  let victim = sessions.values.filter({ $0.cache != nil && $0 !== session && !busy.contains($0.id) }).min(by: { $0.lastUsed < $1.lastUsed }) {
                used -= charge(victim)
                victim.cache = nil
                logger.info("evicted KV cache (LRU)", metadata: ["session": "\(victim.id)"])
            }
            session.cache = engine.makeCache(capacity: session.capacity)
        }
    }

    /// Makes sure the session has a cache holding exactly `committed[0..<count]`.
    private func ensureCache(_ session: VerifierSession, upTo count: Int, busy: Set<SessionID> = []) throws {
        allocateCache(session, busy: busy)
        guard let cache = session.cache else { return }
        if cache.count > count { cache.truncate(to: count) }
        if cache.count < count {
            let missing = Array(session.committed[cache.count..<count])
            _ = try engine.forward([ForwardRequest(cache: cache, tokens: missing, logits: .none)])
        }
    }

    // MARK: Verification

    func enqueue(_ request: VerifyRequest) async -> WireMessage {
        await withCheckedContinuation { continuation in
            let (schedule, superseded, answer) = pending.withLock { state -> (Bool, [VerifyJob], WireMessage?) in
                let now = ServiceClock.nowMillis()
                state.pruneReplies(olderThan: now - configuration.replyRetentionMs)
                let key = request.requestID.map { ReplyKey(session: request.session, id: $0) }
                if let key, let first = state.replies[key] {
                    // A retry of a request already received (queued, in a batch or answered): it gets the
                    // first request's answer; the request is verified once.
                    countersState.withLock { $0.duplicates += 1 }
                    return (false, [], first.join(continuation))
                }
                // A new request of a session supersedes the older one still queued: the drafter stopped
                // waiting for it, and two requests of one session must never meet in a batch (they share
                // its KV cache).
                let superseded = state.jobs.filter { $0.request.session == request.session }
                if !superseded.isEmpty { state.jobs.removeAll { $0.request.session == request.session } }
                state.nextID += 1
                let reply = VerifyReply(continuation)
                if let key {
                    state.replies[key] = reply
                    state.replyOrder.append((key, now))
                }
                state.jobs.append(VerifyJob(id: state.nextID, request: request, arrived: .now, arrivedMillis: now,
                                            continuation: reply, stepStartedMillis: now))
                guard !state.batchScheduled else { return (false, superseded, nil) }
                state.batchScheduled = true
                return (true, superseded, nil)
            }
            for job in superseded {
                job.continuation.resume(returning: .error(ErrorReply(
                    code: .invalidArgument, message: "superseded by a newer request of session \(request.session)")))
            }
            if let answer { continuation.resume(returning: answer) }
            if schedule { scheduleBatch() }
        }
    }

    /// Whether a queued request's drafter has certainly given up on it (see ``Configuration/expiryFactor``).
    private func isExpired(_ job: VerifyJob, now: Double) -> Bool {
        let window = max(0, job.request.deadline - job.stepStartedMillis)
        return now - job.request.deadline > max(configuration.expiryFactor * window, configuration.expiryGraceMs)
    }

    /// The session's first `count` generated tokens, decoded here right after its prefill (``SessionOpen/firstTokens``):
    /// the same K = 0 decode request a drafter's plain round sends, so they join the running batches and are the
    /// tokens that round would have produced. nil when the decode fails (the drafter then makes them).
    private func firstTokens(of open: SessionOpen, count: Int) async -> [Int32]? {
        guard let last = open.tokens.last else { return nil }
        let request = ownDecodeRequest(open, position: open.tokens.count, lastToken: last, steps: count > 1 ? count : nil)
        guard case .verified(let result) = await enqueue(request), result.position == open.tokens.count else {
            logger.notice("could not decode a session's first tokens; its drafter will", metadata: ["session": "\(open.session)"])
            return nil
        }
        return result.tokens
    }

    /// A K = 0 decode request this verifier sends itself for a session it opened (its first tokens, or a
    /// self-driven step): the request a drafter's plain round sends, under the open's epoch, due within its TPOT.
    func ownDecodeRequest(_ open: SessionOpen, position: Int, lastToken: Int32, steps: Int?) -> VerifyRequest {
        var request = VerifyRequest(session: open.session, position: position, tokens: [], lastToken: lastToken,
                                    deadline: ServiceClock.nowMillis() + open.slo.tpotMs, draftMs: 0, k: 0,
                                    drafterID: replicaID, decodeSteps: steps)
        request.epoch = open.epoch
        return request
    }

    /// Queues a created session's prompt for chunked prefill; answers `session_opened` when it is cached.
    private func enqueuePrefill(_ session: SessionID) async -> WireMessage {
        await withCheckedContinuation { continuation in
            let schedule = pending.withLock { state -> Bool in
                state.nextID += 1
                state.prefills.append(PrefillJob(id: state.nextID, session: session, started: .now,
                                                 continuation: continuation))
                guard !state.batchScheduled else { return false }
                state.batchScheduled = true
                return true
            }
            if schedule { scheduleBatch() }
        }
    }

    /// Runs a batch after the batch window (the first request of an idle verifier waits for company).
    private func scheduleBatch() {
        let window = configuration.batchWindow
        Task {
            try? await Task.sleep(for: window)
            self.compute.submit { self.runBatch() }
        }
    }

    /// Takes the next batch from the pending requests and verifies it (compute thread).
    private func runBatch() {
        let now = ServiceClock.nowMillis()
        let (jobs, prefills, expired): ([VerifyJob], [PrefillJob], [VerifyJob]) = pending.withLock { state in
            let expired = state.jobs.filter { isExpired($0, now: now) }
            if !expired.isEmpty { state.jobs.removeAll { isExpired($0, now: now) } }
            let candidates = state.jobs.map { job in
                PendingVerify(id: job.id, arrival: job.arrivedMillis / 1000, deadline: job.request.deadline / 1000,
                              newTokens: job.request.tokens.count + 1,
                              contextTokens: job.request.position)
            }
            let selection = scheduler.selectBatch(from: candidates, now: now / 1000, predictor: timeModel)
            batchLate = selection.predictedLate.count
            let chosen = Set(selection.indices)
            let taken = selection.indices.map { state.jobs[$0] }
            state.jobs = state.jobs.enumerated().filter { !chosen.contains($0.offset) }.map(\.element)
            return (taken, state.prefills, expired)
        }
        if !expired.isEmpty {
            countersState.withLock { $0.expired += expired.count }
            logger.info("dropped expired verify requests", metadata: ["count": "\(expired.count)"])
        }
        for job in expired {
            job.continuation.resume(returning: .error(ErrorReply(
                code: .deadlineExceeded,
                message: "verify request of session \(job.request.session) expired in the queue: its deadline passed "
                    + "\(String(format: "%.0f", now - job.request.deadline)) ms ago")))
        }
        defer {
            let again = pending.withLock { state -> Bool in
                if state.jobs.isEmpty && state.prefills.isEmpty {
                    state.batchScheduled = false
                    return false
                }
                return true
            }
            if again { compute.submit { self.runBatch() } }
        }
        guard !jobs.isEmpty || !prefills.isEmpty else { return }
        verify(jobs, prefills: prefills)
    }

    /// What a queued prefill still needs: prompt tokens not yet cached (its own plus those of the prefills
    /// queued before it, which go first) and the milliseconds left until its TTFT deadline.
    struct PrefillNeed {
        var tokensThroughThis: Int
        var msLeft: Double
    }

    /// Prompt tokens this batch may prefill (docs/fleet.md, "Chunked prefill"). With no verification waiting,
    /// the cap. Otherwise the larger of two chunks the time model prices:
    /// - what the running sessions can afford: the batch still ends by the earliest deadline of its
    ///   verifications, or within half the TPOT time every one of them has banked (`bankedMs`, the least
    ///   over the batch), and prefill may at least double the verification-only batch time;
    /// - what the queued prompts need: the smallest chunk with which each queued prompt, at this batch's
    ///   pace, is cached before its TTFT deadline (the cap when a deadline cannot be met any more).
    /// Never below `minPrefillChunk`, so a new session always makes progress.
    private func prefillBudget(verifyShape: BatchShape, earliestDeadline: Double?, bankedMs: Double,
                               needs: [PrefillNeed]) -> Int {
        let cap = configuration.maxPrefillChunk, floor = max(1, min(configuration.minPrefillChunk, cap))
        guard verifyShape.sequences > 0, let deadline = earliestDeadline else { return cap }
        guard timeModel.isFitted else { return min(cap, 4 * floor) }
        func batchMs(_ n: Int) -> Double {
            timeModel.predictSeconds(verifyShape.adding(newTokens: n, contextTokens: 0)) * 1000
        }
        let base = timeModel.predictSeconds(verifyShape) * 1000
        let allowedMs = max(deadline - ServiceClock.nowMillis(), 2 * base, base + bankedMs / 2)
        var affordable = cap
        while affordable > floor, batchMs(affordable) > allowedMs { affordable -= floor }
        var needed = floor
        for need in needs where need.tokensThroughThis > 0 {
            // One more batch after the prompt is cached produces the first token.
            let fits = stride(from: floor, through: cap, by: floor).first { n in
                Double((need.tokensThroughThis + n - 1) / n + 1) * batchMs(n) <= need.msLeft
            }
            needed = max(needed, fits ?? cap)
        }
        return max(affordable, needed)
    }

    /// Verifies `jobs` and advances the queued prefills by this batch's prefill budget, all in one forward.
    private func verify(_ jobs: [VerifyJob], prefills: [PrefillJob]) {
        let batchStart = ContinuousClock.now
        var requests: [ForwardRequest] = []
        var accepted: [(job: VerifyJob, session: VerifierSession, feedCount: Int)] = []
        var contexts: [Int] = []
        var inBatch: Set<SessionID> = []
        for job in jobs {
            let r = job.request
            guard inBatch.insert(r.session).inserted else {
                job.continuation.resume(returning: .error(ErrorReply(
                    code: .invalidArgument, message: "session \(r.session) already has a request in this batch")))
                continue
            }
            // The session was placed again while this request waited.
            guard fence.isCurrent(r.session, epoch: r.epoch) else {
                job.continuation.resume(returning: stale(r.session, r.epoch))
                continue
            }
            guard let session = sessions[r.session] else {
                job.continuation.resume(returning: .error(ErrorReply(code: .unknownSession,
                                                                     message: "no session \(r.session) on \(replicaID)")))
                continue
            }
            let n = r.position
            guard n >= 1, n <= session.committed.count, session.committed[n - 1] == r.lastToken else {
                job.continuation.resume(returning: .error(ErrorReply(
                    code: .contextMismatch,
                    message: "verifier has \(session.committed.count) committed tokens; request continues from \(n)")))
                continue
            }
            guard n + r.tokens.count + 1 <= session.capacity else {
                job.continuation.resume(returning: .error(ErrorReply(
                    code: .invalidArgument, message: "session \(r.session) would exceed its capacity of \(session.capacity) tokens")))
                continue
            }
            // Fields were validated on arrival (``VerifyRequest/problem(_:)``); what depends on the session is
            // checked here.
            if session.mode == .exact && !session.params.isGreedy && r.distributions.count != r.tokens.count {
                job.continuation.resume(returning: .error(ErrorReply(
                    code: .invalidArgument, message: "exact mode needs one draft distribution per draft token")))
                continue
            }
            session.committed.removeLast(session.committed.count - n)
            touch(session)
            do {
                try ensureCache(session, upTo: n - 1, busy: inBatch)
            } catch {
                job.continuation.resume(returning: .error(ErrorReply(code: .internal, message: "\(error)")))
                continue
            }
            let cache = session.cache!
            contexts.append(cache.count)
            let feed = [session.committed[n - 1]] + r.tokens
            requests.append(ForwardRequest(cache: cache, tokens: feed, logits: .all))
            accepted.append((job, session, feed.count))
        }
        // Prompt lookup: n-gram proposals for the decode steps (VerifierCore+PromptLookup.swift).
        let lookups = proposeLookups(&requests, sessions: accepted.map(\.session),
                                     decodeSteps: accepted.map(\.job.request.decodeSteps),
                                     isDecodeStep: accepted.map(\.job.request.tokens.isEmpty), contexts: contexts)
        // Chunked prefill: queued prompts, first come first served, within this batch's budget.
        let verifyShape = BatchShape(sequences: requests.count, newTokens: requests.reduce(0) { $0 + $1.tokens.count },
                                     contextTokens: contexts.reduce(0, +))
        var needs: [PrefillNeed] = []
        var queuedTokens = 0
        for job in prefills {
            guard let session = sessions[job.session] else { continue }
            queuedTokens += max(0, session.committed.count - 1 - (session.cache?.count ?? 0))
            needs.append(PrefillNeed(tokensThroughThis: queuedTokens,
                                     msLeft: session.slo.ttftMs - (ContinuousClock.now - job.started).milliseconds))
        }
        let now = ServiceClock.nowMillis()
        var budget = prefillBudget(verifyShape: verifyShape,
                                   earliestDeadline: accepted.map(\.job.request.deadline).min(),
                                   bankedMs: accepted.map { $0.session.bankedTPOTMs(now: now) }.min() ?? 0, needs: needs)
        var prefilling: [(job: PrefillJob, session: VerifierSession)] = []
        var finishedPrefills: [(PrefillJob, WireMessage)] = []
        for job in prefills where budget > 0 {
            guard let session = sessions[job.session], !inBatch.contains(job.session) else {
                if sessions[job.session] == nil {
                    finishedPrefills.append((job, .error(ErrorReply(code: .unknownSession,
                                                                    message: "session \(job.session) closed during its prefill"))))
                }
                continue
            }
            inBatch.insert(job.session)
            touch(session)
            allocateCache(session, busy: inBatch)
            guard let cache = session.cache else { continue }
            let target = session.committed.count - 1
            if cache.count > target { cache.truncate(to: target) }
            let n = min(budget, target - cache.count)
            if n > 0 {
                contexts.append(cache.count)
                requests.append(ForwardRequest(cache: cache, tokens: Array(session.committed[cache.count..<cache.count + n]),
                                               logits: .none))
                budget -= n
            }
            prefilling.append((job, session))
        }
        let prefillTokens = requests[accepted.count...].reduce(0) { $0 + $1.tokens.count }
        defer {
            if !finishedPrefills.isEmpty {
                let done = Set(finishedPrefills.map(\.0.id))
                pending.withLock { $0.prefills.removeAll { done.contains($0.id) } }
                for (job, answer) in finishedPrefills { job.continuation.resume(returning: answer) }
            }
        }
        guard !requests.isEmpty else {
            for item in prefilling { finishedPrefills.append((item.job, opened(item.session, job: item.job))) }
            return
        }
        let forwardStart = ContinuousClock.now
        let result: ForwardResult
        do {
            result = try engine.forward(requests)
        } catch {
            for item in accepted {
                item.job.continuation.resume(returning: .error(ErrorReply(code: .internal, message: "\(error)")))
            }
            for item in prefilling {
                sessions[item.job.session] = nil
                finishedPrefills.append((item.job, .error(ErrorReply(code: .internal, message: "prefill failed: \(error)"))))
            }
            refreshLoad()
            return
        }
        let forwardMs = ServiceClock.millis(since: forwardStart)
        if !accepted.isEmpty && prefillTokens == 0 {
            let s = forwardMs / 1000
            recentDecodeBatchSeconds = recentDecodeBatchSeconds == 0 ? s : 0.8 * recentDecodeBatchSeconds + 0.2 * s
            observeCost(positions: verifyShape.newTokens, contextTokens: verifyShape.contextTokens, forwardMs: forwardMs)
        }
        var outcome = VerificationResult()
        let at = ServiceClock.nowMillis()
        var again: [VerifyJob] = []
        var lookupProposed = 0, lookupAccepted = 0
        for (index, item) in accepted.enumerated() {
            let r = item.job.request
            let session = item.session
            let lookup = lookups[index]
            // A lookup proposal is verified like a draft; in exact mode as a point mass (accepted with
            // probability p(x), else the residual is sampled), which keeps the rule lossless.
            let draft = lookup == nil ? r.tokens : Array(requests[index].tokens.dropFirst())
            let distributions = lookup == nil
                ? r.distributions.map { SparseDistribution(tokens: $0.tokens, probs: $0.probs) }
                : session.mode == .exact ? Array(repeating: SparseDistribution(tokens: [], probs: []), count: draft.count) : []
            let rows = result.rowCount(request: index)
            let first = rows - (draft.count + 1)
            verifier.verify(mode: session.mode, draftTokens: draft, draftDistributions: distributions,
                            targetRow: { result.logits(request: index, row: first + $0) }, position: r.position,
                            params: session.params, recentTokens: session.committed, into: &outcome)
            session.commit(outcome.tokens, now: at)
            session.cache?.truncate(to: session.committed.count - 1)
            session.rounds += 1
            var job = item.job
            if let lookup {
                session.lookup.record(ngram: lookup.ngram, proposed: lookup.count, accepted: outcome.acceptedCount)
                job.lookupProposed += lookup.count
                job.lookupAccepted += outcome.acceptedCount
                lookupProposed += lookup.count
                lookupAccepted += outcome.acceptedCount
            }
            selfDriven.stepped(r.session, tokens: outcome.tokens, lookupProposed: lookup?.count ?? 0,
                               lookupAccepted: lookup == nil ? 0 : outcome.acceptedCount)
            countersState.withLock { $0.verified += 1 }
            // A multi-step decode goes back to the queue for its next token, in whichever batch runs next.
            // decode_steps counts tokens: a step that accepted lookup tokens advances it by all of them.
            if r.tokens.isEmpty, let steps = r.decodeSteps, steps > outcome.tokens.count, let last = outcome.tokens.last,
               !outcome.tokens.contains(where: { configuration.endOfGeneration.contains($0) }),
               session.committed.count + 1 < session.capacity {
                var next = job
                next.collected += outcome.tokens
                next.request.position = session.committed.count
                next.request.lastToken = last
                next.request.decodeSteps = steps - outcome.tokens.count
                next.request.deadline = at + (r.deadline - item.job.stepStartedMillis)
                next.stepStartedMillis = at
                again.append(next)
                continue
            }
            let timings = VerifyTimings(
                queueMs: (batchStart - item.job.arrived).milliseconds, batchMs: forwardMs,
                batchSequences: requests.count, batchTokens: requests.reduce(0) { $0 + $1.tokens.count },
                batchContextTokens: contexts.reduce(0, +), prefillTokens: prefillTokens > 0 ? prefillTokens : nil,
                costCurve: publishedCostCurve)
            let startPosition = r.position - item.job.collected.count
            item.job.continuation.resume(returning: .verified(VerifyResult(
                session: r.session, position: startPosition, accepted: r.tokens.isEmpty ? 0 : outcome.acceptedCount,
                tokens: item.job.collected + outcome.tokens, timings: timings,
                lookupProposed: job.lookupProposed > 0 ? job.lookupProposed : nil,
                lookupAccepted: job.lookupProposed > 0 ? job.lookupAccepted : nil)))
            if r.k > 0 || !r.tokens.isEmpty {
                events?.publish(.round(RoundEvent(
                    session: r.session, drafterID: r.drafterID, verifierID: replicaID, draftModel: r.draftModel,
                    targetModel: modelName, device: r.device, k: r.k, drafted: r.tokens.count,
                    accepted: outcome.acceptedCount, acceptedPerPosition: outcome.acceptFlags, draftMs: r.draftMs,
                    verifyMs: timings.queueMs + forwardMs, at: at)))
            }
        }
        if !again.isEmpty { pending.withLock { $0.jobs.append(contentsOf: again) } }
        for item in prefilling where (item.session.cache?.count ?? 0) >= item.session.committed.count - 1 {
            finishedPrefills.append((item.job, opened(item.session, job: item.job)))
        }
        let shape = BatchShape(sequences: requests.count, newTokens: requests.reduce(0) { $0 + $1.tokens.count },
                               contextTokens: contexts.reduce(0, +))
        let predicted = timeModel.isFitted ? timeModel.predictSeconds(shape) * 1000 : nil
        timeModel.observe(shape, seconds: forwardMs / 1000)
        events?.publish(.batch(BatchEvent(
            verifierID: replicaID, model: modelName, sequences: requests.count,
            tokensPerSequence: requests.map(\.tokens.count), contextLengths: contexts, wallMs: forwardMs,
            predictedMs: predicted, at: at, prefill: accepted.isEmpty ? true : nil,
            prefillTokens: prefillTokens > 0 ? prefillTokens : nil,
            lookupProposed: lookupProposed > 0 ? lookupProposed : nil,
            lookupAccepted: lookupProposed > 0 ? lookupAccepted : nil, late: batchLate > 0 ? batchLate : nil)))
        refreshLoad()
    }

    /// The answer to a session's `session_open` once its prompt is cached.
    private func opened(_ session: VerifierSession, job: PrefillJob) -> WireMessage {
        .sessionOpened(SessionOpened(session: session.id, cachedTokens: session.cache?.count ?? 0,
                                     prefillMs: (ContinuousClock.now - job.started).milliseconds))
    }
}
