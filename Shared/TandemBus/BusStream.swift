import Synchronization

/// A bounded, single-consumer async sequence fed by a socket thread.
///
/// Unlike `AsyncStream` it applies backpressure instead of dropping or growing without bound:
/// when the buffer reaches its capacity the socket thread stops reading from zmq, zmq's own
/// high-water marks then push back to the senders (PUSH/DEALER block, PUB drops at the
/// publisher, as PUB/SUB semantics say). Reading resumes once the consumer drained half the buffer.
public final class BusStream<Element: Sendable>: AsyncSequence, Sendable {
    private struct State {
        var buffer: [Element] = []
        var head = 0
        var waiter: CheckedContinuation<Element?, Never>?
        var finished = false
        var paused = false
        var count: Int { buffer.count - head }
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let wake: @Sendable () -> Void

    init(capacity: Int, wake: @escaping @Sendable () -> Void) {
        self.capacity = Swift.max(1, capacity)
        self.wake = wake
    }

    /// Producer side (socket thread). Returns false if the stream is finished (element dropped).
    @discardableResult
    func push(_ element: Element) -> Bool {
        let waiter: CheckedContinuation<Element?, Never>? = state.withLock { state in
            if state.finished { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.buffer.append(element)
            if state.count >= capacity { state.paused = true }
            return nil
        }
        if let waiter {
            waiter.resume(returning: element)
            return true
        }
        return !isFinished
    }

    /// Producer side: whether the socket thread should stop reading for now.
    var isPaused: Bool {
        state.withLock { $0.paused }
    }

    var isFinished: Bool {
        state.withLock { $0.finished }
    }

    /// Ends the sequence after the buffered elements are consumed.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Element?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    private func popLocked(_ state: inout State) -> (Element?, Bool) {
        guard state.count > 0 else { return (nil, false) }
        let element = state.buffer[state.head]
        state.head += 1
        if state.head == state.buffer.count {
            state.buffer.removeAll(keepingCapacity: true)
            state.head = 0
        } else if state.head >= 1024 && state.head * 2 >= state.buffer.count {
            state.buffer.removeFirst(state.head)
            state.head = 0
        }
        var resume = false
        if state.paused && state.count <= capacity / 2 {
            state.paused = false
            resume = true
        }
        return (element, resume)
    }

    /// Consumer side: the next element, or nil when finished (or the task was cancelled).
    func next() async -> Element? {
        let (ready, resumeReading, done) = state.withLock { state -> (Element?, Bool, Bool) in
            let (element, resume) = popLocked(&state)
            return (element, resume, element == nil && state.finished)
        }
        if resumeReading { wake() }
        if let ready { return ready }
        if done { return nil }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                let (element, resume, immediate) = state.withLock { state -> (Element?, Bool, Bool) in
                    let (element, resume) = popLocked(&state)
                    if element != nil || state.finished || Task.isCancelled { return (element, resume, true) }
                    precondition(state.waiter == nil, "BusStream supports a single consumer")
                    state.waiter = continuation
                    return (nil, false, false)
                }
                if resume { wake() }
                if immediate { continuation.resume(returning: element) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Element?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: BusStream
        public mutating func next() async -> Element? {
            await stream.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self)
    }
}
