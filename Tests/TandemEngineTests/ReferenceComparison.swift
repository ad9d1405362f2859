/// Compares engine logits with reference logits (same metric as Tests/Reference/compare.py).
///
/// For each position with reference logits `r` and engine logits `e`:
/// - `range = max(r) - min(r)` over the whole vocabulary;
/// - error = max over the reference's top-20 token ids of `|e[i] - r[i]| / range`;
/// - the argmax must match, unless the reference is a near-tie there: the engine's argmax is accepted
///   when `r[argmax(e)] >= max(r) - 2 * tieTolerance * range` (`tieTolerance` defaults to 1e-2 even
///   when a looser `tolerance` is used for the values).
///
/// Dividing by the logit range (rather than by `|r[i]|`) keeps the error meaningful for logits close to
/// zero, and the near-tie rule keeps legitimate rounding from failing a coin-toss argmax.
struct LogitComparison: CustomStringConvertible {
    static let defaultTolerance = 1e-2
    static let topCount = 20

    var maxRelativeError = 0.0
    var worstRow = 0
    var argmaxMismatches: [Int] = []
    var rows = 0
    var tolerance: Double
    var tieTolerance: Double

    var passed: Bool { maxRelativeError <= tolerance && argmaxMismatches.isEmpty }

    var description: String {
        "rows \(rows), max rel error \(maxRelativeError) (row \(worstRow), tolerance \(tolerance))"
            + (argmaxMismatches.isEmpty ? "" : ", argmax differs at rows \(argmaxMismatches)")
    }

    init(tolerance: Double = LogitComparison.defaultTolerance, tieTolerance: Double = LogitComparison.defaultTolerance) {
        self.tolerance = tolerance
        self.tieTolerance = tieTolerance
    }

    /// Adds one position: `engine` and `reference` are full vocabulary rows.
    mutating func add<E: Collection<Float>, R: Collection<Float>>(engine: E, reference: R) {
        let e = Array(engine), r = Array(reference)
        precondition(e.count == r.count, "vocabulary sizes differ: \(e.count) vs \(r.count)")
        let row = rows
        rows += 1
        var rMax = -Float.infinity, rMin = Float.infinity, rArg = 0
        var eMax = -Float.infinity, eArg = 0
        for i in r.indices {
            if r[i] > rMax { rMax = r[i]; rArg = i }
            rMin = min(rMin, r[i])
            if e[i] > eMax { eMax = e[i]; eArg = i }
        }
        let range = Double(rMax - rMin) > 0 ? Double(rMax - rMin) : 1
        let top = r.indices.sorted { r[$0] != r[$1] ? r[$0] > r[$1] : $0 < $1 }.prefix(Self.topCount)
        var worst = 0.0
        for i in top {
            let err = abs(Double(e[i]) - Double(r[i])) / range
            // NaN must fail: `max` would drop it.
            if err.isNaN || err > worst { worst = err.isNaN ? .infinity : err }
        }
        if worst > maxRelativeError {
            maxRelativeError = worst
            worstRow = row
        }
        if eArg != rArg && Double(r[eArg]) < Double(rMax) - 2 * tieTolerance * range {
            argmaxMismatches.append(row)
        }
    }
}
