import Foundation

/// CurveZMQ settings for every socket of a `BusContext`: bound sockets act as CURVE servers and
/// accept only authorised client keys; connecting sockets authenticate with this process's client
/// key and check the server's key.
///
/// Why one cluster server key: every Tandem service binds something another service connects to,
/// and a replica learns its peers' endpoints at run time (from the gateway's registry), so it
/// cannot know a per-service server key in advance. The server secret is what makes a process part
/// of the cluster; edge devices get only the server's public key and a client pair of their own,
/// which the cluster authorises (and can revoke) by name. docs/security.md.
public struct BusSecurity: Sendable {
    /// The cluster's server public key: what a connecting socket expects the other end to prove.
    public var serverPublicKey: String
    /// The server pair, present on processes that bind sockets others connect to.
    public var server: CurveKeyPair?
    /// This process's identity when it connects.
    public var client: CurveKeyPair
    /// Which client keys bound sockets accept.
    public var authorized: AuthorizedCurveKeys

    public init(serverPublicKey: String, server: CurveKeyPair?, client: CurveKeyPair,
                authorized: AuthorizedCurveKeys) throws {
        try CurveKeys.requireSupport()
        self.serverPublicKey = try CurveKeys.validated(serverPublicKey, what: "server public key")
        if let server, server.publicKey != self.serverPublicKey {
            throw BusError.security("the server secret key does not belong to the server public key")
        }
        self.server = server
        self.client = client
        self.authorized = authorized
    }

    /// Whether `endpoint` is secured: inproc sockets never leave the process and stay plain.
    static func applies(to endpoint: String) -> Bool { !endpoint.hasPrefix("inproc://") }
}

/// The client public keys a CURVE server accepts, by name: a fixed list and, optionally, a
/// directory of `NAME.public` files read again at every handshake, so a device authorised (or
/// revoked) with `tandem keys` takes effect for new connections without a restart.
public struct AuthorizedCurveKeys: Sendable {
    /// Public key (Z85) to the name it is known by.
    public var keys: [String: String]
    /// A folder of `NAME.public` files.
    public var directory: String?

    public init(keys: [String: String] = [:], directory: String? = nil) {
        self.keys = keys
        self.directory = directory
    }

    /// The name of an accepted key, nil when `key` is not authorised.
    public func name(of key: String) -> String? {
        if let name = keys[key] { return name }
        guard let directory else { return nil }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for file in files where file.hasSuffix(CurveKeyDirectory.publicSuffix) {
            let path = (directory as NSString).appendingPathComponent(file)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  text.trimmingCharacters(in: .whitespacesAndNewlines) == key else { continue }
            return String(file.dropLast(CurveKeyDirectory.publicSuffix.count))
        }
        return nil
    }
}
