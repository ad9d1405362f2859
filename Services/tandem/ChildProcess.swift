import Foundation
import TandemService

/// A service started by `tandem up`: its stdout is scanned for the READY line, and both its
/// stdout and stderr go to a log file (``logPath``), whose tail explains a failed start.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let process = Process()
    let logPath: String
    private let lock = NSLock()
    private var ready: [String: String]?
    private var buffer = Data()
    private var stdoutClosed = false

    init(name: String, executable: String, arguments: [String], environment: [String: String], logDirectory: String) throws {
        self.name = name
        self.logPath = (logDirectory as NSString).appendingPathComponent("\(name).log")
        // A restarted child (tandem chaos) appends to the log of its predecessor.
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        _ = try? log.seekToEnd()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        process.standardOutput = out
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            if data.isEmpty {
                handle.readabilityHandler = nil
                self.lock.withLock { self.stdoutClosed = true }
                return
            }
            log.write(data)
            self.consume(data)
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    var exitDescription: String { process.exitDescription }

    /// The last `characters` of the log (stdout and stderr). After an exit, first waits briefly
    /// for the stdout reader to reach end-of-file, so the final lines (usually the reason) are in.
    func logTail(_ characters: Int = 3000) async -> String {
        await drainStdout()
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return String(text.suffix(characters))
    }

    /// After an exit, waits (up to 1 s) until the stdout reader has read everything.
    private func drainStdout() async {
        guard !process.isRunning else { return }
        let deadline = ContinuousClock.now + .seconds(1)
        while !lock.withLock({ stdoutClosed }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// "<name> <exit description>; last output (<log path>): <tail>", for error messages.
    func failureReport(_ what: String) async -> String {
        let tail = await logTail().trimmingCharacters(in: .whitespacesAndNewlines)
        return "\(name) \(what) (\(exitDescription)); last output (\(logPath)):\n"
            + (tail.isEmpty ? "(empty)" : tail)
    }

    private func consume(_ data: Data) {
        lock.lock()
        buffer.append(data)
        var found: [String: String]?
        while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
            buffer.removeSubrange(buffer.startIndex...nl)
            if found == nil, ready == nil, let fields = ReadyLine.parse(line) { found = fields }
        }
        lock.unlock()
        if let found { resolveReady(found) }
    }

    private func resolveReady(_ fields: [String: String]?) {
        lock.lock()
        if ready == nil, let fields { ready = fields }
        lock.unlock()
    }

    /// The READY fields, or nil if the process exited (or the timeout passed) first.
    func waitReady(timeout: Duration) async -> [String: String]? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = lock.withLock({ ready }) { return value }
            if !process.isRunning {
                // It may have printed READY just before exiting: look once more after the reader drained.
                await drainStdout()
                return lock.withLock { ready }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }
}

extension Process {
    /// How the process ended ("exited with status 1", "killed by signal 9"), or "still running".
    /// (The process tests' `ProductProcess` uses it too.)
    var exitDescription: String {
        if isRunning { return "still running" }
        switch terminationReason {
        case .exit: return "exited with status \(terminationStatus)"
        case .uncaughtSignal: return "killed by signal \(terminationStatus)"
        @unknown default: return "ended (status \(terminationStatus))"
        }
    }
}
