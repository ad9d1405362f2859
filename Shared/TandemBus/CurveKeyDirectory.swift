import Foundation

/// The on-disk layout of a cluster's CurveZMQ keys, written by `tandem keys` and read by every
/// service given `--curve-keys DIR` (docs/security.md):
///
///     DIR/server.public            the cluster's server key (every process needs it)
///     DIR/server.secret            its secret (processes that bind: every service but the drafter)
///     DIR/client.public, .secret   this host's client identity
///     DIR/authorized/NAME.public   client keys the cluster's bound sockets accept
///
/// Secrets are written readable by their owner only. Each key may instead come from the
/// environment (``EnvironmentKey``), for container secrets.
public enum CurveKeyDirectory {
    public static let publicSuffix = ".public"
    static let serverPublic = "server.public"
    static let serverSecret = "server.secret"
    static let clientPublic = "client.public"
    static let clientSecret = "client.secret"
    static let authorizedFolder = "authorized"
    /// The name `init` authorises the cluster's own client key under.
    public static let clusterClientName = "cluster"

    /// Environment variables that override (or replace) the files.
    public enum EnvironmentKey {
        public static let directory = "TANDEM_CURVE_KEYS"
        public static let serverPublic = "TANDEM_CURVE_SERVER_KEY"
        public static let serverSecret = "TANDEM_CURVE_SERVER_SECRET"
        public static let clientSecret = "TANDEM_CURVE_CLIENT_SECRET"
        /// Comma-separated `NAME=KEY` (or bare `KEY`) entries.
        public static let authorized = "TANDEM_CURVE_AUTHORIZED"
    }

    /// Creates a cluster's keys in `directory`: a server pair, a client pair for the cluster's own
    /// services, and that client authorised as ``clusterClientName``. Refuses to overwrite an
    /// existing server secret, since every process holding the old one would be locked out.
    @discardableResult
    public static func create(at directory: String) throws -> (server: CurveKeyPair, client: CurveKeyPair) {
        let serverSecretPath = path(directory, serverSecret)
        guard !FileManager.default.fileExists(atPath: serverSecretPath) else {
            throw BusError.security("\(serverSecretPath) exists; remove the folder to make new cluster keys")
        }
        try FileManager.default.createDirectory(atPath: path(directory, authorizedFolder),
                                                withIntermediateDirectories: true)
        let server = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        try write(server.publicKey, to: path(directory, serverPublic), secret: false)
        try write(server.secretKey, to: serverSecretPath, secret: true)
        try writeClient(client, into: directory)
        try write(client.publicKey, to: authorizedPath(directory, clusterClientName), secret: false)
        return (server, client)
    }

    /// Issues a client identity named `name` (an edge device, an operator's tool): writes the
    /// server's public key and a new client pair into `output` (what to copy to the device, no
    /// server secret in it) and authorises the new key in the cluster's `directory`.
    @discardableResult
    public static func issueClient(named name: String, cluster directory: String, into output: String) throws -> CurveKeyPair {
        try validate(name: name)
        let serverKey = try read(path(directory, serverPublic), what: "server public key")
        let authorized = authorizedPath(directory, name)
        guard !FileManager.default.fileExists(atPath: authorized) else {
            throw BusError.security("a client named '\(name)' is already authorised (\(authorized)); revoke it first")
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let pair = try CurveKeyPair.generate()
        try write(serverKey, to: path(output, serverPublic), secret: false)
        try writeClient(pair, into: output)
        try FileManager.default.createDirectory(atPath: path(directory, authorizedFolder),
                                                withIntermediateDirectories: true)
        try write(pair.publicKey, to: authorized, secret: false)
        return pair
    }

    /// Withdraws `name`'s authorisation. New connections with its key are refused; connections
    /// already established stay until they drop (restart the services to cut them at once).
    public static func revoke(named name: String, cluster directory: String) throws {
        try validate(name: name)
        let authorized = authorizedPath(directory, name)
        guard FileManager.default.fileExists(atPath: authorized) else {
            throw BusError.security("no client named '\(name)' is authorised in \(directory)")
        }
        try FileManager.default.removeItem(atPath: authorized)
    }

    /// The names of the authorised clients in `directory`.
    public static func authorizedNames(cluster directory: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path(directory, authorizedFolder))) ?? []
        return files.filter { $0.hasSuffix(publicSuffix) }.map { String($0.dropLast(publicSuffix.count)) }.sorted()
    }

    /// The security settings from `directory` and `environment`; nil when neither names any key
    /// (the bus then runs in plain text, as it does on loopback by default).
    public static func load(directory: String?, environment: [String: String]) throws -> BusSecurity? {
        let env = { (key: String) -> String? in environment[key].flatMap { $0.isEmpty ? nil : $0 } }
        let file = { (name: String) -> String? in
            guard let directory else { return nil }
            let full = path(directory, name)
            return FileManager.default.fileExists(atPath: full) ? full : nil
        }
        let named = [EnvironmentKey.serverPublic, EnvironmentKey.serverSecret, EnvironmentKey.clientSecret,
                     EnvironmentKey.authorized].contains { env($0) != nil }
        guard directory != nil || named else { return nil }
        if let directory, !FileManager.default.fileExists(atPath: directory) {
            throw BusError.security("CURVE key folder \(directory) does not exist (create it with `tandem keys init`)")
        }

        let serverPublicKey = try env(EnvironmentKey.serverPublic)
            ?? file(serverPublic).map { try read($0, what: "server public key") }
        guard let serverPublicKey else {
            throw BusError.security("no server public key: put server.public in the key folder or set \(EnvironmentKey.serverPublic)")
        }
        let server = try (env(EnvironmentKey.serverSecret) ?? file(serverSecret).map { try read($0, what: "server secret key") })
            .map { try CurveKeyPair(secretKey: $0) }
        let clientSecretKey = try env(EnvironmentKey.clientSecret)
            ?? file(clientSecret).map { try read($0, what: "client secret key") }
        guard let clientSecretKey else {
            throw BusError.security("no client secret key: put client.secret in the key folder or set \(EnvironmentKey.clientSecret)")
        }
        let client = try CurveKeyPair(secretKey: clientSecretKey)

        var keys: [String: String] = [:]
        for (index, entry) in (env(EnvironmentKey.authorized) ?? "").split(separator: ",").enumerated() {
            // Z85 has '=' in its alphabet: an entry that is a key as a whole is a bare key.
            let text = entry.trimmingCharacters(in: .whitespaces)
            let parts = text.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let (name, key) = CurveKeys.decode(text) != nil || parts.count < 2
                ? ("env-\(index + 1)", text) : (parts[0], parts[1])
            keys[try CurveKeys.validated(key, what: "\(EnvironmentKey.authorized) entry '\(name)'")] = name
        }
        let authorizedDirectory = directory.map { path($0, authorizedFolder) }
            .flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        return try BusSecurity(serverPublicKey: serverPublicKey, server: server, client: client,
                               authorized: AuthorizedCurveKeys(keys: keys, directory: authorizedDirectory))
    }

    // MARK: Files

    private static func writeClient(_ pair: CurveKeyPair, into directory: String) throws {
        try write(pair.publicKey, to: path(directory, clientPublic), secret: false)
        try write(pair.secretKey, to: path(directory, clientSecret), secret: true)
    }

    private static func path(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }

    private static func authorizedPath(_ directory: String, _ name: String) -> String {
        path(path(directory, authorizedFolder), name + publicSuffix)
    }

    private static func validate(name: String) throws {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard !name.isEmpty, name.count <= 64, !name.hasPrefix("."),
              name.unicodeScalars.allSatisfy(allowed.contains) else {
            throw BusError.security("client name '\(name)' must be 1-64 letters, digits, '.', '_' or '-'")
        }
    }

    private static func read(_ path: String, what: String) throws -> String {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw BusError.security("cannot read the \(what) at \(path): \(error.localizedDescription)")
        }
        return try CurveKeys.validated(text, what: "\(what) in \(path)")
    }

    /// Writes `key` and a newline; a secret is created with mode 0600 before any byte is written.
    private static func write(_ key: String, to path: String, secret: Bool) throws {
        let data = Data((key + "\n").utf8)
        guard FileManager.default.createFile(atPath: path, contents: nil,
                                             attributes: [.posixPermissions: secret ? 0o600 : 0o644]) else {
            throw BusError.security("cannot create \(path)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.write(contentsOf: data)
    }
}
