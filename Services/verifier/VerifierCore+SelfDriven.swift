import Logging
import Synchronization
import TandemEngine
import TandemService
import TandemWire

/// The sessions a verifier generates alone, because no drafter was alive to place them on
/// (``SessionOpen/selfDrive``; docs/design.md, "Serving without a drafter").
///
/// Each session gets a loop task that asks its own verifier for multi-step decodes, exactly the requests a
/// drafter's K = 0 round sends (so its steps join the same batches as everyone else's and may carry
/// prompt-lookup proposals), and a reporter task that posts every step's tokens to the gateway as a
/// `TokenReport`, the way a drafter does: the gateway streams them and keeps the history for failover.
final class SelfDrivenSessions: Sendable {
    /// One step's outcome, as the compute thread hands it over.
    enum Event: Sendable {
        case step(tokens: [Int32], lookupProposed: Int, lookupAccepted: Int)
        /// The session ended without a step saying so (e.g. resumed already complete).
        case finished(FinishReason)
        case failed(String)
    }

    private struct Driver {
        let generation: UInt64
        let events: AsyncStream<Event>.Continuation
        let loop: Task<Void, Never>?
    }

    private struct State {
        var post: (@Sendable (TokenReport) async -> Void)?
        var drivers: [SessionID: Driver] = [:]
        var nextGeneration: UInt64 = 0
    }

    private let state = Mutex<State>(State())

    /// Where token reports go: the replica's control connection to the gateway (or a test's collector).
    /// Until one is attached, a self-driven open is refused.
    func attach(_ post: @escaping @Sendable (TokenReport) async -> Void) {
        state.withLock { $0.post = post }
    }

    var canReport: Bool { state.withLock { $0.post != nil } }

    /// Sessions being driven now.
    var count: Int { state.withLock { $0.drivers.count } }

    /// A step of `session` was verified (compute thread; a no-op for sessions a drafter drives).
    func stepped(_ session: SessionID, tokens: [Int32], lookupProposed: Int, lookupAccepted: Int) {
        let events = state.withLock { $0.drivers[session]?.events }
        events?.yield(.step(tokens: tokens, lookupProposed: lookupProposed, lookupAccepted: lookupAccepted))
    }

    /// Stops driving `session` (closed by the gateway, or replaced by a new open).
    func stop(_ session: SessionID) {
        let driver = state.withLock { $0.drivers.removeValue(forKey: session) }
        driver?.loop?.cancel()
        driver?.events.finish()
    }

    /// Registers `session` as driven (replacing an earlier driver of it) before its loop starts, so no step is
    /// missed; nil when no report destination is attached.
    fileprivate func register(_ session: SessionID)
        -> (stream: AsyncStream<Event>, events: AsyncStream<Event>.Continuation, generation: UInt64,
            post: @Sendable (TokenReport) async -> Void)? {
        let (stream, continuation) = AsyncStream<Event>.makeStream()
        let registered = state.withLock { s -> (UInt64, (@Sendable (TokenReport) async -> Void), Driver?)? in
            guard let post = s.post else { return nil }
            s.nextGeneration += 1
            let previous = s.drivers[session]
            s.drivers[session] = Driver(generation: s.nextGeneration, events: continuation, loop: nil)
            return (s.nextGeneration, post, previous)
        }
        guard let (generation, post, previous) = registered else { return nil }
        previous?.loop?.cancel()
        previous?.events.finish()
        return (stream, continuation, generation, post)
    }

    fileprivate func setLoop(_ session: SessionID, generation: UInt64, loop: Task<Void, Never>) {
        let current = state.withLock { s -> Bool in
            guard let driver = s.drivers[session], driver.generation == generation else { return false }
            s.drivers[session] = Driver(generation: generation, events: driver.events, loop: loop)
            return true
        }
        if !current { loop.cancel() }
    }

    /// Forgets `session` if it is still the driver of that generation (the loop ended on its own).
    fileprivate func ended(_ session: SessionID, generation: UInt64) {
        let driver = state.withLock { s -> Driver? in
            guard s.drivers[session]?.generation == generation else { return nil }
            return s.drivers.removeValue(forKey: session)
        }
        driver?.events.finish()
    }
}

extension VerifierCore {
    /// Starts generating an opened session alone (after its prompt is cached): the loop and its reporter.
    func drive(_ open: SessionOpen, _ plan: SelfDrive) {
        guard let (stream, events, generation, post) = selfDriven.register(open.session) else { return }
        let id = open.session
        let promptLength = open.promptLength
        let maxTokens = plan.maxTokens
        let endOfGeneration = configuration.endOfGeneration
        let logger = self.logger
        // Reporter: posts each step's tokens in order, trimmed at the first end-of-generation token and
        // at max_tokens, with the session's running stats.
        Task {
            var reported = open.tokens.count - promptLength
            var stats = RoundStats()
            var done = false
            for await event in stream where !done {
                var tokens: [Int32] = []
                var finish: FinishReason?
                var error: String?
                switch event {
                case .step(let stepTokens, let proposed, let accepted):
                    stats.rounds += 1
                    stats.plainRounds += 1
                    stats.lookupProposed += proposed
                    stats.lookupAccepted += accepted
                    for token in stepTokens where finish == nil {
                        guard reported + tokens.count < maxTokens else {
                            finish = .length
                            break
                        }
                        tokens.append(token)
                        if endOfGeneration.contains(token) { finish = .stop }
                    }
                    if finish == nil, reported + tokens.count >= maxTokens { finish = .length }
                case .finished(let reason):
                    finish = reason
                case .failed(let message):
                    finish = .error
                    error = message
                }
                var report = TokenReport(session: id, offset: reported, tokens: tokens, finish: finish, error: error,
                                         stats: stats)
                report.epoch = open.epoch
                reported += tokens.count
                done = finish != nil
                await post(report)
            }
        }
        // Loop: multi-step decodes until the generation ends; the steps are reported as they happen.
        let loop = Task {
            defer { self.selfDriven.ended(id, generation: generation) }
            var position = open.tokens.count
            var last = open.tokens[position - 1]
            var generated = position - promptLength
            if generated >= maxTokens || (generated > 0 && endOfGeneration.contains(last)) {
                events.yield(.finished(generated >= maxTokens ? .length : .stop))
                return
            }
            while !Task.isCancelled {
                let steps = min(Self.maxDecodeSteps, maxTokens - generated)
                switch await enqueue(ownDecodeRequest(open, position: position, lastToken: last, steps: steps)) {
                case .verified(let result):
                    guard let end = result.tokens.last else { continue }
                    position = result.position + result.tokens.count
                    last = end
                    generated = position - promptLength
                    if generated >= maxTokens || result.tokens.contains(where: { endOfGeneration.contains($0) }) {
                        return
                    }
                case .error(let error) where error.code == .unknownSession || error.code == .staleEpoch:
                    return  // closed, or placed again
                case .error(let error) where error.code == .deadlineExceeded:
                    logger.debug("self-driven step expired; asking again", metadata: ["session": "\(id)"])
                case .error(let error):
                    events.yield(.failed("verifier: \(error.message)"))
                    return
                default:
                    events.yield(.failed("verifier answered an unexpected message"))
                    return
                }
            }
        }
        selfDriven.setLoop(id, generation: generation, loop: loop)
    }
}
