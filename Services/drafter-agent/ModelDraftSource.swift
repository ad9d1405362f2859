import Foundation
import TandemEngine
import TandemServing
import TandemService
import TandemSpeculative
import TandemWire

/// Drafts with the draft model on this machine. Model work runs on one ``ComputeThread`` (the device);
/// sessions queue for it.
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

    init(engine: ForwardEngine, tokenizer: Tokenizer, modelName: String, quantization: String, device: DeviceProfile,
         devices: [String]?, maxK: Int, draftSupport: Int) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.modelName = modelName
        self.quantization = quantization
        self.device = device
        self.devices = devices
        self.maxK = maxK
        drafter = SpeculativeDrafter(vocabSize: engine.model.config.vocabularySize, maxSupport: draftSupport)
    }

    var contextLength: Int { engine.model.config.contextLength }
    var vocabularySize: Int { engine.model.config.vocabularySize }
    var backlog: Int { compute.backlog }
    var attributes: [String: String] { ["draft_source": "model"] }

    func isEndOfGeneration(_ token: Int32) -> Bool { tokenizer.isEndOfGeneration(token) }

    func draft(_ session: DrafterSession, k: Int) async throws -> DraftOutput {
        let output = try await compute.run { try self.draftOnComputeThread(session, k: k) }
        if device.computeThrottle < 1, output.seconds > 0 {
            try? await Task.sleep(for: .seconds(output.seconds * (1 / device.computeThrottle - 1)))
        }
        return output
    }

    func transfer(_ session: DrafterSession, bytes: Int, up: Bool) async {}

    func shutdown() { compute.stop() }

    /// Drafts up to `k` tokens after the session's committed sequence (compute thread).
    private func draftOnComputeThread(_ session: DrafterSession, k: Int) throws -> DraftOutput {
        let begin = ContinuousClock.now
        let n = session.committed.count
        let capacity = min(engine.model.config.contextLength, session.promptLength + session.start.maxTokens + maxK + 2)
        if session.cache == nil { session.cache = engine.makeCache(capacity: capacity) }
        let cache = session.cache!
        // Keep only the cached prefix that still matches the committed sequence.
        var valid = 0
        let limit = min(cache.count, session.fed.count, n - 1)
        while valid < limit && session.fed[valid] == session.committed[valid] { valid += 1 }
        cache.truncate(to: valid)
        session.fed.removeLast(session.fed.count - valid)

        let feed = Array(session.committed[valid..<n])
        var result = try engine.forward([ForwardRequest(cache: cache, tokens: feed, logits: .last)])
        // Feeding more than the last committed token is catching up, not drafting: its share of this forward
        // is not charged to the draft tokens (``DraftOutput/catchUpSeconds``).
        let catchUp = feed.count > 1
            ? ServiceClock.millis(since: begin) / 1000 * Double(feed.count - 1) / Double(feed.count) : 0
        session.fed.append(contentsOf: feed)
        var tokens: [Int32] = []
        var distributions: [WireDistribution] = []
        let wantDistributions = session.start.mode == .exact && !session.params.isGreedy
        for i in 0..<k {
            let recent = session.params.hasRepetitionPenalty ? session.committed + tokens : []
            let step = drafter.draft(logits: result.lastLogits(request: 0), params: session.params, position: n + i,
                                     recentTokens: recent)
            tokens.append(step.token)
            if wantDistributions { distributions.append(WireDistribution(drafter.copyDistribution())) }
            let more = session.controller.shouldContinue(afterDrafting: step) && i + 1 < k
            if !more { break }
            result = try engine.forward([ForwardRequest(cache: cache, tokens: [step.token], logits: .last)])
            session.fed.append(step.token)
        }
        return DraftOutput(tokens: tokens, distributions: distributions,
                           seconds: ServiceClock.millis(since: begin) / 1000, planned: k, catchUpSeconds: catchUp)
    }
}
