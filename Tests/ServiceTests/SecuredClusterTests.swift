import Foundation
import TandemBus
import Testing

/// A cluster whose bus runs CurveZMQ (`TANDEM_CURVE_KEYS`): it serves as before, and a replica
/// without an authorised key cannot join it, plain text or not (docs/security.md).
@Suite(.serialized, .timeLimit(.minutes(10)))
struct SecuredClusterTests {
    @Test func securedClusterServesAndRefusesUnauthorisedReplicas() async throws {
        let pair = try await SyntheticPair.make()
        let keys = NSTemporaryDirectory() + "tandem-keys-\(UUID().uuidString.prefix(8))"
        let rogue = keys + "-rogue"
        defer { for folder in [keys, rogue] { try? FileManager.default.removeItem(atPath: folder) } }
        try CurveKeyDirectory.create(at: keys)
        // The rogue knows the cluster's server key but holds a client key the cluster revoked.
        try CurveKeyDirectory.issueClient(named: "rogue", cluster: keys, into: rogue)
        try CurveKeyDirectory.revoke(named: "rogue", cluster: keys)

        let reference = try TargetOnly(path: pair.target)
        let cluster = try await TestCluster.start(target: pair.target, draft: pair.draft,
                                                  environment: [CurveKeyDirectory.EnvironmentKey.directory: keys])
        defer { Task { await cluster.stop() } }

        let prompt = ServingTests.prompts[1]
        let expected = try reference.generate(prompt: prompt, params: .greedy, maxTokens: 24)
        let (text, result) = try await cluster.completion(["prompt": prompt, "max_tokens": 24, "temperature": 0, "k": 4])
        #expect(result.status == 200, "\(result.text)")
        #expect(text == expected, "a secured bus changes nothing of the output")

        // Two would-be drafters: one with the revoked key, one in plain text. Neither may register.
        var intruders: [ProductProcess] = []
        for (name, folder) in [("intruder-revoked", Optional(rogue)), ("intruder-plain", nil)] {
            var arguments = ["--replica-id", name, "--gateway-control", cluster.control, "--model", pair.draft]
            if let folder { arguments += ["--curve-keys", folder] }
            intruders.append(try ProductProcess(product: "drafter-agent", arguments: arguments))
        }
        let started = intruders
        defer { Task { for intruder in started { await intruder.kill() } } }
        // Each retries its handshake every ~100 ms; give them time to try many times.
        try await Task.sleep(for: .seconds(4))

        let tandem = try ProductLocator.url(for: "tandem").path
        let (status, listing) = try await runProcess(
            [tandem, "status", "--gateway-control", cluster.control, "--curve-keys", keys])
        let table = String(decoding: listing, as: UTF8.self)
        #expect(status == 0, "\(table)")
        #expect(table.contains("drafter-1"), "\(table)")
        #expect(!table.contains("intruder"), "an unauthorised process registered:\n\(table)")
        // Without keys the operator's tool cannot even ask.
        let (plainStatus, _) = try await runProcess([tandem, "status", "--gateway-control", cluster.control])
        #expect(plainStatus != 0)
        // The gateway logged the refused key.
        let logs = try FileManager.default.contentsOfDirectory(atPath: cluster.dataDir + "/logs")
            .filter { $0.hasPrefix("gateway") }
            .map { try String(contentsOfFile: cluster.dataDir + "/logs/" + $0, encoding: .utf8) }.joined()
        #expect(logs.contains("bus handshake refused"))
        #expect(logs.contains("bus secured with CurveZMQ"))
        for intruder in intruders { #expect(intruder.isRunning, "an intruder crashed instead of waiting") }
    }
}
