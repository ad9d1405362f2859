import Synchronization
import TandemWire

/// A draft source whose model can be replaced while the drafter runs (`--model auto`, when the
/// config-advisor's choice changes): the replacement happens at session boundaries. A session drafts
/// with the model that was current at its first round until it ends (its KV cache belongs to that
/// model), sessions starting after ``swap(to:)`` get the new one, and the old model's compute thread is
/// stopped and its weights released when the last session that used it is gone.
final class ReloadableDraftSource: DraftSource, @unchecked Sendable {
    /// One loaded model. Sessions hold it (``DrafterSession/lease``) for as long as they live; it stops
    /// its compute thread when nothing holds it any more, so no draft can be queued to a stopped thread.
    final class Handle: @unchecked Sendable {
        let source: ModelDraftSource
        init(_ source: ModelDraftSource) { self.source = source }
        deinit { source.shutdown() }
    }

    private let current: Mutex<Handle>
    private let swaps = Atomic<Int>(0)
    let devices: [String]?

    init(_ initial: ModelDraftSource) {
        current = Mutex(Handle(initial))
        devices = initial.devices
    }

    /// The model new sessions draft with.
    var currentSource: ModelDraftSource { current.withLock { $0.source } }
    /// Models replaced so far.
    var swapCount: Int { swaps.load(ordering: .relaxed) }

    /// Makes `source` the model of every session that has not drafted yet; returns the replaced model's name.
    @discardableResult
    func swap(to source: ModelDraftSource) -> String {
        let old = current.withLock { slot in
            defer { slot = Handle(source) }
            return slot
        }
        swaps.add(1, ordering: .relaxed)
        return old.source.modelName
    }

    var modelName: String { currentSource.modelName }
    var quantization: String { currentSource.quantization }
    var contextLength: Int { currentSource.contextLength }
    var vocabularySize: Int { currentSource.vocabularySize }
    var backlog: Int { currentSource.backlog }
    func computeKey(_ session: DrafterSession) -> String { currentSource.computeKey(session) }
    var attributes: [String: String] { ["draft_source": "model", "draft_model": "auto"] }

    func isEndOfGeneration(_ token: Int32) -> Bool { currentSource.isEndOfGeneration(token) }

    func draft(_ session: DrafterSession, _ call: DraftCall) async throws -> DraftOutput {
        // Only the session's own task drafts for it, one round at a time: the lease needs no lock.
        let handle: Handle
        if let leased = session.lease as? Handle {
            handle = leased
        } else {
            handle = current.withLock { $0 }
            session.lease = handle
        }
        var output = try await handle.source.draft(session, call)
        output.model = handle.source.modelName
        return output
    }

    func transfer(_ session: DrafterSession, bytes: Int, up: Bool) async {}

    /// Admission by memory under the current model's budget. The session is not leased here: a swap before
    /// its first draft still gives it the new model, which charges it when it builds its cache there.
    func admit(_ session: DrafterSession) async -> ErrorReply? { await currentSource.admit(session) }
    var admissionCounts: (refused: Int, evicted: Int) { currentSource.admissionCounts }

    func shutdown() { currentSource.shutdown() }
}
