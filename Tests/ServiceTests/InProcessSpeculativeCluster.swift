import Foundation
@testable import DrafterAgent
@testable import Gateway
import Logging
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// The speculative serving path in this process, on the synthetic pair: the real gateway session manager and
/// control socket, a verifier core behind a ROUTER and a drafter core over the draft model, each registered
/// through a real control agent. Tests drive sessions through ``manager`` and compare with target-only decoding.
final class InProcessSpeculativeCluster: @unchecked Sendable {
    let logger = Logger(label: "test.inprocess")
    let context: BusContext
    let manager: SessionManager
    let targetEngine: ForwardEngine
    let tokenizer: Tokenizer
    let verifierCore: VerifierCore
    let drafterCore: DrafterCore
    let drafterAgent: ControlAgent
    private let verifierAgent: ControlAgent
    private let verify: BusEndpoint
    private var tasks: [Task<Void, Never>] = []

    /// - Parameter drafter: the drafter core's configuration.
    init(drafter: DrafterCore.Configuration) async throws {
        let pair = try await SyntheticPair.make()
        let target = try LanguageModel.load(path: pair.target, logger: logger)
        targetEngine = ForwardEngine(model: target, threads: 1)
        tokenizer = try Tokenizer(gguf: target.gguf)
        let draft = try LanguageModel.load(path: pair.draft, logger: logger)
        context = try BusContext()

        // Gateway side.
        let registry = Registry(logger: logger)
        let control = try ControlServer(context: context, bind: "tcp://127.0.0.1:*", registry: registry, logger: logger)
        manager = SessionManager(registry: registry, control: control, events: nil, tokenizer: tokenizer,
                                 modelName: "syn", maxSessions: 4, inactivityTimeout: .seconds(10), logger: logger)
        control.reportHandler.install { [manager] in await manager.receive($0) }
        let gateway = try #require(control.endpoint.boundEndpoint)

        // Verifier.
        let verifierCore = VerifierCore(engine: targetEngine, modelName: "syn", replicaID: "v1",
                                        configuration: VerifierCore.Configuration(), events: nil, logger: logger)
        self.verifierCore = verifierCore
        verify = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*", logger: logger)
        try verify.serve(logger: logger) { envelope, _ in await verifierCore.handle(envelope.message) }
        verifierAgent = try ControlAgent(
            context: context, gateway: gateway,
            registration: Registration(role: .verifier, replicaID: "v1", endpoint: try #require(verify.boundEndpoint),
                                       pid: 1, version: "test"),
            logger: logger, handler: { envelope, _ in await verifierCore.handle(envelope.message) })

        // Drafter.
        let source = ModelDraftSource(engine: ForwardEngine(model: draft, threads: 1), tokenizer: try Tokenizer(gguf: draft.gguf),
                                      modelName: "syn-draft", quantization: "Q8_0",
                                      device: DeviceProfile(name: "test", powerWatts: 1), devices: nil, maxK: drafter.maxK,
                                      draftSupport: 8)
        let drafterCore = DrafterCore(source: source, device: DeviceProfile(name: "test", powerWatts: 1), replicaID: "d1",
                                      configuration: drafter, context: context, events: nil, logger: logger)
        self.drafterCore = drafterCore
        drafterAgent = try ControlAgent(
            context: context, gateway: gateway,
            registration: Registration(role: .drafter, replicaID: "d1", endpoint: nil, pid: 1, version: "test"),
            logger: logger, handler: { envelope, _ in await drafterCore.handle(envelope.message) })
        drafterCore.attach(drafterAgent)
    }

    /// Runs the control agents and the gateway's inactivity sweep (a session stuck on a gap ends as a
    /// failure instead of hanging the test); returns once both replicas are registered.
    func start() async throws {
        let manager = manager
        tasks = [verifierAgent, drafterAgent].map { agent in Task { try? await agent.run() } }
        tasks.append(Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await manager.expireInactive()
            }
        })
        for _ in 0..<1000 where !(verifierAgent.isRegistered && drafterAgent.isRegistered) {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(verifierAgent.isRegistered && drafterAgent.isRegistered)
    }

    /// Generates greedily through the cluster; returns the streamed text and the session's summary.
    func generate(prompt: [Int32], maxTokens: Int) async throws -> (text: String, summary: SessionSummary?) {
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
        return (text, summary)
    }

    /// What the target alone generates greedily for `prompt`.
    func targetOnly(prompt: [Int32], maxTokens: Int) throws -> [Int32] {
        try TargetOnlyTokens.generate(targetEngine, prompt: prompt, params: .greedy, maxTokens: maxTokens,
                                      isEndOfGeneration: tokenizer.isEndOfGeneration)
    }

    func stop() async {
        for task in tasks { task.cancel() }
        for task in tasks { _ = await task.result }
        await drafterCore.shutdown()
        verifierCore.shutdown()
        await verify.close()
        await context.shutdown()
    }
}
