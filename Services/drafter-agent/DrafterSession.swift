import TandemEngine
import TandemSpeculative
import TandemWire

/// One session on a drafter. `committed` and `cache` are touched only on the compute thread;
/// the rest only by the session's own task.
final class DrafterSession: @unchecked Sendable {
    let start: SessionStart
    let params: SamplingParams
    /// prompt + generated, as committed by the verifier.
    var committed: [Int32]
    var cache: KVCache?
    /// When the session last drafted, or was admitted (``ServiceClock`` ms; compute thread): a session that
    /// drafted within the source's active window keeps its cache when another session is admitted.
    var lastDrafted: Double = 0
    /// The tokens held in `cache`, in order (to find the prefix still valid after a verification).
    var fed: [Int32] = []
    var controller: SpeculationController
    var stats = RoundStats()
    /// Generated tokens already reported to the gateway (sent, or to be sent again with the next report).
    var reported: Int
    /// Generated tokens the gateway acknowledged: each report carries everything after this.
    var confirmed: Int
    /// Time of the last verification round outside the verifier's queue and batch (network, bus).
    var lastNetworkSeconds: Double = 0
    /// The draft model this session drafts with from its first round to its end, when the drafter can
    /// change models (``ReloadableDraftSource``): `cache` belongs to it.
    var lease: AnyObject?

    var promptLength: Int { start.promptTokens.count }
    var generatedCount: Int { committed.count - promptLength }

    init(start: SessionStart, controller: SpeculationController) {
        self.start = start
        self.params = SamplingParams(temperature: start.sampling.temperature, topK: start.sampling.topK,
                                     topP: start.sampling.topP, minP: start.sampling.minP,
                                     repetitionPenalty: start.sampling.repetitionPenalty, seed: start.sampling.seed)
        self.committed = start.promptTokens + start.generated
        self.controller = controller
        self.reported = start.generated.count
        self.confirmed = start.generated.count
    }
}

/// What one drafting round produced.
struct DraftOutput: Sendable {
    var tokens: [Int32]
    var distributions: [WireDistribution]
    /// The draft model's confidence in each token (its top probability): what the controller stops on,
    /// kept so a draft ahead can be cut where the controller would have stopped it.
    var confidences: [Float] = []
    /// Device time of the whole call, catching up included.
    var seconds: Double
    var planned: Int
    /// Part of `seconds` spent feeding the draft model tokens it had not seen beyond the last committed one
    /// (a new session's prompt, the tokens of a K = 0 round, a resumed session's history). Device time, but
    /// not drafting: it is left out of the draft time per token the planner prices K with, and out of wasted
    /// drafting. Counting a prompt's prefill as drafting made the first round look ~30x slower per token and
    /// the planner settle on K = 0 for the rest of the session.
    var catchUpSeconds: Double = 0

    /// Device time spent drafting the tokens of this round.
    var draftingSeconds: Double { max(0, seconds - catchUpSeconds) }

    /// The draft model that drafted (nil: the source's ``DraftSource/modelName``).
    var model: String? = nil
}
