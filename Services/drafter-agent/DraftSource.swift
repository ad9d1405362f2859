import Synchronization
import TandemSpeculative
import TandemWire

/// Where a drafter's drafts come from: the draft model on this machine (``ModelDraftSource``), or a
/// recorded trace replayed on emulated devices (``EmulatedDraftSource``). The session loop in
/// ``DrafterCore`` is the same for both: same controller, same messages, same verifier.
protocol DraftSource: Sendable {
    /// Name reported in events and registration.
    var modelName: String { get }
    var quantization: String { get }
    var contextLength: Int { get }
    /// Token ids the source accepts (`0..<vocabularySize`); messages with others are refused before use.
    var vocabularySize: Int { get }
    /// Drafting work waiting (for heartbeats).
    var backlog: Int { get }
    /// Devices this source drafts for (nil: the process is one device, named by its profile).
    var devices: [String]? { get }
    /// What operators should know about this source (READY line, logs, registration attributes).
    var attributes: [String: String] { get }

    func isEndOfGeneration(_ token: Int32) -> Bool
    /// Drafts up to `call.k` tokens after `call.base`. A round's draft (no `call.ahead`) lets the session's
    /// controller stop earlier; a draft ahead stops by `call.stopRule` or when aborted
    /// (``DraftCall/aheadContinues(after:confidence:)``). `seconds` in the result is the device time the
    /// drafting took (until the abort, for an aborted draft ahead).
    func draft(_ session: DrafterSession, _ call: DraftCall) async throws -> DraftOutput
    /// Waits the time a message of `bytes` takes between the session's device and the cluster
    /// (`up`: device → cluster). A drafter running beside the cluster waits nothing.
    func transfer(_ session: DrafterSession, bytes: Int, up: Bool) async
    /// Admission by memory (docs/design.md, "Admission by memory"): nil when the session's draft cache fits
    /// in the source's KV budget (idle sessions' caches may be evicted for it); the `resource_exhausted`
    /// refusal when it would need the memory of sessions that are drafting.
    func admit(_ session: DrafterSession) async -> ErrorReply?
    /// Which compute a session drafts on: sessions with the same key take turns on one device (a model
    /// source's compute thread, an emulated device's clock), so each waits for the others' drafts.
    func computeKey(_ session: DrafterSession) -> String
    /// Admission refusals and evictions so far (health details).
    var admissionCounts: (refused: Int, evicted: Int) { get }
    func shutdown()
}

extension DraftSource {
    /// Drafts this round's tokens: up to `k` after the session's committed sequence, the controller deciding
    /// where to stop.
    func draft(_ session: DrafterSession, k: Int) async throws -> DraftOutput {
        try await draft(session, DraftCall(base: session.committed, k: k))
    }
    /// A source without KV caches (replayed traces) admits every session.
    func admit(_ session: DrafterSession) async -> ErrorReply? { nil }
    var admissionCounts: (refused: Int, evicted: Int) { (0, 0) }
    /// One process, one device: every session shares the compute.
    func computeKey(_ session: DrafterSession) -> String { "" }
}

/// One drafting call (``DraftSource/draft(_:_:)``).
struct DraftCall: Sendable {
    /// The tokens drafted after: the session's committed sequence, or, for a draft ahead, that sequence plus
    /// the draft being verified (docs/design.md §7.4).
    var base: [Int32]
    var k: Int
    /// Set for a draft ahead: the session's controller is not asked where to stop (it decides later, from
    /// the confidences, once the verifier has answered), and the draft stops early when this is raised.
    var ahead: DraftAbort? = nil
    /// For a draft ahead: after the guessed bonus token (always drafted), drafting stops where this copy of
    /// the controller (``SpeculationController/roundAhead()``) would stop; nil drafts all `k`. Without it a
    /// draft ahead ran to the plan's largest K while the controller then kept two tokens of it: measured on
    /// an emulated 40 ms-per-token device, 9 s of wasted drafting in two requests and every round waiting
    /// for the rest of the draft ahead.
    var stopRule: SpeculationController? = nil

    /// Whether a draft ahead goes on after drafting token `index` (0 = the guessed bonus token) with this
    /// confidence.
    mutating func aheadContinues(after index: Int, confidence: Float) -> Bool {
        guard ahead?.isRaised != true else { return false }
        guard index > 0, stopRule != nil else { return true }
        return stopRule!.shouldContinue(confidence: confidence)
    }
}

/// Raised when a draft ahead turned useless (the verifier rejected part of the draft it assumed).
final class DraftAbort: Sendable {
    private let flag = Atomic<Bool>(false)
    var isRaised: Bool { flag.load(ordering: .relaxed) }
    func raise() { flag.store(true, ordering: .relaxed) }
}
