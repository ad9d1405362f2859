import Synchronization

/// Plain counters every bus socket keeps, so services can export them on `/metrics` without
/// this module depending on swift-metrics. All fields are relaxed atomics: cheap to bump on the
/// socket thread and safe to read from anywhere.
public final class BusCounters: Sendable {
    /// Messages handed to libzmq successfully.
    let sentCount = Atomic<Int>(0)
    /// Messages received from libzmq (all kinds).
    let receivedCount = Atomic<Int>(0)
    /// Sends that failed (unknown peer, full queue, closed).
    let sendErrorCount = Atomic<Int>(0)
    /// Received messages whose frames could not be decoded (wrong frame count or header).
    let decodeErrorCount = Atomic<Int>(0)
    /// Replies that arrived after their request timed out or was cancelled.
    let lateReplyCount = Atomic<Int>(0)
    /// Incoming requests/one-way messages dropped because their deadline had already passed.
    let expiredCount = Atomic<Int>(0)
    /// Outgoing requests that timed out.
    let timeoutCount = Atomic<Int>(0)
    /// Messages dropped for any other reason (e.g. a full inbox that cannot apply backpressure).
    let droppedCount = Atomic<Int>(0)

    public init() {}

    public var sent: Int { sentCount.load(ordering: .relaxed) }
    public var received: Int { receivedCount.load(ordering: .relaxed) }
    public var sendErrors: Int { sendErrorCount.load(ordering: .relaxed) }
    public var decodeErrors: Int { decodeErrorCount.load(ordering: .relaxed) }
    public var lateReplies: Int { lateReplyCount.load(ordering: .relaxed) }
    public var expired: Int { expiredCount.load(ordering: .relaxed) }
    public var timeouts: Int { timeoutCount.load(ordering: .relaxed) }
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }

    /// A consistent-enough copy of all counters for one scrape.
    public func snapshot() -> BusCounterSnapshot {
        BusCounterSnapshot(
            sent: sent, received: received, sendErrors: sendErrors, decodeErrors: decodeErrors,
            lateReplies: lateReplies, expired: expired, timeouts: timeouts, dropped: dropped
        )
    }

    @inline(__always) static func bump(_ counter: borrowing Atomic<Int>, by amount: Int = 1) {
        counter.add(amount, ordering: .relaxed)
    }
}

/// A point-in-time copy of `BusCounters`.
public struct BusCounterSnapshot: Sendable, Equatable, CustomStringConvertible {
    public var sent: Int
    public var received: Int
    public var sendErrors: Int
    public var decodeErrors: Int
    public var lateReplies: Int
    public var expired: Int
    public var timeouts: Int
    public var dropped: Int

    public var description: String {
        "sent=\(sent) received=\(received) sendErrors=\(sendErrors) decodeErrors=\(decodeErrors) "
            + "lateReplies=\(lateReplies) expired=\(expired) timeouts=\(timeouts) dropped=\(dropped)"
    }
}
