import Foundation

/// The one versioned envelope every bus message travels in: `{v, kind, id, sentAt, body}`.
///
/// On the wire an envelope is a small binary frame header (magic `TW`, format byte, body length,
/// CRC-32) followed by the JSON envelope. The header lets a receiver tell a truncated or corrupted
/// frame from a schema error, and JSON keeps messages debuggable and forward-compatible
/// (unknown fields are ignored; a new *kind* or *version* is rejected with a typed error).
public struct Envelope: Sendable, Hashable, Codable {
    /// The schema version this build speaks. Bump on any incompatible change.
    public static let currentVersion = 1

    public var v: Int
    /// Unique per sender; replies echo the request's id in `correlation` at the bus layer.
    public var id: UInt64
    /// Sender's wall clock, milliseconds since the Unix epoch.
    public var sentAt: EpochMillis
    public var message: WireMessage

    public var kind: MessageKind { message.kind }

    public init(_ message: WireMessage, id: UInt64 = Envelope.nextID(), sentAt: EpochMillis = Envelope.now(),
                v: Int = Envelope.currentVersion) {
        self.v = v
        self.id = id
        self.sentAt = sentAt
        self.message = message
    }

    enum CodingKeys: String, CodingKey { case v, kind, id, sentAt, body }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let v = try c.decode(Int.self, forKey: .v)
        guard v == Envelope.currentVersion else { throw WireError.unsupportedVersion(v) }
        let kindName = try c.decode(String.self, forKey: .kind)
        guard let kind = MessageKind(rawValue: kindName) else { throw WireError.unknownKind(kindName) }
        self.v = v
        self.id = try c.decode(UInt64.self, forKey: .id)
        self.sentAt = try c.decode(Double.self, forKey: .sentAt)
        self.message = try WireMessage.decodeBody(kind: kind, from: c)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(v, forKey: .v)
        try c.encode(kind.rawValue, forKey: .kind)
        try c.encode(id, forKey: .id)
        try c.encode(sentAt, forKey: .sentAt)
        try message.encodeBody(into: &c)
    }

    /// Current wall-clock time in epoch milliseconds.
    public static func now() -> EpochMillis { Date().timeIntervalSince1970 * 1000 }

    private static let counter = IDCounter()
    /// A process-unique, increasing message id (random high bits, so ids from different
    /// processes do not collide in logs).
    public static func nextID() -> UInt64 { counter.next() }
}

/// Thread-safe id source for ``Envelope/nextID()``.
final class IDCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = UInt64.random(in: 0..<(1 << 20)) << 40

    func next() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        value &+= 1
        return value
    }
}
