import Testing
import TandemKernels
import TandemTestSupport

/// `AttentionOps` (attention over an f16 KV cache): values against a Double reference, the portable
/// bodies against the selected ones bit for bit, and independence from the number of positions.
@Suite("Kernels: f16 attention")
struct KernelsAttentionOpsTests {
    static func halves(_ x: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: x.count)
        AttentionOps.storeF16(x, &out, count: x.count)
        return out
    }

    @Test("storeF16 rounds to nearest even like Float16")
    func store() {
        let x: [Float] = [0, -0.0, 1, 1.0 / 3, 65504, 70000, 1e-8, -2.5, 0.1]
        let h = Self.halves(x)
        #expect(h == x.map { Float16($0).bitPattern })
        #expect(Float(Float16(bitPattern: h[3])) != 1.0 / 3)  // really rounded
    }

    @Test("scores and accumulation match a Double reference", arguments: [64, 77, 128])
    func reference(headDim: Int) {
        var rng = TestRNG(seed: 7)
        let positions = 37, stride = headDim * 2 + 8
        let q = (0..<headDim).map { _ in Float.random(in: -2...2, using: &rng) }
        let kf = (0..<(positions * stride)).map { _ in Float.random(in: -2...2, using: &rng) }
        let vf = (0..<(positions * stride)).map { _ in Float.random(in: -2...2, using: &rng) }
        let k = Self.halves(kf), v = Self.halves(vf)
        var scores = [Float](repeating: 0, count: positions)
        let scale: Float = 0.125
        let mx = AttentionOps.scoresF16(q, keys: k, stride: stride, positions: positions, headDim: headDim,
                                        scale: scale, &scores)
        var refMax = -Double.infinity
        for j in 0..<positions {
            var d = 0.0, mag = 0.0
            for i in 0..<headDim {
                let kv = Double(Float16(bitPattern: k[j * stride + i]))
                d += Double(q[i]) * kv
                mag += abs(Double(q[i]) * kv)
            }
            d *= Double(scale)
            refMax = max(refMax, d)
            #expect(abs(Double(scores[j]) - d) <= 1e-6 * mag + 1e-7, "score \(j)")
        }
        #expect(abs(Double(mx) - refMax) <= 1e-5)
        #expect(mx == scores.max())

        let weights = (0..<positions).map { _ in Float.random(in: 0...1, using: &rng) }
        var out = [Float](repeating: 99, count: headDim)  // overwritten, not added to
        AttentionOps.accumulateF16(weights, norm: 0.5, values: v, stride: stride, positions: positions,
                                   headDim: headDim, &out)
        for i in 0..<headDim {
            var r = 0.0
            for j in 0..<positions { r += Double(weights[j] * 0.5) * Double(Float16(bitPattern: v[j * stride + i])) }
            #expect(abs(Double(out[i]) - r) <= 1e-5 * Double(positions), "out \(i)")
        }
    }

    @Test("portable f16 attention gives the same bits as AttentionOps")
    func portableAgrees() {
        var rng = TestRNG(seed: 11)
        for headDim in [64, 77, 128] {
            let positions = 19, stride = headDim + 5
            let q = (0..<headDim).map { _ in Float.random(in: -2...2, using: &rng) }
            let k = Self.halves((0..<(positions * stride)).map { _ in Float.random(in: -2...2, using: &rng) })
            let v = Self.halves((0..<(positions * stride)).map { _ in Float.random(in: -2...2, using: &rng) })
            var s1 = [Float](repeating: 0, count: positions), s2 = s1
            let m1 = AttentionOps.scoresF16(q, keys: k, stride: stride, positions: positions, headDim: headDim, scale: 0.3, &s1)
            let m2 = PortableAttentionOps.scoresF16(q, keys: k, stride: stride, positions: positions, headDim: headDim,
                                                    scale: 0.3, &s2)
            #expect(m1.bitPattern == m2.bitPattern)
            #expect(s1.map(\.bitPattern) == s2.map(\.bitPattern), "scores, head dim \(headDim)")
            var o1 = [Float](repeating: 0, count: headDim), o2 = o1
            AttentionOps.accumulateF16(s1, norm: 0.7, values: v, stride: stride, positions: positions, headDim: headDim, &o1)
            PortableAttentionOps.accumulateF16(s1, norm: 0.7, values: v, stride: stride, positions: positions,
                                               headDim: headDim, &o2)
            #expect(o1.map(\.bitPattern) == o2.map(\.bitPattern), "values, head dim \(headDim)")
        }
    }

    @Test("a position's score does not depend on how many positions are scored")
    func positionCountInvariance() {
        var rng = TestRNG(seed: 5)
        let headDim = 64, positions = 40
        let q = (0..<headDim).map { _ in Float.random(in: -2...2, using: &rng) }
        let k = Self.halves((0..<(positions * headDim)).map { _ in Float.random(in: -2...2, using: &rng) })
        var all = [Float](repeating: 0, count: positions)
        _ = AttentionOps.scoresF16(q, keys: k, stride: headDim, positions: positions, headDim: headDim, scale: 1, &all)
        for n in [1, 7, 33] {
            var part = [Float](repeating: 0, count: n)
            _ = AttentionOps.scoresF16(q, keys: k, stride: headDim, positions: n, headDim: headDim, scale: 1, &part)
            #expect(part.map(\.bitPattern) == all.prefix(n).map(\.bitPattern))
        }
    }
}
