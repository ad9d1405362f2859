/// A verifier's measured batch time as a curve over the positions a forward evaluates, plus a context term:
/// `t(P, C) = f(P) + γ·C`, with `f` piecewise linear between knots (docs/design.md §7, "The verifier's cost
/// curve").
///
/// Why a curve and not a line: on a CPU one forward pass is bound by streaming the weights until a few
/// positions share each pass (a 1.5B target takes about as long for 4 positions as for 1), and only then
/// grows by the compute per position. A straight line fitted to such batches (``LinearBatchTimeModel``)
/// under a steady load sees only one batch size and puts almost all the time into the slope: its
/// intercept falls to ~0, every drafted position looks as expensive as a whole decode step, and the
/// planner drafts one token where four pay. The curve keeps the flat start and the steep end apart, so
/// the marginal cost of one more position is read where the batch actually is.
///
/// The fit is recursive least squares over the knot values and `γ` (each batch's positions spread over
/// the two knots around it by linear interpolation weights), started from a prior line and, usually,
/// from a calibration the verifier runs at start (``calibrate(_:)``). Knots no batch has touched are
/// interpolated from their measured neighbours, and the curve is made non-decreasing (more positions
/// never take less time) by lowering outliers, not by lifting the knots after them.
public struct BatchCostCurve: Sendable {
    /// Position counts where the curve has a value; beyond the last the last slope continues.
    public let knots: [Int]
    /// θ: one value per knot (seconds at C = 0), then γ (seconds per context token).
    private var theta: [Double]
    /// RLS covariance (row-major, (knots + 1)²).
    private var covariance: [Double]
    /// How much data touched each knot (sum of interpolation weights), to tell measured knots from prior.
    private var weight: [Double]
    private let forgetting: Double
    public private(set) var samples = 0

    /// The default knots: dense where CPU forwards bend (1-16 positions), sparse up to a prefill chunk.
    public static let defaultKnots = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]

    /// - Parameters:
    ///   - priorFixedSeconds, priorSecondsPerPosition, priorSecondsPerContextToken: the prior line, used
    ///     only until data arrive (a rough CPU guess for a ~1B target).
    ///   - forgetting: RLS discount per observation (1 keeps all history; 0.999 follows slow drift).
    public init(knots: [Int] = BatchCostCurve.defaultKnots, priorFixedSeconds: Double = 0.03,
                priorSecondsPerPosition: Double = 0.004, priorSecondsPerContextToken: Double = 2e-6,
                forgetting: Double = 0.999) {
        let sorted = Array(Set(knots.filter { $0 >= 1 })).sorted()
        self.knots = sorted.isEmpty ? [1] : sorted
        let n = self.knots.count
        theta = self.knots.map { priorFixedSeconds + priorSecondsPerPosition * Double($0) } + [priorSecondsPerContextToken]
        covariance = [Double](repeating: 0, count: (n + 1) * (n + 1))
        // RLS covariance in units of the measurement noise (±2 ms a batch): the prior spread is ±50 ms on
        // each knot value and ±5 µs per context token, so a few batches outweigh the prior line.
        let noise = 0.002 * 0.002
        for i in 0..<n { covariance[i * (n + 1) + i] = 0.05 * 0.05 / noise }
        covariance[n * (n + 1) + n] = 5e-6 * 5e-6 / noise
        weight = [Double](repeating: 0, count: n)
        self.forgetting = min(max(forgetting, 0.9), 1)
    }

    /// Interpolation of `positions` between its two knots: (lower index, weight of the upper knot); past
    /// the last knot the weight exceeds 1 (the last slope continues). The fit and the readers of a
    /// published curve share it.
    static func segment(_ knots: [Int], _ positions: Int) -> (lower: Int, weight: Double) {
        let p = Double(max(positions, 1))
        if positions <= knots[0] { return (0, 0) }
        if positions >= knots[knots.count - 1] {
            return knots.count == 1 ? (0, 0) : (knots.count - 2, 1 + (p - Double(knots[knots.count - 1]))
                / Double(knots[knots.count - 1] - knots[knots.count - 2]))
        }
        var lo = 0, hi = knots.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if knots[mid] <= positions { lo = mid } else { hi = mid }
        }
        return (lo, (p - Double(knots[lo])) / Double(knots[hi] - knots[lo]))
    }

    /// Records one measured batch: `positions` evaluated in one forward over `contextTokens` cached tokens
    /// (summed over its sequences), taking `seconds`.
    public mutating func observe(positions: Int, contextTokens: Int, seconds: Double) {
        guard positions >= 1, contextTokens >= 0, seconds.isFinite, seconds > 0 else { return }
        let n = knots.count, d = n + 1
        let (lo, w) = Self.segment(knots, positions)
        // Feature vector: interpolation weights on two knots (extrapolation past the last knot puts
        // weight > 1 on it and < 0 on the one before), and the context tokens.
        var x = [Double](repeating: 0, count: d)
        if knots.count == 1 { x[0] = 1 } else { x[lo] = 1 - w; x[lo + 1] = w }
        x[n] = Double(contextTokens)
        var px = [Double](repeating: 0, count: d)
        for i in 0..<d {
            var s = 0.0
            for j in 0..<d where x[j] != 0 { s += covariance[i * d + j] * x[j] }
            px[i] = s
        }
        var denominator = forgetting
        for i in 0..<d { denominator += x[i] * px[i] }
        guard denominator > 0, denominator.isFinite else { return }
        var predicted = 0.0
        for i in 0..<d { predicted += x[i] * theta[i] }
        let error = seconds - predicted
        for i in 0..<d { theta[i] += px[i] / denominator * error }
        for i in 0..<d {
            for j in 0..<d { covariance[i * d + j] = (covariance[i * d + j] - px[i] * px[j] / denominator) / forgetting }
        }
        if knots.count == 1 { weight[0] += 1 } else {
            weight[lo] += max(0, 1 - w)
            weight[lo + 1] += min(max(w, 0), 1)
        }
        samples += 1
    }

    /// Seeds the curve with calibration forwards (positions → seconds at no context), each counted as
    /// several observations so the first live batches refine rather than replace it.
    public mutating func calibrate(_ measurements: [(positions: Int, seconds: Double)], repeats: Int = 4) {
        for _ in 0..<max(repeats, 1) {
            for m in measurements { observe(positions: m.positions, contextTokens: 0, seconds: m.seconds) }
        }
    }

    /// Knot values as the curve answers them: measured knots as fitted, untouched knots interpolated
    /// between measured neighbours (or continued along the nearest measured slope), then made
    /// non-decreasing. With no data at all, the prior line.
    public var secondsAtKnots: [Double] {
        let n = knots.count
        let measured = (0..<n).filter { weight[$0] >= 0.5 }
        var values = Array(theta[0..<n])
        if !measured.isEmpty {
            for i in 0..<n where weight[i] < 0.5 {
                let below = measured.last { $0 < i }, above = measured.first { $0 > i }
                func line(_ a: Int, _ b: Int) -> Double {
                    let slope = (values[b] - values[a]) / Double(knots[b] - knots[a])
                    return values[a] + slope * Double(knots[i] - knots[a])
                }
                switch (below, above) {
                case let (a?, b?): values[i] = line(a, b)
                case let (a?, nil):
                    // Past the measured range: continue the last measured slope (or the prior's, with one).
                    let prev = measured.last { $0 < a }
                    values[i] = prev.map { line($0, a) } ?? (values[a] + (theta[i] - theta[a]))
                case let (nil, b?):
                    values[i] = max(values[b] - (theta[b] - theta[i]), 0)
                case (nil, nil): break
                }
            }
        }
        return Self.nonDecreasing(values)
    }

    /// Makes the knot values non-decreasing from the right: a knot slower than a later one is lowered to
    /// it. Timing noise on a shared host is one-sided (a stall only ever makes a forward slower), so a
    /// knot above its successors is an outlier; lifting the later knots to it instead would carry one
    /// stall into every larger batch.
    static func nonDecreasing(_ values: [Double]) -> [Double] {
        var out = values
        var ceiling = Double.infinity
        for i in stride(from: out.count - 1, through: 0, by: -1) {
            out[i] = max(min(out[i], ceiling), 0)
            ceiling = out[i]
        }
        return out
    }

    /// Seconds per cached context token (γ), never negative.
    public var secondsPerContextToken: Double { max(theta[knots.count], 0) }

    /// Predicted time of one forward of `positions` over `contextTokens` cached tokens.
    public func predictSeconds(positions: Int, contextTokens: Int) -> Double {
        Self.evaluate(knots: knots, values: secondsAtKnots, positions: positions)
            + secondsPerContextToken * Double(max(contextTokens, 0))
    }

    /// `f(positions)` of a curve given by its knots and values (shared with the wire snapshot's reader).
    public static func evaluate(knots: [Int], values: [Double], positions: Int) -> Double {
        guard !knots.isEmpty, knots.count == values.count else { return 0 }
        if knots.count == 1 { return values[0] * Double(max(positions, 1)) / Double(knots[0]) }
        let (lo, w) = segment(knots, positions)
        return values[lo] + (values[lo + 1] - values[lo]) * w
    }
}
