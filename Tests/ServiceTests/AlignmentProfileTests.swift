import Foundation
import Logging
import Testing
import TandemEngine
import TandemSpeculative
import TandemWire
@testable import MetricsStore
@testable import TandemCLI

/// `tandem profile --pair`: the acceptance bookkeeping against hand-computed numbers, the profiler on the
/// synthetic tiny models (a model against itself, a noisy draft against its target), the JSON file, the
/// command line, and the metrics-store's alignment table.
@Suite("alignment profiling")
struct AlignmentProfileTests {
    @Test("per-position and per-K acceptance from position scores, by hand")
    func accumulatorByHand() {
        var acc = AcceptanceAccumulator(kMax: 2)
        acc.add(scores: [1, 1, 0, 1])
        let r = acc.result
        // Position 0: rounds from t = 0...3 accept 1, 1, 0, 1. Position 1 is reached by the rounds from
        // t = 0, 1 (t = 2 was rejected at position 0; t = 3 has no position 1) and accepted by t = 0 only.
        #expect(r.perPosition == [0.75, 0.5])
        #expect(r.perPositionUnconditional == [0.75, 1.0 / 3.0])
        #expect(r.perK.map(\.rounds) == [4, 3])
        #expect(r.perK[0].acceptedPerRound == 0.75)
        // K = 2 rounds from t = 0, 1, 2 accept 2, 1, 0 drafts.
        #expect(r.perK[1].acceptedPerRound == 1.0)
        #expect(r.perK[1].tokensPerRound == 2.0)
        #expect(r.perK[1].acceptanceRate == 0.5)

        var sampled = AcceptanceAccumulator(kMax: 2)
        sampled.add(scores: [0.5, 0.5, 0.5])
        // Position 1: Σ 0.25 over 2 starts / Σ 0.5 reached = 0.5 (independent scores: conditional = score).
        #expect(sampled.result.perPosition == [0.5, 0.5])
    }

    /// Loads a synthetic model twice (two engines over the same file behave as two models).
    func engines(_ paths: [String]) throws -> [ForwardEngine] {
        try paths.map { ForwardEngine(model: try LanguageModel.load(path: $0, logger: Logger(label: "test")), threads: 1) }
    }

    static let prompts: [[Int32]] = [Array(1...24), [5, 9, 33, 70, 2, 2, 41, 100, 250, 7], Array(stride(from: 300, to: 260, by: -3))]

    @Test("a model against itself: acceptance 1 at every position and K, KL 0, the target's perplexity",
          .timeLimit(.minutes(5)))
    func selfAlignment() async throws {
        let pair = try await SyntheticPair.make()
        let e = try engines([pair.target, pair.target])
        var profiler = AlignmentProfiler(target: e[0], drafts: [e[1]], kMax: 4, maxTokens: 24, temperature: 0.7)
        for p in Self.prompts { try profiler.add(prompt: p, isEndOfGeneration: { _ in false }) }
        let s = profiler.summary(draft: 0)
        #expect(s.positions == 3 * 24)
        #expect(s.greedy.perPosition == [1, 1, 1, 1])
        #expect(s.greedy.perK.map(\.tokensPerRound) == [2, 3, 4, 5])
        #expect(s.sampled.perPosition.allSatisfy { abs($0 - 1) < 1e-4 }, "\(s.sampled.perPosition)")
        #expect(s.klDivergence == 0 && s.klMax == 0)
        #expect(abs(s.draftPerplexity - s.targetPerplexity) < 1e-12)
    }

    @Test("a noisy draft: acceptance below 1, KL above 0, perplexity above the target's; JSON round trip",
          .timeLimit(.minutes(5)))
    func noisyDraft() async throws {
        let pair = try await SyntheticPair.make()
        let e = try engines([pair.target, pair.draft, pair.target])
        var profiler = AlignmentProfiler(target: e[0], drafts: [e[1], e[2]], kMax: 4, maxTokens: 24, temperature: 1)
        for p in Self.prompts { try profiler.add(prompt: p, isEndOfGeneration: { _ in false }) }
        let s = profiler.summary(draft: 0)
        let own = profiler.summary(draft: 1)
        #expect(s.greedy.perPosition.allSatisfy { $0 < 1 }, "\(s.greedy.perPosition)")
        #expect(s.greedy.perK[0].acceptanceRate > 0, "the synthetic draft agrees on part of the tokens")
        #expect(s.sampled.perPosition.allSatisfy { $0 > 0 && $0 < 1 })
        #expect(s.klDivergence > 0 && s.klMax >= s.klDivergence)
        #expect(s.draftPerplexity > s.targetPerplexity)
        // The target as a second draft in the same run is still perfectly aligned.
        #expect(own.greedy.perPosition == [1, 1, 1, 1] && own.klDivergence == 0)
        // Per-K tokens per round grow with K and never exceed K + 1.
        for row in s.greedy.perK { #expect(row.tokensPerRound >= 1 && row.tokensPerRound <= Double(row.k + 1)) }

        let speed = try AlignmentProfiler.decodeTokensPerSecond(e[1], prompt: Self.prompts[0], tokens: 8)
        #expect(speed > 0)
        let profile = AlignmentProfile(
            draftModel: "draft.gguf", draftQuantization: "Q8_0", draftBytes: 1234, targetModel: "target.gguf",
            targetQuantization: "Q8_0", promptSet: "synthetic", prompts: 3, maxTokens: 24, kMax: 4,
            positions: s.positions, greedy: s.greedy, temperature: 1, sampled: s.sampled, klDivergence: s.klDivergence,
            klMax: s.klMax, draftPerplexity: s.draftPerplexity, targetPerplexity: s.targetPerplexity,
            draftTokensPerSecond: speed, source: "test")
        let path = NSTemporaryDirectory() + "alignment-\(UUID().uuidString.prefix(8)).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try AlignmentProfile.write([profile], path: path)
        #expect(try AlignmentProfile.load(path: path) == [profile])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"schema\" : \"tandem.alignment-profile/1\"") && text.contains("\"per_position\""))
        // A bad file is refused with the field named.
        try text.replacingOccurrences(of: "tandem.alignment-profile/1", with: "other/9")
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AlignmentProfileError.self) { try AlignmentProfile.load(path: path) }
    }

    @Test("--pair: the last model is the target; repeated --pair DRAFT TARGET lists the drafts once")
    func pairArguments() throws {
        let one = try ProfileCommand.parse(["--pair", "a.gguf", "b.gguf", "t.gguf", "--k-max", "6"])
        #expect(try one.pairOptions.split().drafts == ["a.gguf", "b.gguf"])
        #expect(try one.pairOptions.split().target == "t.gguf")
        let repeated = try ProfileCommand.parse(["--pair", "a", "t", "--pair", "b", "t"])
        #expect(try repeated.pairOptions.split().drafts == ["a", "b"])
        let selfPair = try ProfileCommand.parse(["--pair", "t", "t"])
        #expect(try selfPair.pairOptions.split().drafts == ["t"])
        #expect(throws: (any Error).self) { try ProfileCommand.parse(["--pair", "t"]).pairOptions.split() }
        // The device-profile mode still parses without --pair.
        #expect(try ProfileCommand.parse(["--model", "m.gguf"]).pairOptions.pair.isEmpty)
    }

    @Test("the metrics-store keeps alignment carried by profile events and answers the latest per variant")
    func storeAlignment() async throws {
        let dir = try MetricsStoreTestSupport.temporaryDirectory()
        defer { MetricsStoreTestSupport.removeDirectory(dir) }
        let store = try EventStore(path: dir + "/metrics.sqlite")
        func event(_ model: String, tps: Double, first: Double, at: Double) -> WireMessage {
            .profile(ProfileEvent(device: "host", draftModel: model, quantization: "Q4_0", draftTokensPerSecond: tps,
                                  powerWatts: 0, at: at,
                                  alignment: .init(targetModel: "target", perPosition: [first, 0.5],
                                                   sampledPerPosition: [0.7, 0.6], temperature: 1, klDivergence: 0.25,
                                                   perplexity: 1.5, positions: 64)))
        }
        try await store.append(MetricsStoreTestSupport.stored([
            event("d1", tps: 50, first: 0.8, at: 100), event("d1", tps: 60, first: 0.9, at: 200),
            event("d2", tps: 90, first: 0.6, at: 150),
            .profile(ProfileEvent(device: "host", draftModel: "d3", quantization: "Q8_0", draftTokensPerSecond: 10,
                                  powerWatts: 1, at: 100)),
        ]))
        let rows = try await store.alignment(since: nil)
        #expect(rows.map(\.draftModel) == ["d1", "d2"])
        #expect(rows[0].samples == 2 && rows[0].perPosition == [0.9, 0.5] && rows[0].draftTokensPerSecond == 60)
        #expect(rows[0].sampledPerPosition == [0.7, 0.6] && rows[0].klDivergence == 0.25 && rows[0].positions == 64)
        #expect(try await store.alignment(since: 160).map(\.draftModel) == ["d1"])
        let answer = try await store.answer(MetricsQuery(kind: .alignment))
        #expect(answer.alignment?.count == 2)
        // Speed-only profiles still land in the profile table.
        #expect(try await store.profiles(since: nil).count == 3)
        try store.closeBlocking()
    }
}

/// `tandem profile --pair --publish`: the events reach a real metrics-store process and its `alignment` query.
@Suite("alignment profiling: publish to a metrics-store process", .serialized, .timeLimit(.minutes(3)))
struct AlignmentPublishTests {
    @Test("published alignment profiles come back from the store's alignment query")
    func publishReachesStore() async throws {
        typealias S = MetricsStoreTestSupport
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let server = try await S.Server(db: dir + "/metrics.sqlite")
        do {
            let acceptance = AlignmentProfile.Acceptance(perPosition: [0.9, 0.8], perPositionUnconditional: [0.9, 0.72],
                                                         perK: [])
            let profiles = ["a.gguf", "b.gguf"].map { name in
                AlignmentProfile(draftModel: name, draftQuantization: "Q4_0", draftBytes: 1, targetModel: "target",
                                 targetQuantization: "Q4_K", promptSet: "code", prompts: 1, maxTokens: 8, kMax: 2,
                                 positions: 8, greedy: acceptance, temperature: 1, sampled: acceptance,
                                 klDivergence: 0.1, klMax: 0.3, draftPerplexity: 1.2, targetPerplexity: 1.1,
                                 draftTokensPerSecond: 42, source: "test")
            }
            var logger = Logger(label: "test.publish")
            logger.logLevel = .warning
            try await ProfileCommand.publish(profiles, device: "host-x", endpoint: server.xsub, logger: logger)
            let arrived = await S.eventually(.seconds(15)) {
                (try? await server.metrics(MetricsQuery(kind: .alignment)).alignment?.count) == 2
            }
            #expect(arrived, "stderr: \(server.process.logTail())")
            let rows = try await server.metrics(MetricsQuery(kind: .alignment)).alignment ?? []
            #expect(rows.map(\.draftModel) == ["a.gguf", "b.gguf"])
            #expect(rows.allSatisfy { $0.device == "host-x" && $0.perPosition == [0.9, 0.8] && $0.draftTokensPerSecond == 42 })
            #expect(await server.stop() == 0)
        } catch {
            await server.kill9()
            throw error
        }
    }
}
