import DequeModule
import Synchronization
import TandemWire

/// The newest placement epoch a replica has seen for each session (docs/protocol.md, "Placement epochs").
///
/// The gateway increments a session's epoch each time it places it; every session message carries it. A
/// message with an older epoch than the newest seen comes from a placement the gateway has abandoned (a
/// drafter it declared dead that is still running, a late retry), so the replica refuses it: two drafters
/// must never drive one session. Messages without an epoch (older peers) are let through unfenced.
///
/// Remembers at most `capacity` sessions (the oldest recorded is forgotten first), so a closed session stays
/// fenced long after it closed without the table growing for ever.
public final class EpochFence: Sendable {
    private struct State {
        var epochs: [SessionID: UInt64] = [:]
        /// Sessions in the order they were first recorded (the oldest is forgotten first).
        var order = Deque<SessionID>()
    }

    private let state = Mutex<State>(State())
    private let capacity: Int

    public init(capacity: Int = 65_536) {
        self.capacity = max(1, capacity)
    }

    /// Records `epoch` for `session` when it is the newest seen; returns false when it is older (refuse the
    /// message). A nil epoch is always admitted and records nothing.
    public func admit(_ session: SessionID, epoch: UInt64?) -> Bool {
        guard let epoch else { return true }
        return state.withLock { s in
            if let newest = s.epochs[session] {
                guard epoch >= newest else { return false }
                s.epochs[session] = epoch
                return true
            }
            s.epochs[session] = epoch
            s.order.append(session)
            while s.epochs.count > capacity, let oldest = s.order.popFirst() {
                s.epochs[oldest] = nil
            }
            return true
        }
    }

    /// Whether a message of `epoch` is still current (not older than the newest seen); records nothing.
    public func isCurrent(_ session: SessionID, epoch: UInt64?) -> Bool {
        guard let epoch else { return true }
        return state.withLock { s in s.epochs[session].map { epoch >= $0 } ?? true }
    }

    /// The newest epoch seen for `session`.
    public func newest(_ session: SessionID) -> UInt64? { state.withLock { $0.epochs[session] } }
}

extension ErrorReply {
    /// The refusal of a message from an abandoned placement of `session`.
    public static func staleEpoch(_ session: SessionID, epoch: UInt64?, newest: UInt64?) -> ErrorReply {
        ErrorReply(code: .staleEpoch,
                   message: "session \(session): placement epoch \(epoch.map(String.init) ?? "-") is older than "
                       + "\(newest.map(String.init) ?? "-"); the session was placed elsewhere")
    }
}
