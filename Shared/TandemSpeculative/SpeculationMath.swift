/// Closed-form expectations of speculative decoding (docs/design.md §6, §11).
public enum SpeculationMath {
    /// Expected tokens emitted per verification round with `k` drafts and i.i.d. per-token acceptance `alpha`:
    /// `(1 - alpha^(k+1)) / (1 - alpha)` (accepted drafts plus the correction/bonus token); `k + 1` at `alpha = 1`.
    public static func expectedTokensPerRound(acceptance alpha: Double, draftLength k: Int) -> Double {
        precondition(k >= 0, "draft length must be non-negative")
        let a = min(max(alpha, 0), 1)
        if a >= 1 - 1e-12 { return Double(k + 1) }
        var power = 1.0
        for _ in 0...k { power *= a }
        return (1 - power) / (1 - a)
    }

    /// Expected accepted draft tokens per round: `expectedTokensPerRound - 1`.
    public static func expectedAcceptedDrafts(acceptance alpha: Double, draftLength k: Int) -> Double {
        expectedTokensPerRound(acceptance: alpha, draftLength: k) - 1
    }

    /// Expected tokens per round when the conditional acceptance differs by position: draft `j` (1-based) is
    /// accepted with probability `a[j-1]` given that the previous ones were. `1 + sum_j prod_{i<=j} a_i`.
    public static func expectedTokensPerRound(positionAcceptance a: [Double], draftLength k: Int) -> Double {
        var total = 1.0
        var survive = 1.0
        for j in 0..<k {
            survive *= min(max(j < a.count ? a[j] : (a.last ?? 0), 0), 1)
            total += survive
        }
        return total
    }

    /// Mean acceptance length as defined in docs/design.md §11: `1 + accepted / rounds`.
    public static func meanAcceptanceLength(accepted: Int, rounds: Int) -> Double {
        rounds > 0 ? 1 + Double(accepted) / Double(rounds) : 0
    }

    /// Maximum-likelihood per-token acceptance from observed rounds, treating the geometric stop as censored:
    /// `accepted / (accepted + rejections)`. Unlike `accepted / drafted` it is not biased by drafts that were
    /// never evaluated (those after the first rejection).
    public static func acceptanceMLE(accepted: Int, rejections: Int) -> Double {
        let trials = accepted + rejections
        return trials > 0 ? Double(accepted) / Double(trials) : 0
    }
}
