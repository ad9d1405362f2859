/// Errors raised by the bus. Every failure a caller can act on has its own case so services can
/// count and report them precisely instead of parsing strings.
public enum BusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A request's deadline passed before a reply arrived. The late reply, if any, is dropped
    /// and counted in `BusCounters.lateReplies`.
    case timeout(peer: PeerID?, correlation: UInt64, after: Duration)
    /// The endpoint (or its context) is closed; nothing more can be sent or received.
    case closed
    /// A ROUTER tried to send to an identity that is not connected (ZMQ_ROUTER_MANDATORY).
    case unknownPeer(PeerID)
    /// A ROUTER endpoint needs an explicit peer to send to.
    case peerRequired
    /// The peer's queue is full (high-water mark reached) and the message could not be queued.
    case wouldBlock
    /// The endpoint string could not be understood.
    case invalidEndpoint(String)
    /// `setHandler` was called more than once on the same endpoint.
    case handlerAlreadySet
    /// The request was cancelled by the caller's task.
    case cancelled
    /// CurveZMQ keys are missing, malformed or do not fit (docs/security.md).
    case security(String)
    /// Any other libzmq failure, with the call that failed and `zmq_strerror`'s text.
    case zmq(operation: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case let .timeout(peer, correlation, after):
            let to = peer.map { " to peer \($0)" } ?? ""
            return "bus request #\(correlation)\(to) timed out after \(after) with no reply"
        case .closed:
            return "bus endpoint is closed"
        case let .unknownPeer(peer):
            return "bus peer \(peer) is not connected to this ROUTER"
        case .peerRequired:
            return "a ROUTER endpoint must be given the peer to send to"
        case .wouldBlock:
            return "bus peer queue is full (high-water mark reached)"
        case let .invalidEndpoint(text):
            return "invalid bus endpoint '\(text)'"
        case .handlerAlreadySet:
            return "a handler is already set on this bus endpoint"
        case .cancelled:
            return "bus request was cancelled"
        case let .security(text):
            return "bus security: \(text)"
        case let .zmq(operation, code, message):
            return "\(operation) failed: \(message) (errno \(code))"
        }
    }
}
