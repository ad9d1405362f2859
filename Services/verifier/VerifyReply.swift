import Synchronization
import TandemWire

/// The answer to one verify request, shared by the request and its retries (same session and
/// ``VerifyRequest/requestID``): whoever asks before the answer exists waits for it, whoever asks after
/// gets it at once. So a drafter's retry is verified once, never twice (docs/protocol.md, "Request ids").
final class VerifyReply: Sendable {
    private struct State {
        var waiters: [CheckedContinuation<WireMessage, Never>]
        var answer: WireMessage?
    }

    private let state: Mutex<State>

    init(_ first: CheckedContinuation<WireMessage, Never>) {
        state = Mutex(State(waiters: [first], answer: nil))
    }

    /// Adds a waiter for the answer; returns the answer instead when it already exists (the caller then
    /// resumes `waiter` itself, outside any lock).
    func join(_ waiter: CheckedContinuation<WireMessage, Never>) -> WireMessage? {
        state.withLock { s in
            if let answer = s.answer { return answer }
            s.waiters.append(waiter)
            return nil
        }
    }

    /// Answers every waiter. Only the first answer counts; later calls are ignored.
    func resume(returning answer: WireMessage) {
        let waiters = state.withLock { s -> [CheckedContinuation<WireMessage, Never>] in
            guard s.answer == nil else { return [] }
            s.answer = answer
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: answer) }
    }

    /// Whether the answer has been given.
    var isAnswered: Bool { state.withLock { $0.answer != nil } }
}
