import CZeroMQ
import Logging
import Synchronization

/// The set of peers a ROUTER has heard from, with when (wall ms), shared with callers.
final class PeerTable: Sendable {
    let entries = Mutex<[PeerID: UInt64]>([:])

    func touch(_ peer: PeerID) {
        let now = BusTime.wallMillis()
        entries.withLock { $0[peer] = now }
    }

    func remove(_ peer: PeerID) {
        _ = entries.withLock { $0.removeValue(forKey: peer) }
    }
}

/// The thread-confined state of a DEALER or ROUTER endpoint (see `WorkerCore`).
final class EndpointCore: WorkerCore, @unchecked Sendable {
    typealias Completion = @Sendable (Result<Void, BusError>) -> Void

    struct Outgoing {
        var frames: [[UInt8]]
        var peer: PeerID?
        var completion: Completion?
    }

    struct Pending {
        var continuation: CheckedContinuation<[UInt8], any Error>
        var peer: PeerID?
        var timeout: Duration
    }

    let socket: ZMQSocket
    let isRouter: Bool
    let counters: BusCounters
    let inbox: BusStream<BusIncoming>
    let peers: PeerTable
    let logger: Logger
    let sockets: [ZMQSocket]
    /// A DEALER's socket-monitor PAIR: each completed handshake (first connect and every
    /// reconnect, e.g. after the ROUTER restarted) triggers a hello so the ROUTER re-learns us.
    let monitor: ZMQSocket?

    private var pending: [UInt64: Pending] = [:]
    private var timers = DeadlineHeap()
    private var outQueue: [Outgoing] = []
    private var outHead = 0

    init(socket: ZMQSocket, isRouter: Bool, counters: BusCounters, inbox: BusStream<BusIncoming>,
         peers: PeerTable, logger: Logger, monitor: ZMQSocket? = nil) {
        self.socket = socket
        self.monitor = monitor
        self.isRouter = isRouter
        self.counters = counters
        self.inbox = inbox
        self.peers = peers
        self.logger = logger
        self.sockets = monitor.map { [socket, $0] } ?? [socket]
    }

    static let hello = BusHeader(kind: .hello, correlation: 0, deadlineMillis: 0).encoded()

    private var hasOutgoing: Bool { outHead < outQueue.count }

    // MARK: Jobs (run on the socket thread)

    func enqueue(_ outgoing: Outgoing) {
        outQueue.append(outgoing)
        flush()
    }

    func startRequest(id: UInt64, peer: PeerID?, frames: [[UInt8]], deadline: UInt64, timeout: Duration,
                      continuation: CheckedContinuation<[UInt8], any Error>) {
        pending[id] = Pending(continuation: continuation, peer: peer, timeout: timeout)
        timers.insert(deadline: deadline, id: id)
        enqueue(Outgoing(frames: frames, peer: peer, completion: { [self] result in
            // Runs on this thread (from flush), so touching `pending` is safe.
            if case let .failure(error) = result, let request = pending.removeValue(forKey: id) {
                request.continuation.resume(throwing: error)
            }
        }))
    }

    func cancel(id: UInt64) {
        if let request = pending.removeValue(forKey: id) {
            request.continuation.resume(throwing: BusError.cancelled)
        }
    }

    // MARK: WorkerCore

    func wantedEvents(_ index: Int) -> Int16 {
        if index == 1 { return Int16(ZMQ_POLLIN) }
        var events: Int16 = 0
        if !inbox.isPaused { events |= Int16(ZMQ_POLLIN) }
        if hasOutgoing { events |= Int16(ZMQ_POLLOUT) }
        return events
    }

    func handle(events: Int16, index: Int) {
        if index == 1 {
            // Monitor events: [u16 event, u32 value][endpoint]. Only handshakes are subscribed.
            while let frames = monitor?.receive() {
                if frames.count == 2, frames[0].count >= 2,
                   UInt16(frames[0][0]) | UInt16(frames[0][1]) << 8 == UInt16(ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                    enqueue(Outgoing(frames: [Self.hello]))
                }
            }
            return
        }
        if events & Int16(ZMQ_POLLIN) != 0 {
            // Bounded batch so outgoing work and timers are not starved by a flood.
            var budget = 512
            while budget > 0, !inbox.isPaused, let frames = socket.receive() {
                budget -= 1
                process(frames)
            }
        }
        if events & Int16(ZMQ_POLLOUT) != 0 {
            flush()
        }
    }

    func nextTimer() -> UInt64? {
        while let first = timers.first {
            if pending[first.id] != nil { return first.deadline }
            timers.removeFirst()
        }
        return nil
    }

    func fireTimers(now: UInt64) {
        while let first = timers.first, first.deadline <= now {
            timers.removeFirst()
            if let request = pending.removeValue(forKey: first.id) {
                BusCounters.bump(counters.timeoutCount)
                request.continuation.resume(
                    throwing: BusError.timeout(peer: request.peer, correlation: first.id, after: request.timeout))
            }
        }
    }

    func shutdown() {
        for (_, request) in pending {
            request.continuation.resume(throwing: BusError.closed)
        }
        pending.removeAll()
        timers.removeAll()
        while hasOutgoing {
            let outgoing = outQueue[outHead]
            outHead += 1
            outgoing.completion?(.failure(.closed))
        }
        outQueue.removeAll()
        outHead = 0
        inbox.finish()
        socket.close()
        monitor?.close()
    }

    // MARK: Internals

    /// Sends queued messages until the queue is empty or zmq would block. A DEALER then waits for
    /// POLLOUT; a ROUTER fails the message at once (its queue is per peer, and one slow peer must
    /// not hold up messages to the others).
    private func flush() {
        while hasOutgoing {
            let outgoing = outQueue[outHead]
            switch socket.send(outgoing.frames) {
            case .sent:
                BusCounters.bump(counters.sentCount)
                advance()
                outgoing.completion?(.success(()))
            case .wouldBlock:
                if !isRouter { return }
                BusCounters.bump(counters.sendErrorCount)
                advance()
                outgoing.completion?(.failure(.wouldBlock))
            case .unreachable:
                BusCounters.bump(counters.sendErrorCount)
                advance()
                let peer = outgoing.peer ?? PeerID(bytes: outgoing.frames.first ?? [])
                peers.remove(peer)
                outgoing.completion?(.failure(.unknownPeer(peer)))
            case let .failed(error):
                BusCounters.bump(counters.sendErrorCount)
                advance()
                logger.debug("bus send failed", metadata: ["error": "\(error)"])
                outgoing.completion?(.failure(error))
            }
        }
    }

    private func advance() {
        outHead += 1
        if outHead == outQueue.count {
            outQueue.removeAll(keepingCapacity: true)
            outHead = 0
        } else if outHead >= 256 && outHead * 2 >= outQueue.count {
            outQueue.removeFirst(outHead)
            outHead = 0
        }
    }

    private func process(_ frames: [[UInt8]]) {
        BusCounters.bump(counters.receivedCount)
        var peer: PeerID?
        var rest = frames[...]
        if isRouter {
            guard let identity = rest.popFirst() else { return decodeError(frames) }
            peer = PeerID(bytes: identity)
        }
        guard let headerBytes = rest.popFirst(), let header = BusHeader.decode(headerBytes) else {
            return decodeError(frames)
        }
        if let peer { peers.touch(peer) }
        if header.kind == .hello {
            logger.debug("bus peer said hello", metadata: ["peer": "\(peer.map(\.description) ?? "-")"])
            return
        }
        guard rest.count == 1, let payload = rest.first else { return decodeError(frames) }
        switch header.kind {
        case .reply:
            if let request = pending.removeValue(forKey: header.correlation) {
                request.continuation.resume(returning: payload)
            } else {
                BusCounters.bump(counters.lateReplyCount)
            }
        case .request, .oneway:
            if header.deadlineMillis != 0 && BusTime.wallMillis() > header.deadlineMillis {
                BusCounters.bump(counters.expiredCount)
                return
            }
            let incoming = BusIncoming(
                peer: peer, kind: header.kind, correlation: header.correlation,
                deadlineMillis: header.deadlineMillis == 0 ? nil : header.deadlineMillis, payload: payload)
            if !inbox.push(incoming) {
                BusCounters.bump(counters.droppedCount)
            }
        case .hello:
            break
        }
    }

    private func decodeError(_ frames: [[UInt8]]) {
        BusCounters.bump(counters.decodeErrorCount)
        logger.debug("bus dropped undecodable message", metadata: ["frames": "\(frames.count)"])
    }
}
