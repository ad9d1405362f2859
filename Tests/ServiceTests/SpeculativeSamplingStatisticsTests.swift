import Foundation
import Logging
import TandemEngine
import TandemSpeculative
import TandemTestSupport
import Testing

/// Exact-mode speculative sampling on real (tiny, synthetic) draft and target models: over many
/// seeds, the distribution of the first emitted token must be the target's own distribution
/// (a chi-square test that a wrong rule fails), and coupled mode must reproduce target sampling.
@Suite struct SpeculativeSamplingStatisticsTests {
    @Test func firstEmittedTokenFollowsTheTargetDistribution() async throws {
        let pair = try await SyntheticPair.make()
        let target = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let draft = try LanguageModel.load(path: pair.draft, logger: Logger(label: "test"))
        let targetEngine = ForwardEngine(model: target, threads: 1)
        let draftEngine = ForwardEngine(model: draft, threads: 1)
        let prompt: [Int32] = [72, 101, 108, 108, 111, 32]
        let vocab = target.config.vocabularySize
        var params = SamplingParams(temperature: 1, topK: 8, seed: 0)

        let targetRow = Array(try targetEngine.forward([ForwardRequest(cache: targetEngine.makeCache(capacity: 16),
                                                                       tokens: prompt, logits: .last)]).lastLogits(request: 0))
        let draftRow = Array(try draftEngine.forward([ForwardRequest(cache: draftEngine.makeCache(capacity: 16),
                                                                     tokens: prompt, logits: .last)]).lastLogits(request: 0))
        let sampler = Sampler(vocabSize: vocab)
        sampler.computeDistribution(logits: targetRow, params: params)
        let p = sampler.copyDistribution()
        sampler.computeDistribution(logits: draftRow, params: params)
        let q = sampler.copyDistribution()
        #expect(p.argmax != q.argmax || p.probs != q.probs, "the draft must differ from the target for this test to mean anything")

        let trials = 6000
        var exactCounts: [Int32: Int] = [:], wrongCounts: [Int32: Int] = [:]
        var accepted = 0
        let verifier = SpeculativeVerifier(vocabSize: vocab)
        let rows = targetRow + targetRow  // row 1 (bonus) does not affect the first emitted token
        for seed in 0..<trials {
            params.seed = UInt64(seed)
            let x = sampler.sample(logits: draftRow, params: params, position: prompt.count)
            let result = verifier.verify(mode: .exact, draftTokens: [x], draftDistributions: [q], targetLogits: rows,
                                         position: prompt.count, params: params)
            exactCounts[result.tokens[0], default: 0] += 1
            if result.acceptedCount == 1 { accepted += 1 }
            // A wrong rule (always accept the draft) must be rejected by the same test.
            wrongCounts[x, default: 0] += 1
        }
        func chiSquare(_ counts: [Int32: Int]) -> Double {
            var stat = 0.0
            for (token, prob) in zip(p.tokens, p.probs) where prob > 0 {
                let expected = Double(prob) * Double(trials)
                let d = Double(counts[token] ?? 0) - expected
                stat += d * d / expected
            }
            let outside = counts.filter { !p.tokens.contains($0.key) }.values.reduce(0, +)
            return outside > 0 ? .infinity : stat
        }
        let degrees = p.tokens.count - 1
        #expect(degrees >= 2)
        #expect(accepted > 0 && accepted < trials, "some drafts accepted, some rejected (\(accepted)/\(trials))")
        #expect(chiSquare(exactCounts) < Statistics.chiSquareCritical(dof: degrees),
                "exact speculative sampling deviates from the target: chi2 \(chiSquare(exactCounts))")
        #expect(chiSquare(wrongCounts) > Statistics.chiSquareCritical(dof: degrees),
                "the test must be able to fail: sampling the draft itself gave chi2 \(chiSquare(wrongCounts))")

        // Coupled mode: the emitted token is exactly the target-only sample for every seed.
        for seed in 0..<500 {
            params.seed = UInt64(seed)
            let x = sampler.sample(logits: draftRow, params: params, position: prompt.count)
            let coupled = verifier.verify(mode: .coupled, draftTokens: [x], targetLogits: rows, position: prompt.count,
                                          params: params)
            let own = sampler.sample(logits: targetRow, params: params, position: prompt.count)
            #expect(coupled.tokens[0] == own)
        }
    }
}
