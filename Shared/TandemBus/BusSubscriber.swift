import CZeroMQ
import Logging

/// One published event.
public struct BusMessage: Sendable, Equatable {
    public let topic: String
    public let payload: [UInt8]

    public init(topic: String, payload: [UInt8]) {
        self.topic = topic
        self.payload = payload
    }
}

/// Subscribes to topics (zmq prefix match on the topic frame: `batch` also matches `batched`;
/// the empty topic matches everything) and delivers events as an async sequence.
///
/// Subscriptions take a moment to travel to the publisher (and through a proxy); events
/// published before that are not delivered.
public final class BusSubscriber: Sendable {
    /// The endpoint connected or bound to.
    public let endpoint: String
    public let counters: BusCounters
    /// The received events, in order. Single consumer.
    public let messages: BusStream<BusMessage>
    private let worker: SocketWorker
    private let core: StreamCore<BusMessage>

    /// Connects to a proxy's XPUB (or a binding publisher) and subscribes to `topics`.
    public convenience init(context: BusContext, connect: String, topics: [String], options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .connect(connect), topics: topics, options: options, logger: logger)
    }

    /// Binds a SUB socket that publishers connect to.
    public convenience init(context: BusContext, bind: String, topics: [String], options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .bind(bind), topics: topics, options: options, logger: logger)
    }

    private init(context: BusContext, attachment: BusAttachment, topics: [String], options: BusOptions,
                 logger: Logger) throws {
        let (socket, endpoint) = try attachment.open(context: context, type: ZMQ_SUB, options: options) { socket in
            for topic in topics { try socket.set(ZMQ_SUBSCRIBE, bytes: Array(topic.utf8)) }
        }
        self.endpoint = endpoint
        let counters = BusCounters()
        self.counters = counters
        let worker = try SocketWorker(name: "bus-sub", context: context, owning: [socket])
        self.worker = worker
        let messages = BusStream<BusMessage>(capacity: options.inboxCapacity, wake: { [weak worker] in worker?.wake() })
        self.messages = messages
        let core = StreamCore<BusMessage>(socket: socket, counters: counters, inbox: messages, logger: logger) { frames in
            guard frames.count == 2 else { return nil }
            return BusMessage(topic: String(decoding: frames[0], as: UTF8.self), payload: frames[1])
        }
        self.core = core
        try worker.start(core: core)
    }

    /// Adds a topic prefix subscription.
    public func subscribe(_ topic: String) throws {
        let core = self.core
        if !worker.submit({ core.setOption(ZMQ_SUBSCRIBE, bytes: Array(topic.utf8)) }) { throw BusError.closed }
    }

    /// Removes a topic prefix subscription added earlier.
    public func unsubscribe(_ topic: String) throws {
        let core = self.core
        if !worker.submit({ core.setOption(ZMQ_UNSUBSCRIBE, bytes: Array(topic.utf8)) }) { throw BusError.closed }
    }

    /// Closes the socket and ends `messages`. Idempotent.
    public func close() async {
        await worker.close()
    }
}
