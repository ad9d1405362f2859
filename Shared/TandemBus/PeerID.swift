/// The routing identity of a peer connected to a ROUTER socket (ZMQ_ROUTING_ID).
///
/// Services set readable identities (e.g. `drafter-3`) so logs and the gateway's registry can
/// name peers; identities zmq generates itself are binary and print as hex.
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    /// The raw identity bytes as they travel in the ROUTER envelope frame.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(_ string: String) {
        self.bytes = Array(string.utf8)
    }

    /// The identity as text when it is printable ASCII, otherwise `0x`-prefixed hex.
    public var description: String {
        if !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        let hexDigits: [Character] = Array("0123456789abcdef")
        var text = "0x"
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0xF)])
        }
        return text
    }
}

extension PeerID: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self.init(value)
    }
}
