import Foundation
import TandemService
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A whole Tandem cluster (`tandem up --ephemeral`) as real processes, for end-to-end tests.
final class TestCluster: Sendable {
    let up: ProductProcess
    let http: String
    let control: String
    /// Process ids by name (`verifier-1`, `drafter-2`, `gateway`, ...).
    let pids: [String: Int32]
    let dataDir: String

    /// - Parameter environment: added to the services' environment (besides `TANDEM_MODELS`, which is passed on).
    static func start(target: String, draft: String, verifiers: Int = 1, drafters: Int = 1,
                      timeout: Duration = .seconds(300), environment: [String: String] = [:]) async throws -> TestCluster {
        let dataDir = NSTemporaryDirectory() + "tandem-cluster-\(UUID().uuidString.prefix(8))"
        let up = try ProductProcess(product: "tandem", arguments: [
            "up", "--ephemeral", "--target-model", target, "--draft-model", draft,
            "--verifiers", "\(verifiers)", "--drafters", "\(drafters)", "--data-dir", dataDir,
            "--start-timeout", "\(Int(timeout.components.seconds))",
        ], environment: ProcessInfo.processInfo.environment.filter { $0.key == "TANDEM_MODELS" }
            .merging(environment) { $1 })
        let ready: String
        do {
            ready = try await up.waitForLine(prefix: "READY http=", timeout: timeout + .seconds(30))
        } catch {
            await up.kill()
            throw StartFailure(description: "\(error)\n" + serviceLogTails(dataDir))
        }
        let fields = ReadyLine.parse(ready) ?? [:]
        var pids: [String: Int32] = [:]
        for pair in (up.stdoutLines.first { $0.hasPrefix("PIDS ") } ?? "").dropFirst(5).split(separator: " ") {
            let parts = pair.split(separator: "=")
            if parts.count == 2, let pid = Int32(parts[1]) { pids[String(parts[0])] = pid }
        }
        return TestCluster(up: up, http: fields["http"] ?? "", control: fields["control"] ?? "", pids: pids,
                           dataDir: dataDir)
    }

    /// Why a cluster did not come up: `tandem up`'s exit status and output, then each service's log.
    struct StartFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// The tail of every service log `tandem up` wrote under `dataDir/logs` (stdout and stderr
    /// of each service), so a start that hung or failed shows what each service last said.
    static func serviceLogTails(_ dataDir: String, characters: Int = 1500) -> String {
        let logs = dataDir + "/logs"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []).sorted()
        guard !names.isEmpty else { return "(no service logs in \(logs))" }
        return names.map { name in
            let text = (try? String(contentsOfFile: logs + "/" + name, encoding: .utf8)) ?? ""
            let tail = text.suffix(characters).trimmingCharacters(in: .whitespacesAndNewlines)
            return "--- \(logs)/\(name) ---\n" + (tail.isEmpty ? "(empty)" : tail)
        }.joined(separator: "\n")
    }

    private init(up: ProductProcess, http: String, control: String, pids: [String: Int32], dataDir: String) {
        self.up = up
        self.http = http
        self.control = control
        self.pids = pids
        self.dataDir = dataDir
    }

    /// SIGTERM to `tandem up` (which stops every service); SIGKILL leftovers.
    func stop() async {
        await up.stop(timeout: .seconds(20))
        for pid in pids.values where Glibc.kill(pid, 0) == 0 { _ = Glibc.kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    func kill(_ name: String) {
        if let pid = pids[name] { _ = Glibc.kill(pid, SIGKILL) }
    }

    // MARK: HTTP

    struct HTTPResult: Sendable {
        var status: Int
        var body: Data
        var headers: [String: String]
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func request(_ method: String, _ path: String, body: Data? = nil, timeout: TimeInterval = 300) async throws -> HTTPResult {
        var request = URLRequest(url: URL(string: http + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields { headers["\(k)".lowercased()] = "\(v)" }
        return HTTPResult(status: http.statusCode, body: data, headers: headers)
    }

    func post(_ path: String, _ json: [String: Any]) async throws -> HTTPResult {
        try await request("POST", path, body: try JSONSerialization.data(withJSONObject: json))
    }

    /// Non-streamed completion text (fails the caller's expectations through the status).
    func completion(_ json: [String: Any]) async throws -> (text: String, result: HTTPResult) {
        let r = try await post("/v1/completions", json)
        let choice = (r.json?["choices"] as? [[String: Any]])?.first
        return (choice?["text"] as? String ?? "", r)
    }

    /// A streamed request's events: the data payloads in order (including `[DONE]`).
    func streamEvents(_ path: String, _ json: [String: Any]) async throws -> [String] {
        var body = json
        body["stream"] = true
        let r = try await post(path, body)
        return r.text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }

    /// Replica ids of a role that report at least one active session in a heartbeat sent after
    /// `since` (epoch ms; older heartbeats may describe a session that already ended).
    func busyReplicas(role: String, since: Double = 0) async throws -> [String] {
        let r = try await request("GET", "/v1/cluster")
        let replicas = (r.json?["replicas"] as? [[String: Any]]) ?? []
        return replicas.compactMap { info in
            guard let reg = info["registration"] as? [String: Any], reg["role"] as? String == role,
                  info["alive"] as? Bool == true, (info["lastHeartbeat"] as? Double ?? 0) > since,
                  let load = info["load"] as? [String: Any], (load["activeSessions"] as? Int ?? 0) > 0
            else { return nil }
            return reg["replicaID"] as? String
        }
    }
}

/// Concatenated `content` (chat) or `text` (completions) of stream events, and the last finish reason.
func assemble(_ events: [String]) -> (text: String, finish: String?, sawDone: Bool) {
    var text = ""
    var finish: String?
    for event in events where event != "[DONE]" {
        guard let json = (try? JSONSerialization.jsonObject(with: Data(event.utf8))) as? [String: Any],
              let choice = (json["choices"] as? [[String: Any]])?.first else { continue }
        if let delta = choice["delta"] as? [String: Any], let c = delta["content"] as? String { text += c }
        if let t = choice["text"] as? String { text += t }
        if let f = choice["finish_reason"] as? String { finish = f }
    }
    return (text, finish, events.last == "[DONE]")
}

/// The directory holding the reference scripts.
let referenceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Reference")

/// Path of a cached model file, or nil (tests skip visibly).
func cachedModel(_ fileName: String) -> String? {
    let dir = ProcessInfo.processInfo.environment["TANDEM_MODELS"].flatMap { $0.isEmpty ? nil : $0 }
        ?? (NSHomeDirectory() + "/.cache/tandem/models")
    let path = dir + "/" + fileName
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// Runs a command to completion on its own thread (never on Swift's cooperative pool, which has
/// only as many threads as cores) and returns its exit status and combined output.
func runProcess(_ arguments: [String], mergeStandardError: Bool = false) async throws -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = mergeStandardError ? out : FileHandle.nullDevice
    try process.run()
    return await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            continuation.resume(returning: (process.terminationStatus, data))
        }
    }
}
