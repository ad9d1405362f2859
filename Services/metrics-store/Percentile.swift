/// Nearest-rank percentiles, the definition every latency number of the metrics-store uses.
///
/// The p-th percentile of n sorted values is the value at 1-based rank ⌈p·n/100⌉ (at least 1):
/// always an observed value, never an interpolation, so p99 of 10 samples is the maximum. The
/// `batch_latency` query computes the same rank in SQL (`(p·n + 99) / 100` in integer arithmetic
/// for integral p); this Swift version is the reference the tests check the SQL against.
enum Percentile {
    /// - Parameters:
    ///   - sorted: values in ascending order.
    ///   - p: percentile in 0...100.
    /// - Returns: nil for an empty input.
    static func nearestRank(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let exact = p * Double(sorted.count) / 100
        let rank = min(sorted.count, max(1, Int(exact.rounded(.up))))
        return sorted[rank - 1]
    }
}
