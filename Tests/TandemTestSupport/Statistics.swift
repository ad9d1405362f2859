import Foundation
import TandemEngine

/// Deterministic test randomness (SplitMix64 stream; tests only).
public struct TestRNG: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return PositionRandom.mix(state)
    }
    public mutating func normal() -> Double {
        let u1 = (Double(next() >> 11) + 0.5) * 0x1p-53
        let u2 = Double(next() >> 11) * 0x1p-53
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
    public mutating func logits(_ n: Int, scale: Double = 1.5) -> [Float] { (0..<n).map { _ in Float(normal() * scale) } }
}

/// Statistics helpers shared by the sampling and speculative test suites.
public enum Statistics {
    public static func softmax(_ logits: [Float], temperature: Float = 1) -> [Double] {
        let s = logits.map { Double($0) / Double(temperature) }
        let m = s.max()!
        let e = s.map { exp($0 - m) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    /// Pearson chi-square of observed counts against expected probabilities; cells with expected count < 5
    /// are pooled into one. Returns the statistic and the degrees of freedom.
    public static func chiSquare(observed: [Int], expected probs: [Double]) -> (stat: Double, dof: Int) {
        let n = Double(observed.reduce(0, +))
        var stat = 0.0
        var cells = 0
        var pooledO = 0.0, pooledE = 0.0
        for (o, p) in zip(observed, probs) {
            let e = p * n
            if e < 5 { pooledO += Double(o); pooledE += e; continue }
            stat += (Double(o) - e) * (Double(o) - e) / e
            cells += 1
        }
        if pooledE > 0 || pooledO > 0 {
            stat += (pooledO - pooledE) * (pooledO - pooledE) / max(pooledE, 1e-9)
            cells += 1
        }
        return (stat, max(cells - 1, 1))
    }

    /// Upper critical value of chi-square with `dof` degrees of freedom (Wilson–Hilferty); z = 3.719 is the
    /// one-sided 1e-4 quantile, so a correct sampler would fail with probability ~1e-4 (tests use fixed seeds).
    public static func chiSquareCritical(dof: Int, z: Double = 3.719) -> Double {
        let k = Double(dof)
        let a = 2 / (9 * k)
        let c = 1 - a + z * a.squareRoot()
        return k * c * c * c
    }
}
