import Logging
import Metrics
import Synchronization
import TandemBus
import TandemService
import TandemWire

/// The gateway's `control` ROUTER: registrations, heartbeats, status queries, and the messages
/// replicas send about sessions (token reports). Requests *to* replicas (session start/open/close)
/// go out through the same socket, addressed by replica id.
///
/// Liveness never waits for session work: the socket's handler only records heartbeats in the registry and
/// queues token reports, which one task of their own applies in arrival order. A gateway busy with reports
/// (or a slow session manager) therefore cannot make a live replica miss its heartbeats.
final class ControlServer: Sendable {
    let endpoint: BusEndpoint
    let registry: Registry
    private let logger: Logger
    /// Where token reports go (the session manager, set once it exists).
    let reportHandler = ReportSink()
    /// Token reports waiting for the report task, in arrival order.
    private let reportQueue: AsyncStream<TokenReport>.Continuation
    /// The gateway's HTTP address once it listens (``ClusterStatus/gatewayHTTP``).
    private let httpEndpoint = HTTPEndpointSlot()

    init(context: BusContext, bind: String, registry: Registry, logger: Logger) throws {
        self.endpoint = try BusEndpoint.router(context: context, bind: bind, logger: logger)
        self.registry = registry
        self.logger = logger
        let reportHandler = self.reportHandler
        let invalidReports = Counter(label: "tandem_invalid_token_reports_total")
        let (reports, reportQueue) = AsyncStream<TokenReport>.makeStream()
        self.reportQueue = reportQueue
        // Token reports of a session must be applied in the order they were sent: one task applies them all.
        Task {
            for await report in reports { await reportHandler.handler?(report) }
        }
        // Serial and never blocked by session work: heartbeats are recorded as they arrive.
        let httpEndpoint = self.httpEndpoint
        try endpoint.serve(logger: logger, concurrency: .serial) { envelope, incoming in
            let now = ServiceClock.nowMillis()
            switch envelope.message {
            case .register(let registration):
                return .registered(await registry.register(registration, now: now))
            case .heartbeat(let beat):
                return .heartbeatAck(HeartbeatAck(known: await registry.heartbeat(beat, now: now)))
            case .status:
                var status = await registry.status()
                status.gatewayHTTP = httpEndpoint.url
                return .clusterStatus(status)
            case .health:
                return .healthReply(HealthReply(role: .gateway, replicaID: "gateway", uptimeSeconds: 0))
            case .tokens(let report):
                // Checked before it reaches a session's history: a bad report is refused, never applied. Token
                // ids are not checked against the tokenizer: a model's vocabulary may be padded past it, and
                // the decoder renders unknown ids as nothing.
                if let problem = report.problem(vocabularySize: nil) {
                    invalidReports.increment()
                    logger.warning("refused an invalid token report",
                                   metadata: ["session": "\(report.session)", "problem": "\(problem)"])
                    return .error(ErrorReply(code: .invalidArgument, message: problem))
                }
                reportQueue.yield(report)
                // The acknowledgement the drafter waits for before it counts the report as delivered.
                return .ack(Ack())
            default:
                return nil
            }
        }
    }

    deinit { reportQueue.finish() }

    /// Records the HTTP address the gateway listens on, for the cluster status.
    func setHTTPEndpoint(_ url: String) { httpEndpoint.url = url }

    /// Sends a request to a registered replica (by its id, which is its DEALER identity).
    func call(_ message: WireMessage, replica: ReplicaID, timeout: Duration) async throws -> WireMessage {
        try await endpoint.call(message, to: PeerID(replica), timeout: timeout)
    }

    func post(_ message: WireMessage, replica: ReplicaID) async throws {
        try await endpoint.post(message, to: PeerID(replica))
    }
}

/// Holds the token-report handler, installed after the session manager exists.
final class ReportSink: Sendable {
    private let slot = Mutex<(@Sendable (TokenReport) async -> Void)?>(nil)
    var handler: (@Sendable (TokenReport) async -> Void)? { slot.withLock { $0 } }
    func install(_ handler: @escaping @Sendable (TokenReport) async -> Void) { slot.withLock { $0 = handler } }
}

/// The gateway's HTTP address, set once the HTTP server listens.
final class HTTPEndpointSlot: Sendable {
    private let slot = Mutex<String?>(nil)
    var url: String? {
        get { slot.withLock { $0 } }
        set { slot.withLock { $0 = newValue } }
    }
}
