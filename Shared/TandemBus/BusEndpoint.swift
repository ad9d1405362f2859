import CZeroMQ
import Logging
import Synchronization

/// A request/reply endpoint over DEALER↔ROUTER, symmetric in both directions.
///
/// Why not REQ/REP: a REQ socket wedges forever when one reply is lost. Here every request
/// carries a 64-bit correlation id and an absolute deadline; the requester times out on its own,
/// drops late replies (counted), and the receiver drops requests that are already too late.
///
/// - A ROUTER endpoint (`router(context:bind:)`) serves many peers and can also *initiate*
///   requests and one-way messages to any connected peer identity (e.g. the gateway pushing
///   `SessionStart` to a drafter). ZMQ_ROUTER_MANDATORY is on, so sending to a peer that is not
///   connected throws `BusError.unknownPeer` instead of silently vanishing.
/// - A DEALER endpoint (`dealer(context:connect:identity:)`) talks to one ROUTER, and can also
///   receive and answer requests from it via `setHandler`.
///
/// The socket lives on its own OS thread (`SocketWorker`); every method here is non-blocking
/// for the calling task.
public final class BusEndpoint: Sendable {
    /// Whether this is the ROUTER (binding) side.
    public let isRouter: Bool
    /// The endpoint actually bound (ephemeral ports and `ipc://*` resolved), for ROUTERs.
    public let boundEndpoint: String?
    /// The endpoint connected to, for DEALERs.
    public let connectedEndpoint: String?
    /// This DEALER's routing identity as its ROUTER sees it (nil for ROUTERs).
    public let identity: PeerID?
    /// Counters for `/metrics`.
    public let counters: BusCounters

    private let worker: SocketWorker
    private let core: EndpointCore
    private let inbox: BusStream<BusIncoming>
    private let peerTable: PeerTable
    private let nextCorrelation = Atomic<UInt64>(0)
    private let handlerStarted = Atomic<Bool>(false)
    private let handlerTask = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    private init(
        context: BusContext, socket: ZMQSocket, isRouter: Bool, bound: String?, connected: String?,
        identity: PeerID?, options: BusOptions, logger: Logger, monitor: ZMQSocket? = nil
    ) throws {
        self.isRouter = isRouter
        self.boundEndpoint = bound
        self.connectedEndpoint = connected
        self.identity = identity
        self.logger = logger
        let counters = BusCounters()
        self.counters = counters
        let name = isRouter ? "bus-router" : "bus-dealer"
        let worker = try SocketWorker(name: name, context: context, owning: [socket] + (monitor.map { [$0] } ?? []))
        self.worker = worker
        let inbox = BusStream<BusIncoming>(capacity: options.inboxCapacity, wake: { [weak worker] in worker?.wake() })
        self.inbox = inbox
        let peers = PeerTable()
        self.peerTable = peers
        let core = EndpointCore(
            socket: socket, isRouter: isRouter, counters: counters, inbox: inbox, peers: peers, logger: logger,
            monitor: monitor)
        self.core = core
        try worker.start(core: core)
    }

    /// Binds a ROUTER at `bind` (e.g. `tcp://127.0.0.1:5560`, `tcp://127.0.0.1:*`, `ipc:///tmp/x`).
    public static func router(
        context: BusContext, bind: String, options: BusOptions = .default,
        logger: Logger = Logger(label: "tandem.bus")
    ) throws -> BusEndpoint {
        try context.checkOpen()
        let endpoint = try BusAddress.normalize(bind)
        let socket = try ZMQSocket(context: context, type: ZMQ_ROUTER)
        do {
            try socket.applyCommon(options)
            try socket.set(ZMQ_ROUTER_MANDATORY, 1)
            // A restarted replica that reuses its identity takes over the old connection.
            try socket.set(ZMQ_ROUTER_HANDOVER, 1)
            try socket.bind(endpoint)
        } catch {
            socket.close()
            throw error
        }
        let bound = socket.lastEndpoint() ?? endpoint
        logger.debug("bus router bound", metadata: ["endpoint": "\(bound)"])
        return try BusEndpoint(
            context: context, socket: socket, isRouter: true, bound: bound, connected: nil, identity: nil,
            options: options, logger: logger)
    }

    /// Connects a DEALER to the ROUTER at `connect`. The connection is made in the background and
    /// re-made after failures; messages queue meanwhile (requests still time out on their deadline).
    /// - Parameter identity: the routing identity the ROUTER sees (default: a random `dealer-…`).
    public static func dealer(
        context: BusContext, connect: String, identity: PeerID? = nil, options: BusOptions = .default,
        logger: Logger = Logger(label: "tandem.bus")
    ) throws -> BusEndpoint {
        try context.checkOpen()
        let endpoint = BusAddress.connectable(try BusAddress.normalize(connect))
        let identity = identity ?? PeerID("dealer-" + randomHex(8))
        guard !identity.bytes.isEmpty, identity.bytes.count <= 255, identity.bytes[0] != 0 else {
            throw BusError.invalidEndpoint("identity \(identity) (must be 1-255 bytes, not starting with 0)")
        }
        let socket = try ZMQSocket(context: context, type: ZMQ_DEALER)
        var monitor: ZMQSocket?
        do {
            try socket.applyCommon(options)
            try socket.set(ZMQ_ROUTING_ID, bytes: identity.bytes)
            // Say hello after every handshake (first connect and reconnects) so the ROUTER
            // always knows this identity, even after it restarted.
            let monitorEndpoint = "inproc://tandem-bus-monitor-" + randomHex(16)
            if zmq_socket_monitor(socket.handle, monitorEndpoint, ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0 {
                throw ZMQSocket.lastError("zmq_socket_monitor")
            }
            let pair = try ZMQSocket(context: context, type: ZMQ_PAIR)
            monitor = pair
            try pair.set(ZMQ_LINGER, 0)
            try pair.connect(monitorEndpoint)
            try socket.connect(endpoint)
        } catch {
            socket.close()
            monitor?.close()
            throw error
        }
        return try BusEndpoint(
            context: context, socket: socket, isRouter: false, bound: nil, connected: endpoint,
            identity: identity, options: options, logger: logger, monitor: monitor)
    }

    // MARK: Sending

    /// Sends a request and waits for its reply.
    ///
    /// - Parameters:
    ///   - peer: the destination identity; required on a ROUTER, ignored on a DEALER.
    ///   - timeout: the deadline, also sent to the receiver so it can skip work nobody waits for.
    /// - Throws: `BusError.timeout` when no reply arrives in time, `.unknownPeer` when a ROUTER's
    ///   peer is not connected, `.cancelled` if the task is cancelled, `.closed` after `close()`.
    public func request(_ payload: [UInt8], to peer: PeerID? = nil, timeout: Duration) async throws -> [UInt8] {
        let peer = isRouter ? peer : nil
        if isRouter && peer == nil { throw BusError.peerRequired }
        if Task.isCancelled { throw BusError.cancelled }
        let id = nextCorrelation.add(1, ordering: .relaxed).newValue
        let timeoutNanos = BusTime.nanos(timeout)
        let deadline = BusTime.monotonicNanos() &+ timeoutNanos
        let deadlineMillis = BusTime.wallMillis() &+ (timeoutNanos + 999_999) / 1_000_000
        let header = BusHeader(kind: .request, correlation: id, deadlineMillis: deadlineMillis).encoded()
        let frames = peer.map { [$0.bytes, header, payload] } ?? [header, payload]
        let core = self.core
        let worker = self.worker
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
                let accepted = worker.submit {
                    core.startRequest(
                        id: id, peer: peer, frames: frames, deadline: deadline, timeout: timeout,
                        continuation: continuation)
                }
                if !accepted { continuation.resume(throwing: BusError.closed) }
            }
        } onCancel: {
            worker.submit { core.cancel(id: id) }
        }
    }

    /// Sends a one-way message (no reply). Returns once libzmq accepted it.
    /// - Throws: `.unknownPeer` (ROUTER, peer not connected), `.peerRequired`, `.closed`.
    public func send(_ payload: [UInt8], to peer: PeerID? = nil) async throws {
        let peer = isRouter ? peer : nil
        if isRouter && peer == nil { throw BusError.peerRequired }
        let header = BusHeader(kind: .oneway, correlation: 0, deadlineMillis: 0).encoded()
        try await enqueue(peer.map { [$0.bytes, header, payload] } ?? [header, payload], peer: peer)
    }

    /// Sends the reply to `incoming` (for handlers that answer later than they return).
    public func reply(to incoming: BusIncoming, with payload: [UInt8]) async throws {
        try await enqueue(replyFrames(to: incoming, payload: payload), peer: isRouter ? incoming.peer : nil)
    }

    private func replyFrames(to incoming: BusIncoming, payload: [UInt8]) -> [[UInt8]] {
        let header = BusHeader(kind: .reply, correlation: incoming.correlation, deadlineMillis: 0).encoded()
        if isRouter, let peer = incoming.peer { return [peer.bytes, header, payload] }
        return [header, payload]
    }

    private func enqueue(_ frames: [[UInt8]], peer: PeerID?) async throws {
        let core = self.core
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted = worker.submit {
                core.enqueue(.init(frames: frames, peer: peer, completion: { continuation.resume(with: $0) }))
            }
            if !accepted { continuation.resume(throwing: BusError.closed) }
        }
    }

    // MARK: Receiving

    /// Installs the handler for incoming requests and one-way messages. Its return value is sent
    /// back as the reply when the message is a request (return nil to not reply; the requester then
    /// times out). Messages that arrived before this call were buffered and are delivered now.
    /// Requests whose deadline passed while queued are dropped and counted (`counters.expired`).
    public func setHandler(
        concurrency: BusHandlerConcurrency = .concurrent,
        _ handler: @escaping @Sendable (BusIncoming) async -> [UInt8]?
    ) throws {
        guard handlerStarted.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            throw BusError.handlerAlreadySet
        }
        let inbox = self.inbox
        let counters = self.counters
        let core = self.core
        let worker = self.worker
        let isRouter = self.isRouter
        @Sendable func process(_ incoming: BusIncoming) async {
            if incoming.isExpired {
                BusCounters.bump(counters.expiredCount)
                return
            }
            let reply = await handler(incoming)
            guard incoming.expectsReply, let reply else { return }
            let header = BusHeader(kind: .reply, correlation: incoming.correlation, deadlineMillis: 0).encoded()
            let frames = isRouter && incoming.peer != nil ? [incoming.peer!.bytes, header, reply] : [header, reply]
            worker.submit { core.enqueue(.init(frames: frames, peer: incoming.peer, completion: nil)) }
        }
        let task = Task {
            switch concurrency {
            case .serial:
                for await incoming in inbox {
                    await process(incoming)
                }
            case .concurrent:
                await withDiscardingTaskGroup { group in
                    for await incoming in inbox {
                        group.addTask { await process(incoming) }
                    }
                }
            }
        }
        handlerTask.withLock { $0 = task }
    }

    // MARK: Peers

    /// Peers this ROUTER has received anything from (a DEALER says hello on start), most recent
    /// first. Peers that fail a send with `unknownPeer` are removed.
    public var knownPeers: [PeerID] {
        peerTable.entries.withLock { entries in
            entries.sorted { $0.value > $1.value }.map(\.key)
        }
    }

    /// When `peer` was last heard from (milliseconds since the Unix epoch).
    public func lastSeenMillis(_ peer: PeerID) -> UInt64? {
        peerTable.entries.withLock { $0[peer] }
    }

    // MARK: Lifecycle

    /// Closes the socket (linger from `BusOptions`), fails pending requests with `.closed` and
    /// cancels the handler task (handlers still running are not awaited, so a stuck handler cannot
    /// hang shutdown; their replies are discarded). Idempotent; returns once the socket thread exited.
    public func close() async {
        await worker.close()
        handlerTask.withLock { $0 }?.cancel()
    }
}

func randomHex(_ count: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    let digits = Array("0123456789abcdef")
    return String((0..<count).map { _ in digits[Int(generator.next() % 16)] })
}
