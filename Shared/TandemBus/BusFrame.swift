/// What a bus message is for; the first header byte after the version.
public enum BusMessageKind: UInt8, Sendable {
    /// Expects a reply with the same correlation id before the deadline.
    case request = 1
    /// Answers a request.
    case reply = 2
    /// Fire-and-forget.
    case oneway = 3
    /// Sent once by a DEALER when it starts so the ROUTER learns its identity (never delivered
    /// to handlers).
    case hello = 4
}

/// The fixed 18-byte header frame that precedes every payload frame:
/// `[version u8 = 1][kind u8][correlation u64 LE][deadline ms since Unix epoch u64 LE, 0 = none]`.
/// ROUTER sockets additionally see/prepend the peer identity frame. A separate header frame keeps
/// the payload frame untouched (no copy to prepend) and lets the bus reject garbage cheaply.
struct BusHeader: Equatable {
    static let version: UInt8 = 1
    static let size = 18

    var kind: BusMessageKind
    var correlation: UInt64
    var deadlineMillis: UInt64

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes[0] = Self.version
        bytes[1] = kind.rawValue
        for index in 0..<8 {
            bytes[2 + index] = UInt8(truncatingIfNeeded: correlation >> (8 * UInt64(index)))
            bytes[10 + index] = UInt8(truncatingIfNeeded: deadlineMillis >> (8 * UInt64(index)))
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> BusHeader? {
        guard bytes.count == size, bytes[0] == version, let kind = BusMessageKind(rawValue: bytes[1]) else {
            return nil
        }
        var correlation: UInt64 = 0
        var deadline: UInt64 = 0
        for index in 0..<8 {
            correlation |= UInt64(bytes[2 + index]) << (8 * UInt64(index))
            deadline |= UInt64(bytes[10 + index]) << (8 * UInt64(index))
        }
        return BusHeader(kind: kind, correlation: correlation, deadlineMillis: deadline)
    }
}
