import Foundation
@testable import DrafterAgent
@testable import Gateway
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// A token report counts as delivered only once the gateway acknowledged it; a lost one is repaired by the
/// next report (which carries every unacknowledged token), so the session completes with the full, right
/// text instead of hanging on a gap. In process: the real gateway session manager and control socket, a
/// verifier core and a drafter core with their control agents, and a lossy report path that drops one report.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct TokenReportDeliveryTests {
    /// Drops report number `drop` (counting from 1) as a lost message would: not delivered, no acknowledgement.
    final class LossyPath: Sendable {
        let drop: Int
        let sent = Mutex<Int>(0)
        let dropped = Mutex<[TokenReport]>([])
        init(drop: Int) { self.drop = drop }
    }

    @Test(arguments: [1, 2, 3])
    func aLostReportIsRepairedAndTheSessionCompletesWithTheFullText(drop: Int) async throws {
        let logger = Logger(label: "test.delivery")
        let pair = try await SyntheticPair.make()
        let target = try LanguageModel.load(path: pair.target, logger: logger)
        let targetEngine = ForwardEngine(model: target, threads: 1)
        let tokenizer = try Tokenizer(gguf: target.gguf)
        let draft = try LanguageModel.load(path: pair.draft, logger: logger)
        let context = try BusContext()

        // Gateway side.
        let registry = Registry(logger: logger)
        let control = try ControlServer(context: context, bind: "tcp://127.0.0.1:*", registry: registry, logger: logger)
        let manager = SessionManager(registry: registry, control: control, events: nil, tokenizer: tokenizer,
                                     modelName: "syn", maxSessions: 4, inactivityTimeout: .seconds(10), logger: logger)
        control.reportHandler.install { await manager.receive($0) }
        // The gateway's sweep: a session stuck on a gap ends (as a failure) instead of hanging the test.
        let sweep = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await manager.expireInactive()
            }
        }
        defer { sweep.cancel() }
        let gateway = try #require(control.endpoint.boundEndpoint)

        // Verifier.
        let verifierCore = VerifierCore(engine: targetEngine, modelName: "syn", replicaID: "v1",
                                        configuration: VerifierCore.Configuration(), events: nil, logger: logger)
        defer { verifierCore.shutdown() }
        let verify = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*", logger: logger)
        try verify.serve(logger: logger) { envelope, _ in await verifierCore.handle(envelope.message) }
        let verifierAgent = try ControlAgent(
            context: context, gateway: gateway,
            registration: Registration(role: .verifier, replicaID: "v1", endpoint: try #require(verify.boundEndpoint),
                                       pid: 1, version: "test"),
            logger: logger, handler: { envelope, _ in await verifierCore.handle(envelope.message) })

        // Drafter, whose reports take the lossy path to the gateway's control socket.
        let source = ModelDraftSource(engine: ForwardEngine(model: draft, threads: 1), tokenizer: try Tokenizer(gguf: draft.gguf),
                                      modelName: "syn-draft", quantization: "Q8_0",
                                      device: DeviceProfile(name: "test", powerWatts: 1), devices: nil, maxK: 4,
                                      draftSupport: 8)
        var drafterConfig = DrafterCore.Configuration()
        drafterConfig.dynamic = false
        drafterConfig.defaultK = 2
        let drafterCore = DrafterCore(source: source, device: DeviceProfile(name: "test", powerWatts: 1), replicaID: "d1",
                                      configuration: drafterConfig, context: context, events: nil, logger: logger)
        let drafterAgent = try ControlAgent(
            context: context, gateway: gateway,
            registration: Registration(role: .drafter, replicaID: "d1", endpoint: nil, pid: 1, version: "test"),
            logger: logger, handler: { envelope, _ in await drafterCore.handle(envelope.message) })
        drafterCore.attach(drafterAgent)
        let lossy = LossyPath(drop: drop)
        drafterCore.setReportTransport { report in
            let n = lossy.sent.withLock { $0 += 1; return $0 }
            if n == lossy.drop {
                lossy.dropped.withLock { $0.append(report) }
                throw BusError.timeout(peer: nil, correlation: 0, after: .seconds(2))
            }
            _ = try await drafterAgent.endpoint.call(.tokens(report), timeout: .seconds(2))
        }

        let agents = [verifierAgent, drafterAgent].map { agent in Task { try await agent.run() } }
        for _ in 0..<1000 where !(verifierAgent.isRegistered && drafterAgent.isRegistered) {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(verifierAgent.isRegistered && drafterAgent.isRegistered)

        let prompt: [Int32] = [72, 101, 108, 108, 111, 44, 32, 119]
        let maxTokens = 24
        let (_, stream) = try await manager.start(GenerationRequest(
            promptTokens: prompt, sampling: WireSampling(), maxTokens: maxTokens, stop: [], slo: SLO(), mode: .coupled,
            k: nil))
        var text = ""
        var summary: SessionSummary?
        for await update in stream {
            switch update {
            case .text(let piece): text += piece
            case .finished(let s): summary = s
            case .failed(let error): Issue.record("the session failed: \(error)")
            }
        }

        let expected = try TargetOnlyTokens.generate(targetEngine, prompt: prompt, params: .greedy, maxTokens: maxTokens,
                                                     isEndOfGeneration: tokenizer.isEndOfGeneration)
        let dropped = lossy.dropped.withLock { $0 }
        #expect(dropped.count == 1 && dropped.first.map { !$0.tokens.isEmpty } == true,
                "the lossy path did not drop a report with tokens")
        #expect(lossy.sent.withLock { $0 } > drop, "no report followed the dropped one")
        #expect(summary?.completionTokens == expected.count)
        #expect(text == tokenizer.decode(expected))
        for task in agents { task.cancel() }
        for task in agents { _ = await task.result }
        await drafterCore.shutdown()
        await verify.close()
        await context.shutdown()
    }
}
