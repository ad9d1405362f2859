import Logging
import TandemBus
import TandemEngine
import TandemWire
@testable import DrafterAgent

extension SyntheticPair {
    /// A drafter core over the synthetic draft model, in this process, for tests of how it handles
    /// messages (no verifier behind it unless the test adds one). Returns the draft model too, for its vocabulary.
    static func drafterCore(context: BusContext, configuration: DrafterCore.Configuration = DrafterCore.Configuration())
        async throws -> (core: DrafterCore, model: LanguageModel) {
        let pair = try await make()
        let model = try LanguageModel.load(path: pair.draft, logger: Logger(label: "test"))
        let source = ModelDraftSource(engine: ForwardEngine(model: model, threads: 1), tokenizer: try Tokenizer(gguf: model.gguf),
                                      modelName: "syn-draft", quantization: "Q8_0",
                                      device: DeviceProfile(name: "test", powerWatts: 1), devices: nil, maxK: 4,
                                      draftSupport: 8)
        let core = DrafterCore(source: source, device: DeviceProfile(name: "test", powerWatts: 1), replicaID: "d-test",
                               configuration: configuration, context: context, events: nil, logger: Logger(label: "test"))
        return (core, model)
    }
}
