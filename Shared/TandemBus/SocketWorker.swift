import CZeroMQ
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The part of a bus socket that lives on its thread. Every method is called only by the owning
/// `SocketWorker` thread, which is why conformers may be `@unchecked Sendable`: they are created
/// on the caller's thread, handed over when the thread starts, and never touched elsewhere.
protocol WorkerCore: AnyObject, Sendable {
    /// The zmq sockets this worker polls, in a stable order.
    var sockets: [ZMQSocket] { get }
    /// The zmq poll events (ZMQ_POLLIN / ZMQ_POLLOUT) wanted for `sockets[index]` right now.
    func wantedEvents(_ index: Int) -> Int16
    /// Called when `sockets[index]` reported `events`.
    func handle(events: Int16, index: Int)
    /// The next monotonic instant (ns) at which `fireTimers` must run, if any.
    func nextTimer() -> UInt64?
    /// Expires whatever is due at `now` (monotonic ns).
    func fireTimers(now: UInt64)
    /// Fails everything pending, finishes streams and closes the sockets.
    func shutdown()
}

/// One dedicated OS thread that owns one or more zmq sockets.
///
/// Other threads never touch the sockets: they append a job to a lock-protected outbox and, if the
/// worker is not already signalled, write one byte to a pipe. The thread sleeps in `zmq_poll` on
/// its sockets plus the pipe's read end, so it wakes immediately for both network traffic and
/// outgoing work, with no busy-spinning and no polling interval. Timers (request deadlines) bound
/// the poll timeout.
final class SocketWorker: @unchecked Sendable {
    typealias Job = @Sendable () -> Void

    private struct State {
        var jobs: [Job] = []
        var wakePending = false
        var closing = false
        var finished = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let name: String
    private var core: (any WorkerCore)?
    private weak var context: BusContext?

    /// A worker for sockets that already exist: if the worker cannot be created, the sockets are
    /// closed before the error propagates (nothing else owns them yet).
    convenience init(name: String, context: BusContext, owning sockets: [ZMQSocket]) throws {
        do {
            try self.init(name: name, context: context)
        } catch {
            for socket in sockets { socket.close() }
            throw error
        }
    }

    init(name: String, context: BusContext) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw BusError.zmq(operation: "pipe", code: errno, message: String(cString: strerror(errno)))
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        self.name = name
        self.context = context
    }

    /// Registers with the context and starts the thread. After this the core belongs to the thread.
    func start(core: any WorkerCore) throws {
        guard let context else { throw BusError.closed }
        do {
            try context.register(self)
        } catch {
            closeFileDescriptors()
            for socket in core.sockets { socket.close() }
            throw error
        }
        self.core = core
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Queues `job` to run on the socket thread. Returns false (job not run) once closing.
    @discardableResult
    func submit(_ job: @escaping Job) -> Bool {
        let (accepted, signal) = state.withLock { state -> (Bool, Bool) in
            if state.closing { return (false, false) }
            state.jobs.append(job)
            if state.wakePending { return (true, false) }
            state.wakePending = true
            return (true, true)
        }
        if signal { signalPipe() }
        return accepted
    }

    /// Wakes the thread so it re-evaluates what to poll (e.g. a consumer drained a full inbox).
    func wake() {
        let signal = state.withLock { state -> Bool in
            if state.wakePending || state.finished { return false }
            state.wakePending = true
            return true
        }
        if signal { signalPipe() }
    }

    var isClosing: Bool {
        state.withLock { $0.closing }
    }

    /// Asks the thread to shut its core down and returns once the thread has finished.
    /// Idempotent and safe to call concurrently.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (done, signal) = state.withLock { state -> (Bool, Bool) in
                if state.finished { return (true, false) }
                state.closeWaiters.append(continuation)
                state.closing = true
                let signal = !state.wakePending
                state.wakePending = true
                return (false, signal)
            }
            if signal { signalPipe() }
            if done { continuation.resume() }
        }
    }

    private func signalPipe() {
        var byte: UInt8 = 1
        // A full pipe (EAGAIN) already guarantees a wakeup, so the result can be ignored.
        _ = write(wakeWrite, &byte, 1)
    }

    private func drainPipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }

    private func closeFileDescriptors() {
        #if canImport(Glibc)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        #else
        Darwin.close(wakeRead)
        Darwin.close(wakeWrite)
        #endif
    }

    private func run() {
        guard let core else { return }
        let sockets = core.sockets
        var items = [zmq_pollitem_t](repeating: zmq_pollitem_t(), count: sockets.count + 1)
        items[0].socket = nil
        items[0].fd = wakeRead
        items[0].events = Int16(ZMQ_POLLIN)
        for (index, socket) in sockets.enumerated() {
            items[index + 1].socket = socket.handle
        }
        var terminated = false
        loop: while true {
            drainPipe()
            let (jobs, closing) = state.withLock { state -> ([Job], Bool) in
                state.wakePending = false
                defer { state.jobs.removeAll(keepingCapacity: true) }
                return (state.jobs, state.closing)
            }
            for job in jobs { job() }
            if closing { break }

            var timeout: Int = -1
            if let next = core.nextTimer() {
                let now = BusTime.monotonicNanos()
                // Round up so a timer is never fired early and the loop never spins on 0 ms.
                timeout = next <= now ? 0 : Int((next - now + 999_999) / 1_000_000)
            }
            for index in sockets.indices {
                items[index + 1].events = core.wantedEvents(index)
                items[index + 1].revents = 0
            }
            items[0].revents = 0
            let rc = zmq_poll(&items, Int32(items.count), timeout)
            if rc < 0 {
                let code = zmq_errno()
                if code == EINTR { continue }
                // ETERM: the context is being terminated underneath us.
                terminated = true
                break loop
            }
            if rc > 0 {
                for index in sockets.indices where items[index + 1].revents != 0 {
                    core.handle(events: items[index + 1].revents, index: index)
                }
            }
            if core.nextTimer() != nil {
                core.fireTimers(now: BusTime.monotonicNanos())
            }
        }
        _ = terminated
        // Jobs queued before `closing` was set still run so their continuations resume.
        let leftover = state.withLock { state -> [Job] in
            state.closing = true
            defer { state.jobs.removeAll() }
            return state.jobs
        }
        for job in leftover { job() }
        core.shutdown()
        self.core = nil
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            defer { state.closeWaiters.removeAll() }
            return state.closeWaiters
        }
        closeFileDescriptors()
        context?.unregister(self)
        for waiter in waiters { waiter.resume() }
    }
}
