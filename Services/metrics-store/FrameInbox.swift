import Synchronization

/// Raw event frames taken off the subscriber, waiting to be decoded.
///
/// Draining the socket is kept separate from decoding (JSON, the slowest step per event) so a
/// burst is absorbed here, in memory, instead of backing up into zmq's high-water marks, where
/// PUB/SUB would drop events. Unbounded like ``IngestQueue``; its length is part of the
/// `queued` health figure.
final class FrameInbox: Sendable {
    private struct State {
        var frames: [(payload: [UInt8], receivedAt: Double)] = []
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())

    func append(_ payload: [UInt8], receivedAt: Double) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.frames.append((payload, receivedAt))
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    var count: Int { state.withLock { $0.frames.count } }

    /// Ends input; `next()` returns what is left, then nil.
    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Every frame received so far (waiting for at least one), or nil once closed and empty.
    /// Single consumer.
    func next() async -> [(payload: [UInt8], receivedAt: Double)]? {
        while true {
            let taken = state.withLock { state -> [(payload: [UInt8], receivedAt: Double)]? in
                if state.frames.isEmpty { return state.closed ? [] : nil }
                defer { state.frames = [] }
                return state.frames
            }
            if let taken { return taken.isEmpty ? nil : taken }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if !state.frames.isEmpty || state.closed { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }
}
