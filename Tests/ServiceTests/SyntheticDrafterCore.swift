import Logging
import TandemBus
import TandemEngine
import TandemWire
@testable import DrafterAgent

extension SyntheticPair {
    /// A drafter core over the synthetic draft model, in this process, for tests of how it handles
    /// messages (no verifier behind it unless the test adds one). Returns the draft model too, for its vocabulary.
    /// - Parameters:
    ///   - kvBudgetPositions: the draft KV cache budget, in positions of the draft model (nil: the default).
    ///   - activeWindowMs: how recently a session must have drafted to keep its cache when another is admitted.
    static func drafterCore(context: BusContext, configuration: DrafterCore.Configuration = DrafterCore.Configuration(),
                            pair: Paths? = nil, kvBudgetPositions: Int? = nil, activeWindowMs: Double = 5_000)
        async throws -> (core: DrafterCore, model: LanguageModel) {
        let paths: Paths
        if let pair { paths = pair } else { paths = try await make() }
        let model = try LanguageModel.load(path: paths.draft, logger: Logger(label: "test"))
        let engine = ForwardEngine(model: model, threads: 1)
        let source = ModelDraftSource(engine: engine, tokenizer: try Tokenizer(gguf: model.gguf),
                                      modelName: "syn-draft", quantization: "Q8_0",
                                      device: DeviceProfile(name: "test", powerWatts: 1), devices: nil, maxK: 4,
                                      draftSupport: 8,
                                      kvBudgetBytes: kvBudgetPositions.map { $0 * engine.kvBytesPerPosition } ?? 1 << 30,
                                      activeWindowMs: activeWindowMs)
        let core = DrafterCore(source: source, device: DeviceProfile(name: "test", powerWatts: 1), replicaID: "d-test",
                               configuration: configuration, context: context, events: nil, logger: Logger(label: "test"))
        return (core, model)
    }
}
