import Synchronization
import Foundation
import Logging
import Metrics
import TandemBus
import TandemEngine
import TandemService
import TandemTelemetry
import TandemWire

/// Places sessions on a drafter and a verifier, keeps each session's authoritative history,
/// turns token reports into client updates, and re-places sessions whose replicas die
/// (docs/protocol.md).
actor SessionManager {
    private let registry: Registry
    private let control: ControlServer
    private let events: EventPublisher?
    private let logger: Logger
    private let modelName: String
    private let tokenizer: Tokenizer
    let maxSessions: Int
    /// A placed session with no accepted token report for this long is ended with a 504 (streaming: an
    /// SSE error event): without it, a lost report or a stuck replica would hold the client forever.
    let inactivityTimeout: Duration
    private var sessions: [SessionID: GatewaySession] = [:]

    private let requests = Counter(label: "tandem_requests_total")
    private let draftsCounter = Counter(label: "tandem_spec_decode_num_drafts")
    private let draftTokens = Counter(label: "tandem_spec_decode_num_draft_tokens")
    private let acceptedTokens = Counter(label: "tandem_spec_decode_num_accepted_tokens")
    private let generationTokens = Counter(label: "tandem_generation_tokens_total")
    private let ttft = Timer(label: "tandem_time_to_first_token_seconds")
    private let tpot = Timer(label: "tandem_time_per_output_token_seconds")
    private let failovers = Counter(label: "tandem_session_failovers_total")
    /// Sessions placed on a verifier alone because no drafter was alive (docs/design.md, "Serving without a drafter").
    private let verifierOnly = Counter(label: "tandem_verifier_only_sessions_total")
    /// Prompt-lookup (n-gram) tokens the verifiers proposed in K = 0 steps, and accepted.
    private let lookupProposed = Counter(label: "tandem_ngram_num_draft_tokens")
    private let lookupAccepted = Counter(label: "tandem_ngram_num_accepted_tokens")
    /// Finished sessions that missed their TTFT or TPOT SLO (served best effort).
    private let sloMissed = Counter(label: "tandem_slo_missed_sessions_total")
    /// Session opens and starts a replica refused for lack of KV cache memory (`resource_exhausted`), by role.
    private let verifierKVRefusals = Counter(label: "tandem_kv_admission_refusals_total", dimensions: [("role", "verifier")])
    private let drafterKVRefusals = Counter(label: "tandem_kv_admission_refusals_total", dimensions: [("role", "drafter")])
    /// Requests answered 429 because no verifier had KV cache memory for them.
    private let rejectedForMemory = Counter(label: "tandem_requests_rejected_total", dimensions: [("code", GatewayError.kvCacheFullCode)])

    init(registry: Registry, control: ControlServer, events: EventPublisher?, tokenizer: Tokenizer,
         modelName: String, maxSessions: Int, inactivityTimeout: Duration = .seconds(120), logger: Logger) {
        self.registry = registry
        self.control = control
        self.events = events
        self.tokenizer = tokenizer
        self.modelName = modelName
        self.maxSessions = maxSessions
        self.inactivityTimeout = inactivityTimeout
        self.logger = logger
    }

    var activeCount: Int { sessions.count }

    private func kvRefusals(_ role: Role) -> Counter { role == .verifier ? verifierKVRefusals : drafterKVRefusals }

    // MARK: Start

    /// Places and starts a session; updates arrive on the returned stream until `.finished`/`.failed`.
    func start(_ request: GenerationRequest) async throws(GatewayError) -> (SessionID, AsyncStream<SessionUpdate>) {
        guard sessions.count < maxSessions else { throw .overloaded(retryAfter: 1) }
        let id = "cmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        let (stream, continuation) = AsyncStream<SessionUpdate>.makeStream()
        guard let verifier = await leastLoaded(.verifier) else {
            throw .unavailable("no live verifier; try again later")
        }
        // No drafter alive: the verifier serves the session alone (an empty drafter id).
        let drafter = try await placeDrafter(for: request.device)
        let session = GatewaySession(id: String(id), request: request, drafter: drafter?.registration.replicaID ?? "",
                                     verifier: verifier.registration.replicaID,
                                     verifierEndpoint: verifier.registration.endpoint ?? "",
                                     decoder: tokenizer.streamingDecoder(), continuation: continuation)
        sessions[session.id] = session
        requests.increment()
        events?.publish(.session(SessionEvent(session: session.id, phase: .started, model: modelName,
                                              promptTokens: request.promptTokens.count, outputTokens: 0,
                                              at: session.arrivedMillis)))
        // A replica may die between its last heartbeat and our request: try others before giving up (three
        // faults at most). A verifier without KV cache memory for the session (`resource_exhausted`) is
        // passed over for another; when none has room the client gets a 429 with the soonest Retry-After.
        var failedVerifiers: Set<ReplicaID> = [], failedDrafters: Set<ReplicaID> = []
        var lastError = GatewayError.unavailable("no replica could take the session")
        var full: GatewayError?
        var faults = 0
        var opened = false
        while faults < 3 {
            if !opened {
                session.epoch += 1
                do {
                    try await openOnVerifier(session)
                    opened = true
                    // The verifier's first token ended the generation (end of generation, max_tokens 1).
                    if session.finished { return (session.id, stream) }
                } catch {
                    failedVerifiers.insert(session.verifier)
                    if error.isKVCacheFull {
                        if full.map({ ($0.retryAfter ?? 1) > (error.retryAfter ?? 1) }) ?? true { full = error }
                    } else {
                        faults += 1
                        lastError = error
                    }
                    guard let v = await leastLoaded(.verifier, excluding: failedVerifiers) else { break }
                    session.verifier = v.registration.replicaID
                    session.verifierEndpoint = v.registration.endpoint ?? ""
                    continue
                }
            }
            do {
                try await startOnDrafterOrAlone(session, failover: false, refused: &failedDrafters)
                session.placing = false
                session.lastActivity = .now
                session.reportedSincePlacement = false
                if session.drafter.isEmpty { verifierOnly.increment() }
                return (session.id, stream)
            } catch {
                faults += 1
                failedDrafters.insert(session.drafter)
                lastError = error
                try? await control.post(session.closeMessage("placement retry"), replica: session.verifier)
                opened = false
            }
            guard let v = await leastLoaded(.verifier, excluding: failedVerifiers) else { break }
            // A device whose drafter just failed has no other: end here, through the cleanup below
            // (a throw from inside the loop would leave the session registered).
            let next: ReplicaInfo?
            do {
                next = try await placeDrafter(for: request.device, excluding: failedDrafters)
            } catch {
                lastError = error
                break
            }
            session.verifier = v.registration.replicaID
            session.verifierEndpoint = v.registration.endpoint ?? ""
            session.drafter = next?.registration.replicaID ?? ""
        }
        sessions[session.id] = nil
        await closeEverywhere(session)
        if let full {
            rejectedForMemory.increment()
            throw full
        }
        throw lastError
    }

    private func leastLoaded(_ role: Role, excluding: Set<ReplicaID> = []) async -> ReplicaInfo? {
        let alive = await registry.alive(role: role).filter { !excluding.contains($0.registration.replicaID) }
        let placed = Dictionary(grouping: sessions.values, by: { role == .verifier ? $0.verifier : $0.drafter })
            .mapValues(\.count)
        return alive.min {
            (placed[$0.registration.replicaID] ?? 0, $0.registration.replicaID)
                < (placed[$1.registration.replicaID] ?? 0, $1.registration.replicaID)
        }
    }

    /// The drafter for a request: the one hosting the named device (SLED: the device that asks drafts),
    /// else the least loaded one; nil when none is alive (the verifier then serves the session alone). An
    /// unknown device is a 404; a known device whose drafter is dead while other drafters live, a 503.
    private func placeDrafter(for device: String?, excluding: Set<ReplicaID> = []) async throws(GatewayError) -> ReplicaInfo? {
        guard let device else { return await leastLoaded(.drafter, excluding: excluding) }
        func hosts(_ info: ReplicaInfo) -> Bool {
            info.registration.devices?.contains(device) ?? (info.registration.replicaID == device)
        }
        if let live = await registry.alive(role: .drafter).first(where: { hosts($0) && !excluding.contains($0.registration.replicaID) }) {
            return live
        }
        if await registry.status().replicas.contains(where: { $0.registration.role == .drafter && hosts($0) }) {
            if await registry.alive(role: .drafter).allSatisfy({ excluding.contains($0.registration.replicaID) }) {
                return nil
            }
            throw .unavailable("the drafter of device '\(device)' is not alive; try again later")
        }
        throw .deviceNotFound(device)
    }

    /// Opens the session on its verifier. A new session with a drafter gets its first token from the
    /// verifier with the answer (``SessionOpen/firstTokens``, docs/design.md §3): it is streamed at once, and
    /// the drafter starts after it, so the drafter's own prefill of the prompt is not part of the TTFT.
    private func openOnVerifier(_ session: GatewaySession) async throws(GatewayError) {
        let r = session.request
        var open = SessionOpen(session: session.id, tokens: r.promptTokens + session.generated,
                               promptLength: r.promptTokens.count, sampling: r.sampling, mode: r.mode.verification, slo: r.slo,
                               capacity: r.promptTokens.count + r.maxTokens + 16,
                               selfDrive: session.drafter.isEmpty ? SelfDrive(maxTokens: r.maxTokens) : nil)
        let firstFromVerifier = session.generated.isEmpty && !session.drafter.isEmpty
        if firstFromVerifier { open.firstTokens = 1 }
        open.epoch = session.epoch
        let answer: SessionOpened
        do {
            let reply = try await callWhileAlive(.sessionOpen(open), replica: session.verifier, role: .verifier,
                                                 timeout: open.replyTimeout)
            guard case .sessionOpened(let opened) = reply else {
                throw GatewayError.internalError("verifier answered \(reply.kind)")
            }
            answer = opened
        } catch let error as GatewayError {
            throw error
        } catch RPCError.remote(let refusal) where refusal.code == .resourceExhausted {
            kvRefusals(.verifier).increment()
            logger.info("verifier has no KV cache memory for the session", metadata: [
                "session": "\(session.id)", "verifier": "\(session.verifier)", "why": "\(refusal.message)"])
            throw .kvCacheFull(retryAfterMs: refusal.retryAfterMs)
        } catch {
            throw .unavailable("verifier \(session.verifier) could not open the session: \(error)")
        }
        if firstFromVerifier, let first = answer.tokens, !first.isEmpty, session.generated.isEmpty {
            await append(first, to: session)
        }
    }

    /// A call that gives up as soon as the registry declares `replica` dead, instead of waiting out its
    /// timeout: a session open can take long (the verifier prefills the prompt before it answers), and a
    /// replica killed meanwhile never answers, so placement would stall for the whole timeout.
    private func callWhileAlive(_ message: WireMessage, replica: ReplicaID, role: Role,
                                timeout: Duration) async throws -> WireMessage {
        let control = self.control, registry = self.registry
        let outcome = OnceOutcome()
        return try await withCheckedThrowingContinuation { continuation in
            outcome.install(continuation)
            let call = Task {
                do { outcome.resume(.success(try await control.call(message, replica: replica, timeout: timeout))) }
                catch { outcome.resume(.failure(error)) }
            }
            Task {
                while !outcome.isResolved {
                    try? await Task.sleep(for: .milliseconds(200))
                    let alive = await registry.alive(role: role).contains { $0.registration.replicaID == replica }
                    if !alive {
                        outcome.resume(.failure(GatewayError.unavailable("\(replica) died before it answered")))
                        call.cancel()
                        return
                    }
                }
            }
        }
    }

    /// Starts (or resumes) the session on its drafter; nothing to do for a session its verifier drives alone.
    private func startOnDrafter(_ session: GatewaySession) async throws(GatewayError) {
        guard !session.drafter.isEmpty else { return }
        let r = session.request
        var start = SessionStart(session: session.id, promptTokens: r.promptTokens, generated: session.generated,
                                 sampling: r.sampling, maxTokens: r.maxTokens, stop: r.stop, slo: r.slo, mode: r.mode.verification,
                                 verifierID: session.verifier, verifierEndpoint: session.verifierEndpoint, k: r.k,
                                 arrivedAt: session.arrivedMillis, device: session.device)
        start.epoch = session.epoch
        start.targetModel = await registry.info(session.verifier)?.registration.model
        do {
            let reply = try await control.call(.sessionStart(start), replica: session.drafter, timeout: .seconds(3))
            guard case .ack = reply else { throw GatewayError.internalError("drafter answered \(reply.kind)") }
        } catch let error as GatewayError {
            throw error
        } catch RPCError.remote(let refusal) where refusal.code == .resourceExhausted {
            kvRefusals(.drafter).increment()
            logger.info("drafter has no KV cache memory for the session", metadata: [
                "session": "\(session.id)", "drafter": "\(session.drafter)", "why": "\(refusal.message)"])
            throw .kvCacheFull(retryAfterMs: refusal.retryAfterMs)
        } catch {
            throw .unavailable("drafter \(session.drafter) could not start the session: \(error)")
        }
    }

    /// Opens the session on the live verifiers in turn (least loaded first, none in `excluding`) until one
    /// has KV cache memory for it; throws the last refusal (a 429) when none has, `unavailable` when none lives.
    private func openOnSomeVerifier(_ session: GatewaySession, excluding: Set<ReplicaID>) async throws(GatewayError) {
        var refused = excluding
        var full: GatewayError?
        while let v = await leastLoaded(.verifier, excluding: refused) {
            session.verifier = v.registration.replicaID
            session.verifierEndpoint = v.registration.endpoint ?? ""
            do {
                try await openOnVerifier(session)
                return
            } catch {
                guard error.isKVCacheFull else { throw error }
                refused.insert(v.registration.replicaID)
                full = error
            }
        }
        throw full ?? GatewayError.unavailable("no live verifier left")
    }

    /// Starts the session on its drafter; a drafter without KV cache memory for it (`resource_exhausted`) is
    /// replaced by another live drafter that has room (any drafter on failover; none for a request naming
    /// its device), and when none has, the verifier serves the session alone: it is opened again there to
    /// drive it (its cache is kept, so nothing is prefilled twice). `refused` collects the drafters tried.
    private func startOnDrafterOrAlone(_ session: GatewaySession, failover: Bool,
                                       refused: inout Set<ReplicaID>) async throws(GatewayError) {
        while true {
            do {
                try await startOnDrafter(session)
                return
            } catch {
                guard error.isKVCacheFull else { throw error }
                refused.insert(session.drafter)
            }
            if failover || session.request.device == nil,
               let next = await leastLoaded(.drafter, excluding: refused) {
                session.drafter = next.registration.replicaID
                session.device = failover ? next.registration.devices?.first : nil
                continue
            }
            logger.info("no drafter has KV cache memory for the session; the verifier serves it alone",
                        metadata: ["session": "\(session.id)", "verifier": "\(session.verifier)"])
            session.drafter = ""
            session.device = nil
            try await openOnVerifier(session)
            return
        }
    }

    // MARK: Reports

    func receive(_ report: TokenReport) async {
        guard let session = sessions[report.session], !session.finished else { return }
        // The control socket refuses invalid reports; this guards any other path into the history.
        if let problem = report.problem(vocabularySize: nil) {
            logger.warning("invalid token report; ignoring", metadata: ["session": "\(session.id)", "problem": "\(problem)"])
            return
        }
        // A report of an abandoned placement (a drafter declared dead that still runs) is not history.
        if let epoch = report.epoch, epoch < session.epoch {
            logger.debug("token report of an older placement; ignoring",
                         metadata: ["session": "\(session.id)", "epoch": "\(epoch)", "current": "\(session.epoch)"])
            return
        }
        // Drop what the history already has (retries, a replaced drafter's late reports).
        let skip = session.generated.count - report.offset
        guard skip >= 0, skip <= report.tokens.count else {
            logger.warning("token report leaves a gap; ignoring",
                           metadata: ["session": "\(session.id)", "offset": "\(report.offset)", "have": "\(session.generated.count)"])
            return
        }
        let fresh = Array(report.tokens.dropFirst(skip))
        session.lastActivity = .now
        session.reportedSincePlacement = true
        session.stats = report.stats
        if !fresh.isEmpty, await append(fresh, to: session) { return }
        if let finish = report.finish {
            if finish == .error {
                await fail(session, GatewayError.internalError(report.error ?? "generation failed"))
            } else {
                await self.finish(session, reason: finish)
            }
        }
    }

    /// Adds tokens that continue the history and streams their text; true when they ended the session.
    @discardableResult
    private func append(_ fresh: [Int32], to session: GatewaySession) async -> Bool {
        let now = ContinuousClock.now
        if session.firstTokenAt == nil { session.firstTokenAt = now }
        session.lastTokenAt = now
        // The gateway decides where generation ends (end of generation, stop string, max_tokens),
        // whatever the drafter reports after that point.
        let tokenizer = self.tokenizer
        let (text, ended) = session.absorb(fresh) { tokenizer.isEndOfGeneration($0) }
        if !text.isEmpty { session.continuation.yield(.text(text)) }
        guard let ended else { return false }
        await finish(session, reason: ended)
        return true
    }

    private func finish(_ session: GatewaySession, reason: FinishReason) async {
        guard !session.finished else { return }
        session.finished = true
        let (tail, stopped) = session.releaseRemaining()
        if !tail.isEmpty { session.continuation.yield(.text(tail)) }
        let finalReason: FinishReason = stopped ? .stop : reason
        let summary = SessionSummary(
            finishReason: finalReason, promptTokens: session.request.promptTokens.count,
            completionTokens: session.generated.count, stats: session.stats, verifier: session.verifier,
            drafter: session.drafter, mode: session.request.mode, ttftMs: session.ttftMs, tpotMs: session.tpotMs,
            device: session.device)
        session.continuation.yield(.finished(summary))
        session.continuation.finish()
        sessions[session.id] = nil
        record(session, summary: summary)
        await closeEverywhere(session)
    }

    private func fail(_ session: GatewaySession, _ error: GatewayError) async {
        guard !session.finished else { return }
        session.finished = true
        session.continuation.yield(.failed(error))
        session.continuation.finish()
        sessions[session.id] = nil
        await closeEverywhere(session)
    }

    /// Ends every placed session that has had no accepted token report for ``inactivityTimeout`` (longer
    /// before a placement's first report, ``GatewaySession/inactivityAllowance(_:)``)
    /// (called periodically by the gateway's sweep loop). The client gets a 504 in OpenAI's error shape
    /// (streaming: an error event, then `[DONE]`) and the replicas are told to close the session.
    func expireInactive(now: ContinuousClock.Instant = .now) async {
        let stale = sessions.values.filter {
            !$0.placing && !$0.finished && now - $0.lastActivity > $0.inactivityAllowance(inactivityTimeout)
        }
        let seconds = Double(inactivityTimeout.components.seconds)
            + Double(inactivityTimeout.components.attoseconds) / 1e18
        for session in stale {
            logger.warning("session inactive; ending it",
                           metadata: ["session": "\(session.id)", "verifier": "\(session.verifier)",
                                      "drafter": "\(session.drafter)", "generated": "\(session.generated.count)"])
            await fail(session, .inactive(seconds: seconds))
        }
    }

    /// The client went away: stop generating.
    func cancel(_ id: SessionID) async {
        guard let session = sessions[id] else { return }
        session.finished = true
        session.continuation.finish()
        sessions[id] = nil
        await closeEverywhere(session)
    }

    private func closeEverywhere(_ session: GatewaySession) async {
        let close = session.closeMessage("finished")
        if !session.drafter.isEmpty { try? await control.post(close, replica: session.drafter) }
        try? await control.post(close, replica: session.verifier)
    }

    private func record(_ session: GatewaySession, summary: SessionSummary) {
        draftsCounter.increment(by: Int64(summary.stats.rounds))
        draftTokens.increment(by: Int64(summary.stats.drafted))
        acceptedTokens.increment(by: Int64(summary.stats.accepted))
        lookupProposed.increment(by: Int64(summary.stats.lookupProposed))
        lookupAccepted.increment(by: Int64(summary.stats.lookupAccepted))
        generationTokens.increment(by: Int64(summary.completionTokens))
        if let t = summary.ttftMs { ttft.recordNanoseconds(Int64(t * 1e6)) }
        if let t = summary.tpotMs { tpot.recordNanoseconds(Int64(t * 1e6)) }
        let slo = session.request.slo
        let met = (summary.ttftMs ?? .infinity) <= slo.ttftMs && (summary.tpotMs ?? 0) <= slo.tpotMs
        if !met { sloMissed.increment() }
        events?.publish(.session(SessionEvent(
            session: session.id, phase: .finished, model: modelName, promptTokens: summary.promptTokens,
            outputTokens: summary.completionTokens, ttftMs: summary.ttftMs, tpotMs: summary.tpotMs, metSLO: met,
            finishReason: summary.finishReason, at: Date().timeIntervalSince1970 * 1000)))
    }

    // MARK: Failover

    /// A replica died: move its sessions elsewhere, resuming from the gateway's history.
    func replicaDied(_ info: ReplicaInfo) async {
        let id = info.registration.replicaID
        // Sessions still being placed are left to their placement, which retries on other replicas itself.
        let affected = sessions.values.filter { !$0.placing && ($0.verifier == id || $0.drafter == id) }
        for session in affected where !session.finished {
            failovers.increment()
            session.placing = true
            // A new placement: messages of the old one are refused from now on, and the replica declared
            // dead (it may only be slow or paused) is told to close the session.
            session.epoch += 1
            try? await control.post(session.closeMessage("placed elsewhere"), replica: id)
            defer {
                session.placing = false
                session.lastActivity = .now
                session.reportedSincePlacement = false
            }
            do {
                if session.verifier == id {
                    // A session its verifier drove alone goes to a drafter if one has come up since.
                    if session.drafter.isEmpty, let d = await leastLoaded(.drafter) {
                        session.drafter = d.registration.replicaID
                        session.device = d.registration.devices?.first
                    }
                    try await openOnSomeVerifier(session, excluding: [id])
                    // Re-opened before its first token, the verifier's first token may have ended it.
                    if session.finished { continue }
                }
                if session.drafter == id {
                    // The device's drafter is gone: any live drafter continues the session from the history;
                    // with none left, the verifier continues it alone (opened again, now driving it).
                    if let d = await leastLoaded(.drafter) {
                        session.drafter = d.registration.replicaID
                        session.device = d.registration.devices?.first
                    } else {
                        session.drafter = ""
                        session.device = nil
                        try await openOnVerifier(session)
                    }
                }
                // A replacing SessionStart: new verifier and/or drafter, resuming from the history (another
                // drafter, or the verifier alone, when this one has no KV cache memory for it).
                var refusedDrafters: Set<ReplicaID> = [id]
                try await startOnDrafterOrAlone(session, failover: true, refused: &refusedDrafters)
                logger.notice("session re-placed", metadata: ["session": "\(session.id)", "dead": "\(id)",
                                                              "verifier": "\(session.verifier)", "drafter": "\(session.drafter)"])
            } catch let error as GatewayError {
                await fail(session, error)
            } catch {
                await fail(session, .internalError("\(error)"))
            }
        }
    }
}

/// The first of several racing outcomes resumes a continuation; later ones are ignored.
final class OnceOutcome: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<WireMessage, any Error>?, resolved: Bool)>((nil, false))

    func install(_ continuation: CheckedContinuation<WireMessage, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    var isResolved: Bool { state.withLock { $0.resolved } }

    func resume(_ result: Result<WireMessage, any Error>) {
        let continuation = state.withLock { s -> CheckedContinuation<WireMessage, any Error>? in
            guard !s.resolved else { return nil }
            s.resolved = true
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(with: result)
    }
}
