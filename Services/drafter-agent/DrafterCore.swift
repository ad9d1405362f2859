import Foundation
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemServing
import TandemService
import TandemSpeculative
import TandemTelemetry
import TandemWire

/// The drafter's engine room: runs each session's draft/verify loop (docs/protocol.md).
/// Model work runs on one `ComputeThread` (the device); each session is a task awaiting it.
final class DrafterCore: @unchecked Sendable {
    struct Configuration: Sendable {
        /// K when neither the session nor the advisor fixes one; the controller's maximum otherwise.
        var defaultK = 4
        var maxK = 8
        /// Use WISP-style dynamic drafting (stop early when the next token is likely rejected).
        var dynamic = true
        /// Load-aware K (WISP): plan each round from the verifier's observed batch cost and load, with
        /// K = 0 (the verifier decodes this round alone) as a candidate. Needs `dynamic`.
        var loadAware = true
        var verifyTimeout: Duration = .seconds(10)
        /// Largest support of the truncated draft distribution sent in `exact` mode.
        var draftSupport = SpeculativeDrafter.defaultMaxSupport
        /// How long a token report waits for the gateway's acknowledgement.
        var reportTimeout: Duration = .seconds(2)
        /// Attempts to deliver a session's final report (earlier ones are repaired by the next report).
        var finalReportAttempts = 5
        /// Draft the next round while this one is verified (docs/design.md §7.4).
        var draftAhead = DraftAheadMode.auto
        /// With `.auto`: draft ahead when the chance that the verifier confirms it (the whole draft accepted
        /// and the bonus token guessed) is at least this.
        var draftAheadMinHit = 0.25
    }

    /// When a device drafts the next round during this one's verification.
    enum DraftAheadMode: String, Sendable, CaseIterable {
        /// When the device drafts for this session alone (no other session waits for its compute) and the
        /// controller's acceptance makes a hit likely enough (`draftAheadMinHit`).
        case auto
        case on
        /// Never: the device's compute is the verifier's (a drafter beside the verifier on one machine),
        /// where drafting ahead would slow every verification.
        case off
    }

    let source: any DraftSource
    let device: DeviceProfile
    let replicaID: ReplicaID
    private let configuration: Configuration
    private let context: BusContext
    private let logger: Logger
    private let events: EventPublisher?

    private let sessions = Mutex<[SessionID: (session: DrafterSession, task: Task<Void, Never>)]>([:])
    private let verifiers = Mutex<[String: BusEndpoint]>([:])
    private let control = Mutex<ControlAgent?>(nil)
    /// Where token reports go instead of the control agent (an in-process gateway, a lossy path in tests).
    private let reportTransport = Mutex<(@Sendable (TokenReport) async throws -> Void)?>(nil)
    private let advisedK = Atomic<Int>(0)
    private let targetObserver = Mutex<(@Sendable (String) -> Void)?>(nil)
    private let profile = Mutex<(tokens: Int, seconds: Double, rounds: Int)>((0, 0, 0))
    /// The verifiers' batch cost as this drafter observes it (from every verification's timings).
    private let verifierCost = Mutex<VerifierCostModel>(VerifierCostModel())
    private let invalidMessages = Atomic<Int>(0)
    /// What finished sessions taught their controllers, per target, mode and greedy/sampled: new sessions
    /// start from it instead of the priors (``SpeculationController/Knowledge``).
    private let learned = Mutex<[String: SpeculationController.Knowledge]>([:])
    /// Newest placement epoch per session: a start or close of an abandoned placement is refused.
    let fence = EpochFence()

    /// Messages refused because a field failed validation (session starts, and verify results that do not
    /// answer what was asked).
    var invalidMessageCount: Int { invalidMessages.load(ordering: .relaxed) }

    init(source: any DraftSource, device: DeviceProfile, replicaID: ReplicaID, configuration: Configuration,
         context: BusContext, events: EventPublisher?, logger: Logger) {
        self.source = source
        self.device = device
        self.replicaID = replicaID
        self.configuration = configuration
        self.context = context
        self.events = events
        self.logger = logger
    }

    var modelName: String { source.modelName }

    func attach(_ agent: ControlAgent) { control.withLock { $0 = agent } }

    /// The drafter now drafts with `source` (a reload under `--model auto`): registers again under its model
    /// name and attributes, so the gateway's status and placement name the model new sessions get.
    func announce(_ source: any DraftSource) {
        control.withLock { $0 }?.updateRegistration { r in
            r.model = source.modelName
            r.attributes.merge(source.attributes, uniquingKeysWith: { _, new in new })
        }
    }

    /// Sends token reports through `transport` (it throws when a report was not delivered).
    func setReportTransport(_ transport: @escaping @Sendable (TokenReport) async throws -> Void) {
        reportTransport.withLock { $0 = transport }
    }

    /// K recommended by the config-advisor (0 = none yet).
    func setAdvisedK(_ k: Int) { advisedK.store(k, ordering: .relaxed) }

    /// Told the target model of every session that names one (``SessionStart/targetModel``), so the
    /// advisor is asked about the verifier this drafter really drafts for (``AdvisorLink``).
    func observeTargets(_ observer: @escaping @Sendable (String) -> Void) {
        targetObserver.withLock { $0 = observer }
    }

    var load: ReplicaLoad {
        ReplicaLoad(activeSessions: sessions.withLock { $0.count }, queuedRequests: source.backlog)
    }

    func shutdown() async {
        let tasks = sessions.withLock { table in
            defer { table.removeAll() }
            return table.values.map(\.task)
        }
        for task in tasks { task.cancel() }
        for endpoint in verifiers.withLock({ Array($0.values) }) { await endpoint.close() }
        source.shutdown()
    }

    // MARK: Messages

    func handle(_ message: WireMessage) async -> WireMessage? {
        switch message {
        case .sessionStart(let start):
            return await startSession(start)
        case .sessionClose(let close):
            guard fence.admit(close.session, epoch: close.epoch) else { return .ack(Ack()) }
            let entry = sessions.withLock { $0.removeValue(forKey: close.session) }
            entry?.task.cancel()
            return .ack(Ack())
        case .health:
            let admission = source.admissionCounts
            return .healthReply(HealthReply(role: .drafter, replicaID: replicaID, uptimeSeconds: 0,
                                            details: ["model": modelName, "sessions": "\(load.activeSessions)",
                                                      "invalid_messages": "\(invalidMessageCount)",
                                                      "refused_sessions": "\(admission.refused)",
                                                      "evicted_for_admission": "\(admission.evicted)"]))
        default:
            return nil
        }
    }

    private func startSession(_ start: SessionStart) async -> WireMessage {
        let limits = WireLimits(vocabularySize: source.vocabularySize, contextLength: source.contextLength)
        if let problem = start.problem(limits) {
            invalidMessages.add(1, ordering: .relaxed)
            logger.warning("refused an invalid session_start", metadata: ["session": "\(start.session)", "problem": "\(problem)"])
            return .error(ErrorReply(code: .invalidArgument, message: problem))
        }
        guard fence.admit(start.session, epoch: start.epoch) else {
            logger.info("refused a session_start of an older placement", metadata: ["session": "\(start.session)"])
            return .error(.staleEpoch(start.session, epoch: start.epoch, newest: fence.newest(start.session)))
        }
        let fixed = start.k ?? (configuration.dynamic ? nil : effectiveDefaultK)
        var controllerConfig = SpeculationController.Configuration(
            maxDraftLength: max(1, configuration.maxK), initialDraftLength: effectiveDefaultK,
            fixedDraftLength: fixed.map { max(1, $0) })
        if !configuration.dynamic { controllerConfig.adaptiveThreshold = false }
        if let target = start.targetModel, let observe = targetObserver.withLock({ $0 }) { observe(target) }
        let key = Self.knowledgeKey(start)
        let warm = learned.withLock { $0[key] }
        let session = DrafterSession(start: start, controller: SpeculationController(configuration: controllerConfig,
                                                                                     warmStart: warm))
        // Admission by memory: refused (`resource_exhausted`) when the draft cache would need the memory of
        // sessions that are drafting; the gateway then tries another drafter or lets the verifier serve it.
        if let refusal = await source.admit(session) {
            logger.notice("refused a session: draft KV cache budget held by active sessions",
                          metadata: ["session": "\(start.session)", "why": "\(refusal.message)"])
            return .error(refusal)
        }
        let task = Task {
            await self.run(session)
            self.learned.withLock { table in
                var knowledge = table[key] ?? SpeculationController.emptyKnowledge(controllerConfig)
                knowledge.absorb(session.controller)
                table[key] = knowledge
            }
        }
        let previous = sessions.withLock { table in
            defer { table[start.session] = (session, task) }
            return table[start.session]
        }
        previous?.task.cancel()
        return .ack(Ack())
    }

    /// Acceptance depends on the pair and on how tokens are drawn, not on the session.
    private static func knowledgeKey(_ start: SessionStart) -> String {
        "\(start.targetModel ?? "?")|\(start.mode.rawValue)|\(start.sampling.temperature == 0 ? "greedy" : "sampled")"
    }

    private var effectiveDefaultK: Int {
        let advised = advisedK.load(ordering: .relaxed)
        return min(configuration.maxK, max(1, advised > 0 ? advised : configuration.defaultK))
    }

    private func verifier(_ endpoint: String) throws -> BusEndpoint {
        try verifiers.withLock { table in
            if let existing = table[endpoint] { return existing }
            let created = try BusEndpoint.dealer(context: context, connect: endpoint,
                                                 identity: PeerID("\(replicaID)-\(UInt32.random(in: 0...UInt32.max))"),
                                                 logger: logger)
            table[endpoint] = created
            return created
        }
    }

    // MARK: Session loop

    private func run(_ session: DrafterSession) async {
        let start = session.start
        let id = start.session
        let verifier: BusEndpoint
        do {
            verifier = try self.verifier(start.verifierEndpoint)
        } catch {
            await report(session, tokens: [], finish: .error, error: "cannot reach verifier: \(error)")
            return
        }
        logger.debug("session started", metadata: [
            "session": "\(id)", "verifier": "\(start.verifierID)", "resumed_tokens": "\(start.generated.count)",
            "cancelled": "\(Task.isCancelled)"])
        // A resumed session may already be complete.
        if let finish = finishReason(session) {
            await report(session, tokens: [], finish: finish)
            return
        }
        // A round whose verification timed out is sent again as it was (same request id: the verifier
        // answers the retry with the first request's answer instead of verifying twice).
        var unanswered: (request: VerifyRequest, draft: DraftOutput)?
        // Centralized serving (K fixed to 0) is driven from beside the verifier: no device network.
        let overNetwork = session.start.k != 0
        let ahead = DraftAhead()
        defer { ahead.abandon() }
        while !Task.isCancelled {
            let draft: DraftOutput
            var request: VerifyRequest
            if let retry = unanswered {
                request = retry.request
                draft = retry.draft
                request.deadline = ServiceClock.nowMillis() + start.slo.tpotMs * Double(draft.tokens.count + 1)
            } else {
                let k = plannedK(session, hidden: configuration.draftAhead == .off ? 0 : ahead.hiddenFraction)
                do {
                    if let ready = ahead.take(committed: session.committed, k: k, session: session) {
                        draft = ready
                    } else {
                        draft = k == 0
                            ? DraftOutput(tokens: [], distributions: [], seconds: 0, planned: 0)
                            : try await source.draft(session, k: k)
                    }
                } catch {
                    await report(session, tokens: [], finish: .error, error: "drafting failed: \(error)")
                    return
                }
                if Task.isCancelled { return }
                // A K = 0 round over the network lets the verifier decode several tokens per round trip.
                let steps = draft.tokens.isEmpty && overNetwork ? decodeSteps(session) : nil
                let n = session.committed.count
                logger.trace("round", metadata: ["session": "\(id)", "position": "\(n)", "drafted": "\(draft.tokens.count)"])
                request = VerifyRequest(
                    session: id, position: n, tokens: draft.tokens, distributions: draft.distributions,
                    lastToken: session.committed[n - 1],
                    deadline: ServiceClock.nowMillis() + start.slo.tpotMs * Double(draft.tokens.count + 1),
                    draftMs: draft.seconds * 1000, k: draft.planned, drafterID: replicaID, draftModel: draft.model ?? modelName,
                    device: device.name, decodeSteps: steps, requestID: UInt64.random(in: 1...UInt64.max))
                request.epoch = start.epoch
            }
            unanswered = nil
            let steps = request.decodeSteps
            if !ahead.isRunning, let k = draftAheadLength(session, drafted: draft.tokens) {
                ahead.start(source: source, session: session, base: session.committed + draft.tokens, k: k)
            }
            do {
                let sent = ContinuousClock.now
                if overNetwork { await source.transfer(session, bytes: 160 + 12 * draft.tokens.count, up: true) }
                let reply = try await verifier.call(.verify(request), timeout: configuration.verifyTimeout)
                if overNetwork { await source.transfer(session, bytes: 200 + 12 * draft.tokens.count, up: false) }
                let answered = ContinuousClock.now
                guard case .verified(let result) = reply else {
                    logger.warning("unexpected verify reply", metadata: ["kind": "\(reply.kind.rawValue)"])
                    await ahead.drop(session: session)
                    continue
                }
                if Task.isCancelled { return }
                if let problem = result.problem(session: id, position: request.position, drafted: draft.tokens.count,
                                                maxTokens: source.contextLength - request.position,
                                                vocabularySize: source.vocabularySize) {
                    invalidMessages.add(1, ordering: .relaxed)
                    await report(session, tokens: [], finish: .error, error: "verifier sent an invalid result: \(problem)")
                    return
                }
                // Everything but the verifier's queue and batch: network and bus (the planner's round trip).
                if steps == nil {
                    let wall = ServiceClock.millis(since: sent)
                    session.lastNetworkSeconds = max(0, wall - result.timings.queueMs - result.timings.batchMs) / 1000
                }
                if await apply(result, draft: draft, to: session) { return }
                await ahead.settle(result: result, draft: draft, committed: session.committed, answered: answered,
                                   session: session)
            } catch RPCError.remote(let error) where error.code == .staleEpoch {
                // The gateway placed the session again (with another drafter): this placement is over.
                logger.info("session placed elsewhere; stopping", metadata: ["session": "\(id)", "why": "\(error.message)"])
                sessions.withLock { table in
                    if table[id]?.session === session { table[id] = nil }
                }
                return
            } catch RPCError.remote(let error) where error.code == .deadlineExceeded {
                // The request waited in the verifier's queue long past its deadline: draft a new round.
                logger.info("verify request expired; redrafting", metadata: ["session": "\(id)", "why": "\(error.message)"])
                await ahead.drop(session: session)
            } catch RPCError.remote(let error) where error.code == .contextMismatch || error.code == .unknownSession {
                logger.info("verifier lost the session; reopening", metadata: ["session": "\(id)", "why": "\(error.message)"])
                await ahead.drop(session: session)
                await reopen(session, on: verifier)
            } catch RPCError.remote(let error) {
                await report(session, tokens: [], finish: .error, error: "verifier: \(error.message)")
                return
            } catch {
                // Timeout or closed socket: the gateway re-places the session if the verifier died.
                logger.debug("verify failed; retrying", metadata: ["session": "\(id)", "error": "\(error)"])
                unanswered = (request, draft)
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// K for the session's next round; `hidden` is the share of drafting time its drafts ahead took off
    /// the round (``DraftAhead/hiddenFraction``).
    private func plannedK(_ session: DrafterSession, hidden: Double) -> Int {
        if session.start.k == 0 { return 0 }
        let remaining = session.start.maxTokens - session.generatedCount - 1
        let room = source.contextLength - session.committed.count - 2
        var verifyTime: VerifyTimeModel?
        if configuration.loadAware, configuration.dynamic, session.start.k == nil {
            let rtt = session.lastNetworkSeconds
            let alpha = session.controller.acceptanceEstimate
            verifyTime = verifierCost.withLock {
                $0.roundModel(contextTokens: session.committed.count, networkSeconds: rtt, acceptance: alpha)
            }.map { model in
                // A K = 0 round over the network decodes several tokens per round trip.
                model.amortizingPlainRounds(networkSeconds: rtt, steps: decodeSteps(session) ?? 1,
                                            maxDraftLength: configuration.maxK)
            }
        }
        let plan = session.controller.beginRound(verifyTime: verifyTime, allowNoDraft: verifyTime != nil,
                                                 draftSharing: verifyTime == nil ? 1 : computeSharing(session),
                                                 draftHidden: hidden)
        return max(0, min(plan.maxDraftLength, remaining, room))
    }

    /// Tokens to draft ahead while `drafted` is verified (the guessed bonus token and the next round's
    /// draft), or nil when this round should not (docs/design.md §7.4): no draft, a session that ends with
    /// this round, drafting off, or, under `.auto`, a device other sessions wait for or a hit too unlikely
    /// (acceptance^(K+1) below `draftAheadMinHit`).
    private func draftAheadLength(_ session: DrafterSession, drafted: [Int32]) -> Int? {
        guard !drafted.isEmpty, session.start.k != 0, configuration.draftAhead != .off else { return nil }
        // Tokens the session may still need after this round and the guessed bonus token.
        let after = session.start.maxTokens - session.generatedCount - drafted.count - 2
        let room = source.contextLength - session.committed.count - drafted.count - 3
        let next = min(configuration.maxK, max(1, session.controller.currentPlan.maxDraftLength), after, room)
        guard next > 0, !drafted.contains(where: source.isEndOfGeneration) else { return nil }
        if configuration.draftAhead == .auto {
            let hit = pow(session.controller.acceptanceEstimate, Double(drafted.count + 1))
            guard hit >= configuration.draftAheadMinHit, computeSharing(session) == 1 else { return nil }
        }
        return 1 + next
    }

    /// Sessions drafting on the same compute as `session`, itself included. They take turns, so with every
    /// session planning the same K (the assumption the verifier's curve is read under, too) a round waits
    /// for all of their drafts: one drafter process serving several chats beside its verifier drafts each
    /// token at that many times its own cost, and the planner must see it (docs/design.md §7.3).
    private func computeSharing(_ session: DrafterSession) -> Int {
        let key = source.computeKey(session)
        let others = sessions.withLock { table in table.values.map(\.session) }
        return max(1, others.filter { $0.start.k != 0 && source.computeKey($0) == key }.count)
    }

    /// Tokens to decode on the verifier in one K = 0 round: enough that the network round trip costs at
    /// most about a tenth of the round (one decode step per token), at most 16, and no more than the
    /// session still needs. nil: one step.
    private func decodeSteps(_ session: DrafterSession) -> Int? {
        let remaining = session.start.maxTokens - session.generatedCount
        let rtt = session.lastNetworkSeconds
        guard remaining > 1, rtt > 0 else { return nil }
        let step = verifierCost.withLock { $0.roundModel(contextTokens: session.committed.count, networkSeconds: 0) }?
            .seconds(draftLength: 0) ?? 0.05
        let steps = min(16, remaining, Int((10 * rtt / max(step, 1e-3)).rounded(.up)))
        return steps > 1 ? steps : nil
    }

    /// Applies a verification result; returns true when the session is finished.
    private func apply(_ result: VerifyResult, draft: DraftOutput, to session: DrafterSession) async -> Bool {
        session.committed.append(contentsOf: result.tokens)
        session.stats.rounds += 1
        session.stats.drafted += draft.tokens.count
        session.stats.accepted += result.accepted
        session.stats.lookupProposed += result.lookupProposed ?? 0
        session.stats.lookupAccepted += result.lookupAccepted ?? 0
        session.stats.draftMs += draft.seconds * 1000
        if draft.tokens.isEmpty {
            session.stats.plainRounds += 1
        } else {
            let rejected = draft.tokens.count - min(result.accepted, draft.tokens.count)
            session.stats.wastedDraftMs += draft.draftingSeconds * 1000 * Double(rejected) / Double(draft.tokens.count)
        }
        let t = result.timings
        verifierCost.withLock {
            $0.observe(sequences: t.batchSequences, positions: t.batchTokens, contextTokens: t.batchContextTokens,
                       batchSeconds: t.batchMs / 1000, ownPositions: draft.tokens.count + 1,
                       ownContext: session.committed.count - result.tokens.count, prefillTokens: t.prefillTokens ?? 0)
            if let c = t.costCurve {
                $0.observeCurve(positions: c.positions, seconds: c.ms.map { $0 / 1000 },
                                secondsPerContextToken: c.contextMsPerToken / 1000)
            }
        }
        if !draft.tokens.isEmpty {
            session.controller.finishRound(drafted: draft.tokens.count, accepted: result.accepted)
            session.controller.recordDraftTime(seconds: draft.draftingSeconds, tokens: draft.tokens.count)
            recordProfile(tokens: draft.tokens.count, seconds: draft.draftingSeconds)
        }
        // Trim at max_tokens and at the first end-of-generation token.
        var newTokens = Array(session.committed[(session.promptLength + session.reported)...])
        var finish: FinishReason?
        if let eog = newTokens.firstIndex(where: { source.isEndOfGeneration($0) }) {
            newTokens = Array(newTokens[...eog])
            finish = .stop
        }
        let allowed = session.start.maxTokens - session.reported
        if newTokens.count > allowed {
            newTokens = Array(newTokens.prefix(allowed))
            finish = .length
        } else if newTokens.count == allowed && finish == nil {
            finish = .length
        }
        await report(session, tokens: newTokens, finish: finish)
        return finish != nil
    }

    private func finishReason(_ session: DrafterSession) -> FinishReason? {
        let generated = session.committed[session.promptLength...]
        if let last = generated.last, source.isEndOfGeneration(last) { return .stop }
        return generated.count >= session.start.maxTokens ? .length : nil
    }

    /// Reports `tokens` (and everything generated since the last report the gateway acknowledged: a lost
    /// report is repaired by the next, and the gateway drops what it already has). A report counts as
    /// delivered only once acknowledged; the final one, which no later report repairs, is retried.
    private func report(_ session: DrafterSession, tokens: [Int32], finish: FinishReason?, error: String? = nil) async {
        session.reported += tokens.count
        let base = session.promptLength
        for attempt in 1...max(1, configuration.finalReportAttempts) {
            var report = TokenReport(
                session: session.start.session, offset: session.confirmed,
                tokens: Array(session.committed[(base + session.confirmed)..<(base + session.reported)]),
                finish: finish, error: error, stats: session.stats)
            report.epoch = session.start.epoch
            do {
                guard try await deliver(report) else { break }
                session.confirmed = report.offset + report.tokens.count
                break
            } catch {
                logger.warning("token report not acknowledged", metadata: [
                    "session": "\(session.start.session)", "unconfirmed": "\(report.tokens.count)", "error": "\(error)"])
                guard finish != nil, !Task.isCancelled else { break }
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
        if finish != nil {
            sessions.withLock { table in
                if table[session.start.session]?.session === session { table[session.start.session] = nil }
            }
        }
    }

    /// Sends one report and waits for the gateway's acknowledgement; false when there is nowhere to send it.
    private func deliver(_ report: TokenReport) async throws -> Bool {
        if let transport = reportTransport.withLock({ $0 }) {
            try await transport(report)
            return true
        }
        guard let agent = control.withLock({ $0 }) else { return false }
        do {
            _ = try await agent.endpoint.call(.tokens(report), timeout: configuration.reportTimeout)
        } catch RPCError.remote(let error) where error.code == .unexpectedKind {
            // A gateway from before acknowledged reports: it took the report but has no answer for it.
        }
        return true
    }

    private func reopen(_ session: DrafterSession, on verifier: BusEndpoint) async {
        let s = session.start
        var open = SessionOpen(session: s.session, tokens: session.committed, promptLength: session.promptLength,
                               sampling: s.sampling, mode: s.mode, slo: s.slo,
                               capacity: session.promptLength + s.maxTokens + configuration.maxK + 2)
        open.epoch = s.epoch
        do {
            _ = try await verifier.call(.sessionOpen(open), timeout: open.replyTimeout)
        } catch {
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    private func recordProfile(tokens: Int, seconds: Double) {
        let snapshot = profile.withLock { p -> (Int, Double)? in
            p.tokens += tokens
            p.seconds += seconds
            p.rounds += 1
            guard p.rounds % 32 == 0, p.seconds > 0 else { return nil }
            return (p.tokens, p.seconds)
        }
        if let (t, s) = snapshot {
            events?.publish(.profile(ProfileEvent(
                device: device.name, draftModel: modelName, quantization: source.quantization,
                draftTokensPerSecond: Double(t) / s * device.computeThrottle, powerWatts: device.powerWatts,
                at: ServiceClock.nowMillis())))
        }
    }
}
