/// Socket settings shared by all bus sockets. The defaults suit services on one host or a LAN.
public struct BusOptions: Sendable {
    /// ZMQ_LINGER: how long `close` may keep unsent messages. Small so shutdown never hangs.
    public var lingerMilliseconds: Int32 = 50
    /// ZMQ_SNDHWM: messages queued per peer before sends block (DEALER/PUSH) or drop (PUB).
    public var sendHighWaterMark: Int32 = 10_000
    /// ZMQ_RCVHWM: messages queued per peer on the receive side.
    public var receiveHighWaterMark: Int32 = 10_000
    /// Messages the bus buffers for the application before it stops reading the socket (which
    /// pushes back to senders through zmq's high-water marks instead of dropping).
    public var inboxCapacity: Int = 4096
    /// ZMTP heartbeats, so dead TCP peers are noticed even when idle (0 disables).
    public var heartbeatIntervalMilliseconds: Int32 = 1000
    /// A connection is dropped when no heartbeat reply arrives for this long.
    public var heartbeatTimeoutMilliseconds: Int32 = 3000
    /// ZMQ_RECONNECT_IVL for connecting sockets.
    public var reconnectIntervalMilliseconds: Int32 = 100

    public init() {}

    public static let `default` = BusOptions()
}
