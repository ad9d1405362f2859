import Synchronization

/// What the ingest path has done since start, for health replies, logs and tests.
final class IngestStats: Sendable {
    /// Event frames taken off the bus (before decoding).
    let received = Atomic<Int>(0)
    /// Events committed to the database.
    let stored = Atomic<Int>(0)
    /// Frames that failed to decode (also counted in `tandem_wire_decode_errors_total`).
    let decodeErrors = Atomic<Int>(0)
    /// Valid messages that are not events (ignored).
    let ignored = Atomic<Int>(0)
    /// Write transactions that failed (their events were queued again).
    let writeFailures = Atomic<Int>(0)
    /// Committed transactions.
    let transactions = Atomic<Int>(0)

    static func bump(_ counter: borrowing Atomic<Int>, by amount: Int = 1) {
        counter.add(amount, ordering: .relaxed)
    }

    func snapshot() -> [String: Int] {
        ["received": received.load(ordering: .relaxed), "stored": stored.load(ordering: .relaxed),
         "decode_errors": decodeErrors.load(ordering: .relaxed), "ignored": ignored.load(ordering: .relaxed),
         "write_failures": writeFailures.load(ordering: .relaxed),
         "transactions": transactions.load(ordering: .relaxed)]
    }
}
