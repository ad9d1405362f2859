import Logging
import TandemBus
import TandemWire

/// Errors from a typed request over the bus.
public enum RPCError: Error, CustomStringConvertible, Sendable {
    /// The peer answered with an ``ErrorReply``.
    case remote(ErrorReply)
    /// The peer's answer could not be decoded.
    case badReply(WireError)
    /// The peer answered with a message of a kind the caller did not expect.
    case unexpectedReply(MessageKind)

    public var description: String {
        switch self {
        case .remote(let e): return "remote error \(e.code.rawValue): \(e.message)"
        case .badReply(let e): return "undecodable reply: \(e)"
        case .unexpectedReply(let kind): return "unexpected reply kind '\(kind.rawValue)'"
        }
    }
}

extension BusEndpoint {
    /// Sends `message` as a request and decodes the answer; an ``ErrorReply`` becomes ``RPCError/remote(_:)``.
    public func call(_ message: WireMessage, to peer: PeerID? = nil, timeout: Duration) async throws -> WireMessage {
        let reply = try await request(WireCodec.encode(message), to: peer, timeout: timeout)
        let envelope: Envelope
        do throws(WireError) {
            envelope = try WireCodec.decode(reply)
        } catch {
            WireErrorCounter.record(error)
            throw RPCError.badReply(error)
        }
        if case .error(let e) = envelope.message { throw RPCError.remote(e) }
        return envelope.message
    }

    /// One-way message.
    public func post(_ message: WireMessage, to peer: PeerID? = nil) async throws {
        try await send(WireCodec.encode(message), to: peer)
    }

    /// Installs a typed handler: decodes each incoming message; a message that fails to decode is
    /// logged, counted and answered with an ``ErrorReply`` (never a crash). The handler's return value
    /// is the reply (ignored for one-way messages); returning nil for a request answers with
    /// `unexpected_kind`.
    public func serve(
        logger: Logger, concurrency: BusHandlerConcurrency = .concurrent,
        _ handler: @escaping @Sendable (Envelope, BusIncoming) async -> WireMessage?
    ) throws {
        try setHandler(concurrency: concurrency) { incoming in
            let envelope: Envelope
            do throws(WireError) {
                envelope = try WireCodec.decode(incoming.payload)
            } catch {
                WireErrorCounter.record(error)
                logger.warning("rejected undecodable bus message",
                               metadata: ["peer": "\(incoming.peer.map(String.init(describing:)) ?? "-")",
                                          "error": "\(error)"])
                let code: ErrorCode = switch error {
                case .unsupportedVersion: .unsupportedVersion
                case .unknownKind: .unknownKind
                default: .badMessage
                }
                return incoming.expectsReply
                    ? WireCodec.encode(.error(ErrorReply(code: code, message: error.description))) : nil
            }
            let reply = await handler(envelope, incoming)
            guard incoming.expectsReply else { return nil }
            let answer = reply ?? .error(ErrorReply(
                code: .unexpectedKind, message: "this service does not handle '\(envelope.kind.rawValue)'"))
            return WireCodec.encode(answer)
        }
    }
}
