import CZeroMQ
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One libzmq context per process: it owns zmq's I/O threads and every socket the bus creates.
///
/// `shutdown()` closes every endpoint, publisher, subscriber and proxy created from this context
/// (each closes on its own thread with a short linger) and then terminates the context on a
/// dedicated thread, so it never blocks Swift's cooperative pool and never hangs on messages in
/// flight. It is idempotent: concurrent and repeated calls all return once shutdown completed.
public final class BusContext: @unchecked Sendable {
    // `handle` is a zmq context, which libzmq documents as thread-safe.
    let handle: UnsafeMutableRawPointer
    /// CURVE settings every socket of this context applies; nil runs the bus in plain text.
    public let security: BusSecurity?
    private var zap: ZAPHandler?

    private struct State {
        var workers: [ObjectIdentifier: SocketWorker] = [:]
        var shuttingDown = false
        var terminated = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - ioThreads: zmq I/O threads (one is plenty below ~1 GB/s).
    ///   - security: CurveZMQ keys: every bound socket then accepts only authorised clients and
    ///     every connection is encrypted (docs/security.md).
    public init(ioThreads: Int = 1, security: BusSecurity? = nil,
                logger: Logger = Logger(label: "tandem.bus")) throws {
        guard let handle = zmq_ctx_new() else {
            throw ZMQSocket.lastError("zmq_ctx_new")
        }
        self.handle = handle
        self.security = security
        zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreads))
        // Sockets default to linger 0, so zmq_ctx_term cannot block on forgotten messages.
        zmq_ctx_set(handle, ZMQ_BLOCKY, 0)
        if let security, security.server != nil {
            // Bound before any server socket exists, so every handshake is checked.
            do {
                zap = try ZAPHandler(context: self, authorized: security.authorized, logger: logger)
            } catch {
                zmq_ctx_term(handle)
                throw error
            }
        }
    }

    /// CURVE handshakes this context's bound sockets accepted and refused (0 without security).
    public var handshakes: (accepted: Int, refused: Int) {
        (zap?.accepted ?? 0, zap?.refused ?? 0)
    }

    /// Whether `shutdown()` has been called.
    public var isShutDown: Bool {
        state.withLock { $0.shuttingDown }
    }

    /// Closes everything created from this context and terminates it. Never hangs: sockets close
    /// with their (small) linger, pending requests fail with `BusError.closed`.
    public func shutdown() async {
        let workers: [SocketWorker]? = state.withLock { state in
            if state.shuttingDown { return nil }
            state.shuttingDown = true
            return Array(state.workers.values)
        }
        guard let workers else {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Bool in
                    if state.terminated { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
            return
        }
        for worker in workers {
            await worker.close()
        }
        let handle = UnsafeSendablePointer(handle)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                // Every socket is closed by now, so this returns once zmq's I/O threads stop.
                while zmq_ctx_term(handle.pointer) != 0 && zmq_errno() == EINTR {}
                continuation.resume()
            }
            thread.name = "tandem-bus-ctx-term"
            thread.start()
        }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.terminated = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func register(_ worker: SocketWorker) throws {
        try state.withLock { state in
            if state.shuttingDown { throw BusError.closed }
            state.workers[ObjectIdentifier(worker)] = worker
        }
    }

    func unregister(_ worker: SocketWorker) {
        _ = state.withLock { $0.workers.removeValue(forKey: ObjectIdentifier(worker)) }
    }

    func checkOpen() throws {
        if isShutDown { throw BusError.closed }
    }
}

/// Lets a raw pointer cross into a thread closure; only used for thread-safe libzmq objects.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}
