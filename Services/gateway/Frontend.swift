import Foundation
import Logging
import TandemEngine
import TandemModels
import TandemServing
import TandemWire

/// What the HTTP layer needs to know about the served model and its limits. The gateway loads
/// only the tokenizer and metadata from the target GGUF (memory-mapped; no weights are touched).
struct Frontend: Sendable {
    let modelName: String
    let servedNames: Set<String>
    let tokenizer: Tokenizer
    let chatTemplate: ChatTemplate
    let contextLength: Int
    let vocabularySize: Int
    let created: Int
    var maxBodyBytes = 4 << 20
    var defaultMaxTokens = 2048
    var defaultMode = ServingMode.standard
    var slo = SLO()
    var apiKey: String?
    /// Device id to the API key that alone may name it (`Frontend+Keys.swift`).
    var deviceKeys: [String: String] = [:]

    init(model nameOrPath: String, logger: Logger) throws {
        let url = try ModelStore(logger: logger).resolve(nameOrPath)
        let gguf = try GGUFFile(path: url.path)
        tokenizer = try Tokenizer(gguf: gguf)
        chatTemplate = try ChatTemplate(templateSource: gguf.metadata["tokenizer.chat_template"]?.string)
        let arch = gguf.architecture ?? "llama"
        contextLength = gguf.metadata["\(arch).context_length"]?.int ?? 4096
        vocabularySize = tokenizer.vocabularySize
        let name = ModelCatalog.spec(named: nameOrPath)?.name ?? url.deletingPathExtension().lastPathComponent
        modelName = name
        servedNames = [name, nameOrPath, url.lastPathComponent, url.deletingPathExtension().lastPathComponent]
        created = Int((try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date)??
            .timeIntervalSince1970 ?? 0)
    }

    /// A frontend from parts already in memory (in-process tests use a small byte-level tokenizer):
    /// the model is served under `modelName` only.
    init(modelName: String, tokenizer: Tokenizer, chatTemplate: ChatTemplate, contextLength: Int, created: Int = 0) {
        self.modelName = modelName
        servedNames = [modelName]
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.contextLength = contextLength
        vocabularySize = tokenizer.vocabularySize
        self.created = created
    }
}
