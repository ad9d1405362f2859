import Foundation

/// Runs short helper commands (python one-liners, validators) from tests and returns their exit status
/// and combined stdout+stderr.
///
/// Blocking on purpose: the commands take well under a second and the tests calling it are synchronous;
/// async tests that drive the services use `runProcess` in ServiceTests instead.
public enum ShortCommand {
    /// Runs `/usr/bin/env <arguments>`, so the first argument is looked up on PATH.
    public static func run(_ arguments: [String]) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }
}
