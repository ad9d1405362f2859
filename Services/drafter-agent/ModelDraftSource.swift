import Foundation
import Synchronization
import TandemEngine
import TandemServing
import TandemService
import TandemSpeculative
import TandemWire

/// Drafts with the draft model on this machine. Model work runs on one ``ComputeThread`` (the device);
/// sessions queue for it.
///
/// The sessions' draft caches live under a memory budget (`--kv-budget-mb`), by the verifier's rule
/// (docs/design.md, "Admission by memory"): a session is charged what its cache holds, and at least its
/// tokens plus one block; a new session is admitted when it fits, evicting the caches of idle sessions
/// (none drafted within `activeWindowMs`, e.g. sessions in K = 0 rounds) least recently used first, and
/// refused with `resource_exhausted` when it would need the memory of sessions that are drafting. An
/// evicted session rebuilds its cache from its committed tokens when it drafts again.
final class ModelDraftSource: DraftSource, @unchecked Sendable {
    let engine: ForwardEngine
    let tokenizer: Tokenizer
    let modelName: String
    let quantization: String
    let device: DeviceProfile
    let devices: [String]?
    private let compute = ComputeThread(name: "drafter-compute")
    private let drafter: SpeculativeDrafter
    private let maxK: Int
    /// Total draft KV cache memory for all sessions.
    let kvBudgetBytes: Int
    /// A session that drafted within this many milliseconds is active: admitting another never evicts its cache.
    let activeWindowMs: Double

    // Compute-thread state: the sessions charged against the budget (admitted, or drafting with a cache), by
    // id; weak, so a session that ended stops counting once nothing holds it.
    private var charged: [SessionID: WeakSession] = [:]
    private let counts = Mutex<(refused: Int, evicted: Int)>((0, 0))

    private struct WeakSession {
        weak var session: DrafterSession?
    }

    init(engine: ForwardEngine, tokenizer: Tokenizer, modelName: String, quantization: String, device: DeviceProfile,
         devices: [String]?, maxK: Int, draftSupport: Int, kvBudgetBytes: Int = 1 << 30, activeWindowMs: Double = 5_000) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.modelName = modelName
        self.quantization = quantization
        self.device = device
        self.devices = devices
        self.maxK = maxK
        self.kvBudgetBytes = kvBudgetBytes
        self.activeWindowMs = activeWindowMs
        drafter = SpeculativeDrafter(vocabSize: engine.model.config.vocabularySize, maxSupport: draftSupport)
    }

    var admissionCounts: (refused: Int, evicted: Int) { counts.withLock { $0 } }

    var contextLength: Int { engine.model.config.contextLength }
    var vocabularySize: Int { engine.model.config.vocabularySize }
    var backlog: Int { compute.backlog }
    var attributes: [String: String] { ["draft_source": "model"] }

    func isEndOfGeneration(_ token: Int32) -> Bool { tokenizer.isEndOfGeneration(token) }

    func draft(_ session: DrafterSession, _ call: DraftCall) async throws -> DraftOutput {
        let output = try await compute.run { try self.draftOnComputeThread(session, call) }
        if device.computeThrottle < 1, output.seconds > 0 {
            try? await Task.sleep(for: .seconds(output.seconds * (1 / device.computeThrottle - 1)))
        }
        return output
    }

    func transfer(_ session: DrafterSession, bytes: Int, up: Bool) async {}

    func admit(_ session: DrafterSession) async -> ErrorReply? {
        do {
            return try await compute.run { self.admitOnComputeThread(session) }
        } catch {
            return ErrorReply(code: .internal, message: "admission failed: \(error)")
        }
    }

    // MARK: KV budget (compute thread)

    private func capacity(_ session: DrafterSession) -> Int {
        min(engine.model.config.contextLength, session.promptLength + session.start.maxTokens + maxK + 2)
    }

    /// Bytes a session is charged: what its cache holds, and at least its tokens plus one block (what a new
    /// cache soon holds; caches commit memory in blocks).
    private func charge(_ session: DrafterSession) -> Int {
        let tokens = session.cache.map { _ in session.fed.count }
            ?? session.start.promptTokens.count + session.start.generated.count
        let soon = engine.kvBytesPerPosition * min(capacity(session), tokens + KVCache.blockPositions)
        return max(session.cache?.residentBytes ?? 0, soon)
    }

    /// The charged sessions other than `id` that are still alive.
    private func others(than id: SessionID) -> [DrafterSession] {
        charged = charged.filter { $0.value.session != nil }
        return charged.compactMap { $0.key == id ? nil : $0.value.session }
    }

    private func admitOnComputeThread(_ session: DrafterSession) -> ErrorReply? {
        let id = session.start.session
        let now = ServiceClock.nowMillis()
        let needed = charge(session)
        var activeBytes = 0, idleBytes = 0
        var idle: [DrafterSession] = []
        var soonestIdleMs = activeWindowMs
        for other in others(than: id) {
            let bytes = charge(other)
            if now - other.lastDrafted > activeWindowMs {
                idleBytes += bytes
                idle.append(other)
            } else {
                activeBytes += bytes
                soonestIdleMs = min(soonestIdleMs, other.lastDrafted + activeWindowMs - now)
            }
        }
        if activeBytes + idleBytes + needed > kvBudgetBytes {
            if activeBytes + needed > kvBudgetBytes && activeBytes > 0 {
                counts.withLock { $0.refused += 1 }
                return .kvCacheFull(
                    "drafter has no KV cache memory for session \(id): it needs \(needed >> 20) MiB and drafting "
                        + "sessions hold \(activeBytes >> 20) of \(kvBudgetBytes >> 20) MiB",
                    retryAfterMs: Int(min(activeWindowMs, max(500, soonestIdleMs)).rounded(.up)))
            }
            evict(from: idle, toFit: needed, used: activeBytes + idleBytes)
        }
        session.lastDrafted = now
        charged[id] = WeakSession(session: session)
        return nil
    }

    /// Drops idle sessions' caches, least recently drafted first, until `needed` more bytes fit.
    private func evict(from idle: [DrafterSession], toFit needed: Int, used: Int) {
        var used = used
        for victim in idle.sorted(by: { $0.lastDrafted < $1.lastDrafted }) where used + needed > kvBudgetBytes {
            used -= charge(victim)
            victim.cache = nil
            victim.fed = []
            charged[victim.start.session] = nil
            counts.withLock { $0.evicted += 1 }
        }
    }

    func shutdown() { compute.stop() }

    /// Drafts up to `call.k` tokens after `call.base` (compute thread).
    private func draftOnComputeThread(_ session: DrafterSession, _ call: DraftCall) throws -> DraftOutput {
        var call = call
        let begin = ContinuousClock.now
        let base = call.base, k = call.k
        let n = base.count
        if call.ahead?.isRaised == true { return DraftOutput(tokens: [], distributions: [], seconds: 0, planned: k) }
        if session.cache == nil {
            // Back after its cache was evicted (or never admitted through `admit`): idle caches make room.
            let id = session.start.session
            if charged[id]?.session !== session {
                session.fed = []
                let now = ServiceClock.nowMillis()
                let others = others(than: id)
                let idle = others.filter { now - $0.lastDrafted > activeWindowMs }
                let used = others.reduce(0) { $0 + charge($1) }
                evict(from: idle, toFit: charge(session), used: used)
                charged[id] = WeakSession(session: session)
            }
            session.cache = engine.makeCache(capacity: capacity(session))
        }
        session.lastDrafted = ServiceClock.nowMillis()
        let cache = session.cache!
        // Keep only the cached prefix that still matches the sequence drafted after.
        var valid = 0
        let limit = min(cache.count, session.fed.count, n - 1)
        while valid < limit && session.fed[valid] == base[valid] { valid += 1 }
        cache.truncate(to: valid)
        session.fed.removeLast(session.fed.count - valid)

        let feed = Array(base[valid..<n])
        var result = try engine.forward([ForwardRequest(cache: cache, tokens: feed, logits: .last)])
        // Feeding more than the last committed token is catching up, not drafting: its share of this forward
        // is not charged to the draft tokens (``DraftOutput/catchUpSeconds``).
        let catchUp = feed.count > 1
            ? ServiceClock.millis(since: begin) / 1000 * Double(feed.count - 1) / Double(feed.count) : 0
        session.fed.append(contentsOf: feed)
        var tokens: [Int32] = []
        var confidences: [Float] = []
        var distributions: [WireDistribution] = []
        let wantDistributions = session.start.mode == .exact && !session.params.isGreedy
        for i in 0..<k {
            let recent = session.params.hasRepetitionPenalty ? base + tokens : []
            let step = drafter.draft(logits: result.lastLogits(request: 0), params: session.params, position: n + i,
                                     recentTokens: recent)
            tokens.append(step.token)
            confidences.append(step.confidence)
            if wantDistributions { distributions.append(WireDistribution(drafter.copyDistribution())) }
            // A draft ahead stops by its copy of the controller or when aborted; the session's own controller
            // cuts it again once the verifier has answered.
            let more = (call.ahead == nil
                ? session.controller.shouldContinue(afterDrafting: step)
                : call.aheadContinues(after: i, confidence: step.confidence)) && i + 1 < k
            if !more { break }
            result = try engine.forward([ForwardRequest(cache: cache, tokens: [step.token], logits: .last)])
            session.fed.append(step.token)
        }
        return DraftOutput(tokens: tokens, distributions: distributions, confidences: confidences,
                           seconds: ServiceClock.millis(since: begin) / 1000, planned: k, catchUpSeconds: catchUp)
    }
}
