import Foundation
import TandemService
import TandemWire

/// Drafting ahead (APEX-style overlap; docs/design.md §7.4). While a round's draft is being verified the
/// device would sit idle; instead it drafts the next round on the assumption that the verifier accepts the
/// whole draft and that its bonus token is the draft model's own next token. When the answer agrees, the
/// next round's draft is already there (its drafting time left the round); otherwise the work is dropped
/// and counted as wasted drafting.
///
/// Lossless by construction: a draft ahead is only ever sent after the verifier committed exactly the
/// sequence it was drafted after, and the verifier checks it like any other draft.
///
/// One per session run, used only by the session's own task.
final class DraftAhead {
    private struct Running {
        /// What the draft ahead was drafted after: the committed sequence plus the draft being verified.
        var base: [Int32]
        var abort: DraftAbort
        var task: Task<DraftOutput?, Never>
    }

    private var running: Running?
    /// A draft ahead the verifier's answer confirmed: the next round's tokens, drafted after `base`.
    private var ready: (base: [Int32], output: DraftOutput)?
    /// Share of the next round's drafting time that left the round (an EWMA over rounds that drafted ahead:
    /// for a hit, 1 - the time the round still waited for the draft ahead after the answer / the drafting
    /// time of the tokens it yields; a miss counts 0): what the planner discounts the draft time per token by.
    private(set) var hiddenFraction = 0.0
    private let learningRate = 0.2

    var isRunning: Bool { running != nil }

    /// Starts drafting `k` tokens after `base` (the committed sequence plus the draft now sent).
    func start(source: any DraftSource, session: DrafterSession, base: [Int32], k: Int) {
        precondition(running == nil, "one draft ahead at a time")
        let abort = DraftAbort()
        let call = DraftCall(base: base, k: k, ahead: abort, stopRule: session.controller.roundAhead())
        let task = Task { () -> DraftOutput? in try? await source.draft(session, call) }
        running = Running(base: base, abort: abort, task: task)
        session.stats.aheadDrafts += 1
    }

    /// Settles the draft ahead once the verifier answered the round that sent `draft`, with `committed`
    /// the session's sequence after applying `result`. A hit keeps the draft ahead for the next round.
    /// `answered` is when the answer reached the device (what the round waited for the draft ahead after it is
    /// the part of its drafting that did not leave the round).
    func settle(result: VerifyResult, draft: DraftOutput, committed: [Int32], answered: ContinuousClock.Instant,
                session: DrafterSession) async {
        guard let r = running else { return }
        running = nil
        // Only a draft accepted whole can be followed by the draft ahead: anything else stops it at once.
        guard result.accepted == draft.tokens.count, result.tokens.count == draft.tokens.count + 1 else {
            await stopAndWaste(r, session: session)
            return
        }
        let output = await r.task.value
        let finished = ContinuousClock.now
        guard let output, let guess = output.tokens.first, guess == result.tokens[result.tokens.count - 1],
              committed == r.base + [guess] else {
            Self.spend(output?.seconds ?? 0, wasted: true, session: session)
            learn(hidden: 0)
            return
        }
        session.stats.aheadHits += 1
        // The guessed bonus token was drafted only to draft after it; the rest is the next round's draft
        // (its time is counted when it is sent, or wasted).
        let perToken = output.seconds / Double(output.tokens.count)
        // What the next round's drafting would have cost against what the round still waits for it after the
        // answer (the guess is drafted first, so on a slow device part of the draft ahead is still running).
        let drafting = perToken * Double(output.tokens.count - 1)
        let waited = max(0, (finished - answered).milliseconds / 1000)
        learn(hidden: drafting > 0 ? min(1, max(0, (drafting - waited) / drafting)) : 0)
        Self.spend(perToken, wasted: false, session: session)
        var next = output
        next.tokens.removeFirst()
        if !next.confidences.isEmpty { next.confidences.removeFirst() }
        if !next.distributions.isEmpty { next.distributions.removeFirst() }
        next.seconds = perToken * Double(next.tokens.count)
        next.catchUpSeconds = 0
        ready = (committed, next)
    }

    /// The next round's draft when a draft ahead was confirmed for exactly `committed`: cut where the
    /// session's controller stops it (as if drafted now, from the same confidences), at most `k` tokens.
    /// The part the controller cuts off is wasted drafting; the part sent is counted with its round.
    func take(committed: [Int32], k: Int, session: DrafterSession) -> DraftOutput? {
        guard let (base, output) = ready else { return nil }
        ready = nil
        guard base == committed, k > 0, !output.tokens.isEmpty else {
            Self.spend(output.seconds, wasted: true, session: session)
            return nil
        }
        var n = 0
        for c in output.confidences.prefix(k) {
            n += 1
            if !session.controller.shouldContinue(confidence: c) { break }
        }
        if output.confidences.isEmpty { n = min(k, output.tokens.count) }
        let perToken = output.seconds / Double(output.tokens.count)
        Self.spend(perToken * Double(output.tokens.count - n), wasted: true, session: session)
        var draft = output
        draft.tokens = Array(output.tokens.prefix(n))
        draft.confidences = Array(output.confidences.prefix(n))
        draft.distributions = Array(output.distributions.prefix(n))
        draft.seconds = perToken * Double(n)
        draft.planned = k
        return draft
    }

    /// Drops whatever was drafted ahead (the session ends, or its round is drafted anew).
    func drop(session: DrafterSession) async {
        if let r = running {
            running = nil
            await stopAndWaste(r, session: session)
        }
        if let (_, output) = ready {
            ready = nil
            Self.spend(output.seconds, wasted: true, session: session)
        }
    }

    /// Stops a draft ahead without waiting for it (the session's task is ending).
    func abandon() {
        running?.abort.raise()
        running?.task.cancel()
        running = nil
        ready = nil
    }

    /// Stops a draft ahead the answer made useless and counts the device time it had taken as wasted.
    private func stopAndWaste(_ r: Running, session: DrafterSession) async {
        r.abort.raise()
        r.task.cancel()
        let output = await r.task.value
        Self.spend(output?.seconds ?? 0, wasted: true, session: session)
        learn(hidden: 0)
    }

    private func learn(hidden: Double) {
        hiddenFraction += learningRate * (hidden - hiddenFraction)
    }

    /// Device time drafting ahead took, in the session's drafting time (and its wasted drafting time).
    private static func spend(_ seconds: Double, wasted: Bool, session: DrafterSession) {
        session.stats.draftMs += seconds * 1000
        if wasted { session.stats.wastedDraftMs += seconds * 1000 }
    }
}
