#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A fixed set of dedicated OS worker threads for data-parallel kernels.
///
/// Why not Swift's cooperative pool: a forward pass issues hundreds of short parallel loops per
/// token, which must start within microseconds and must never block the cooperative executor.
///
/// `parallelFor` publishes a job, the caller participates, and it returns only when every index
/// ran. Idle workers spin briefly (cheap hand-off between back-to-back matmuls) and then park on
/// a condition variable, so several engines or processes sharing the cores do not burn each
/// other's CPU time. Work is claimed index by index with a compare-and-swap that also checks the
/// job generation, so a late or preempted worker can never run an index of a finished job, and a
/// descheduled worker that claimed nothing never delays the caller.
public final class ComputePool: @unchecked Sendable {
    /// Total threads working on a `parallelFor`, including the caller.
    public let threadCount: Int

    /// Bits 40-63: job generation; bits 20-39: index count; bits 0-19: next index to claim.
    /// Packing all three lets a claim validate generation and bounds in one compare-and-swap.
    private let state = Atomic<UInt64>(0)
    /// Number of indices of the current job that completed.
    private let done = Atomic<Int>(0)
    private let shuttingDown = Atomic<Bool>(false)
    /// Type-erased pointer to the current job's body closure (valid while the job runs).
    private nonisolated(unsafe) var body: UnsafeRawPointer? = nil

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let workCond: UnsafeMutablePointer<pthread_cond_t>
    private let doneCond: UnsafeMutablePointer<pthread_cond_t>
    private nonisolated(unsafe) var workerThreads: [pthread_t] = []
    /// Serializes concurrent callers of `parallelFor` (one job at a time).
    private let callerLock = Mutex<Void>(())

    /// How long an idle worker (or waiting caller) spins before parking, in nanoseconds.
    public let spinNanoseconds: UInt64

    /// - Parameters:
    ///   - threads: total number of threads including the calling thread (>= 1).
    ///   - spinMicroseconds: busy-wait window before a thread parks.
    public init(threads: Int, spinMicroseconds: Int = 200) {
        threadCount = max(1, threads)
        spinNanoseconds = UInt64(max(0, spinMicroseconds)) * 1000
        mutex = .allocate(capacity: 1)
        workCond = .allocate(capacity: 1)
        doneCond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(workCond, nil)
        pthread_cond_init(doneCond, nil)
        for worker in 1..<threadCount {
            var tid = pthread_t()
            let ctx = Unmanaged.passRetained(WorkerContext(pool: self, index: worker)).toOpaque()
            let rc = pthread_create(&tid, nil, { arg in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(arg!).takeRetainedValue()
                ctx.pool.workerLoop(threadIndex: ctx.index)
                return nil
            }, ctx)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            workerThreads.append(tid)
        }
    }

    /// Stops the workers. The pool must not be used afterwards. Called automatically when the
    /// engine that owns the pool shuts down; workers hold a reference, so `deinit` alone would
    /// never run while they live.
    public func shutdown() {
        if shuttingDown.exchange(true, ordering: .sequentiallyConsistent) { return }
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(workCond)
        pthread_mutex_unlock(mutex)
        for t in workerThreads { pthread_join(t, nil) }
        workerThreads.removeAll()
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the pool's threads; returns when
    /// all ran. Indices are claimed dynamically, so uneven chunks balance themselves.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        parallelFor(count) { i, _ in body(i) }
    }

    /// Like `parallelFor(_:_:)`, also passing the index (`0..<threadCount`, caller = 0) of the
    /// thread running each index, so bodies can use per-thread scratch buffers.
    /// Not reentrant: a body must not call `parallelFor` on the same pool.
    public func parallelFor(_ count: Int, _ body: (_ index: Int, _ thread: Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 || shuttingDown.load(ordering: .relaxed) {
            for i in 0..<count { body(i, 0) }
            return
        }
        precondition(count < (1 << 20), "parallelFor supports fewer than 2^20 indices")
        callerLock.withLock { _ in
            withoutActuallyEscaping(body) { escapable in
                withUnsafePointer(to: escapable) { bodyPtr in
                    run(count, UnsafeRawPointer(bodyPtr))
                }
            }
        }
    }

    private func run(_ count: Int, _ bodyPtr: UnsafeRawPointer) {
        body = bodyPtr
        done.store(0, ordering: .relaxed)
        let old = state.load(ordering: .relaxed)
        let gen = ((old >> 40) &+ 1) & 0xFF_FFFF
        state.store((gen << 40) | (UInt64(count) << 20), ordering: .sequentiallyConsistent)
        // Wake parked workers (cheap when nobody sleeps: an uncontended lock).
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(workCond)
        pthread_mutex_unlock(mutex)

        work(generation: gen, threadIndex: 0)

        // Wait for indices claimed by workers.
        if done.load(ordering: .acquiring) != count {
            let start = Self.now()
            var spins = 0
            while done.load(ordering: .acquiring) != count {
                spins += 1
                if spins & 255 == 0, Self.now() &- start > spinNanoseconds {
                    pthread_mutex_lock(mutex)
                    while done.load(ordering: .sequentiallyConsistent) != count {
                        pthread_cond_wait(doneCond, mutex)
                    }
                    pthread_mutex_unlock(mutex)
                    break
                }
            }
        }
        body = nil
    }

    /// Claims and runs indices of job `generation` until none remain.
    private func work(generation: UInt64, threadIndex: Int) {
        var s = state.load(ordering: .acquiring)
        while true {
            if s >> 40 != generation { return }
            let count = Int((s >> 20) & 0xF_FFFF)
            let idx = Int(s & 0xF_FFFF)
            if idx >= count { return }
            let (exchanged, original) = state.compareExchange(
                expected: s, desired: s + 1, successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring)
            if !exchanged { s = original; continue }
            Self.invoke(body!, idx, threadIndex)
            let finished = done.add(1, ordering: .acquiringAndReleasing)
            if finished.newValue == count {
                // The caller may be parked or about to park: signal under the lock so the wake
                // cannot be missed.
                pthread_mutex_lock(mutex)
                pthread_cond_signal(doneCond)
                pthread_mutex_unlock(mutex)
            }
            s = state.load(ordering: .acquiring)
        }
    }

    /// Calls the type-erased body. Not inlined so any retain/release of the closure context
    /// happens before the caller marks the index done.
    @inline(never)
    private static func invoke(_ p: UnsafeRawPointer, _ i: Int, _ thread: Int) {
        p.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(i, thread)
    }

    private func workerLoop(threadIndex: Int) {
        var seenGen = state.load(ordering: .acquiring) >> 40
        while !shuttingDown.load(ordering: .relaxed) {
            // Spin for new work, then park.
            let start = Self.now()
            var spins = 0
            var s = state.load(ordering: .acquiring)
            while s >> 40 == seenGen {
                spins += 1
                if spins & 255 == 0 {
                    if shuttingDown.load(ordering: .relaxed) { return }
                    if Self.now() &- start > spinNanoseconds {
                        pthread_mutex_lock(mutex)
                        while state.load(ordering: .sequentiallyConsistent) >> 40 == seenGen,
                              !shuttingDown.load(ordering: .relaxed) {
                            pthread_cond_wait(workCond, mutex)
                        }
                        pthread_mutex_unlock(mutex)
                        if shuttingDown.load(ordering: .relaxed) { return }
                    }
                }
                s = state.load(ordering: .acquiring)
            }
            seenGen = s >> 40
            work(generation: seenGen, threadIndex: threadIndex)
        }
    }

    @inline(__always)
    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

private final class WorkerContext {
    let pool: ComputePool
    let index: Int
    init(pool: ComputePool, index: Int) {
        self.pool = pool
        self.index = index
    }
}
