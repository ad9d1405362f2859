#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Helpers to spell zmq endpoints. Services take endpoints from a command-line flag, else an
/// environment variable, else a default port on loopback, and accept short forms so operators
/// can type `5560` or `host:5560` instead of `tcp://host:5560`.
public enum BusAddress {
    /// The host services bind and connect to unless told otherwise.
    public static let defaultHost = "127.0.0.1"

    /// `tcp://host:port`.
    public static func tcp(host: String = defaultHost, port: Int) -> String {
        "tcp://\(host):\(port)"
    }

    /// `tcp://host:*`: bind to an ephemeral port; read the real one from `boundEndpoint`.
    public static func ephemeralTCP(host: String = defaultHost) -> String {
        "tcp://\(host):*"
    }

    /// `ipc://path` (a Unix domain socket path).
    public static func ipc(path: String) -> String {
        "ipc://\(path)"
    }

    /// Normalizes an endpoint: full zmq endpoints (`tcp://`, `ipc://`, `inproc://`) pass through;
    /// a bare port becomes `tcp://127.0.0.1:port`, `host:port` becomes `tcp://host:port`, and a
    /// path starting with `/` or `.` becomes `ipc://path`.
    public static func normalize(_ text: String) throws -> String {
        let trimmed = text.trimmingCharactersInWhitespace()
        if trimmed.isEmpty { throw BusError.invalidEndpoint(text) }
        if trimmed.contains("://") { return trimmed }
        if trimmed.hasPrefix("/") || trimmed.hasPrefix(".") { return ipc(path: trimmed) }
        if trimmed == "*" || (Int(trimmed).map { $0 >= 0 && $0 < 65536 } ?? false) {
            return "tcp://\(defaultHost):\(trimmed)"
        }
        if let colon = trimmed.lastIndex(of: ":") {
            let port = trimmed[trimmed.index(after: colon)...]
            if port == "*" || Int(port) != nil { return "tcp://\(trimmed)" }
        }
        throw BusError.invalidEndpoint(text)
    }

    /// Picks the endpoint from `flag` if given, else from the environment variable `env` if set
    /// and non-empty, else `default`; then normalizes it (see `normalize`).
    public static func resolve(
        flag: String?, env: String?, default defaultValue: String,
        environment: [String: String]? = nil
    ) throws -> String {
        if let flag, !flag.isEmpty { return try normalize(flag) }
        if let env {
            let value: String?
            if let environment {
                value = environment[env]
            } else {
                value = getenv(env).map { String(cString: $0) }
            }
            if let value, !value.isEmpty { return try normalize(value) }
        }
        return try normalize(defaultValue)
    }

    /// The endpoint a client should connect to for a server bound at `endpoint`: wildcard hosts
    /// (`*`, `0.0.0.0`) are replaced by loopback.
    public static func connectable(_ endpoint: String) -> String {
        for wildcard in ["tcp://*:", "tcp://0.0.0.0:"] where endpoint.hasPrefix(wildcard) {
            return "tcp://\(defaultHost):" + endpoint.dropFirst(wildcard.count)
        }
        return endpoint
    }
}

extension String {
    fileprivate func trimmingCharactersInWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
