import TandemEngine
import TandemServing
import TandemSpeculative
import TandemWire

/// One session's state on a verifier. Touched only on the compute thread.
final class VerifierSession {
    let id: SessionID
    /// The committed sequence (prompt + generated) as this verifier knows it.
    var committed: [Int32]
    let promptLength: Int
    let params: SamplingParams
    let mode: SpeculationMode
    let slo: SLO
    let capacity: Int
    /// nil while evicted (rebuilt from `committed` when the session returns).
    var cache: KVCache?
    var lastUsed: UInt64 = 0
    /// When the session last was opened, prefilled, verified or decoded (``ServiceClock`` ms): a session
    /// active within ``VerifierCore/Configuration/activeWindowMs`` keeps its cache when another is admitted.
    var lastActive: Double = 0
    var rounds = 0
    /// Acceptance of the verifier's own prompt-lookup proposals for this session.
    var lookup = PromptLookupStats()
    /// When this verifier committed the session's first generated token (``ServiceClock`` ms), and the
    /// committed count then: the origin of the session's TPOT as far as this verifier can tell.
    private(set) var firstToken: (at: Double, committed: Int)?

    /// Records tokens committed at `now` (the first generated one starts the TPOT clock).
    func commit(_ tokens: [Int32], now: Double) {
        committed.append(contentsOf: tokens)
        if firstToken == nil, !tokens.isEmpty, committed.count > promptLength {
            firstToken = (now, committed.count)
        }
    }

    /// TPOT time the session has banked (docs/fleet.md, "Chunked prefill"): its SLO's time for the tokens
    /// since its first one, minus the time they took. TPOT is an average over a request's tokens, so a
    /// session running under its SLO can absorb a longer batch once (a prompt prefilled in one piece)
    /// and still meet it. 0 before the first token, or with no TPOT objective.
    func bankedTPOTMs(now: Double) -> Double {
        guard let first = firstToken, slo.tpotMs > 0 else { return 0 }
        return max(0, slo.tpotMs * Double(committed.count - first.committed) - (now - first.at))
    }

    init(open: SessionOpen, capacity: Int) {
        id = open.session
        committed = open.tokens
        promptLength = open.promptLength
        params = SamplingParams(open.sampling)
        mode = SpeculationMode(open.mode)
        slo = open.slo
        self.capacity = capacity
    }
}
