import TandemWire

/// The metrics-store answers the advisor decides from: acceptance per (draft, target, K),
/// drafting profiles per (device, draft, quantization) and batch latency per verifier model.
/// Empty arrays mean "no data" (or the store could not be reached).
struct AdvisorMeasurements: Sendable, Hashable {
    var acceptance: [AcceptanceRow]
    var profiles: [ProfileRow]
    var batchLatency: [LatencyRow]

    init(acceptance: [AcceptanceRow] = [], profiles: [ProfileRow] = [], batchLatency: [LatencyRow] = []) {
        self.acceptance = acceptance
        self.profiles = profiles
        self.batchLatency = batchLatency
    }

    static let none = AdvisorMeasurements()

    var isEmpty: Bool { acceptance.isEmpty && profiles.isEmpty && batchLatency.isEmpty }
}
