import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TandemService
import TandemServing

/// Downloads models from the gateway's model endpoint into this drafter's model store
/// (docs/model-shipping.md): resumable (a `<file>.part` left by an interrupted download continues with a
/// `Range` request, guarded by `If-Range` with the digest the part belongs to), checked by sha256 (the
/// response's `ETag`) before the file takes its final name, and kept with a `<file>.sha256` marker so the
/// next start uses the local copy without downloading. A download whose digest is wrong is discarded and
/// fetched again, up to ``attempts`` times.
struct ModelFetcher: Sendable {
    /// The gateway's HTTP address (`http://host:port`).
    var baseURL: String
    var apiKey: String?
    /// The local model store (`--model-cache`).
    var directory: URL
    var attempts = 3
    /// Longest wait for a variant the gateway is still producing (`503` + `Retry-After`).
    var preparingTimeout: Duration = .seconds(600)
    /// Deadline of one HTTP exchange: the listing, or one download (body included).
    var listTimeout: Duration = .seconds(30)
    var downloadTimeout: Duration = .seconds(3600)
    var client: HTTPClient = .shared
    var logger: Logger

    struct Result: Sendable {
        var url: URL
        /// The file's sha256.
        var sha256: String
        /// Bytes received over HTTP (0: the local copy was used).
        var downloadedBytes: Int64
        /// Where the last attempt started (> 0: it resumed a partial file).
        var resumedFrom: Int64
        /// Downloads refused because their digest was wrong.
        var refused: Int
    }

    enum Failure: Error, CustomStringConvertible, Equatable {
        case notFound(String)
        case http(status: Int, message: String)
        case digestMismatch(file: String, expected: String, actual: String)
        case incomplete(file: String, expected: Int64, actual: Int64)
        case noDigest(String)
        case preparingTooLong(String)

        var description: String {
            switch self {
            case .notFound(let name): "the model server has no model '\(name)'"
            case .http(let status, let message): "model server answered \(status): \(message)"
            case .digestMismatch(let file, let expected, let actual):
                "\(file): downloaded sha256 \(actual), expected \(expected); refused"
            case .incomplete(let file, let expected, let actual): "\(file): got \(actual) of \(expected) bytes"
            case .noDigest(let name): "the model server sent '\(name)' without an ETag (sha256)"
            case .preparingTooLong(let name): "the model server was still preparing '\(name)'"
            }
        }
    }

    // MARK: Listing

    func listing() async throws -> ModelShipping.Listing {
        var request = HTTPClientRequest(url: baseURL + ModelShipping.listPath)
        authorize(&request)
        let response = try await client.execute(request, timeout: .seconds(Int64(listTimeout.components.seconds)))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else {
            throw Failure.http(status: Int(response.status.code), message: String(buffer: body))
        }
        return try JSONDecoder().decode(ModelShipping.Listing.self, from: Data(body.readableBytesView))
    }

    // MARK: Fetching

    /// The model `entry` names as a verified local file: the local copy when it has the listed digest,
    /// else downloaded (resuming a partial file when there is one).
    func fetch(_ entry: ModelShipping.Entry) async throws -> Result {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let final = directory.appendingPathComponent(entry.file)
        if let sha = entry.sha256, let local = try await verifiedLocalCopy(final, sha256: sha, bytes: entry.bytes) {
            logger.info("model already in the local store", metadata: ["model": "\(entry.name)", "path": "\(local.path)"])
            return Result(url: local, sha256: sha, downloadedBytes: 0, resumedFrom: 0, refused: 0)
        }
        let part = directory.appendingPathComponent(entry.file + ".part")
        let partTag = directory.appendingPathComponent(entry.file + ".part.etag")
        var refused = 0
        var downloaded: Int64 = 0
        var lastError: Error?
        let preparingDeadline = ContinuousClock.now + preparingTimeout
        var attempt = 0
        while attempt < attempts {
            attempt += 1
            let step: DownloadStep
            do {
                step = try await download(entry.name, to: part, tag: partTag)
            } catch let failure as Failure {
                if case .notFound = failure { throw failure }
                lastError = failure
                logger.warning("model download failed", metadata: ["model": "\(entry.name)", "error": "\(failure)"])
                try? await Task.sleep(for: .milliseconds(200 * attempt))
                continue
            } catch {
                // Connection lost mid-body: the part file keeps what arrived; the next attempt resumes it.
                lastError = error
                logger.warning("model download interrupted; resuming", metadata: [
                    "model": "\(entry.name)", "have": "\(Self.size(part) ?? 0)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200 * attempt))
                continue
            }
            switch step {
            case .preparing(let seconds):
                attempt -= 1   // waiting for the gateway to produce a variant is not a failed attempt
                guard ContinuousClock.now + .seconds(seconds) < preparingDeadline else {
                    throw Failure.preparingTooLong(entry.name)
                }
                logger.info("model server is preparing the model", metadata: ["model": "\(entry.name)", "retry_after": "\(seconds)"])
                try await Task.sleep(for: .seconds(seconds))
            case .complete(let sha, let total, let received, let from):
                downloaded += received
                let have = Self.size(part) ?? 0
                guard have == total else {
                    lastError = Failure.incomplete(file: entry.file, expected: total, actual: have)
                    continue
                }
                let actual = try await BlockingWork.run("tandem-model-hash") { try ModelShipping.sha256(of: part) }
                guard actual == sha else {
                    refused += 1
                    lastError = Failure.digestMismatch(file: entry.file, expected: sha, actual: actual)
                    logger.warning("downloaded model has the wrong sha256; discarded and fetched again", metadata: [
                        "model": "\(entry.name)", "expected": "\(sha)", "actual": "\(actual)", "attempt": "\(attempt)"])
                    try? FileManager.default.removeItem(at: part)
                    try? FileManager.default.removeItem(at: partTag)
                    continue
                }
                try? FileManager.default.removeItem(at: final)
                try FileManager.default.moveItem(at: part, to: final)
                try? FileManager.default.removeItem(at: partTag)
                try ModelShipping.writeMarker(sha256: sha, for: final)
                logger.info("model downloaded and verified", metadata: [
                    "model": "\(entry.name)", "path": "\(final.path)", "bytes": "\(total)", "resumed_from": "\(from)"])
                return Result(url: final, sha256: sha, downloadedBytes: downloaded, resumedFrom: from, refused: refused)
            }
        }
        throw lastError ?? Failure.http(status: 0, message: "no attempt was made")
    }

    /// `file` if it exists with `bytes` bytes and `sha256` (by its marker, or hashed once and then marked).
    private func verifiedLocalCopy(_ file: URL, sha256: String, bytes: Int64?) async throws -> URL? {
        guard let size = Self.size(file), bytes == nil || size == bytes else { return nil }
        if let marked = ModelShipping.readMarker(for: file) { return marked == sha256 ? file : nil }
        let actual = try await BlockingWork.run("tandem-model-hash") { try ModelShipping.sha256(of: file) }
        guard actual == sha256 else { return nil }
        try? ModelShipping.writeMarker(sha256: actual, for: file)
        return file
    }

    private enum DownloadStep {
        case preparing(seconds: Int)
        /// The body arrived: the file's digest (`ETag`), its total size, bytes received, the offset resumed from.
        case complete(sha256: String, total: Int64, received: Int64, from: Int64)
    }

    /// One GET of `name` into `part`: continues the part when it has bytes and a recorded ETag.
    private func download(_ name: String, to part: URL, tag: URL) async throws -> DownloadStep {
        var have = Self.size(part) ?? 0
        let partTag = (try? String(contentsOf: tag, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if have > 0 && partTag == nil {
            // Bytes of an unknown version: cannot be resumed safely.
            try? FileManager.default.removeItem(at: part)
            have = 0
        }
        var request = HTTPClientRequest(url: baseURL + ModelShipping.filePath(name))
        authorize(&request)
        if have > 0, let partTag {
            request.headers.add(name: "Range", value: "bytes=\(have)-")
            request.headers.add(name: "If-Range", value: partTag)
        }
        let response = try await client.execute(request, timeout: .seconds(Int64(downloadTimeout.components.seconds)))
        switch response.status {
        case .ok, .partialContent:
            break
        case .serviceUnavailable:
            _ = try? await response.body.collect(upTo: 1 << 20)
            let seconds = response.headers.first(name: "Retry-After").flatMap(Int.init) ?? 2
            return .preparing(seconds: max(1, min(seconds, 30)))
        case .notFound:
            _ = try? await response.body.collect(upTo: 1 << 20)
            throw Failure.notFound(name)
        case .rangeNotSatisfiable:
            // The part is not a prefix of this file (e.g. as long as it): start over.
            _ = try? await response.body.collect(upTo: 1 << 20)
            try? FileManager.default.removeItem(at: part)
            try? FileManager.default.removeItem(at: tag)
            throw Failure.http(status: 416, message: "partial file does not fit the model; restarting")
        default:
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { String(buffer: $0) } ?? ""
            throw Failure.http(status: Int(response.status.code), message: body)
        }
        guard let etag = response.headers.first(name: "ETag"), let sha = Self.digest(fromETag: etag) else {
            throw Failure.noDigest(name)
        }
        let from: Int64
        let total: Int64
        if response.status == .partialContent {
            guard let range = response.headers.first(name: "Content-Range"), let parsed = Self.contentRange(range),
                  parsed.start == have, etag == partTag else {
                try? FileManager.default.removeItem(at: part)
                try? FileManager.default.removeItem(at: tag)
                throw Failure.http(status: 206, message: "unexpected partial response; restarting")
            }
            (from, total) = (have, parsed.total)
        } else {
            // The whole file: what the part held (if anything) was of another version.
            guard let length = response.headers.first(name: "Content-Length").flatMap(Int64.init) else {
                throw Failure.http(status: 200, message: "no Content-Length")
            }
            (from, total) = (0, length)
            _ = FileManager.default.createFile(atPath: part.path, contents: nil)
            try etag.write(to: tag, atomically: true, encoding: .utf8)
        }
        let handle = try FileHandle(forWritingTo: part)
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(from))
        try handle.seekToEnd()
        var received: Int64 = 0
        for try await buffer in response.body {
            try buffer.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
            received += Int64(buffer.readableBytes)
            if from + received > total {
                throw Failure.incomplete(file: part.lastPathComponent, expected: total, actual: from + received)
            }
        }
        try handle.synchronize()
        return .complete(sha256: sha, total: total, received: received, from: from)
    }

    private func authorize(_ request: inout HTTPClientRequest) {
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
    }

    /// The sha256 in an ETag (`"<64 hex>"`, optionally weak-prefixed).
    static func digest(fromETag etag: String) -> String? {
        var value = Substring(etag)
        if value.hasPrefix("W/") { value = value.dropFirst(2) }
        let hex = value.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return hex.count == 64 && hex.allSatisfy(\.isHexDigit) ? hex.lowercased() : nil
    }

    /// `bytes <start>-<end>/<total>`.
    static func contentRange(_ header: String) -> (start: Int64, end: Int64, total: Int64)? {
        let parts = header.trimmingCharacters(in: .whitespaces).split(separator: " ")
        guard parts.count == 2, parts[0].lowercased() == "bytes" else { return nil }
        let rangeAndTotal = parts[1].split(separator: "/")
        guard rangeAndTotal.count == 2, let total = Int64(rangeAndTotal[1]) else { return nil }
        let bounds = rangeAndTotal[0].split(separator: "-")
        guard bounds.count == 2, let start = Int64(bounds[0]), let end = Int64(bounds[1]) else { return nil }
        return (start, end, total)
    }

    static func size(_ url: URL) -> Int64? { ModelShipping.fileStat(url)?.size }
}
