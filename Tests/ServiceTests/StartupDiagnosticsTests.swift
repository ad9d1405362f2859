import Foundation
import Testing
import TandemService
#if canImport(Glibc)
import Glibc
#endif

/// A process that fails to start must say why. Issue 11: a `tandem up` cluster exited 1 before
/// READY with an empty stderr, because `tandem up` wrote its failure to stdout and the harness
/// showed only stderr. These start real processes that fail early on purpose (no model needed).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct StartupDiagnosticsTests {
    /// A service failing during `tandem up` (here the gateway, given a model file that does not
    /// exist) makes `tandem up` exit 1 with the service's name, its exit status and its own last
    /// words on stderr; and the harness error carries all of it.
    @Test func tandemUpFailureSaysWhyOnStderr() async throws {
        let dataDir = NSTemporaryDirectory() + "tandem-diag-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let missing = dataDir + "/no-such-model.gguf"
        let up = try ProductProcess(product: "tandem", arguments: [
            "up", "--ephemeral", "--target-model", missing, "--draft-model", missing, "--data-dir", dataDir,
            "--start-timeout", "30",
        ])
        var failure: String?
        do {
            _ = try await up.waitForLine(prefix: "READY http=", timeout: .seconds(60))
        } catch {
            failure = "\(error)"
        }
        let status = await up.waitForExit(timeout: .seconds(20))
        if status == nil { await up.kill() }
        #expect(status == 1)
        let stderr = up.logTail()
        #expect(stderr.contains("tandem up failed: gateway exited before its READY line (exited with status 1)"), "\(stderr)")
        #expect(stderr.contains("no-such-model.gguf"), "the gateway's own error is quoted: \(stderr)")
        let message = try #require(failure)
        #expect(message.contains("exited with status 1"), "\(message)")
        #expect(message.contains("--- stdout") && message.contains("Starting Tandem"), "\(message)")
        #expect(message.contains("tandem up failed"), "\(message)")
    }

    /// The harness reports a child's exit status and both output streams: a metrics-store told to
    /// bind a port this test already listens on exits, and the error quotes the bind failure.
    @Test func harnessReportsExitStatusAndOutputOfAFailedStart() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) }
        }
        try #require(bound == 0 && listen(listener, 1) == 0)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) }
        }
        let taken = "tcp://127.0.0.1:\(UInt16(bigEndian: addr.sin_port))"
        let db = NSTemporaryDirectory() + "diag-\(UUID().uuidString.prefix(8)).sqlite"
        defer { try? FileManager.default.removeItem(atPath: db) }
        let store = try ProductProcess(product: "metrics-store", arguments: [
            "--xsub-bind", taken, "--xpub-bind", "tcp://127.0.0.1:*", "--query-bind", "tcp://127.0.0.1:*",
            "--db", db, "--no-register",
        ])
        do {
            let line = try await store.waitForLine(prefix: "READY ", timeout: .seconds(30))
            Issue.record("metrics-store started on a port in use: \(line)")
            await store.kill()
        } catch {
            let message = "\(error)"
            #expect(message.contains("metrics-store exited before printing 'READY '"), "\(message)")
            #expect(message.contains("exited with status"), "\(message)")
            #expect(message.contains("Address already in use"), "\(message)")
        }
    }
}
