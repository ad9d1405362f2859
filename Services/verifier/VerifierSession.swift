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
