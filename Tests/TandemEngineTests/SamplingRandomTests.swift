import Foundation
import TandemTestSupport
import Testing
import TandemEngine

@Suite("PositionRandom")
struct SamplingRandomTests {
    @Test("draws are a pure function of (seed, position, stream, index)")
    func determinism() {
        let a = PositionRandom(seed: 42)
        let b = PositionRandom(seed: 42)
        for pos in [0, 1, 17, 100_000] {
            for s in PositionRandom.Stream.allCases {
                #expect(a.bits(position: pos, stream: s, index: 3) == b.bits(position: pos, stream: s, index: 3))
                #expect(a.uniform(position: pos, stream: s) == b.uniform(position: pos, stream: s))
            }
            #expect(a.gumbel(position: pos, token: 7) == b.gumbel(position: pos, token: 7))
        }
        // Order of evaluation does not matter (no hidden stream state).
        let forward = (0..<50).map { a.uniform(position: $0, stream: .accept) }
        let backward = (0..<50).reversed().map { a.uniform(position: $0, stream: .accept) }.reversed()
        #expect(forward == Array(backward))
    }

    @Test("seeds, positions, streams and indices give different draws")
    func distinctness() {
        let r = PositionRandom(seed: 1)
        var seen = Set<UInt64>()
        for pos in 0..<64 {
            for s in PositionRandom.Stream.allCases {
                for i in UInt64(0)..<16 { seen.insert(r.bits(position: pos, stream: s, index: i)) }
            }
        }
        #expect(seen.count == 64 * 4 * 16)
        #expect(PositionRandom(seed: 1).bits(position: 5, stream: .sample) != PositionRandom(seed: 2).bits(position: 5, stream: .sample))
    }

    @Test("uniforms are uniform (chi-square, 100 bins) and inside (0, 1)")
    func uniformity() {
        let r = PositionRandom(seed: 0xDEADBEEF)
        var counts = [Int](repeating: 0, count: 100)
        var minU = 1.0, maxU = 0.0
        // Vary position and index both: the two ways the code draws.
        for pos in 0..<1000 {
            for i in UInt64(0)..<100 {
                let u = r.uniform(position: pos, stream: .sample, index: i)
                minU = min(minU, u); maxU = max(maxU, u)
                counts[min(Int(u * 100), 99)] += 1
            }
        }
        #expect(minU > 0 && maxU < 1)
        let (stat, dof) = Statistics.chiSquare(observed: counts, expected: [Double](repeating: 0.01, count: 100))
        #expect(stat < Statistics.chiSquareCritical(dof: dof), "chi2 \(stat) dof \(dof)")
        // Consecutive positions at a fixed index (the accept stream) too.
        var c2 = [Int](repeating: 0, count: 20)
        for pos in 0..<100_000 { c2[min(Int(r.uniform(position: pos, stream: .accept) * 20), 19)] += 1 }
        let t2 = Statistics.chiSquare(observed: c2, expected: [Double](repeating: 0.05, count: 20))
        #expect(t2.stat < Statistics.chiSquareCritical(dof: t2.dof), "chi2 \(t2.stat)")
    }

    @Test("Gumbel noise has the Gumbel mean and variance")
    func gumbelMoments() {
        let r = PositionRandom(seed: 9)
        var sum = 0.0, sq = 0.0
        let n = 200_000
        for i in 0..<n {
            let g = r.gumbel(position: i / 100, token: Int32(i % 100))
            sum += g; sq += g * g
        }
        let mean = sum / Double(n)
        let variance = sq / Double(n) - mean * mean
        #expect(abs(mean - 0.577_215_66) < 0.01)
        #expect(abs(variance - Double.pi * Double.pi / 6) < 0.03)
    }
}
