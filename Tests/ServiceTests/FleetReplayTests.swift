import Foundation
import Logging
import TandemEngine
import TandemServing
import TandemSpeculative
import TandemWire
import Testing
@testable import DrafterAgent

/// Emulated devices must propose exactly what the real draft model proposes (docs/fleet.md): the trace
/// is recorded once with batched forwards from every prefix, and replayed round by round here beside a
/// real drafter on the same sessions, on a synthetic pair that disagrees often enough for rejections.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct FleetReplayTests {
    static let prompts: [[Int32]] = [[72, 101, 108, 108, 111], [40, 32, 108, 105, 107, 101, 32], [100, 101, 102, 32, 102]]
    static let maxTokens = 32
    static let kMax = 6

    struct Fixture {
        let draft: ForwardEngine
        let draftTokenizer: Tokenizer
        let target: ForwardEngine
        let targetTokenizer: Tokenizer
    }

    static func fixture() async throws -> Fixture {
        let pair = try await SyntheticPair.make()
        let logger = Logger(label: "test")
        let draft = try LanguageModel.load(path: pair.draft, logger: logger)
        let target = try LanguageModel.load(path: pair.target, logger: logger)
        return Fixture(draft: ForwardEngine(model: draft, threads: 1), draftTokenizer: try Tokenizer(gguf: draft.gguf),
                       target: ForwardEngine(model: target, threads: 1), targetTokenizer: try Tokenizer(gguf: target.gguf))
    }

    static func record(_ f: Fixture, params: SamplingParams) throws -> FleetTrace {
        var recorder = FleetTraceRecorder(draft: f.draft, target: f.target, params: params, kMax: kMax, maxTokens: maxTokens)
        recorder.groupSize = 5  // several groups per prompt, and a partial last one
        let entries = try prompts.enumerated().map { i, prompt in
            try recorder.record(id: "p\(i)", messages: [], promptTokens: prompt,
                                isEndOfGeneration: f.targetTokenizer.isEndOfGeneration)
        }
        return FleetTrace(draftModel: "syn-draft", targetModel: "syn-target", promptSet: "test", maxTokens: maxTokens,
                          kMax: kMax, temperature: params.temperature, topK: params.topK, topP: params.topP,
                          seed: params.seed, endOfGeneration: f.targetTokenizer.endOfGenerationIDs.sorted(),
                          contextLength: f.target.model.config.contextLength, recordedAt: "test", recordSeconds: 0,
                          entries: entries)
    }

    static let profile = EdgeDeviceProfile(
        name: "test-device", hardware: "none", source: "cited: test fixture", draftModel: "syn-draft",
        decodeTokensPerSecond: 1000, draftMs: [1, 2, 3], network: .init(rttMs: 0, uplinkMbps: 0, downlinkMbps: 0))

    /// Drives one session through both sources round by round: each round both draft from the same
    /// committed sequence with identically trained controllers, then the target's own output decides
    /// what is committed (lossless verification emits exactly the target-only tokens).
    static func replay(_ f: Fixture, trace: FleetTrace, mode: VerificationMode, params: SamplingParams) async throws
        -> (rounds: Int, drafted: Int, accepted: Int) {
        let real = ModelDraftSource(engine: f.draft, tokenizer: f.draftTokenizer, modelName: "syn-draft", quantization: "Q8_0",
                                    device: DeviceProfile(name: "test", powerWatts: 1), devices: nil, maxK: kMax,
                                    draftSupport: 32)
        defer { real.shutdown() }
        let emulated = EmulatedDraftSource(trace: trace, tracePath: "test", profile: profile, devices: ["dev-1"],
                                           logger: Logger(label: "test"))
        var rounds = 0, drafted = 0, accepted = 0
        for (p, prompt) in prompts.enumerated() {
            let output = trace.entries[p].output
            let sampling = WireSampling(temperature: params.temperature, topK: params.topK, topP: params.topP, minP: 0,
                                        repetitionPenalty: 1, seed: params.seed)
            let start = SessionStart(session: "s\(p)", promptTokens: prompt, sampling: sampling, maxTokens: maxTokens,
                                     mode: mode, verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0,
                                     device: "dev-1")
            let config = SpeculationController.Configuration(maxDraftLength: kMax, initialDraftLength: 4)
            let a = DrafterSession(start: start, controller: SpeculationController(configuration: config))
            let b = DrafterSession(start: start, controller: SpeculationController(configuration: config))
            var k = 1
            while a.generatedCount < output.count - 1 {
                a.controller.beginRound(verifyTime: nil)
                b.controller.beginRound(verifyTime: nil)
                let first = a.generatedCount == 0
                let x = try await real.draft(a, k: k)
                let y = try await emulated.draft(b, k: k)
                #expect(x.tokens == y.tokens, "prompt \(p), \(a.generatedCount) generated, K=\(k)")
                // The real drafter's first round also prefills the prompt: that is catching up, not drafting,
                // and the planner's draft time per token must not see it.
                if first {
                    #expect(x.catchUpSeconds > 0 && x.catchUpSeconds < x.seconds && x.draftingSeconds > 0)
                }
                #expect(y.catchUpSeconds == 0)
                #expect(y.seconds == profile.draftSeconds(k: y.tokens.count))
                // The target's own continuation decides: accept the matching drafts, then one target token.
                let i = a.generatedCount
                var n = 0
                while n < x.tokens.count, i + n < output.count, x.tokens[n] == output[i + n] { n += 1 }
                let commit = Array(output[i..<min(output.count, i + n + 1)])
                for s in [a, b] {
                    s.committed.append(contentsOf: commit)
                    s.controller.finishRound(drafted: x.tokens.count, accepted: n)
                }
                rounds += 1
                drafted += x.tokens.count
                accepted += n
                k = k % kMax + 1  // every K, and rollbacks of rejected drafts in the real drafter's cache
            }
        }
        #expect(emulated.replayCounts.misses == 0)
        return (rounds, drafted, accepted)
    }

    @Test func emulatedDraftsEqualTheRealDrafterRoundByRoundGreedy() async throws {
        let f = try await Self.fixture()
        let trace = try Self.record(f, params: .greedy)
        // The trace's output is the target-only output (what `tandem generate` prints).
        for (p, prompt) in Self.prompts.enumerated() {
            let expected = try TargetOnlyTokens.generate(f.target, prompt: prompt, params: .greedy, maxTokens: Self.maxTokens,
                                                         isEndOfGeneration: f.targetTokenizer.isEndOfGeneration)
            #expect(trace.entries[p].output == expected)
        }
        let counts = try await Self.replay(f, trace: trace, mode: .coupled, params: .greedy)
        #expect(counts.rounds > 10)
        #expect(counts.accepted > 0 && counts.accepted < counts.drafted, "rejections must happen: \(counts)")
    }

    @Test func emulatedDraftsEqualTheRealDrafterRoundByRoundCoupledSampling() async throws {
        let f = try await Self.fixture()
        let params = SamplingParams(temperature: 0.9, topK: 40, topP: 0.95, seed: 77)
        let trace = try Self.record(f, params: params)
        for (p, prompt) in Self.prompts.enumerated() {
            let expected = try TargetOnlyTokens.generate(f.target, prompt: prompt, params: params, maxTokens: Self.maxTokens,
                                                         isEndOfGeneration: f.targetTokenizer.isEndOfGeneration)
            #expect(trace.entries[p].output == expected)
        }
        let counts = try await Self.replay(f, trace: trace, mode: .coupled, params: params)
        #expect(counts.accepted > 0 && counts.accepted < counts.drafted, "rejections must happen: \(counts)")
    }

    @Test func aSessionOutsideTheTraceGetsNoDraftsAndIsCounted() async throws {
        let f = try await Self.fixture()
        let trace = try Self.record(f, params: .greedy)
        let emulated = EmulatedDraftSource(trace: trace, tracePath: "test", profile: Self.profile, devices: ["dev-1"],
                                           logger: Logger(label: "test"))
        let start = SessionStart(session: "x", promptTokens: [1, 2, 3], sampling: WireSampling(temperature: 0, topK: 0,
                                 topP: 1, minP: 0, repetitionPenalty: 1, seed: 0), maxTokens: 8,
                                 verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0)
        let session = DrafterSession(start: start, controller: SpeculationController())
        let out = try await emulated.draft(session, k: 4)
        #expect(out.tokens.isEmpty)
        #expect(emulated.replayCounts.misses == 1)
    }

    @Test func aTraceWithTheWrongShapeIsRefused() throws {
        var trace = FleetTrace(draftModel: "d", targetModel: "t", promptSet: "p", maxTokens: 4, kMax: 2, temperature: 0,
                               topK: 0, topP: 1, seed: 0, endOfGeneration: [], contextLength: 64, recordedAt: "", recordSeconds: 0,
                               entries: [.init(id: "a", messages: [], promptTokens: [1], output: [5, 6],
                                               drafts: [[5, 6], [6]], confidences: [[1, 1], [1]])])
        #expect(throws: FleetTrace.TraceError.self) { try trace.validate() }
        trace.entries[0].drafts[1] = [6, 7]
        trace.entries[0].confidences[1] = [1, 1]
        try trace.validate()
    }
}

/// Target-only token generation, as the verifier and `tandem generate` produce it (end token included).
enum TargetOnlyTokens {
    static func generate(_ engine: ForwardEngine, prompt: [Int32], params: SamplingParams, maxTokens: Int,
                         isEndOfGeneration: (Int32) -> Bool) throws -> [Int32] {
        let cache = engine.makeCache(capacity: prompt.count + maxTokens + 2)
        let sampler = Sampler(vocabSize: engine.model.config.vocabularySize)
        var out: [Int32] = []
        var result = try engine.forward([ForwardRequest(cache: cache, tokens: prompt, logits: .last)])
        while out.count < maxTokens {
            let token = sampler.sample(logits: result.lastLogits(request: 0), params: params, position: prompt.count + out.count)
            out.append(token)
            if isEndOfGeneration(token) { break }
            result = try engine.forward([ForwardRequest(cache: cache, tokens: [token], logits: .last)])
        }
        return out
    }
}
