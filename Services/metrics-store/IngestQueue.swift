import Synchronization

/// The in-memory buffer between the bus and the database writer.
///
/// Unbounded on purpose: an event that arrives while the database is busy (a long checkpoint, a
/// slow disk, a failed write being retried) waits here instead of being dropped. Memory is the
/// bound; the queue reports each time it doubles past `warnThreshold` so the growth is loud in
/// the log long before memory runs out.
final class IngestQueue: Sendable {
    private struct State {
        var pending: [StoredEvent] = []
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
        var nextWarning: Int
        var highWater = 0
    }

    /// Queue length that wakes the writer before its interval ends.
    let batchSize: Int
    let warnThreshold: Int
    private let state: Mutex<State>

    init(batchSize: Int, warnThreshold: Int) {
        self.batchSize = max(1, batchSize)
        self.warnThreshold = max(1, warnThreshold)
        self.state = Mutex(State(nextWarning: max(1, warnThreshold)))
    }

    /// Appends one event. Returns the new length when it just crossed a warning threshold
    /// (the caller logs it), else nil. Events pushed after `close()` are still kept: the writer
    /// drains everything it can before shutdown ends.
    @discardableResult
    func push(_ event: StoredEvent) -> Int? {
        let (waiter, warning) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Int?) in
            state.pending.append(event)
            let count = state.pending.count
            state.highWater = max(state.highWater, count)
            var warning: Int?
            if count >= state.nextWarning {
                warning = count
                state.nextWarning *= 2
            }
            guard count >= batchSize, let waiter = state.waiter else { return (nil, warning) }
            state.waiter = nil
            return (waiter, warning)
        }
        waiter?.resume()
        return warning
    }

    /// Removes and returns every queued event, oldest first (the writer commits them in chunks).
    func takeAll() -> [StoredEvent] {
        state.withLock { state in
            let batch = state.pending
            state.pending = []
            return batch
        }
    }

    /// Called after a successful commit: once the queue is short again, the next growth past
    /// `warnThreshold` is reported afresh.
    func noteDrained() {
        state.withLock { state in
            if state.pending.count < warnThreshold { state.nextWarning = warnThreshold }
        }
    }

    /// Puts back events a failed write could not store, ahead of everything newer (order kept).
    func putBack(_ events: [StoredEvent]) {
        state.withLock { state in state.pending.insert(contentsOf: events, at: 0) }
    }

    var count: Int { state.withLock { $0.pending.count } }
    /// The longest the queue has been.
    var highWater: Int { state.withLock { $0.highWater } }
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Marks the end of input and wakes the writer so it drains and stops.
    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns once `batchSize` events are queued, the queue is closed, or `timeout` passed.
    /// Single consumer (the writer).
    func waitForWork(timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.pending.count >= batchSize || state.closed { return true }
                state.waiter = continuation
                return false
            }
            if ready {
                continuation.resume()
                return
            }
            Task { [self] in
                try? await Task.sleep(for: timeout)
                self.wake()
            }
        }
    }

    private func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
