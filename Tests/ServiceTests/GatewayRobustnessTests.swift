import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The gateway under hostile HTTP clients: pathological JSON, wrong content types, a thousand
/// connections at once and connections that never send a request. Each gets a clear answer (or is
/// closed) and the gateway keeps serving.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct GatewayRobustnessTests {
    static var completion: [String: Any] { ["prompt": "Hi", "max_tokens": 2] }

    @Test func pathologicalJSONIsA400AndTheGatewayKeepsServing() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            let completions = "/v1/completions"
            let deep = Array(#"{"prompt":"#.utf8) + [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
                + [UInt8](repeating: UInt8(ascii: "]"), count: 100_000) + [UInt8(ascii: "}")]
            let bodies: [(String, [UInt8])] = [
                ("100,000 nested arrays", deep),
                ("truncated JSON", Array(#"{"prompt": "Hi", "max_tokens": 2"#.utf8)),
                ("a top-level array", Array(#"[{"prompt": "Hi"}]"#.utf8)),
                ("a top-level string", Array(#""Hi""#.utf8)),
                ("prompt as an object", Array(#"{"prompt": {"text": "Hi"}}"#.utf8)),
                ("max_tokens past Int", Array(#"{"prompt": "Hi", "max_tokens": 1e300}"#.utf8)),
                ("seed past Int64", Array(#"{"prompt": "Hi", "seed": 18446744073709551616}"#.utf8)),
                ("a form-encoded body", Array("prompt=Hi&max_tokens=2".utf8)),
                ("an empty body", []),
                ("a NUL byte", Array(#"{"prompt": "Hi"#.utf8) + [0] + Array(#""}"#.utf8)),
            ]
            for (what, body) in bodies {
                let r = try await client.post(completions, raw: body)
                #expect(r.status == .badRequest, "\(what): \(r.status) \(r.text.prefix(200))")
                let error = r.json?["error"] as? [String: Any]
                #expect(error?["type"] as? String == "invalid_request_error", "\(what): \(r.text.prefix(200))")
                #expect((error?["message"] as? String)?.isEmpty == false, "\(what)")
            }
            let chat: [(String, String)] = [
                ("messages as a string", #"{"messages": "hi"}"#),
                ("content as a number", #"{"messages": [{"role": "user", "content": 7}]}"#),
                ("a message without a role", #"{"messages": [{"content": "hi"}]}"#),
            ]
            for (what, body) in chat {
                let r = try await client.post("/v1/chat/completions", raw: Array(body.utf8))
                #expect(r.status == .badRequest, "\(what): \(r.status) \(r.text.prefix(200))")
            }
            // A JSON body is served whatever content type the client put on it (as llama-server does):
            // `curl -d` sends application/x-www-form-urlencoded.
            for type in ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-8"] {
                let r = try await client.execute(
                    uri: completions, method: .post, headers: [.contentType: type],
                    body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: Self.completion)))
                #expect(r.status == .ok, "content type \(type): \(r.status)")
            }
            #expect(try await client.post(completions, Self.completion).status == .ok)
        }
    }

    @Test func aThousandConnectionsAtOnceAllGetAnAnswer() async throws {
        try raiseOpenFileLimit(to: 4096)
        let g = try InProcessGateway(maxSessions: 8)
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test(.live) { client in
            let port = try #require(client.port)
            let statuses = try await onThread { try rawRequests(port: port, count: 1000) }
            let counts = Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count)
            // Every connection got an HTTP answer: served, or 429 with Retry-After while the sessions are full.
            #expect(statuses.count == 1000)
            #expect(Set(counts.keys).isSubset(of: [200, 429]), "\(counts)")
            #expect(counts[200, default: 0] >= 8, "\(counts)")
            // And the gateway serves as before.
            #expect(try await client.post("/v1/completions", Self.completion).status == .ok)
        }
    }

    @Test func aConnectionThatNeverSendsARequestIsClosed() async throws {
        let g = try InProcessGateway(httpIdleTimeout: .seconds(1))
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test(.live) { client in
            let port = try #require(client.port)
            // Half a request line, then silence: closed by the server (read returns 0) within a few seconds.
            let closedAfter = try await onThread { try secondsUntilClosed(port: port, sending: "POST /v1/compl") }
            #expect(closedAfter >= 0, "the server kept a silent connection open for 10 s")
            #expect(closedAfter < 5)
            // The test client's own idle connection was closed too; a new connection is served.
            #expect(try await onThread { try rawRequests(port: port, count: 1) } == [200])
        }
    }

    @Test func aRequestWhoseBodyStallsIsClosed() async throws {
        let g = try InProcessGateway(httpIdleTimeout: .seconds(1))
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test(.live) { client in
            let port = try #require(client.port)
            // A complete head announcing 100 bytes, 10 of them, then silence (a slow-loris body): the handler
            // is already waiting for the body, and the connection must still be closed, not held forever.
            let head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: 100\r\n\r\n{\"prompt\":"
            let closedAfter = try await onThread { try secondsUntilClosed(port: port, sending: head) }
            #expect(closedAfter >= 0, "the server kept a connection with a stalled body open for 10 s")
            #expect(closedAfter < 5)
            #expect(try await onThread { try rawRequests(port: port, count: 1) } == [200])
        }
    }
}

/// Sends `text` on a new connection and waits (at most 10 s) for the server to close it, reading and
/// discarding whatever it answers first; returns the seconds until the close, or -1 if it stayed open.
func secondsUntilClosed(port: Int, sending text: String) throws -> Double {
    let fd = try connectLoopback(port: port)
    defer { close(fd) }
    _ = text.withCString { send(fd, $0, strlen($0), 0) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let start = Date()
    var buffer = [UInt8](repeating: 0, count: 512)
    while Date().timeIntervalSince(start) < 10 {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n == 0 { return Date().timeIntervalSince(start) }
        if n < 0 { return errno == ECONNRESET ? Date().timeIntervalSince(start) : -1 }
    }
    return -1
}

/// Runs blocking socket work on its own thread (never on the cooperative pool the server's handlers need).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

struct SocketFailure: Error, CustomStringConvertible {
    var description: String
}

func raiseOpenFileLimit(to wanted: rlim_t) throws {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    guard limit.rlim_cur < wanted else { return }
    limit.rlim_cur = min(wanted, limit.rlim_max)
    guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur >= wanted else {
        throw SocketFailure(description: "cannot raise the open-file limit to \(wanted) (hard limit \(limit.rlim_max))")
    }
}

func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SocketFailure(description: "socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        close(fd)
        throw SocketFailure(description: "connect: errno \(errno)")
    }
    return fd
}

/// Opens `count` connections, sends one completion request on each (all before reading any answer),
/// then reads each answer's status code.
func rawRequests(port: Int, count: Int) throws -> [Int] {
    let body = #"{"prompt":"Hi","max_tokens":2}"#
    let request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    var sockets: [Int32] = []
    defer { for fd in sockets { close(fd) } }
    for _ in 0..<count {
        let fd = try connectLoopback(port: port)
        sockets.append(fd)
        let sent = request.withCString { send(fd, $0, strlen($0), 0) }
        guard sent == request.utf8.count else { throw SocketFailure(description: "short send: \(sent)") }
    }
    return sockets.map { fd in
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while head.count < 12 {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            head += buffer[0..<n]
        }
        // "HTTP/1.1 200 OK"
        let line = String(decoding: head.prefix(12), as: UTF8.self)
        return Int(line.dropFirst(9).prefix(3)) ?? -1
    }
}
