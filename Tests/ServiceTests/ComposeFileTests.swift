import Foundation
import Testing

/// No Docker engine runs here, so the compose file is checked statically: every service runs a
/// real product of this package, and every endpoint a service is told to connect to is bound by
/// the service it names, on that port.
@Suite struct ComposeFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The compose file as JSON (PyYAML resolves anchors and merge keys).
    func loadCompose() async throws -> [String: Any] {
        let (status, data) = try await runProcess(
            ["python3", "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
             Self.root.appendingPathComponent("compose/docker-compose.yml").path])
        #expect(status == 0, "PyYAML must parse compose/docker-compose.yml")
        return try #require((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])
    }

    func products() throws -> Set<String> {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let regex = try NSRegularExpression(pattern: #"\.executable\(name: "([^"]+)""#)
        let range = NSRange(manifest.startIndex..., in: manifest)
        return Set(regex.matches(in: manifest, range: range).compactMap {
            Range($0.range(at: 1), in: manifest).map { String(manifest[$0]) }
        })
    }

    @Test func everyServiceRunsAProductAndEveryEndpointIsBound() async throws {
        let compose = try await loadCompose()
        let services = try #require(compose["services"] as? [String: [String: Any]])
        let products = try products()
        #expect(products == ["gateway", "drafter-agent", "verifier", "estimator", "config-advisor", "metrics-store", "tandem"])
        for role in ["gateway", "drafter-agent", "verifier", "estimator", "config-advisor", "metrics-store"] {
            #expect(services[role] != nil, "compose has a service for \(role)")
        }

        // Ports each service binds (from *_BIND variables and --*bind flags).
        var bound: [String: Set<Int>] = [:]
        var connects: [(service: String, host: String, port: Int)] = []
        let endpoint = try NSRegularExpression(pattern: #"^(?:tcp://)?([A-Za-z0-9_.\-*]+):(\d+)$"#)
        func parse(_ value: String) -> (String, Int)? {
            let range = NSRange(value.startIndex..., in: value)
            guard let m = endpoint.firstMatch(in: value, range: range),
                  let h = Range(m.range(at: 1), in: value), let p = Range(m.range(at: 2), in: value),
                  let port = Int(value[p]) else { return nil }
            return (String(value[h]), port)
        }
        for (name, service) in services {
            let command = service["command"] as? [String] ?? []
            let executable = try #require(command.first, "\(name) has a command")
            #expect(products.contains(executable), "\(name) runs '\(executable)', which is not a product")
            let environment = service["environment"] as? [String: Any] ?? [:]
            var settings: [(String, String)] = environment.map { ($0.key, "\($0.value)") }
            for (i, word) in command.enumerated() where word.hasPrefix("--") && i + 1 < command.count {
                settings.append((word, command[i + 1]))
            }
            for (key, value) in settings {
                guard let (host, port) = parse(value) else { continue }
                if key.uppercased().contains("BIND") {
                    #expect(["0.0.0.0", "*"].contains(host), "\(name) binds \(value): bind all interfaces in a container")
                    bound[name, default: []].insert(port)
                } else {
                    connects.append((name, host, port))
                }
            }
        }
        #expect(!connects.isEmpty)
        for c in connects {
            #expect(services[c.host] != nil, "\(c.service) connects to unknown service '\(c.host)'")
            #expect(bound[c.host]?.contains(c.port) == true,
                    "\(c.service) connects to \(c.host):\(c.port), which \(c.host) does not bind")
        }
        // Scaled replicas must advertise their own address, not a shared name.
        let shared = compose["x-tandem-env"] as? [String: Any]
        #expect(shared?["TANDEM_ADVERTISE_HOST"] as? String == "auto")
    }
}
