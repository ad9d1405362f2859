import Metrics
import Synchronization
import TandemWire

/// Counts bus messages that failed to decode, by reason (`tandem_wire_decode_errors_total{reason=...}`).
///
/// Emitted through swift-metrics (the executable decides the backend) and kept in a process-wide
/// total so health replies and tests can read it without a metrics backend.
public enum WireErrorCounter {
    private static let total = Atomic<Int>(0)

    public static func record(_ error: WireError) {
        total.add(1, ordering: .relaxed)
        Counter(label: "tandem_wire_decode_errors_total", dimensions: [("reason", error.label)]).increment()
    }

    public static var count: Int { total.load(ordering: .relaxed) }
}
