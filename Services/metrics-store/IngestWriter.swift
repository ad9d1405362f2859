import Logging
import Synchronization
import TandemWire

/// Moves queued events into the database in batched transactions.
///
/// It wakes every `interval` (about 50 ms) or as soon as `batchSize` events are queued, takes
/// everything queued and commits it in transactions of at most `maxTransaction` events. While a
/// commit runs, new events keep queueing (so batches grow with load and the fsync per commit is
/// amortized). A failed transaction puts its events back at the head of the queue and is retried
/// with backoff: events are never dropped for a busy or failing database.
final class IngestWriter: Sendable {
    let queue: IngestQueue
    let store: EventStore
    let stats: IngestStats
    let interval: Duration
    let maxTransaction: Int
    private let logger: Logger
    private let inFlight = Atomic<Int>(0)

    init(queue: IngestQueue, store: EventStore, stats: IngestStats, interval: Duration,
         maxTransaction: Int = 5_000, logger: Logger) {
        self.queue = queue
        self.store = store
        self.stats = stats
        self.interval = interval
        self.maxTransaction = max(1, maxTransaction)
        self.logger = logger
    }

    /// Events taken from the queue whose transaction has not committed yet.
    var pendingInWriter: Int { inFlight.load(ordering: .relaxed) }

    /// Runs until the queue is closed and fully written. Never cancel the task running it (GRDB
    /// refuses to start a write in a cancelled task); close the queue instead.
    func run() async {
        var failures = 0
        while true {
            if !queue.isClosed && queue.count < queue.batchSize {
                await queue.waitForWork(timeout: interval)
            }
            let closing = queue.isClosed
            let batch = queue.takeAll()
            if batch.isEmpty {
                if closing { return }
                continue
            }
            inFlight.store(batch.count, ordering: .relaxed)
            var offset = 0
            while offset < batch.count {
                let end = min(offset + maxTransaction, batch.count)
                do {
                    try await store.append(Array(batch[offset..<end]))
                    IngestStats.bump(stats.stored, by: end - offset)
                    IngestStats.bump(stats.transactions)
                    offset = end
                    inFlight.store(batch.count - offset, ordering: .relaxed)
                    if failures > 0 {
                        logger.notice("database writes succeed again", metadata: ["after_failures": "\(failures)"])
                        failures = 0
                    }
                } catch {
                    failures += 1
                    IngestStats.bump(stats.writeFailures)
                    queue.putBack(Array(batch[offset...]))
                    inFlight.store(0, ordering: .relaxed)
                    logger.error("database write failed; events kept in memory and retried",
                                 metadata: ["error": "\(error)", "queued": "\(queue.count)",
                                            "consecutive_failures": "\(failures)"])
                    let backoff = min(2_000, 50 << min(failures, 6))
                    try? await Task.sleep(for: .milliseconds(backoff))
                    break
                }
            }
            if offset == batch.count {
                inFlight.store(0, ordering: .relaxed)
                queue.noteDrained()
            }
        }
    }
}
