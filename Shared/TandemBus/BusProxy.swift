import CZeroMQ
import Logging

/// The event hub: publishers connect to its XSUB (`frontend`), subscribers to its XPUB
/// (`backend`); events flow XSUB→XPUB and subscriptions flow back XPUB→XSUB. Run by the
/// metrics-store. A manual poll loop on its own thread (rather than `zmq_proxy`) so it can count
/// what it forwards and stop promptly on `stop()`.
public final class BusProxy: Sendable {
    /// Where publishers connect (XSUB), resolved.
    public let frontendEndpoint: String
    /// Where subscribers connect (XPUB), resolved.
    public let backendEndpoint: String
    /// `sent` = events forwarded to subscribers, `received` = subscription messages forwarded upstream.
    public let counters: BusCounters
    private let worker: SocketWorker

    public init(context: BusContext, frontendBind: String, backendBind: String, options: BusOptions = .default,
                logger: Logger = Logger(label: "tandem.bus")) throws {
        let (frontend, frontendEndpoint) = try BusAttachment.bind(frontendBind)
            .open(context: context, type: ZMQ_XSUB, options: options)
        let backend: ZMQSocket
        let backendEndpoint: String
        do {
            (backend, backendEndpoint) = try BusAttachment.bind(backendBind)
                .open(context: context, type: ZMQ_XPUB, options: options)
        } catch {
            frontend.close()
            throw error
        }
        self.frontendEndpoint = frontendEndpoint
        self.backendEndpoint = backendEndpoint
        let counters = BusCounters()
        self.counters = counters
        worker = try SocketWorker(name: "bus-proxy", context: context, owning: [frontend, backend])
        try worker.start(core: ProxyCore(frontend: frontend, backend: backend, counters: counters, logger: logger))
        logger.debug("bus proxy running", metadata: ["xsub": "\(frontendEndpoint)", "xpub": "\(backendEndpoint)"])
    }

    /// Stops forwarding and closes both sockets. Idempotent.
    public func stop() async {
        await worker.close()
    }
}

final class ProxyCore: WorkerCore, @unchecked Sendable {
    let sockets: [ZMQSocket]
    let counters: BusCounters
    let logger: Logger

    init(frontend: ZMQSocket, backend: ZMQSocket, counters: BusCounters, logger: Logger) {
        self.sockets = [frontend, backend]
        self.counters = counters
        self.logger = logger
    }

    func wantedEvents(_ index: Int) -> Int16 { Int16(ZMQ_POLLIN) }

    func handle(events: Int16, index: Int) {
        guard events & Int16(ZMQ_POLLIN) != 0 else { return }
        let source = sockets[index]
        let target = sockets[1 - index]
        var budget = 1024
        while budget > 0, let frames = source.receive() {
            budget -= 1
            // XPUB drops for slow subscribers instead of blocking; XSUB never blocks.
            switch target.send(frames) {
            case .sent:
                if index == 0 {
                    BusCounters.bump(counters.sentCount)
                } else {
                    BusCounters.bump(counters.receivedCount)
                }
            default:
                BusCounters.bump(counters.droppedCount)
            }
        }
    }

    func nextTimer() -> UInt64? { nil }
    func fireTimers(now: UInt64) {}

    func shutdown() {
        for socket in sockets { socket.close() }
    }
}
