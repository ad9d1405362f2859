import Logging
import TandemBus
import TandemWire

/// Publishes events (`batch`, `round`, `session`, `profile`) to the metrics-store's XSUB proxy.
///
/// Topic = event kind, so subscribers filter with ZeroMQ prefix subscriptions. Publishing never
/// blocks the caller's hot path on the network: the bus queues the frame on the socket's thread.
/// A failed publish is logged and counted, never thrown into the serving path: events are telemetry.
public final class EventPublisher: Sendable {
    private let publisher: BusPublisher
    private let logger: Logger

    public init(context: BusContext, connect endpoint: String, logger: Logger) throws {
        self.publisher = try BusPublisher(context: context, connect: endpoint, logger: logger)
        self.logger = logger
    }

    public func publish(_ message: WireMessage) {
        do {
            try publisher.publish(topic: message.kind.rawValue, payload: WireCodec.encode(message))
        } catch {
            logger.debug("event publish failed", metadata: ["kind": "\(message.kind.rawValue)", "error": "\(error)"])
        }
    }

    public func close() async { await publisher.close() }
}
