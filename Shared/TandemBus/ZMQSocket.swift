import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The outcome of a non-blocking send.
enum SendOutcome {
    case sent
    /// EAGAIN: the queue is full; retry later.
    case wouldBlock
    /// EHOSTUNREACH: a ROUTER's peer identity is not connected.
    case unreachable
    case failed(BusError)
}

/// A raw libzmq socket. Not thread-safe (libzmq sockets are not): after creation it is used only
/// by the one `SocketWorker` thread that owns it. Creation, options and bind/connect happen on the
/// caller's thread before the worker thread starts, which is the hand-over libzmq allows
/// ("migrate with a full memory barrier"; starting a thread is one).
final class ZMQSocket: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private(set) var isClosed = false
    /// The context's CURVE settings, applied at each bind (as a server) and connect (as a client).
    private let security: BusSecurity?

    init(context: BusContext, type: Int32) throws {
        guard let handle = zmq_socket(context.handle, type) else {
            throw ZMQSocket.lastError("zmq_socket")
        }
        self.handle = handle
        self.security = context.security
    }

    static func lastError(_ operation: String) -> BusError {
        let code = zmq_errno()
        if code == ETERM { return .closed }
        return .zmq(operation: operation, code: code, message: String(cString: zmq_strerror(code)))
    }

    func set(_ option: Int32, _ value: Int32) throws {
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) != 0 {
            throw Self.lastError("zmq_setsockopt(\(option))")
        }
    }

    func set(_ option: Int32, bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw Self.lastError("zmq_setsockopt(\(option))") }
    }

    func applyCommon(_ options: BusOptions) throws {
        try set(ZMQ_LINGER, options.lingerMilliseconds)
        try set(ZMQ_SNDHWM, options.sendHighWaterMark)
        try set(ZMQ_RCVHWM, options.receiveHighWaterMark)
        try set(ZMQ_RECONNECT_IVL, options.reconnectIntervalMilliseconds)
        if options.heartbeatIntervalMilliseconds > 0 {
            try set(ZMQ_HEARTBEAT_IVL, options.heartbeatIntervalMilliseconds)
            try set(ZMQ_HEARTBEAT_TIMEOUT, options.heartbeatTimeoutMilliseconds)
            try set(ZMQ_HEARTBEAT_TTL, options.heartbeatTimeoutMilliseconds)
        }
    }

    func set(_ option: Int32, text: String) throws {
        try set(option, bytes: Array(text.utf8))
    }

    func bind(_ endpoint: String) throws {
        if let security, BusSecurity.applies(to: endpoint) {
            guard let server = security.server else {
                throw BusError.security("binding \(endpoint) needs the cluster's server secret key (server.secret), which this process was not given")
            }
            try set(ZMQ_CURVE_SERVER, 1)
            try set(ZMQ_CURVE_SECRETKEY, text: server.secretKey)
            try set(ZMQ_ZAP_DOMAIN, text: ZAPHandler.domain)
        }
        if zmq_bind(handle, endpoint) != 0 {
            let error = Self.lastError("zmq_bind(\(endpoint))")
            if case let .zmq(_, code, _) = error, code == EINVAL || code == EPROTONOSUPPORT {
                throw BusError.invalidEndpoint(endpoint)
            }
            throw error
        }
    }

    func connect(_ endpoint: String) throws {
        if let security, BusSecurity.applies(to: endpoint) {
            try set(ZMQ_CURVE_SERVER, 0)
            try set(ZMQ_CURVE_SERVERKEY, text: security.serverPublicKey)
            try set(ZMQ_CURVE_PUBLICKEY, text: security.client.publicKey)
            try set(ZMQ_CURVE_SECRETKEY, text: security.client.secretKey)
        }
        if zmq_connect(handle, endpoint) != 0 {
            let error = Self.lastError("zmq_connect(\(endpoint))")
            if case let .zmq(_, code, _) = error, code == EINVAL || code == EPROTONOSUPPORT {
                throw BusError.invalidEndpoint(endpoint)
            }
            throw error
        }
    }

    /// ZMQ_LAST_ENDPOINT: the endpoint actually bound (resolves `*` ports and `ipc://*`).
    func lastEndpoint() -> String? {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        let rc = buffer.withUnsafeMutableBytes { zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, $0.baseAddress, &size) }
        guard rc == 0 else { return nil }
        let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return text.isEmpty ? nil : text
    }

    /// Sends a multipart message without blocking (or, with `wait`, blocking until it is queued, as a
    /// thread that owns nothing else may). libzmq guarantees that once the first frame is accepted the
    /// remaining frames of the same message are too.
    func send(_ frames: [[UInt8]], wait: Bool = false) -> SendOutcome {
        for (index, frame) in frames.enumerated() {
            let flags = (wait ? 0 : ZMQ_DONTWAIT) | (index + 1 < frames.count ? ZMQ_SNDMORE : 0)
            var rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            while wait && rc < 0 && zmq_errno() == EINTR {
                rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            }
            if rc < 0 {
                let code = zmq_errno()
                if index == 0 {
                    if code == EAGAIN { return .wouldBlock }
                    if code == EHOSTUNREACH { return .unreachable }
                }
                if code == ETERM { return .failed(.closed) }
                return .failed(.zmq(operation: "zmq_send", code: code, message: String(cString: zmq_strerror(code))))
            }
        }
        return .sent
    }

    /// Receives one whole multipart message without blocking; nil when nothing is queued. With `wait`,
    /// blocks until a message arrives; nil then means the context is terminating.
    func receive(wait: Bool = false) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        var message = zmq_msg_t()
        while true {
            zmq_msg_init(&message)
            let rc = zmq_msg_recv(&message, handle, wait ? 0 : ZMQ_DONTWAIT)
            if rc < 0 {
                let interrupted = zmq_errno() == EINTR
                zmq_msg_close(&message)
                if wait && interrupted { continue }
                // Only the first frame can be missing; later frames of a message arrive together.
                return frames.isEmpty ? nil : frames
            }
            let size = zmq_msg_size(&message)
            if size == 0 {
                frames.append([])
            } else {
                let data = zmq_msg_data(&message)!
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            }
            let more = zmq_msg_more(&message) != 0
            zmq_msg_close(&message)
            if !more { return frames }
        }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        zmq_close(handle)
    }
}
