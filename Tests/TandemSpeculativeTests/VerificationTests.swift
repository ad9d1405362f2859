import Foundation
import TandemTestSupport
import Testing
import TandemEngine
import TandemSpeculative

/// Deterministic synthetic "models": logits as a function of (salt, previous token, position).
struct SyntheticModel {
    let vocab: Int
    let salt: UInt64
    let scale: Double
    /// Salt of a model whose logits are mixed in (drafters resemble targets): 0 = independent, 1 = identical.
    let baseSalt: UInt64?
    let similarity: Double

    init(vocab: Int, salt: UInt64, scale: Double = 1.5, resembling base: SyntheticModel? = nil, similarity: Double = 0) {
        self.vocab = vocab
        self.salt = salt
        self.scale = scale
        baseSalt = base?.salt
        self.similarity = similarity
    }

    func logits(previous: Int32, position: Int) -> [Float] {
        let own = Self.raw(vocab: vocab, salt: salt, scale: scale, previous: previous, position: position)
        guard let baseSalt else { return own }
        let b = Self.raw(vocab: vocab, salt: baseSalt, scale: scale, previous: previous, position: position)
        return zip(own, b).map { Float(similarity) * $1 + Float(1 - similarity) * $0 }
    }

    static func raw(vocab: Int, salt: UInt64, scale: Double, previous: Int32, position: Int) -> [Float] {
        var rng = TestRNG(seed: PositionRandom.mix(salt ^ PositionRandom.mix(UInt64(position) &* 1_000_003 &+ UInt64(UInt32(bitPattern: previous)))))
        return rng.logits(vocab, scale: scale)
    }
}

/// Runs speculative decoding against the synthetic models and returns the generated tokens.
func speculativeGenerate(target: SyntheticModel, draft: SyntheticModel, mode: SpeculationMode,
                         params: SamplingParams, prompt: [Int32], count: Int, draftLengths: [Int],
                         acceptedOut: inout Int, draftedOut: inout Int) -> [Int32] {
    let verifier = SpeculativeVerifier(vocabSize: target.vocab)
    let drafter = SpeculativeDrafter(vocabSize: draft.vocab, maxSupport: 5)
    var history = prompt
    var round = 0
    var result = VerificationResult()
    while history.count < prompt.count + count {
        let k = draftLengths[round % draftLengths.count]
        round += 1
        let position = history.count
        var drafts: [Int32] = []
        var dists: [SparseDistribution] = []
        var context = history
        for i in 0..<k {
            let step = drafter.draft(logits: draft.logits(previous: context.last!, position: position + i),
                                     params: params, position: position + i, recentTokens: context)
            drafts.append(step.token)
            dists.append(drafter.copyDistribution())
            context.append(step.token)
        }
        // Target rows: row i conditions on the committed history plus drafts 1...i.
        var rows: [Float] = []
        var prev = history.last!
        for i in 0...k {
            rows += target.logits(previous: prev, position: position + i)
            if i < k { prev = drafts[i] }
        }
        drafts.withUnsafeBufferPointer { d in
            rows.withUnsafeBufferPointer { r in
                history.withUnsafeBufferPointer { h in
                    verifier.verify(mode: mode, draftTokens: d, draftDistributions: dists, targetLogits: r,
                                    position: position, params: params, recentTokens: h, into: &result)
                }
            }
        }
        acceptedOut += result.acceptedCount
        draftedOut += k
        #expect(result.tokens.count == result.acceptedCount + 1)
        #expect(result.acceptFlags.count == k)
        #expect(result.acceptFlags.prefix(result.acceptedCount).allSatisfy { $0 })
        #expect(!result.acceptFlags.dropFirst(result.acceptedCount).contains(true))
        #expect(Array(result.tokens.prefix(result.acceptedCount)) == Array(drafts.prefix(result.acceptedCount)))
        history += result.tokens
    }
    return Array(history[prompt.count..<(prompt.count + count)])
}

/// Target-only sampling with the same models and seed.
func targetOnlyGenerate(target: SyntheticModel, params: SamplingParams, prompt: [Int32], count: Int) -> [Int32] {
    let sampler = Sampler(vocabSize: target.vocab)
    var history = prompt
    for _ in 0..<count {
        let t = sampler.sample(logits: target.logits(previous: history.last!, position: history.count), params: params,
                               position: history.count, recentTokens: history)
        history.append(t)
    }
    return Array(history[prompt.count...])
}

@Suite("Speculative verification")
struct VerificationTests {
    static let paramVariants: [SamplingParams] = [
        SamplingParams(temperature: 1),
        SamplingParams(temperature: 0.7, topK: 8, topP: 0.9),
        SamplingParams(temperature: 1.3, minP: 0.05),
        SamplingParams(temperature: 0.9, repetitionPenalty: 1.3, repetitionWindow: 8),
        SamplingParams.greedy,
        SamplingParams(temperature: 0, repetitionPenalty: 1.5, repetitionWindow: 4),
    ]

    @Test("coupled mode reproduces target-only sampling exactly", arguments: 0..<6)
    func coupledIdentical(variant: Int) {
        var totalAccepted = 0, totalDrafted = 0
        for trial in UInt64(0)..<12 {
            var params = Self.paramVariants[variant]
            params.seed = 1000 + trial
            let target = SyntheticModel(vocab: 16, salt: 11 + trial)
            // Drafters from unrelated to nearly identical: the output must not depend on it.
            let draft = SyntheticModel(vocab: 16, salt: 99 + trial, resembling: target, similarity: Double(trial % 4) / 3)
            let prompt: [Int32] = [3, 1, 4]
            let expected = targetOnlyGenerate(target: target, params: params, prompt: prompt, count: 40)
            var acc = 0, dr = 0
            let got = speculativeGenerate(target: target, draft: draft, mode: .coupled, params: params, prompt: prompt,
                                          count: 40, draftLengths: [1, 4, 2, 6, 3, 0, 5], acceptedOut: &acc, draftedOut: &dr)
            #expect(got == expected, "variant \(variant) trial \(trial)")
            totalAccepted += acc
            totalDrafted += dr
        }
        // With drafters that resemble the target, some drafts must be accepted (the test is not vacuous).
        #expect(totalAccepted > totalDrafted / 10)
    }

    @Test("greedy exact mode equals target-only greedy decoding (accept while draft == argmax)")
    func greedyExact() {
        for trial in UInt64(0)..<10 {
            let target = SyntheticModel(vocab: 16, salt: 500 + trial)
            let draft = SyntheticModel(vocab: 16, salt: 600 + trial, resembling: target, similarity: 0.7)
            let expected = targetOnlyGenerate(target: target, params: .greedy, prompt: [1], count: 30)
            var acc = 0, dr = 0
            let got = speculativeGenerate(target: target, draft: draft, mode: .exact, params: .greedy, prompt: [1],
                                          count: 30, draftLengths: [3, 5, 2], acceptedOut: &acc, draftedOut: &dr)
            #expect(got == expected)
            #expect(acc > 0)
        }
        // Hand-made round: argmax of the rows is 2, 0, 1; draft [2, 1] → accept 1, correct to 0.
        let v = SpeculativeVerifier(vocabSize: 3)
        let rows: [Float] = [0, 1, 5, 9, 1, 1, 0, 3, 2]
        let r = v.verify(mode: .exact, draftTokens: [2, 1], targetLogits: rows, position: 7, params: .greedy)
        #expect(r.acceptedCount == 1 && r.tokens == [2, 0] && r.acceptFlags == [true, false])
        let all = v.verify(mode: .coupled, draftTokens: [2, 0], targetLogits: rows, position: 7, params: .greedy)
        #expect(all.acceptedCount == 2 && all.tokens == [2, 0, 1] && all.allAccepted)
    }

    @Test("exact mode with K = 0 is target-only sampling")
    func exactZeroDrafts() {
        let target = SyntheticModel(vocab: 16, salt: 7)
        let params = SamplingParams(temperature: 1, topP: 0.95, seed: 42)
        let expected = targetOnlyGenerate(target: target, params: params, prompt: [2], count: 20)
        var acc = 0, dr = 0
        let got = speculativeGenerate(target: target, draft: target, mode: .exact, params: params, prompt: [2],
                                      count: 20, draftLengths: [0], acceptedOut: &acc, draftedOut: &dr)
        #expect(got == expected)
    }

    typealias Rule = (SparseDistribution, SparseDistribution, Int32, PositionRandom, Int) -> Int32?

    /// Generates two tokens per trial (fresh seed) with rounds of up to `draft.count` drafts over
    /// context-independent rows; `rule == nil` runs the production `SpeculativeVerifier` in `exact` mode,
    /// otherwise `rule(p, q, x, random, position)` decides per draft (nil = accept, else the replacement).
    static func exactRounds(target: [[Float]], draft: [[Float]], params: SamplingParams, trials: Int,
                            rule: Rule? = nil) -> (first: [Int], second: [Int]) {
        let vocab = target[0].count
        let drafter = SpeculativeDrafter(vocabSize: vocab, maxSupport: 4)
        let targetSampler = Sampler(vocabSize: vocab)
        let verifier = SpeculativeVerifier(vocabSize: vocab)
        var result = VerificationResult()
        var first = [Int](repeating: 0, count: vocab), second = [Int](repeating: 0, count: vocab)
        let position = 100
        for trial in 0..<trials {
            var p = params
            p.seed = UInt64(trial) &* 7919 &+ 13
            let random = PositionRandom(seed: p.seed)
            var out: [Int32] = []
            while out.count < 2 {
                let pos = position + out.count
                let k = min(draft.count, target.count - 1 - out.count)
                var drafts: [Int32] = []
                var dists: [SparseDistribution] = []
                for i in 0..<k {
                    drafts.append(drafter.draft(logits: draft[out.count + i], params: p, position: pos + i).token)
                    dists.append(drafter.copyDistribution())
                }
                if let rule {
                    var emitted: [Int32] = []
                    for i in 0..<k {
                        targetSampler.computeDistribution(logits: target[out.count + i], params: p)
                        if let replacement = rule(targetSampler.distribution, dists[i], drafts[i], random, pos + i) {
                            emitted.append(replacement)
                            break
                        }
                        emitted.append(drafts[i])
                    }
                    if emitted.count == k {
                        targetSampler.computeDistribution(logits: target[out.count + k], params: p)
                        emitted.append(targetSampler.sampleDistribution(random: random, position: pos + k))
                    }
                    out += emitted
                } else {
                    let rows = Array(target[out.count...(out.count + k)].joined())
                    drafts.withUnsafeBufferPointer { d in
                        rows.withUnsafeBufferPointer { r in
                            verifier.verify(mode: .exact, draftTokens: d, draftDistributions: dists, targetLogits: r,
                                            position: pos, params: p, into: &result)
                        }
                    }
                    out += result.tokens
                }
            }
            first[Int(out[0])] += 1
            second[Int(out[1])] += 1
        }
        return (first, second)
    }

    @Test("exact mode emits tokens distributed as the target (chi-square), and wrong rules are rejected",
          arguments: [SamplingParams(temperature: 1), SamplingParams(temperature: 0.8, topP: 0.9)])
    func exactDistribution(base: SamplingParams) {
        let vocab = 8
        var rng = TestRNG(seed: 2024)
        let target = (0..<4).map { _ in rng.logits(vocab, scale: 1.2) }
        let draft = (0..<3).map { _ in rng.logits(vocab, scale: 1.2) }
        let trials = 50_000
        let sampler = Sampler(vocabSize: vocab)
        func expected(_ row: [Float]) -> [Double] {
            sampler.computeDistribution(logits: row, params: base)
            return (0..<vocab).map { Double(sampler.distribution.probability(of: Int32($0))) }
        }
        let p1 = expected(target[0]), p2 = expected(target[1])

        // The real verifier, one full round of K = 3 per trial (second token: accepted draft, correction or
        // the next round's output).
        let exact = Self.exactRounds(target: target, draft: draft, params: base, trials: trials)
        let c1 = Statistics.chiSquare(observed: exact.first, expected: p1)
        let c2 = Statistics.chiSquare(observed: exact.second, expected: p2)
        #expect(c1.stat < Statistics.chiSquareCritical(dof: c1.dof), "first token chi2 \(c1.stat) dof \(c1.dof)")
        #expect(c2.stat < Statistics.chiSquareCritical(dof: c2.dof), "second token chi2 \(c2.stat) dof \(c2.dof)")

        // Wrong rule 1: on rejection resample from p instead of the residual (biased towards q's tokens).
        let resampleP: Rule = { p, q, x, random, pos in
            let px = Double(p.probability(of: x)), qx = Double(q.probability(of: x))
            if random.uniform(position: pos, stream: .accept) * qx < px { return nil }
            var cum = 0.0
            let u = random.uniform(position: pos, stream: .residual)
            for (t, pr) in zip(p.tokens, p.probs) { cum += Double(pr); if cum > u { return t } }
            return p.tokens.last!
        }
        let wrong = Self.exactRounds(target: target, draft: draft, params: base, trials: trials, rule: resampleP)
        let w1 = Statistics.chiSquare(observed: wrong.first, expected: p1)
        #expect(w1.stat > Statistics.chiSquareCritical(dof: w1.dof), "wrong rule not detected: chi2 \(w1.stat)")

        // Wrong rule 2: always accept (the output is the draft distribution).
        let always = Self.exactRounds(target: target, draft: draft, params: base, trials: trials) { _, _, _, _, _ in nil }
        let w2 = Statistics.chiSquare(observed: always.first, expected: p1)
        #expect(w2.stat > Statistics.chiSquareCritical(dof: w2.dof), "always-accept not detected: chi2 \(w2.stat)")
        print("exact-mode chi2 (critical \(Statistics.chiSquareCritical(dof: c1.dof))): first \(c1.stat), second \(c2.stat); "
              + "resample-from-p rule \(w1.stat), always-accept rule \(w2.stat)")
    }

    @Test("exact verification of a draft token missing from its distribution stays valid")
    func malformedDraft() {
        let v = SpeculativeVerifier(vocabSize: 4)
        let row: [Float] = [0, 0, 0, 0]
        var accepted = 0
        for seed in UInt64(0)..<2000 {
            let r = v.verify(mode: .exact, draftTokens: [3], draftDistributions: [SparseDistribution(tokens: [0, 1], probs: [0.5, 0.5])],
                             targetLogits: row + row, position: 0, params: SamplingParams(temperature: 1, seed: seed))
            #expect(r.tokens.count == r.acceptedCount + 1)
            if r.acceptedCount == 1 { accepted += 1 } else { #expect(r.tokens[0] != 3) }
        }
        // Treated as a deterministic draft: accepted with probability p(3) = 1/4.
        #expect(abs(Double(accepted) / 2000 - 0.25) < 0.04)
    }

    @Test("coupled acceptance is below exact acceptance on average, both positive")
    func acceptanceComparison() {
        var accExact = 0, drExact = 0, accCoupled = 0, drCoupled = 0
        for trial in UInt64(0)..<20 {
            let target = SyntheticModel(vocab: 16, salt: 300 + trial)
            let draft = SyntheticModel(vocab: 16, salt: 400 + trial, resembling: target, similarity: 0.6)
            let params = SamplingParams(temperature: 1, seed: trial)
            _ = speculativeGenerate(target: target, draft: draft, mode: .exact, params: params, prompt: [0], count: 60,
                                    draftLengths: [4], acceptedOut: &accExact, draftedOut: &drExact)
            _ = speculativeGenerate(target: target, draft: draft, mode: .coupled, params: params, prompt: [0], count: 60,
                                    draftLengths: [4], acceptedOut: &accCoupled, draftedOut: &drCoupled)
        }
        let exactRate = Double(accExact) / Double(drExact), coupledRate = Double(accCoupled) / Double(drCoupled)
        #expect(exactRate > 0.2 && coupledRate > 0.1)
        #expect(exactRate >= coupledRate - 0.02, "exact \(exactRate) coupled \(coupledRate)")
        print("acceptance: exact \(exactRate), coupled \(coupledRate)")
    }
}
