/// A request or one-way message delivered to an endpoint's handler.
public struct BusIncoming: Sendable {
    /// The sender's identity on a ROUTER endpoint; nil on a DEALER (its only peer is the ROUTER).
    public let peer: PeerID?
    /// `.request` (a reply is expected) or `.oneway`.
    public let kind: BusMessageKind
    /// The sender's correlation id; a reply carries it back.
    public let correlation: UInt64
    /// The sender's deadline in milliseconds since the Unix epoch, if it set one.
    public let deadlineMillis: UInt64?
    /// The application payload (a TandemWire envelope for services).
    public let payload: [UInt8]

    public init(peer: PeerID?, kind: BusMessageKind, correlation: UInt64, deadlineMillis: UInt64?, payload: [UInt8]) {
        self.peer = peer
        self.kind = kind
        self.correlation = correlation
        self.deadlineMillis = deadlineMillis
        self.payload = payload
    }

    /// Whether the sender waits for a reply.
    public var expectsReply: Bool { kind == .request }

    /// Whether the deadline has passed (a reply now would arrive too late to matter).
    public var isExpired: Bool {
        guard let deadlineMillis else { return false }
        return BusTime.wallMillis() > deadlineMillis
    }

    /// Time left before the deadline (zero if passed), or nil without a deadline.
    public var remaining: Duration? {
        guard let deadlineMillis else { return nil }
        let now = BusTime.wallMillis()
        return deadlineMillis > now ? .milliseconds(Int64(deadlineMillis - now)) : .zero
    }
}

/// How an endpoint runs its handler.
public enum BusHandlerConcurrency: Sendable {
    /// One task per message: a slow request (e.g. one waiting for a verification batch) does not
    /// hold up others. Messages may complete in any order.
    case concurrent
    /// One message at a time, in arrival order (for streams of one-way updates whose order matters).
    case serial
}
