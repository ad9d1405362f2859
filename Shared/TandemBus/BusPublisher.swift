import CZeroMQ
import Logging

/// Publishes events as two frames, `[topic][payload]`, so subscribers filter on the topic frame
/// with zmq's prefix subscriptions and the payload is never inspected by the proxy.
///
/// Services connect to the metrics-store's XSUB (`connect:`); a standalone publisher can `bind:`.
/// PUB/SUB is lossy by design: messages published before a subscription reached the publisher
/// ("slow joiner") or beyond a slow subscriber's high-water mark are dropped by zmq.
public final class BusPublisher: Sendable {
    /// The endpoint bound or connected to (ephemeral ports resolved).
    public var endpoint: String { socket.endpoint }
    public var counters: BusCounters { socket.counters }
    private let socket: SendingSocket

    /// Connects to a proxy's XSUB (or any SUB/XSUB that binds).
    public convenience init(context: BusContext, connect: String, options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .connect(connect), options: options, logger: logger)
    }

    /// Binds a PUB socket that subscribers connect to.
    public convenience init(context: BusContext, bind: String, options: BusOptions = .default,
                            logger: Logger = Logger(label: "tandem.bus")) throws {
        try self.init(context: context, attachment: .bind(bind), options: options, logger: logger)
    }

    private init(context: BusContext, attachment: BusAttachment, options: BusOptions, logger: Logger) throws {
        socket = try SendingSocket(context: context, attachment: attachment, type: ZMQ_PUB, threadName: "bus-pub",
                                   options: options, logger: logger)
    }

    /// Queues one event for publishing; never waits.
    /// - Throws: `BusError.closed` after `close()` or context shutdown.
    public func publish(topic: String, payload: [UInt8]) throws {
        if !socket.submit([Array(topic.utf8), payload], completion: nil) {
            throw BusError.closed
        }
    }

    /// Closes the socket (queued events get the configured linger to leave). Idempotent.
    public func close() async {
        await socket.close()
    }
}
