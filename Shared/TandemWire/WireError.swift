/// Why a bus message could not be turned into an ``Envelope``.
///
/// Services never crash on bad input: they log the error, count it (`tandem_wire_decode_errors_total`
/// with the case name as label) and answer with an ``ErrorReply`` carrying ``ErrorCode/badMessage``.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer bytes than the frame header says (or than a header needs).
    case truncated(expected: Int, actual: Int)
    /// The frame's checksum does not match its contents, or its magic bytes are wrong.
    case corrupted(String)
    /// The envelope's version is not one this build understands.
    case unsupportedVersion(Int)
    /// The envelope names a message kind this build does not know.
    case unknownKind(String)
    /// The bytes are intact but do not decode as the schema says (missing field, wrong type...).
    case malformed(String)

    public var description: String {
        switch self {
        case .truncated(let expected, let actual):
            return "truncated message: expected \(expected) bytes, got \(actual)"
        case .corrupted(let why): return "corrupted message: \(why)"
        case .unsupportedVersion(let v):
            return "unsupported wire version \(v) (this build speaks \(Envelope.currentVersion))"
        case .unknownKind(let kind): return "unknown message kind '\(kind)'"
        case .malformed(let why): return "malformed message: \(why)"
        }
    }

    /// A short stable label for counters.
    public var label: String {
        switch self {
        case .truncated: return "truncated"
        case .corrupted: return "corrupted"
        case .unsupportedVersion: return "unsupported_version"
        case .unknownKind: return "unknown_kind"
        case .malformed: return "malformed"
        }
    }
}
