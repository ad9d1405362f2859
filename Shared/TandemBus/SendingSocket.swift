import CZeroMQ
import Logging

/// A send-only socket (PUB or PUSH) owned by its own worker thread: what ``BusPublisher`` and
/// ``BusPusher`` are made of. Frames are queued to the worker, which alone touches the socket.
struct SendingSocket: Sendable {
    /// The endpoint bound or connected to (ephemeral ports resolved).
    let endpoint: String
    let counters = BusCounters()
    private let worker: SocketWorker
    private let core: StreamCore<Never>

    init(context: BusContext, attachment: BusAttachment, type: Int32, threadName: String, options: BusOptions,
         logger: Logger) throws {
        let (socket, endpoint) = try attachment.open(context: context, type: type, options: options)
        self.endpoint = endpoint
        core = StreamCore<Never>(socket: socket, counters: counters, inbox: nil, logger: logger, decode: { _ in nil })
        worker = try SocketWorker(name: threadName, context: context, owning: [socket])
        try worker.start(core: core)
    }

    /// Queues `frames` for sending; `completion` runs once zmq took them (or failed). False after close.
    func submit(_ frames: [[UInt8]], completion: StreamCore<Never>.Completion?) -> Bool {
        let core = self.core
        return worker.submit { core.enqueue(frames, completion: completion) }
    }

    /// Closes the socket (queued frames get the configured linger to leave). Idempotent.
    func close() async {
        await worker.close()
    }
}
