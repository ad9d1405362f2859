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
    /// Drafts up to `k` tokens after the session's committed sequence; the session's controller may stop
    /// earlier. `seconds` in the result is the device time the drafting took.
    func draft(_ session: DrafterSession, k: Int) async throws -> DraftOutput
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
    /// A source without KV caches (replayed traces) admits every session.
    func admit(_ session: DrafterSession) async -> ErrorReply? { nil }
    var admissionCounts: (refused: Int, evicted: Int) { (0, 0) }
    /// One process, one device: every session shares the compute.
    func computeKey(_ session: DrafterSession) -> String { "" }
}
