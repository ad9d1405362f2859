import TandemTestSupport
import Testing
import TandemSpeculative

@Suite("Linear batch time model")
struct LinearBatchTimeModelTests {
    static let truth = [0.015, 0.003, 0.0025, 0.000_004]
    static func time(_ s: BatchShape) -> Double {
        truth[0] + truth[1] * Double(s.sequences) + truth[2] * Double(s.newTokens) + truth[3] * Double(s.contextTokens)
    }
    static func randomShape(_ rng: inout TestRNG) -> BatchShape {
        let seqs = Int(rng.next() % 8) + 1
        var tokens = 0, ctx = 0
        for _ in 0..<seqs {
            tokens += Int(rng.next() % 8) + 1
            ctx += Int(rng.next() % 2000) + 10
        }
        return BatchShape(sequences: seqs, newTokens: tokens, contextTokens: ctx)
    }

    @Test("least squares recovers known coefficients from exact data")
    func recoversCoefficients() {
        var m = LinearBatchTimeModel(configuration: .init(priorWeight: 0))
        var rng = TestRNG(seed: 1)
        for _ in 0..<100 {
            let s = Self.randomShape(&rng)
            m.observe(s, seconds: Self.time(s))
        }
        for (a, b) in zip(m.coefficients, Self.truth) { #expect(abs(a - b) <= 1e-6 * max(1, abs(b) * 1e3)) }
        #expect(m.fitError.rmse < 1e-9)
        #expect(m.fitError.meanRelativeError < 1e-6)
    }

    @Test("with noise and the default prior the fit is close and reports its error")
    func noisyFit() {
        var m = LinearBatchTimeModel()
        var rng = TestRNG(seed: 2)
        let sigma = 0.001
        for _ in 0..<2000 {
            let s = Self.randomShape(&rng)
            m.observe(s, seconds: Self.time(s) + sigma * rng.normal())
        }
        for (a, b) in zip(m.coefficients, Self.truth) { #expect(abs(a - b) < 0.1 * b + 2e-4, "\(a) vs \(b)") }
        let err = m.fitError
        #expect(err.samples == 256)
        #expect(abs(err.rmse - sigma) < 0.3 * sigma, "rmse \(err.rmse)")
        #expect(err.meanRelativeError < 0.05)
        let probe = BatchShape(sequences: 4, newTokens: 20, contextTokens: 4000)
        #expect(abs(m.predictSeconds(probe) - Self.time(probe)) < 0.002)
    }

    @Test("too few or degenerate samples fall back to the prior and stay finite")
    func robustness() {
        let prior = [0.05, 0.001, 0.002, 0.000_001]
        var m = LinearBatchTimeModel(configuration: .init(priorCoefficients: prior, minSamples: 4))
        #expect(m.coefficients == prior && !m.isFitted)
        m.observe(BatchShape(sequences: 1, newTokens: 5, contextTokens: 100), seconds: 0.2)
        #expect(m.coefficients == prior)
        // Identical (collinear) observations: solvable thanks to the prior, predicts the observed time.
        for _ in 0..<50 { m.observe(BatchShape(sequences: 2, newTokens: 10, contextTokens: 500), seconds: 0.1) }
        #expect(m.isFitted)
        #expect(m.coefficients.allSatisfy { $0.isFinite })
        #expect(abs(m.predictSeconds(BatchShape(sequences: 2, newTokens: 10, contextTokens: 500)) - 0.1) < 0.01)
        #expect(m.predictSeconds(.empty) == 0)
        // Garbage observations are ignored.
        let before = m.coefficients
        m.observe(BatchShape(sequences: 1, newTokens: 1, contextTokens: 1), seconds: .nan)
        #expect(m.coefficients == before)
    }

    @Test("seeded coefficients and the per-sequence verify time model")
    func seededAndVerifyModel() {
        let m = LinearBatchTimeModel(coefficients: Self.truth)
        #expect(m.coefficients == Self.truth)
        let vt = m.verifyTimeModel(contextTokens: 1000)
        let shape = BatchShape(sequences: 1, newTokens: 5, contextTokens: 1000)
        #expect(abs(vt.seconds(draftLength: 4) - m.predictSeconds(shape)) < 1e-12)
    }

    @Test("forgetting follows a change in speed")
    func drift() {
        var m = LinearBatchTimeModel(configuration: .init(priorWeight: 0.1, forgetting: 0.95))
        var rng = TestRNG(seed: 4)
        for _ in 0..<300 { let s = Self.randomShape(&rng); m.observe(s, seconds: Self.time(s)) }
        for _ in 0..<300 { let s = Self.randomShape(&rng); m.observe(s, seconds: 2 * Self.time(s)) }
        let probe = BatchShape(sequences: 3, newTokens: 12, contextTokens: 3000)
        #expect(abs(m.predictSeconds(probe) - 2 * Self.time(probe)) < 0.05 * Self.time(probe))
    }
}
