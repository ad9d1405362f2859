import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TandemBus
import TandemService
import TandemWire

/// The metrics-store's ingest path as a lifecycle service: reads every event from its own
/// subscription to the proxy, decodes it, queues it for the ``IngestWriter``, and on shutdown
/// stops reading, flushes the queue (bounded by `shutdownTimeout`) and closes the database.
final class IngestService: Service, Sendable {
    let subscriber: BusSubscriber
    let queue: IngestQueue
    let writer: IngestWriter
    let stats: IngestStats
    let shutdownTimeout: Duration
    /// Frames drained from the socket, not decoded yet.
    let inbox = FrameInbox()
    private let logger: Logger

    init(subscriber: BusSubscriber, queue: IngestQueue, writer: IngestWriter, stats: IngestStats,
         shutdownTimeout: Duration, logger: Logger) {
        self.subscriber = subscriber
        self.queue = queue
        self.writer = writer
        self.stats = stats
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
    }

    /// Events received and not committed yet (undecoded, queued, or in a running transaction).
    var pendingTotal: Int { inbox.count + queue.count + writer.pendingInWriter }

    func run() async throws {
        let consumer = Task { await self.drainSocket() }
        let decoder = Task { await self.decode() }
        // Unstructured on purpose: cancelling the service group must not cancel the final flush.
        let writerTask = Task { await self.writer.run() }
        // Returns on SIGTERM/SIGINT; throws if the group is cancelled. Either way: flush and stop.
        try? await gracefulShutdown()
        let started = ContinuousClock.now
        await subscriber.close()
        await consumer.value
        inbox.close()
        // Decode what is left, then let the writer drain the queue and stop; bounded as a whole.
        let flush = Task { [queue] in
            await decoder.value
            queue.close()
            await writerTask.value
        }
        let flushed = await Self.wait(for: flush, timeout: shutdownTimeout)
        let unwritten = pendingTotal
        if flushed {
            do {
                try await BlockingWork.run("metrics-store-close") { [store = writer.store] in try store.closeBlocking() }
            } catch {
                logger.error("closing the database failed", metadata: ["error": "\(error)"])
            }
            logger.info("ingest flushed and database closed",
                        metadata: ["stored_total": "\(stats.stored.load(ordering: .relaxed))",
                                   "flush_ms": "\(Int(ServiceClock.millis(since: started)))"])
        } else {
            logger.error("shutdown flush timed out; events still in memory are lost",
                         metadata: ["unwritten": "\(unwritten)", "timeout": "\(shutdownTimeout)"])
        }
    }

    /// Moves frames from the socket to the inbox as fast as they come.
    private func drainSocket() async {
        for await message in subscriber.messages {
            IngestStats.bump(stats.received)
            inbox.append(message.payload, receivedAt: Envelope.now())
        }
    }

    /// Decodes inbox frames into the writer's queue.
    private func decode() async {
        while let frames = await inbox.next() {
            for frame in frames {
                decode(frame.payload, receivedAt: frame.receivedAt)
            }
        }
    }

    private func decode(_ payload: [UInt8], receivedAt: Double) {
        do throws(WireError) {
            if let event = try StoredEvent.decode(frame: payload, receivedAt: receivedAt) {
                if let length = queue.push(event) {
                    logger.warning("ingest queue is growing: the database is not keeping up",
                                   metadata: ["queued": "\(length)"])
                }
            } else {
                IngestStats.bump(stats.ignored)
            }
        } catch {
            WireErrorCounter.record(error)
            let n = stats.decodeErrors.add(1, ordering: .relaxed).newValue
            if n <= 10 || n % 1000 == 0 {
                logger.warning("dropped undecodable event", metadata: ["error": "\(error)", "total": "\(n)"])
            }
        }
    }

    /// Waits for `task` at most `timeout`; false when it did not finish in time.
    static func wait(for task: Task<Void, Never>, timeout: Duration) async -> Bool {
        let once = ResumeOnce()
        return await withCheckedContinuation { continuation in
            once.set(continuation)
            Task {
                await task.value
                once.resume(true)
            }
            Task {
                try? await Task.sleep(for: timeout)
                once.resume(false)
            }
        }
    }
}

/// A continuation resumed by whichever of several racing tasks comes first.
private final class ResumeOnce: Sendable {
    private let slot = Mutex<CheckedContinuation<Bool, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<Bool, Never>) {
        slot.withLock { $0 = continuation }
    }

    func resume(_ value: Bool) {
        slot.withLock { state in defer { state = nil }; return state }?.resume(returning: value)
    }
}
