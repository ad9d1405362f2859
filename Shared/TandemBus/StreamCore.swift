import CZeroMQ
import Logging

/// Whether a socket binds or connects.
enum BusAttachment {
    case bind(String)
    case connect(String)

    /// Creates a socket of `type`, applies options, binds or connects, and returns it with the
    /// resolved endpoint. The socket is closed again if anything fails.
    func open(context: BusContext, type: Int32, options: BusOptions,
              configure: (ZMQSocket) throws -> Void = { _ in }) throws -> (ZMQSocket, String) {
        try context.checkOpen()
        let socket = try ZMQSocket(context: context, type: type)
        do {
            try socket.applyCommon(options)
            try configure(socket)
            switch self {
            case let .bind(text):
                let endpoint = try BusAddress.normalize(text)
                try socket.bind(endpoint)
                return (socket, socket.lastEndpoint() ?? endpoint)
            case let .connect(text):
                let endpoint = BusAddress.connectable(try BusAddress.normalize(text))
                try socket.connect(endpoint)
                return (socket, endpoint)
            }
        } catch {
            socket.close()
            throw error
        }
    }
}

/// Thread-confined state for the simple one-directional sockets (PUB, SUB, PUSH, PULL): an
/// outgoing queue and/or an inbox of decoded messages (see `WorkerCore`).
final class StreamCore<Element: Sendable>: WorkerCore, @unchecked Sendable {
    typealias Completion = @Sendable (Result<Void, BusError>) -> Void

    let socket: ZMQSocket
    let sockets: [ZMQSocket]
    let counters: BusCounters
    let inbox: BusStream<Element>?
    let decode: ([[UInt8]]) -> Element?
    let logger: Logger

    private var outQueue: [([[UInt8]], Completion?)] = []
    private var outHead = 0

    init(socket: ZMQSocket, counters: BusCounters, inbox: BusStream<Element>?, logger: Logger,
         decode: @escaping ([[UInt8]]) -> Element?) {
        self.socket = socket
        self.sockets = [socket]
        self.counters = counters
        self.inbox = inbox
        self.decode = decode
        self.logger = logger
    }

    func enqueue(_ frames: [[UInt8]], completion: Completion?) {
        outQueue.append((frames, completion))
        flush()
    }

    func setOption(_ option: Int32, bytes: [UInt8]) {
        do {
            try socket.set(option, bytes: bytes)
        } catch {
            logger.warning("bus setsockopt failed", metadata: ["error": "\(error)"])
        }
    }

    func wantedEvents(_ index: Int) -> Int16 {
        var events: Int16 = 0
        if let inbox, !inbox.isPaused { events |= Int16(ZMQ_POLLIN) }
        if outHead < outQueue.count { events |= Int16(ZMQ_POLLOUT) }
        return events
    }

    func handle(events: Int16, index: Int) {
        if events & Int16(ZMQ_POLLIN) != 0, let inbox {
            var budget = 512
            while budget > 0, !inbox.isPaused, let frames = socket.receive() {
                budget -= 1
                BusCounters.bump(counters.receivedCount)
                if let element = decode(frames) {
                    if !inbox.push(element) { BusCounters.bump(counters.droppedCount) }
                } else {
                    BusCounters.bump(counters.decodeErrorCount)
                }
            }
        }
        if events & Int16(ZMQ_POLLOUT) != 0 { flush() }
    }

    func nextTimer() -> UInt64? { nil }
    func fireTimers(now: UInt64) {}

    func shutdown() {
        while outHead < outQueue.count {
            let completion = outQueue[outHead].1
            outHead += 1
            completion?(.failure(.closed))
        }
        outQueue.removeAll()
        outHead = 0
        inbox?.finish()
        socket.close()
    }

    /// Sends until the queue is empty or zmq would block (PUSH at its high-water mark; PUB never
    /// blocks, it drops for slow subscribers as PUB/SUB does), then waits for POLLOUT.
    private func flush() {
        while outHead < outQueue.count {
            let (frames, completion) = outQueue[outHead]
            switch socket.send(frames) {
            case .sent:
                BusCounters.bump(counters.sentCount)
                completion?(.success(()))
            case .wouldBlock:
                return
            case .unreachable:
                BusCounters.bump(counters.sendErrorCount)
                completion?(.failure(.wouldBlock))
            case let .failed(error):
                BusCounters.bump(counters.sendErrorCount)
                completion?(.failure(error))
            }
            outHead += 1
            if outHead == outQueue.count {
                outQueue.removeAll(keepingCapacity: true)
                outHead = 0
            } else if outHead >= 256 && outHead * 2 >= outQueue.count {
                outQueue.removeFirst(outHead)
                outHead = 0
            }
        }
    }
}
