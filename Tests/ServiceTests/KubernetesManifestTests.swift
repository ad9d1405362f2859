import Foundation
import Testing
import TandemTestSupport

/// No Kubernetes cluster runs here, so compose/k8s is checked offline: every resource validates
/// against the Kubernetes OpenAPI schemas bundled in the PyPI package `kubernetes-validate`
/// (strict: unknown fields are errors), and the manifests say what the services need — the
/// compose file's image and shared environment, every connected endpoint served by a Service
/// whose pods bind that port, pod-IP advertising for replicas, probes, resources, volumes.
@Suite struct KubernetesManifestTests {
    static let root = ComposeFileTests.root
    static let directory = root.appendingPathComponent("compose/k8s")
    static let roles = ["gateway", "drafter-agent", "verifier", "estimator", "config-advisor", "metrics-store"]

    /// The resource files kustomization.yaml lists, as paths.
    func resourceFiles() throws -> [String] {
        let kustomization = try #require(try loadYAML(["kustomization.yaml"]).first)
        let resources = try #require(kustomization.documents.first?["resources"] as? [String])
        return resources.map { Self.directory.appendingPathComponent($0).path }
    }

    struct ManifestError: Error, CustomStringConvertible {
        var description: String
    }

    struct File {
        var path: String
        var documents: [[String: Any]]
    }

    /// YAML files (names relative to compose/k8s, or absolute paths) as JSON, every document.
    func loadYAML(_ names: [String]) throws -> [File] {
        let script = "import json,sys,yaml; print(json.dumps([[p, [d for d in yaml.safe_load_all(open(p)) if d is not None]] for p in sys.argv[1:]]))"
        let paths = names.map { $0.hasPrefix("/") ? $0 : Self.directory.appendingPathComponent($0).path }
        let (status, data) = try ShortCommand.run(["python3", "-c", script] + paths)
        guard status == 0, let list = (try? JSONSerialization.jsonObject(with: data)) as? [[Any]] else {
            throw ManifestError(description: "PyYAML could not parse \(names): \(String(decoding: data, as: UTF8.self))")
        }
        return list.map { File(path: $0[0] as? String ?? "", documents: $0[1] as? [[String: Any]] ?? []) }
    }

    @Test func kustomizationListsEveryManifest() throws {
        let listed = Set(try resourceFiles().map { URL(fileURLWithPath: $0).lastPathComponent })
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: Self.directory.path)
            .filter { $0.hasSuffix(".yaml") && $0 != "kustomization.yaml" })
        #expect(listed == present, "kustomization.yaml resources must be exactly the manifests in compose/k8s")
    }

    /// The schema validator itself: a file it rejects fails this test with the validator's message.
    @Test func everyManifestValidatesAgainstTheKubernetesSchemas() throws {
        let (importStatus, importOutput) = try ShortCommand.run(["python3", "-c", "import kubernetes_validate"])
        try #require(importStatus == 0,
                     "kubernetes-validate missing (make python-deps installs it): \(String(decoding: importOutput, as: UTF8.self))")
        for path in try resourceFiles() {
            let (status, output) = try ShortCommand.run(["python3", "-m", "kubernetes_validate", "--strict", "--no-warn", path])
            let text = String(decoding: output, as: UTF8.self)
            #expect(status == 0, "\(URL(fileURLWithPath: path).lastPathComponent): \(text)")
            #expect(text.contains("passed"), "\(path): the validator checked nothing: \(text)")
        }
        // And the validator does reject a broken manifest (a probe field misspelt, a port as text).
        let broken = try String(contentsOf: Self.directory.appendingPathComponent("verifier.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "periodSeconds:", with: "periodSecond:")
        let brokenPath = NSTemporaryDirectory() + "tandem-broken-\(UUID().uuidString.prefix(8)).yaml"
        try broken.write(toFile: brokenPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: brokenPath) }
        let (brokenStatus, _) = try ShortCommand.run(["python3", "-m", "kubernetes_validate", "--strict", "--quiet", brokenPath])
        #expect(brokenStatus != 0, "strict validation must reject an unknown field")
    }

    @Test func manifestsMirrorTheComposeFileAndWireEveryEndpoint() throws {
        let compose = try #require(try loadYAML([Self.root.appendingPathComponent("compose/docker-compose.yml").path])
            .first?.documents.first)
        let composeServices = try #require(compose["services"] as? [String: [String: Any]])
        let composeImage = try #require(composeServices["gateway"]?["image"] as? String)
        let sharedEnv = try #require(compose["x-tandem-env"] as? [String: Any]).mapValues { "\($0)" }

        let resources = try loadYAML(try resourceFiles()).flatMap(\.documents)
        func named(_ kind: String) -> [String: [String: Any]] {
            Dictionary(resources.filter { $0["kind"] as? String == kind }.map {
                (($0["metadata"] as? [String: Any])?["name"] as? String ?? "", $0)
            }, uniquingKeysWith: { a, _ in a })
        }
        let configMaps = named("ConfigMap")
        let configMap = try #require(configMaps["tandem-env"], "a ConfigMap tandem-env holds the shared environment")
        let configData = (configMap["data"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
        #expect(configData == sharedEnv, "ConfigMap tandem-env must equal compose's x-tandem-env")

        let workloads = named("Deployment").merging(named("StatefulSet")) { a, _ in a }
        #expect(Set(workloads.keys) == Set(Self.roles), "one workload per service")
        #expect(named("StatefulSet")["metrics-store"] != nil, "metrics-store is a StatefulSet (stable volume)")
        #expect(workloads["verifier"]?["kind"] as? String == "Deployment")
        #expect(workloads["drafter-agent"]?["kind"] as? String == "Deployment")

        // Per workload: pod labels, the container's environment (ConfigMap + explicit), bound ports.
        var podLabels: [String: [String: String]] = [:]
        var boundPorts: [String: Set<Int>] = [:]
        var namedPorts: [String: [String: Int]] = [:]
        for role in Self.roles {
            guard let workload = workloads[role] else { continue }
            let spec = workload["spec"] as? [String: Any] ?? [:]
            let template = spec["template"] as? [String: Any] ?? [:]
            podLabels[role] = ((template["metadata"] as? [String: Any])?["labels"] as? [String: String]) ?? [:]
            let selector = ((spec["selector"] as? [String: Any])?["matchLabels"] as? [String: String]) ?? [:]
            #expect(!selector.isEmpty && selector.allSatisfy { podLabels[role]?[$0.key] == $0.value },
                    "\(role): selector matches the pod template")
            let podSpec = template["spec"] as? [String: Any] ?? [:]
            let containers = podSpec["containers"] as? [[String: Any]] ?? []
            let container = try #require(containers.first, "\(role) has a container")
            #expect(container["image"] as? String == composeImage, "\(role) runs compose's image \(composeImage)")
            #expect((container["command"] as? [String])?.first == role, "\(role) runs its executable")
            let composeCommand = composeServices[role]?["command"] as? [String]
            #expect(container["command"] as? [String] == composeCommand, "\(role): same command as compose")
            let envFrom = container["envFrom"] as? [[String: Any]] ?? []
            #expect(envFrom.contains { ($0["configMapRef"] as? [String: Any])?["name"] as? String == "tandem-env" },
                    "\(role) takes the shared environment")
            var env = configData
            var fieldRefs: [String: String] = [:]
            for variable in container["env"] as? [[String: Any]] ?? [] {
                guard let name = variable["name"] as? String else { continue }
                if let value = variable["value"] { env[name] = "\(value)" }
                let ref = ((variable["valueFrom"] as? [String: Any])?["fieldRef"] as? [String: Any])?["fieldPath"] as? String
                if let ref { fieldRefs[name] = ref; env[name] = nil }
            }
            // Every variable compose sets for this service, k8s sets to the same value (models and
            // advertise host aside: k8s advertises the pod IP instead of "auto").
            let composeEnv = (composeServices[role]?["environment"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
            for (key, value) in composeEnv where key != "TANDEM_ADVERTISE_HOST" {
                #expect(env[key] == value, "\(role): \(key) is \(env[key] ?? "unset"), compose says \(value)")
            }
            let portList = container["ports"] as? [[String: Any]] ?? []
            let containerPorts = Set(portList.compactMap { $0["containerPort"] as? Int })
            for p in portList { if let n = p["name"] as? String, let c = p["containerPort"] as? Int { namedPorts[role, default: [:]][n] = c } }
            for (key, value) in env where key.hasSuffix("_BIND") {
                let port = try #require(Int(value.split(separator: ":").last ?? ""), "\(role): \(key)=\(value) has a port")
                #expect(value.contains("0.0.0.0") || value.contains("*"), "\(role): \(key) binds all interfaces")
                #expect(containerPorts.contains(port), "\(role) binds \(port) (\(key)) but does not declare it")
                boundPorts[role, default: []].insert(port)
            }
            if !(boundPorts[role] ?? []).isEmpty && role != "gateway" {
                #expect(fieldRefs["TANDEM_ADVERTISE_HOST"] == "status.podIP",
                        "\(role) is connected to by address: it must advertise its pod IP")
            }
            let resourcesSpec = container["resources"] as? [String: Any] ?? [:]
            for part in ["requests", "limits"] {
                let values = resourcesSpec[part] as? [String: Any] ?? [:]
                #expect(values["cpu"] != nil && values["memory"] != nil, "\(role) states \(part) for cpu and memory")
            }
            #expect(container["readinessProbe"] != nil, "\(role) has a readiness probe")
            if role == "verifier" || role == "drafter-agent" {
                #expect(spec["replicas"] is Int, "\(role) is scalable (replicas stated)")
                #expect(fieldRefs["TANDEM_REPLICA_ID"] == "metadata.name", "\(role): replica id = pod name")
            }

            // Model files: an init container fetches the model the service loads into /models.
            let modelVariable = ["gateway": "TANDEM_TARGET_MODEL", "verifier": "TANDEM_TARGET_MODEL",
                                 "drafter-agent": "TANDEM_DRAFT_MODEL"][role]
            if let modelVariable {
                let model = try #require(env[modelVariable], "\(role) names its model")
                let inits = podSpec["initContainers"] as? [[String: Any]] ?? []
                let fetch = inits.first { ($0["command"] as? [String] ?? []).starts(with: ["tandem", "models", "fetch"]) }
                #expect((fetch?["command"] as? [String])?.contains(model) == true, "\(role): an init container fetches \(model)")
                #expect(fetch?["image"] as? String == composeImage)
                let mounts = [container, fetch ?? [:]].map { c in
                    (c["volumeMounts"] as? [[String: Any]] ?? []).first { $0["mountPath"] as? String == configData["TANDEM_MODELS"] }
                }
                #expect(mounts.allSatisfy { $0 != nil }, "\(role): model volume mounted at TANDEM_MODELS in both containers")
            }
        }

        // The gateway: readiness and liveness from /health on the HTTP port.
        let gatewayContainer = try #require(
            (((workloads["gateway"]?["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"]
                as? [[String: Any]]).first
        let httpPort = try #require((gatewayContainer?["ports"] as? [[String: Any]])?.first { $0["name"] as? String == "http" })
        #expect(httpPort["containerPort"] as? Int == 8080)
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = (gatewayContainer?[probe] as? [String: Any])?["httpGet"] as? [String: Any]
            #expect(get?["path"] as? String == "/health", "gateway \(probe) is GET /health")
            #expect(get?["port"] as? String == "http" || get?["port"] as? Int == 8080, "gateway \(probe) port")
        }

        // metrics-store keeps its database on a PersistentVolumeClaim mounted where TANDEM_DB points.
        let store = try #require(workloads["metrics-store"]?["spec"] as? [String: Any])
        let claims = store["volumeClaimTemplates"] as? [[String: Any]] ?? []
        let claimName = try #require((claims.first?["metadata"] as? [String: Any])?["name"] as? String, "metrics-store has a PVC")
        let storeContainer = (((store["template"] as? [String: Any])?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first
        let dbPath = try #require((storeContainer?["env"] as? [[String: Any]])?.first { $0["name"] as? String == "TANDEM_DB" }?["value"] as? String)
        let dataMount = (storeContainer?["volumeMounts"] as? [[String: Any]])?.first { $0["name"] as? String == claimName }
        let mountPath = try #require(dataMount?["mountPath"] as? String, "the PVC is mounted")
        #expect(dbPath.hasPrefix(mountPath + "/"), "TANDEM_DB \(dbPath) lies on the PVC at \(mountPath)")

        // Every endpoint a service connects to names a Service, on a port whose pods bind it.
        let services = named("Service")
        let endpoint = try NSRegularExpression(pattern: #"^tcp://([a-z0-9\-]+):(\d+)$"#)
        var checked = 0
        for (key, value) in configData {
            let range = NSRange(value.startIndex..., in: value)
            guard let m = endpoint.firstMatch(in: value, range: range),
                  let h = Range(m.range(at: 1), in: value), let p = Range(m.range(at: 2), in: value),
                  let port = Int(value[p]) else { continue }
            let host = String(value[h])
            checked += 1
            let service = try #require(services[host], "\(key)=\(value): no Service '\(host)'")
            let spec = service["spec"] as? [String: Any] ?? [:]
            let selector = spec["selector"] as? [String: String] ?? [:]
            let targets = podLabels.filter { _, labels in !selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value } }
            #expect(targets.count == 1, "Service \(host) selects exactly one workload (\(targets.keys.sorted()))")
            let servicePort = (spec["ports"] as? [[String: Any]] ?? []).first { $0["port"] as? Int == port }
            #expect(servicePort != nil, "Service \(host) exposes \(port) (\(key))")
            if let role = targets.keys.first {
                #expect(boundPorts[role]?.contains(port) == true, "\(key): \(role) does not bind \(port)")
                let target = servicePort?["targetPort"]
                let targetNumber = (target as? Int) ?? (target as? String).flatMap { namedPorts[role]?[$0] }
                #expect(targetNumber == port, "Service \(host) port \(port) targets \(role)'s container port \(port)")
            }
        }
        #expect(checked == 6, "the six shared endpoints are checked")
    }
}
