import CZeroMQ
import Foundation

/// A CurveZMQ key pair in Z85 text (40 characters each), the form libzmq's socket options and
/// Tandem's key files use.
///
/// Why Z85 text and not raw bytes: keys travel through files, environment variables and compose
/// secrets, where printable text survives and 32 raw bytes do not.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    /// A fresh key pair from libzmq's generator (libsodium underneath).
    public static func generate() throws -> CurveKeyPair {
        try CurveKeys.requireSupport()
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else {
            throw ZMQSocket.lastError("zmq_curve_keypair")
        }
        return CurveKeyPair(publicKey: CurveKeys.string(publicKey), secretKey: CurveKeys.string(secretKey))
    }

    /// The pair whose secret is `secretKey` (the public key is derived, so a file or variable
    /// holding only the secret is enough).
    public init(secretKey: String) throws {
        try CurveKeys.requireSupport()
        let secret = try CurveKeys.validated(secretKey, what: "secret key")
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secret) == 0 else {
            throw BusError.security("cannot derive a public key from the secret key given")
        }
        self.init(publicKey: CurveKeys.string(publicKey), secretKey: secret)
    }

    init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// Z85 key helpers shared by the key pair, the security settings and the ZAP handler.
enum CurveKeys {
    /// Whether this libzmq was built with CURVE (it needs libsodium); Debian's is.
    static var isSupported: Bool { zmq_has("curve") == 1 }

    static func requireSupport() throws {
        guard isSupported else {
            throw BusError.security("this libzmq has no CURVE support (zmq_has(\"curve\") is false); install a libzmq built with libsodium")
        }
    }

    /// `text` trimmed, checked to be a 40-character Z85 key that decodes to 32 bytes.
    static func validated(_ text: String, what: String) throws -> String {
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard key.utf8.count == 40, decode(key) != nil else {
            throw BusError.security("\(what) is not a 40-character Z85 CurveZMQ key")
        }
        return key
    }

    /// The 32 bytes of a Z85 key, or nil when it is not one.
    static func decode(_ key: String) -> [UInt8]? {
        guard key.utf8.count == 40 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        let ok = bytes.withUnsafeMutableBufferPointer { zmq_z85_decode($0.baseAddress, key) != nil }
        return ok ? bytes : nil
    }

    /// The Z85 text of 32 key bytes (ZAP hands the client's public key over raw).
    static func encode(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        let ok = bytes.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, 32) != nil }
        return ok ? string(text) : nil
    }

    static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
