import Foundation
import Logging
import TandemEngine
import TandemKernels
import TandemModels
import TandemQuantize
import TandemService
import TandemServing

/// The GGUF models this cluster can ship to drafters (docs/model-shipping.md): every model file in
/// the gateway's model store, and for every base model there the quantised variants named in
/// ``Settings/variantTypes``, produced with `tandem quantize`'s code the first time one is asked for
/// and kept in the store as `<base>.<TYPE>.gguf` from then on.
///
/// Everything that touches the disk (listing, hashing, quantising) runs on threads of its own
/// (``BlockingWork``), never on the HTTP event loop or the cooperative pool. Productions run one at a
/// time, at most ``Settings/maxQueuedProductions`` waiting; a request for a variant still being made
/// waits up to ``Settings/productionWait`` and is then told to come back (`503`, `Retry-After`).
actor ModelShelf {
    struct Settings: Sendable {
        /// The model store (`--models-dir`, default `$TANDEM_MODELS` or `~/.cache/tandem/models`).
        var directory: URL
        /// Variants of each base model the gateway offers (and produces on request).
        var variantTypes: [GGMLType] = ModelShelf.defaultVariantTypes
        var quantizeThreads = 2
        var productionWait: Duration = .seconds(20)
        var maxQueuedProductions = 4

        init(directory: URL) { self.directory = directory }
    }

    static let defaultVariantTypes: [GGMLType] = [.q8_0, .q4_K, .q4_0]

    /// A model of the shelf: a file in the store, or a variant that can be produced from one.
    struct Item: Sendable {
        var entry: ModelShipping.Entry
        /// Where the file is (or will be, for a variant not produced yet).
        var url: URL
        /// For a variant not produced yet: its base file and type.
        var production: (base: URL, type: GGMLType)?
    }

    enum Lookup: Sendable {
        case ready(ModelShipping.Entry, URL)
        case notFound
        /// Being produced (or waiting to be): ask again after this many seconds.
        case preparing(retryAfter: Int)
        case failed(String)
    }

    let settings: Settings
    let target: ModelShipping.Target?
    nonisolated let facts = ModelFileFacts()
    private let logger: Logger
    /// Variants being produced or waiting to be, by key.
    private var productions: [String: Task<Void, Never>] = [:]
    /// Requests waiting for a production, by key.
    private var waiters: [String: [UUID: CheckedContinuation<Bool, Never>]] = [:]
    /// The last production queued: the next one starts when it ends (one at a time).
    private var tail: Task<Void, Never>?
    /// Why the last production of a key failed (cleared when it is asked for again).
    private var failures: [String: String] = [:]
    private(set) var producedCount = 0

    init(settings: Settings, target: ModelShipping.Target?, logger: Logger) {
        self.settings = settings
        self.target = target
        self.logger = logger
    }

    // MARK: Listing

    func listing() async throws -> ModelShipping.Listing {
        ModelShipping.Listing(target: target, data: try await items().map(\.entry))
    }

    /// The shelf as it is on disk now (scanned, hashed where not known yet) on a thread of its own.
    func items() async throws -> [Item] {
        let (directory, types, facts, logger) = (settings.directory, settings.variantTypes, facts, logger)
        return try await BlockingWork.run("tandem-model-shelf") {
            Self.scan(directory: directory, variantTypes: types, facts: facts, logger: logger)
        }
    }

    /// Classifies the store's `.gguf` files: a catalog file is the base named by its catalog name; a
    /// file `<base>.<TYPE>.gguf` whose base is a catalog name or another file's stem is a variant of
    /// it; any other file is a base named by its stem. Variants of the ``Settings/variantTypes`` not on
    /// disk are listed as producible. A catalog file whose digest is not the catalog's is left out.
    static func scan(directory: URL, variantTypes: [GGMLType], facts: ModelFileFacts, logger: Logger) -> [Item] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".gguf") && !$0.hasPrefix(".") }.sorted()
        let typeNames = Quantizer.supportedTypes.map(\.name)
        func splitType(_ stem: String) -> (base: String, type: String)? {
            guard let dot = stem.lastIndex(of: ".") else { return nil }
            let suffix = String(stem[stem.index(after: dot)...])
            guard let type = typeNames.first(where: { $0.caseInsensitiveCompare(suffix) == .orderedSame }) else { return nil }
            return (String(stem[..<dot]), type)
        }
        // Base names: catalog names and the stems of files that are not `<x>.<TYPE>`.
        var baseNames: [String: String] = [:]   // key -> spelling
        for spec in ModelCatalog.all { baseNames[spec.name.lowercased()] = spec.name }
        for name in names where ModelCatalog.spec(named: name) == nil {
            let stem = String(name.dropLast(5))
            if splitType(stem) == nil { baseNames[stem.lowercased()] = stem }
        }

        var items: [Item] = []
        var present = Set<String>()
        var bases: [(name: String, url: URL, tokenizer: String?)] = []
        for name in names {
            let url = directory.appendingPathComponent(name)
            guard let st = ModelShipping.fileStat(url) else { continue }
            let digest: String
            do { digest = try facts.sha256(of: url) } catch {
                logger.warning("model store: cannot hash \(name); not shipped", metadata: ["error": "\(error)"])
                continue
            }
            let tokenizer = facts.tokenizerFingerprint(of: url)
            var entry = ModelShipping.Entry(name: String(name.dropLast(5)), file: name, bytes: st.size, sha256: digest,
                                            cached: true, tokenizer: tokenizer)
            if let spec = ModelCatalog.spec(named: name) {
                guard st.size == spec.size, digest == spec.sha256 else {
                    logger.warning("model store: \(name) is not the catalog's file (size or sha256 differ); not shipped")
                    continue
                }
                entry.name = spec.name
                bases.append((spec.name, url, tokenizer))
            } else if let (base, type) = splitType(entry.name), let spelled = baseNames[base.lowercased()] {
                entry.name = "\(spelled).\(type)"
                entry.base = spelled
                entry.type = type
            } else if splitType(entry.name) == nil {
                bases.append((entry.name, url, tokenizer))
            }
            present.insert(ModelShipping.key(entry.name))
            items.append(Item(entry: entry, url: url, production: nil))
        }
        for base in bases {
            for type in variantTypes {
                let name = "\(base.name).\(type.name)"
                guard !present.contains(ModelShipping.key(name)) else { continue }
                let file = ModelShipping.variantFileName(base: base.name, type: type.name)
                items.append(Item(
                    entry: ModelShipping.Entry(name: name, file: file, bytes: nil, sha256: nil, cached: false,
                                               base: base.name, type: type.name, tokenizer: base.tokenizer),
                    url: directory.appendingPathComponent(file), production: (base.url, type)))
            }
        }
        return items
    }

    // MARK: Lookup and production

    /// The file of the model `name` means, producing a variant first when it is not on disk yet.
    func lookup(_ name: String) async throws -> Lookup {
        let key = ModelShipping.key(name)
        guard let item = try await items().first(where: {
            ModelShipping.key($0.entry.name) == key || ModelShipping.key($0.entry.file) == key
        }) else { return .notFound }
        guard let production = item.production else { return .ready(item.entry, item.url) }
        let itemKey = ModelShipping.key(item.entry.name)
        if productions[itemKey] == nil {
            if let failure = failures.removeValue(forKey: itemKey) { return .failed(failure) }
            guard productions.count < settings.maxQueuedProductions else { return .preparing(retryAfter: 10) }
            enqueue(itemKey, name: item.entry.name, base: production.base, type: production.type, destination: item.url)
        }
        guard await wait(for: itemKey, timeout: settings.productionWait) else { return .preparing(retryAfter: 2) }
        if let failure = failures.removeValue(forKey: itemKey) { return .failed(failure) }
        guard let made = try await items().first(where: { ModelShipping.key($0.entry.name) == itemKey }),
              made.production == nil else { return .failed("the variant \(item.entry.name) was not written") }
        return .ready(made.entry, made.url)
    }

    private func enqueue(_ key: String, name: String, base: URL, type: GGMLType, destination: URL) {
        let previous = tail
        let (threads, facts, logger) = (settings.quantizeThreads, facts, logger)
        let task = Task {
            await previous?.value
            let started = ContinuousClock.now
            logger.notice("producing model variant", metadata: ["variant": "\(name)", "base": "\(base.lastPathComponent)"])
            do {
                try await BlockingWork.run("tandem-quantize") {
                    let source = try GGUFFile(path: base.path)
                    let options = RequantizeOptions(plan: QuantizationPlan(defaultType: type), threads: max(1, threads))
                    _ = try Requantizer.run(source: source, destination: destination.path, options: options)
                    _ = try facts.sha256(of: destination)
                }
                logger.notice("model variant ready", metadata: [
                    "variant": "\(name)", "file": "\(destination.path)", "seconds": "\(ContinuousClock.now - started)"])
                self.finished(key, failure: nil)
            } catch {
                logger.error("model variant failed", metadata: ["variant": "\(name)", "error": "\(error)"])
                self.finished(key, failure: "producing \(name) failed: \(error)")
            }
        }
        productions[key] = task
        tail = task
    }

    private func finished(_ key: String, failure: String?) {
        productions[key] = nil
        if let failure { failures[key] = failure } else { producedCount += 1 }
        for continuation in (waiters.removeValue(forKey: key) ?? [:]).values { continuation.resume(returning: true) }
    }

    /// True when the production of `key` ended (well or not) within `timeout`.
    private func wait(for key: String, timeout: Duration) async -> Bool {
        guard productions[key] != nil else { return true }
        let id = UUID()
        return await withCheckedContinuation { continuation in
            waiters[key, default: [:]][id] = continuation
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(key, id)
            }
        }
    }

    private func expire(_ key: String, _ id: UUID) {
        waiters[key]?.removeValue(forKey: id)?.resume(returning: false)
    }
}
