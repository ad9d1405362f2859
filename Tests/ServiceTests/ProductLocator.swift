import Foundation
import Synchronization
@testable import TandemCLI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the executables SwiftPM built (`metrics-store`, `gateway`, …) so a test can run a
/// service as a real, separate process.
///
/// Search order, first hit wins:
/// 1. `$TANDEM_PRODUCTS_DIR/<product>` (set it to run tests against another build).
/// 2. Next to the running test binary: SwiftPM puts the test bundle
///    (`TandemPackageTests.xctest`) in the same `<scratch>/<triple>/debug` directory as the
///    products, so the directory of `Bundle.main`/`CommandLine.arguments[0]` (and, for a macOS
///    bundle, its parents) is checked. This picks the build of *your* `--scratch-path`.
/// 3. `<package root>/.build/debug/<product>`, from this file's `#filePath`.
///
/// `swift build --build-tests` does not necessarily link executable products: build the ones a
/// test needs first, e.g. `swift build --scratch-path .build-x --product metrics-store`.
enum ProductLocator {
    struct NotFound: Error, CustomStringConvertible {
        let product: String
        let searched: [String]
        var description: String {
            "built product '\(product)' not found (searched: \(searched.joined(separator: ", "))); "
                + "build it first: swift build --scratch-path <yours> --product \(product)"
        }
    }

    /// The executable file of `product`.
    static func url(for product: String, filePath: String = #filePath) throws -> URL {
        let searched = candidateDirectories(filePath: filePath)
        for directory in searched {
            let candidate = directory.appendingPathComponent(product)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        throw NotFound(product: product, searched: searched.map(\.path))
    }

    static func candidateDirectories(filePath: String = #filePath) -> [URL] {
        var directories: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["TANDEM_PRODUCTS_DIR"], !dir.isEmpty {
            directories.append(URL(fileURLWithPath: dir))
        }
        var binaries: [URL] = []
        if let main = Bundle.main.executableURL { binaries.append(main) }
        if let first = CommandLine.arguments.first, !first.isEmpty {
            binaries.append(URL(fileURLWithPath: first).standardizedFileURL)
        }
        binaries.append(Bundle(for: LocatorAnchor.self).bundleURL)
        for binary in binaries {
            var dir = binary.deletingLastPathComponent()
            for _ in 0..<4 {
                if !directories.contains(dir) { directories.append(dir) }
                dir = dir.deletingLastPathComponent()
            }
        }
        // Tests/ServiceTests/ProductLocator.swift → package root.
        let root = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        directories.append(root.appendingPathComponent(".build/debug"))
        return directories
    }

    private final class LocatorAnchor {}
}

/// A built product running as a child process for a test.
///
/// stdout is read on a dedicated thread and kept as lines (wait for a readiness line such as
/// metrics-store's `READY …` with ``waitForLine(prefix:timeout:)``); stderr goes to a log file
/// (``logPath``) kept for diagnostics. Inherited `TANDEM_*` variables are removed so the child
/// only sees the configuration the test gives it. Always call ``stop(timeout:)`` (or ``kill()``)
/// when done: every wait here is bounded, so a wedged child fails a test instead of hanging it.
final class ProductProcess: Sendable {
    let product: String
    let logPath: String
    private let process: Process
    private let lines = LineBuffer()

    init(product: String, arguments: [String], environment: [String: String] = [:]) throws {
        self.product = product
        let url = try ProductLocator.url(for: product)
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TANDEM_") }
        env.merge(environment) { _, new in new }
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        logPath = NSTemporaryDirectory() + "\(product)-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardInput = FileHandle.nullDevice
        self.process = process
        try process.run()
        let handle = out.fileHandleForReading
        let lines = self.lines
        let reader = Thread {
            var partial = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                partial.append(chunk)
                while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
                    partial.removeSubrange(partial.startIndex...newline)
                    lines.append(line)
                }
            }
            if !partial.isEmpty { lines.append(String(decoding: partial, as: UTF8.self)) }
            lines.close()
        }
        reader.name = "\(product)-stdout"
        reader.start()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stdoutLines: [String] { lines.all }

    /// The last `characters` of the child's stderr log.
    func logTail(_ characters: Int = 4000) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return String(text.suffix(characters))
    }

    struct Timeout: Error, CustomStringConvertible {
        let what: String
        var description: String { what }
    }

    /// How the child ended ("exited with status 1", "killed by signal 9"), or "still running".
    var exitDescription: String { process.exitDescription }

    /// Everything a failure report needs: the exit status and the tails of stdout and stderr.
    /// After an exit, first waits (up to 1 s) for the stdout reader to reach end-of-file, so the
    /// child's last words are included.
    func diagnostics(stdoutLines count: Int = 30, stderrCharacters: Int = 4000) async -> String {
        if !process.isRunning {
            let end = ContinuousClock.now + .seconds(1)
            while !lines.isClosed, ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(10)) }
        }
        let out = stdoutLines.suffix(count).joined(separator: "\n")
        let err = logTail(stderrCharacters).trimmingCharacters(in: .whitespacesAndNewlines)
        return "\(product) (pid \(pid)) \(exitDescription)\n--- stdout (last \(count) lines) ---\n"
            + (out.isEmpty ? "(empty)" : out) + "\n--- stderr (\(logPath)) ---\n" + (err.isEmpty ? "(empty)" : err)
    }

    /// Waits for the first stdout line starting with `prefix`. Fails (with ``diagnostics()``) as
    /// soon as the child exits, or after `timeout`.
    func waitForLine(prefix: String, timeout: Duration) async throws -> String {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let line = stdoutLines.first(where: { $0.hasPrefix(prefix) }) { return line }
            if !process.isRunning {
                let report = await diagnostics()
                // It may have printed the line just before exiting; the reader has drained stdout now.
                if let line = stdoutLines.first(where: { $0.hasPrefix(prefix) }) { return line }
                throw Timeout(what: "\(product) exited before printing '\(prefix)': \(report)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Timeout(what: "\(product) printed no '\(prefix)' line within \(timeout): \(await diagnostics())")
    }

    func signal(_ signal: Int32) {
        if process.isRunning { _ = Foundation.kill(process.processIdentifier, signal) }
    }

    /// Waits for the child to exit; its termination status, or nil if it still runs after `timeout`.
    func waitForExit(timeout: Duration) async -> Int32? {
        let end = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= end { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// SIGKILL, then wait for the exit.
    func kill() async {
        signal(SIGKILL)
        _ = await waitForExit(timeout: .seconds(10))
    }

    /// SIGTERM, wait up to `timeout` for a graceful exit, else SIGKILL. Returns the exit status
    /// of a graceful exit, nil if it had to be killed.
    @discardableResult
    func stop(timeout: Duration = .seconds(10)) async -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        signal(SIGTERM)
        if let status = await waitForExit(timeout: timeout) { return status }
        await kill()
        return nil
    }
}

/// Lines read from a child's stdout, shared between the reader thread and the test.
private final class LineBuffer: Sendable {
    private let lines = Mutex<[String]>([])
    private let closed = Mutex(false)
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    /// The reader saw end-of-file: every line the child wrote is in.
    func close() { closed.withLock { $0 = true } }
    var isClosed: Bool { closed.withLock { $0 } }
}
