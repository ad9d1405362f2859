import Foundation
import Logging
import TandemEngine
import TandemModels
import TandemService

/// Loads a model named by catalog name, cached file name or path, with a clear error when it has
/// not been fetched (`tandem models fetch NAME`).
public enum ModelLoader {
    public struct Loaded: Sendable {
        public let model: LanguageModel
        public let tokenizer: Tokenizer
        public let path: URL
        /// The name others see (catalog name if given, else the file name).
        public let name: String
    }

    /// `load(_:logger:)` on a dedicated thread: opening, validating and repacking a model takes about
    /// a second for the 1.5B model, which must not hold one of the cooperative pool's threads.
    public static func load(_ nameOrPath: String, logger: Logger) async throws -> Loaded {
        try await BlockingWork.run("tandem-load-model") { try loadBlocking(nameOrPath, logger: logger) }
    }

    /// Loads on the calling thread (for tools and tests that are not on the cooperative pool).
    public static func loadBlocking(_ nameOrPath: String, logger: Logger) throws -> Loaded {
        let url = try ModelStore(logger: logger).resolve(nameOrPath)
        let start = ContinuousClock.now
        let model = try LanguageModel.load(path: url.path, logger: logger)
        let tokenizer = try Tokenizer(gguf: model.gguf)
        logger.info("model loaded", metadata: [
            "model": "\(nameOrPath)", "path": "\(url.path)", "architecture": "\(model.config.architecture)",
            "seconds": "\(ContinuousClock.now - start)",
        ])
        let name = ModelCatalog.spec(named: nameOrPath)?.name ?? url.lastPathComponent
        return Loaded(model: model, tokenizer: tokenizer, path: url, name: name)
    }

    /// The default models of each role.
    public static let defaultTarget = "qwen2.5-coder-1.5b-instruct"
    public static let defaultDraft = "qwen2.5-coder-0.5b-instruct"
    public static let small = "smollm2-135m-instruct"
}

extension GGUFFile {
    /// The tensor type holding most of the weight bytes (e.g. `Q4_K`), a one-word quantization label.
    public var dominantTypeName: String {
        var bytes: [String: Int] = [:]
        for t in tensors { bytes["\(t.type)", default: 0] += t.byteCount }
        return bytes.max { $0.value < $1.value }?.key ?? "unknown"
    }
}
