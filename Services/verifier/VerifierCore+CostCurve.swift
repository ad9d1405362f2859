import Foundation
import Logging
import TandemEngine
import TandemSpeculative
import TandemWire

// The verifier's measured batch-time curve (docs/design.md §7, "The verifier's cost curve"): calibrated at
// start, refined by every verification-only batch, and sent with every verification result so drafters
// price one more draft position where the batch really is.
extension VerifierCore {
    /// Position counts the start-up calibration measures: dense where a CPU forward bends.
    static let calibrationSizes = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]

    /// Runs two forwards of each calibration size up to `maxPositions` on a scratch cache (logits on every
    /// position, as verification asks), after one warm-up pass, and seeds the cost curve with the faster of
    /// the two (a stall on a shared host only ever makes a forward slower).
    /// Returns what it measured (positions, ms), empty when `maxPositions` < 1.
    @discardableResult
    func calibrate(maxPositions: Int) async throws -> [(positions: Int, ms: Double)] {
        let sizes = Self.calibrationSizes.filter { $0 <= min(maxPositions, engine.model.config.contextLength - 1) }
        guard !sizes.isEmpty else { return [] }
        return try await compute.run {
            let cache = self.engine.makeCache(capacity: sizes.last! + 1)
            // A token every vocabulary has; the time of a forward does not depend on which.
            let token: Int32 = 1
            _ = try self.engine.forward([ForwardRequest(cache: cache, tokens: [token], logits: .all)])
            var out: [(positions: Int, ms: Double)] = []
            for n in sizes {
                var best = Double.infinity
                for _ in 0..<2 {
                    cache.reset()
                    let start = ContinuousClock.now
                    _ = try self.engine.forward([ForwardRequest(cache: cache, tokens: Array(repeating: token, count: n),
                                                                logits: .all)])
                    best = min(best, (ContinuousClock.now - start).milliseconds)
                }
                out.append((n, best))
            }
            self.costCurve.calibrate(out.map { ($0.positions, $0.ms / 1000) })
            self.publishCostCurve()
            return out
        }
    }

    /// Records a verification-only batch (compute thread). Batches that also prefilled are left out: prompt
    /// positions carry no logits and cost less each, so they would bend the curve away from verification.
    func observeCost(positions: Int, contextTokens: Int, forwardMs: Double) {
        costCurve.observe(positions: positions, contextTokens: contextTokens, seconds: forwardMs / 1000)
        publishCostCurve()
    }

    /// Refreshes the curve sent with verification results (compute thread).
    func publishCostCurve() {
        publishedCostCurve = VerifierCostCurve(
            positions: costCurve.knots, ms: costCurve.secondsAtKnots.map { ($0 * 1000 * 1000).rounded() / 1000 },
            contextMsPerToken: costCurve.secondsPerContextToken * 1000, samples: costCurve.samples)
    }
}
