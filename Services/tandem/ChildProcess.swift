import Foundation
import TandemService

/// A service started by `tandem up`: its stdout is scanned for the READY line, its stderr goes
/// to a log file.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let process = Process()
    let logPath: String
    private let lock = NSLock()
    private var ready: [String: String]?
    private var buffer = Data()

    init(name: String, executable: String, arguments: [String], environment: [String: String], logDirectory: String) throws {
        self.name = name
        self.logPath = (logDirectory as NSString).appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
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
                return
            }
            log.write(data)
            self.consume(data)
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

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
            if !process.isRunning { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }
}
