import Foundation
import TandemBus
import TandemWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Random and mutated frames to every bound ZeroMQ socket of a cluster of real processes: the gateway's
/// control socket, the verifier, the estimator, the config-advisor, the metrics-store's query socket and
/// its event proxy (XSUB). Every request must be answered (an error for a bad frame), no process may
/// die, and the cluster must serve the same text afterwards. `TANDEM_FUZZ_FRAMES` sets the frames per
/// socket (default 1,500 here; `make fuzz` sends 100,000).
@Suite(.serialized, .timeLimit(.minutes(30)))
struct ClusterFuzzTests {
    static var framesPerSocket: Int {
        ProcessInfo.processInfo.environment["TANDEM_FUZZ_FRAMES"].flatMap(Int.init) ?? 1_500
    }

    @Test func everyBoundSocketAnswersFuzzAndEveryProcessKeepsServing() async throws {
        let pair = try await SyntheticPair.make()
        let cluster = try await TestCluster.start(target: pair.target, draft: pair.draft)
        defer { Task { await cluster.stop() } }
        let body: [String: Any] = ["prompt": ServingTests.prompts[2], "max_tokens": 24, "temperature": 0]
        let (before, first) = try await cluster.completion(body)
        #expect(first.status == 200, "\(first.text)")

        // Every bound socket, from the registry: ROUTERs to send requests to, and the event proxy's XSUB.
        let replicas = (try await cluster.request("GET", "/v1/cluster").json?["replicas"] as? [[String: Any]]) ?? []
        var routers: [(String, String)] = [("gateway control", cluster.control)]
        var xsub: String?
        for info in replicas {
            guard let registration = info["registration"] as? [String: Any], let role = registration["role"] as? String
            else { continue }
            if let endpoint = registration["endpoint"] as? String { routers.append((role, endpoint)) }
            if role == Role.metricsStore.rawValue {
                xsub = (registration["attributes"] as? [String: String])?["xsub"]
            }
        }
        #expect(Set(routers.map(\.0)).isSuperset(of: ["gateway control", "verifier", "estimator"]), "\(routers)")
        #expect(routers.count >= 5, "\(routers)")
        let eventProxy = try #require(xsub, "the metrics-store registered no xsub endpoint: \(replicas)")

        let context = try BusContext()
        defer { Task { await context.shutdown() } }
        let frames = Self.framesPerSocket
        var report: [String] = []
        for (index, (name, endpoint)) in routers.enumerated() {
            let client = try BusEndpoint.dealer(context: context, connect: endpoint)
            var fuzzer = FrameFuzzer(seed: 7_000 + UInt64(index), seeds: FuzzSeeds.all(), strings: ["cmpl-fuzz"],
                                     tokens: (32..<127).map { Int32($0) })
            var answered = 0, errors = 0, unanswered = 0
            var sent = 0
            while sent < frames {
                let batch = (0..<min(32, frames - sent)).map { _ in fuzzer.next().frame }
                sent += batch.count
                let outcomes = try await withThrowingTaskGroup(of: Int.self) { group in
                    for frame in batch {
                        group.addTask {
                            guard let reply = try? await client.request(frame, timeout: .seconds(20)) else { return 0 }
                            guard let envelope = try? WireCodec.decode(reply) else { return 0 }
                            if case .error = envelope.message { return 2 }
                            return 1
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                answered += outcomes.filter { $0 > 0 }.count
                errors += outcomes.filter { $0 == 2 }.count
                unanswered += outcomes.filter { $0 == 0 }.count
            }
            await client.close()
            report.append("\(name) \(endpoint): \(frames) frames, \(answered) answered (\(errors) errors), \(unanswered) unanswered")
            #expect(unanswered == 0, "\(name): \(unanswered) of \(frames) fuzzed requests got no decodable answer")
            #expect(errors > frames / 2, "\(name): the fuzz mostly made bad frames, which must be answered with errors")
        }
        // The event proxy: publishers get no answers; the store must keep ingesting and answering.
        let publisher = try BusPublisher(context: context, connect: eventProxy)
        var fuzzer = FrameFuzzer(seed: 7_100, seeds: FuzzSeeds.all(), strings: ["cmpl-fuzz"])
        for i in 0..<frames {
            try publisher.publish(topic: EventTopic.allCases[i % EventTopic.allCases.count].rawValue, payload: fuzzer.next().frame)
        }
        report.append("metrics-store xsub \(eventProxy): \(frames) frames published")
        print("cluster fuzz:\n  " + report.joined(separator: "\n  "))

        // Nobody died, and the cluster still serves the same text.
        try await Task.sleep(for: .seconds(1))
        for (name, pid) in cluster.pids { #expect(kill(pid, 0) == 0, "\(name) (pid \(pid)) died under fuzz") }
        let (after, last) = try await cluster.completion(body)
        #expect(last.status == 200, "\(last.text)")
        #expect(after == before)
        let store = routers.first { $0.0 == Role.metricsStore.rawValue }?.1
        if let store {
            let client = try BusEndpoint.dealer(context: context, connect: store)
            let reply = try await client.request(WireCodec.encode(.health(HealthQuery())), timeout: .seconds(10))
            if case .healthReply? = try? WireCodec.decode(reply).message {} else { Issue.record("the metrics-store stopped answering health") }
        }
    }
}
