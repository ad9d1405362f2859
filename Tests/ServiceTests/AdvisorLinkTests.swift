import Foundation
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import DrafterAgent

/// The drafter asks the config-advisor about the target its sessions are placed on (not a default), once
/// per target, with its device profile; the answer's K becomes the drafter's K. In-process, against a
/// fake advisor on a real ROUTER socket.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AdvisorLinkTests {
    /// A ROUTER that records advise queries and answers K by target.
    final class FakeAdvisor: Sendable {
        let endpoint: BusEndpoint
        let queries = Mutex<[AdvisorQuery]>([])
        init(context: BusContext, kByTarget: [String: Int]) throws {
            endpoint = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*", logger: Logger(label: "test"))
            try endpoint.serve(logger: Logger(label: "test")) { [self] envelope, _ in
                guard case .advise(let query) = envelope.message else { return nil }
                self.queries.withLock { $0.append(query) }
                return .advice(AdvisorRecommendation(draftModel: "d", quantization: "Q8_0", k: kByTarget[query.targetModel] ?? 1,
                                                     expectedTokensPerRound: 2, objectiveValue: 1, basis: "test"))
            }
        }
    }

    @Test func asksOncePerTargetWithTheDeviceProfileAndAppliesTheAnswer() async throws {
        let context = try BusContext()
        let advisor = try FakeAdvisor(context: context, kByTarget: ["target-a": 3, "target-b": 6])
        let profilePath = ComposeFileTests.root.appendingPathComponent("compose/profiles/raspberry-pi-5.json").path
        let edge = try EdgeDeviceProfile.load(path: profilePath)
        let applied = Mutex<[Int]>([])
        let link = AdvisorLink(context: context, endpoint: try #require(advisor.endpoint.boundEndpoint),
                               device: DeviceProfile(name: "pi", powerWatts: 6), edgeProfile: edge, draftModel: "d",
                               apply: { k in applied.withLock { $0.append(k) } }, logger: Logger(label: "test"))
        await link.advise(target: "target-a")
        await link.advise(target: "target-a")
        await link.advise(target: "target-b")
        let queries = advisor.queries.withLock { $0 }
        #expect(queries.map(\.targetModel) == ["target-a", "target-b"])
        #expect(queries.allSatisfy { $0.edgeProfile?.name == edge.name && $0.candidates == ["d"] })
        #expect(applied.withLock { $0 } == [3, 6])
        await advisor.endpoint.close()
        await context.shutdown()
    }

    @Test func aSessionStartTellsTheDrafterItsTarget() async throws {
        let context = try BusContext()
        let (core, _) = try await SyntheticPair.drafterCore(context: context)
        let seen = Mutex<[String]>([])
        core.observeTargets { target in seen.withLock { $0.append(target) } }
        var start = SessionStart(session: "s", promptTokens: [72, 101, 108], sampling: WireSampling(), maxTokens: 2,
                                 verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0)
        _ = await core.handle(.sessionStart(start))         // an older gateway names no target
        start.session = "t"
        start.targetModel = "qwen2.5-coder-1.5b-instruct"
        _ = await core.handle(.sessionStart(start))
        #expect(seen.withLock { $0 } == ["qwen2.5-coder-1.5b-instruct"])
        await core.shutdown()
        await context.shutdown()
    }
}
