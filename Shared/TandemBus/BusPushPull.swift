import CZeroMQ
import Logging

/// The sending half of a PUSH/PULL pipeline: lossless, load-balanced across connected pullers,
/// with backpressure (a send waits while the pullers' queues are full).
public final class BusPusher: Sendable {
    public var endpoint: String { socket.endpoint }
    public var counters: BusCounters { socket.counters }
    private let socket: SendingSocket

    public convenience init(context: BusContext, connect: String, options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .connect(connect), options: options, logger: logger)
    }

    public convenience init(context: BusContext, bind: String, options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .bind(bind), options: options, logger: logger)
    }

    private init(context: BusContext, attachment: BusAttachment, options: BusOptions, logger: Logger) throws {
        socket = try SendingSocket(context: context, attachment: attachment, type: ZMQ_PUSH, threadName: "bus-push",
                                   options: options, logger: logger)
    }

    /// Sends one message; returns once zmq queued it (waits while the high-water mark is reached).
    public func send(_ payload: [UInt8]) async throws {
        let socket = self.socket
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted = socket.submit([payload], completion: { continuation.resume(with: $0) })
            if !accepted { continuation.resume(throwing: BusError.closed) }
        }
    }

    public func close() async {
        await socket.close()
    }
}

/// The receiving half of a PUSH/PULL pipeline.
public final class BusPuller: Sendable {
    public let endpoint: String
    public let counters: BusCounters
    /// Received payloads in order. Single consumer.
    public let messages: BusStream<[UInt8]>
    private let worker: SocketWorker

    public convenience init(context: BusContext, bind: String, options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .bind(bind), options: options, logger: logger)
    }

    public convenience init(context: BusContext, connect: String, options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .connect(connect), options: options, logger: logger)
    }

    private init(context: BusContext, attachment: BusAttachment, options: BusOptions, logger: Logger) throws {
        let (socket, endpoint) = try attachment.open(context: context, type: ZMQ_PULL, options: options)
        self.endpoint = endpoint
        let counters = BusCounters()
        self.counters = counters
        let worker = try SocketWorker(name: "bus-pull", context: context, owning: [socket])
        self.worker = worker
        let messages = BusStream<[UInt8]>(capacity: options.inboxCapacity, wake: { [weak worker] in worker?.wake() })
        self.messages = messages
        let core = StreamCore<[UInt8]>(socket: socket, counters: counters, inbox: messages, logger: logger) { frames in
            frames.count == 1 ? frames[0] : nil
        }
        try worker.start(core: core)
    }

    public func close() async {
        await worker.close()
    }
}
