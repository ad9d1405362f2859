import TandemSpeculative
import TandemWire

/// What the stored rounds say about how often a draft model's tokens are accepted by a target.
///
/// Two numbers come out of the metrics-store's ``AcceptanceRow``s of one (draft, target) pair:
/// - `alpha`, the pooled per-token acceptance: the α for which docs/design.md §6.1's formula
///   `(1 − α^{K+1}) / (1 − α)`, averaged over the rows' K weighted by rounds, reproduces the measured
///   tokens per round (`Σ rounds · meanAcceptanceLength`). A moment estimator: unlike
///   `accepted / drafted` it is not biased low by drafts after the first rejection, which are
///   never accepted whatever α is.
/// - `conditional[j]`, the per-position acceptance of draft position j given positions < j were
///   accepted: the store reports unconditional `P(position j accepted)` per row, so
///   `c_j = Σ rounds·pp[j] / Σ rounds·pp[j−1]` over the rows that drafted position j. Kept only for
///   positions reached by at least `minPositionRounds` rounds; beyond them `alpha` is used.
///
/// Known bias: when the speculation controller stopped drafting early, the undrafted positions
/// count as rejected, so both numbers describe "controller + draft model", which is what a drafter
/// running that controller will see again.
struct AcceptanceEstimate: Sendable, Hashable {
    var alpha: Double
    var conditional: [Double]
    /// Rounds the estimate is based on (0 for a prior).
    var rounds: Int

    var isMeasured: Bool { rounds > 0 }

    static func prior(_ alpha: Double) -> AcceptanceEstimate {
        AcceptanceEstimate(alpha: min(max(alpha, 0), 1), conditional: [], rounds: 0)
    }

    /// Expected tokens emitted per round with draft length `k`: `1 + Σ_{j<k} Π_{i≤j} c_i`, with
    /// `c_i = alpha` past the measured positions (equals the §4 formula when no positions are measured).
    func expectedTokens(draftLength k: Int) -> Double {
        guard !conditional.isEmpty else {
            return SpeculationMath.expectedTokensPerRound(acceptance: alpha, draftLength: k)
        }
        var curve = Array(conditional.prefix(k))
        if curve.count < k { curve += Array(repeating: alpha, count: k - curve.count) }
        return SpeculationMath.expectedTokensPerRound(positionAcceptance: curve, draftLength: k)
    }

    /// The estimate from the rows of one (draft, target) pair; nil when they hold fewer than
    /// `minRounds` rounds.
    static func measured(_ rows: [AcceptanceRow], minRounds: Int, minPositionRounds: Int) -> AcceptanceEstimate? {
        let usable = rows.filter { $0.rounds > 0 && $0.k > 0 }
        let rounds = usable.reduce(0) { $0 + $1.rounds }
        guard rounds >= max(1, minRounds) else { return nil }
        let targetTokens = usable.reduce(0.0) { $0 + Double($1.rounds) * $1.meanAcceptanceLength }
        let alpha = solveAlpha(rows: usable, targetTokens: targetTokens)

        var conditional: [Double] = []
        let maxK = usable.map(\.k).max() ?? 0
        for j in 0..<maxK {
            var reached = 0.0
            var accepted = 0.0
            for row in usable where row.k > j && row.perPosition.count > j {
                let previous = j == 0 ? 1.0 : row.perPosition[j - 1]
                reached += Double(row.rounds) * previous
                accepted += Double(row.rounds) * row.perPosition[j]
            }
            guard reached >= Double(max(1, minPositionRounds)) else { break }
            conditional.append(min(max(accepted / reached, 0), 1))
        }
        return AcceptanceEstimate(alpha: alpha, conditional: conditional, rounds: rounds)
    }

    /// Bisection for α in [0, 1]: the rounds-weighted expected tokens are increasing in α.
    private static func solveAlpha(rows: [AcceptanceRow], targetTokens: Double) -> Double {
        func total(_ a: Double) -> Double {
            rows.reduce(0.0) { $0 + Double($1.rounds) * SpeculationMath.expectedTokensPerRound(acceptance: a, draftLength: $1.k) }
        }
        if targetTokens <= total(0) { return 0 }
        if targetTokens >= total(1) { return 1 }
        var lo = 0.0
        var hi = 1.0
        for _ in 0..<60 {
            let mid = (lo + hi) / 2
            if total(mid) < targetTokens { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }
}
