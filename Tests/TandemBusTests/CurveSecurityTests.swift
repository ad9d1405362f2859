import Foundation
import Testing
@testable import TandemBus

/// CurveZMQ on the bus: authorised clients talk, everyone else is refused at the handshake.
@Suite("CurveZMQ security", .timeLimit(.minutes(1)))
struct CurveSecurityTests {
    /// A server context whose echo ROUTER accepts `authorized`, and its bound endpoint.
    private func echoServer(_ security: BusSecurity, handled: Locked<Int> = Locked(0)) throws -> (BusContext, BusEndpoint) {
        let context = try BusContext(security: security)
        let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
        try router.setHandler { incoming in
            handled.withLock { $0 += 1 }
            return bytes("echo:") + incoming.payload
        }
        return (context, router)
    }

    private func clientSecurity(server: String, client: CurveKeyPair) throws -> BusSecurity {
        try BusSecurity(serverPublicKey: server, server: nil, client: client, authorized: AuthorizedCurveKeys())
    }

    /// Sends one request from a fresh context; the reply text, or nil when nothing came back in time.
    private func ask(_ endpoint: String, security: BusSecurity?, timeout: Duration = .seconds(1)) async throws -> String? {
        let context = try BusContext(security: security)
        let dealer = try BusEndpoint.dealer(context: context, connect: endpoint)
        defer { Task { await context.shutdown() } }
        do {
            return text(try await dealer.request(bytes("hi"), timeout: timeout))
        } catch BusError.timeout {
            return nil
        }
    }

    @Test func authorisedClientTalksAndOthersAreRefused() async throws {
        try await withTimeout(.seconds(30)) {
            let server = try CurveKeyPair.generate()
            let good = try CurveKeyPair.generate()
            let handled = Locked(0)
            let (context, router) = try echoServer(try BusSecurity(
                serverPublicKey: server.publicKey, server: server, client: good,
                authorized: AuthorizedCurveKeys(keys: [good.publicKey: "device-1"])), handled: handled)
            let endpoint = try #require(router.boundEndpoint)

            #expect(try await ask(endpoint, security: clientSecurity(server: server.publicKey, client: good),
                                  timeout: .seconds(5)) == "echo:hi")
            #expect(context.handshakes.accepted >= 1)

            // A key the server does not know, a plain-text client, and a client that expects another server.
            let stranger = try CurveKeyPair.generate()
            #expect(try await ask(endpoint, security: clientSecurity(server: server.publicKey, client: stranger)) == nil)
            #expect(context.handshakes.refused >= 1)
            #expect(try await ask(endpoint, security: nil) == nil)
            let otherServer = try CurveKeyPair.generate()
            #expect(try await ask(endpoint, security: clientSecurity(server: otherServer.publicKey, client: good)) == nil)
            #expect(handled.value == 1)
            await context.shutdown()
        }
    }

    @Test func keyFolderAuthorisesAndRevokesWithoutRestart() async throws {
        try await withTimeout(.seconds(30)) {
            let cluster = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: cluster) }
            try CurveKeyDirectory.create(at: cluster)
            let security = try #require(try CurveKeyDirectory.load(directory: cluster, environment: [:]))
            #expect(security.server != nil)
            let (context, router) = try echoServer(security)
            let endpoint = try #require(router.boundEndpoint)
            // The cluster's own client key was authorised by `init`.
            #expect(try await ask(endpoint, security: security, timeout: .seconds(5)) == "echo:hi")

            // A device issued after the server started is accepted; its folder holds no server secret.
            let deviceFolder = cluster + "/device-7"
            try CurveKeyDirectory.issueClient(named: "device-7", cluster: cluster, into: deviceFolder)
            let device = try #require(try CurveKeyDirectory.load(directory: deviceFolder, environment: [:]))
            #expect(device.server == nil)
            #expect(device.serverPublicKey == security.serverPublicKey)
            #expect(try await ask(endpoint, security: device, timeout: .seconds(5)) == "echo:hi")
            #expect(CurveKeyDirectory.authorizedNames(cluster: cluster) == ["cluster", "device-7"])

            // Revoked: its next connection is refused.
            try CurveKeyDirectory.revoke(named: "device-7", cluster: cluster)
            #expect(try await ask(endpoint, security: device) == nil)
            #expect(context.handshakes.refused >= 1)
            await context.shutdown()
        }
    }

    @Test func keyFilesAreCheckedAndSecretsPrivate() throws {
        let cluster = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: cluster) }
        let (server, client) = try CurveKeyDirectory.create(at: cluster)
        let mode = { (name: String) throws -> Int in
            try #require(try FileManager.default.attributesOfItem(atPath: cluster + "/" + name)[.posixPermissions] as? Int)
        }
        #expect(try mode("server.secret") == 0o600)
        #expect(try mode("client.secret") == 0o600)
        // `init` never overwrites a cluster's keys.
        #expect(throws: BusError.self) { try CurveKeyDirectory.create(at: cluster) }
        // A name that could escape the folder is refused.
        #expect(throws: BusError.self) {
            try CurveKeyDirectory.issueClient(named: "../x", cluster: cluster, into: cluster + "/x")
        }
        // The secret derives its public key; a server secret of another pair is refused.
        #expect(try CurveKeyPair(secretKey: client.secretKey) == client)
        let other = try CurveKeyPair.generate()
        #expect(throws: BusError.self) {
            try BusSecurity(serverPublicKey: server.publicKey, server: other, client: client, authorized: AuthorizedCurveKeys())
        }
        #expect(throws: BusError.self) { try CurveKeyPair(secretKey: "not a key") }
        // No folder and no variables: plain text.
        #expect(try CurveKeyDirectory.load(directory: nil, environment: [:]) == nil)
        // Keys from the environment alone (container secrets), authorised list included.
        let fromEnvironment = try #require(try CurveKeyDirectory.load(directory: nil, environment: [
            "TANDEM_CURVE_SERVER_KEY": server.publicKey, "TANDEM_CURVE_SERVER_SECRET": server.secretKey,
            "TANDEM_CURVE_CLIENT_SECRET": client.secretKey, "TANDEM_CURVE_AUTHORIZED": "pi-1=\(other.publicKey)"]))
        #expect(fromEnvironment.client == client)
        #expect(fromEnvironment.authorized.name(of: other.publicKey) == "pi-1")
        #expect(fromEnvironment.authorized.name(of: client.publicKey) == nil)
        #expect(throws: BusError.self) {
            try CurveKeyDirectory.load(directory: nil, environment: ["TANDEM_CURVE_SERVER_KEY": server.publicKey])
        }
        #expect(throws: BusError.self) {
            try CurveKeyDirectory.load(directory: cluster + "/missing", environment: [:])
        }
    }

    @Test func bindingNeedsTheServerSecret() async throws {
        let server = try CurveKeyPair.generate()
        let context = try BusContext(security: clientSecurity(server: server.publicKey, client: try CurveKeyPair.generate()))
        #expect(throws: BusError.self) { try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*") }
        await context.shutdown()
    }
}
