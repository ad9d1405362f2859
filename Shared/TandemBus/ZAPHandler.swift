import CZeroMQ
import Foundation
import Logging
import Synchronization

/// The context's ZeroMQ authentication handler (ZAP, RFC 27): libzmq asks it about every CURVE
/// handshake on a bound socket, and it accepts exactly the authorised client keys.
///
/// Why a handler at all: a CURVE server without one accepts any client that knows the server's
/// public key, which is public. With it, an unknown process cannot register as a replica, send
/// verification requests or publish events. It owns one REP socket on its own OS thread (sockets
/// are not thread-safe), bound before any server socket exists so no handshake can slip past it,
/// and it ends when the context terminates (the blocking receive fails with ETERM).
final class ZAPHandler: @unchecked Sendable {
    /// The ZAP domain Tandem's server sockets declare.
    static let domain = "tandem"
    private static let endpoint = "inproc://zeromq.zap.01"

    private let socket: ZMQSocket
    private let authorized: AuthorizedCurveKeys
    private let logger: Logger
    private let counts = Mutex<(accepted: Int, refused: Int, loggedRefusals: Set<String>)>((0, 0, []))

    /// Handshakes accepted and refused so far.
    var accepted: Int { counts.withLock { $0.accepted } }
    var refused: Int { counts.withLock { $0.refused } }

    init(context: BusContext, authorized: AuthorizedCurveKeys, logger: Logger) throws {
        self.socket = try ZMQSocket(context: context, type: ZMQ_REP)
        self.authorized = authorized
        self.logger = logger
        do {
            try socket.set(ZMQ_LINGER, 0)
            try socket.bind(Self.endpoint)
        } catch {
            socket.close()
            throw error
        }
        let thread = Thread { [self] in serve() }
        thread.name = "tandem-bus-zap"
        thread.start()
    }

    private func serve() {
        // Blocking calls: this thread owns nothing else, and the context's termination ends the wait.
        while let request = socket.receive(wait: true) {
            guard case .sent = socket.send(answer(request), wait: true) else { break }
        }
        socket.close()
    }

    /// The reply to one ZAP request: version, request id, status code, status text, user id, metadata.
    func answer(_ frames: [[UInt8]]) -> [[UInt8]] {
        // version, request id, domain, address, routing id, mechanism, credentials...
        let requestID = frames.count > 1 ? frames[1] : []
        func reply(_ code: String, _ text: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), requestID, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        guard frames.count >= 7, String(decoding: frames[0], as: UTF8.self) == "1.0" else {
            return reply("500", "malformed ZAP request")
        }
        let address = String(decoding: frames[3], as: UTF8.self)
        guard String(decoding: frames[5], as: UTF8.self) == "CURVE", let key = CurveKeys.encode(frames[6]) else {
            refuse(key: "(no CURVE key)", address: address)
            return reply("400", "CURVE required")
        }
        guard let name = authorized.name(of: key) else {
            refuse(key: key, address: address)
            return reply("400", "client key not authorised")
        }
        counts.withLock { $0.accepted += 1 }
        return reply("200", "OK", user: name)
    }

    /// Counts a refusal and logs the first one of each key (a refused peer retries every 100 ms).
    private func refuse(key: String, address: String) {
        let first = counts.withLock { state -> Bool in
            state.refused += 1
            guard state.loggedRefusals.count < 1024 else { return false }
            return state.loggedRefusals.insert(key).inserted
        }
        if first {
            logger.warning("bus handshake refused: client key not authorised", metadata: [
                "client_key": "\(key.prefix(8))…", "address": "\(address)"])
        }
    }
}
