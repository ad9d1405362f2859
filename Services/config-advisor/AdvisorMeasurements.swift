import TandemSpeculative
import TandemWire

/// The measurements the advisor decides from: the metrics-store's acceptance per (draft, target, K),
/// drafting profiles per (device, draft, quantization) and batch latency per verifier model, plus
/// verification lines fitted by the estimator. Empty means "no data" (or the source could not be reached).
struct AdvisorMeasurements: Sendable, Hashable {
    var acceptance: [AcceptanceRow]
    var profiles: [ProfileRow]
    var batchLatency: [LatencyRow]
    /// Verification time vs K per canonical target name, from the estimator's fitted batch-time model.
    var verifyLines: [String: VerifyTimeModel]
    /// Alignment of draft variants to targets (`tandem profile --pair --publish`).
    var alignment: [AlignmentRow]

    init(acceptance: [AcceptanceRow] = [], profiles: [ProfileRow] = [], batchLatency: [LatencyRow] = [],
         verifyLines: [String: VerifyTimeModel] = [:], alignment: [AlignmentRow] = []) {
        self.alignment = alignment
        self.acceptance = acceptance
        self.profiles = profiles
        self.batchLatency = batchLatency
        self.verifyLines = verifyLines
    }

    static let none = AdvisorMeasurements()

    var isEmpty: Bool { acceptance.isEmpty && profiles.isEmpty && batchLatency.isEmpty && verifyLines.isEmpty }
}
