import Foundation

/// A dedicated OS thread that runs blocking compute (model forward passes) in FIFO order.
///
/// Forward passes take tens of milliseconds and use the engine's own worker threads; running them
/// on Swift's cooperative pool would starve every other task in the process. Callers `await`
/// a job; the thread executes it and resumes them. Jobs run one at a time, so state touched only
/// inside jobs (KV caches, session tables) needs no further locking.
///
/// The thread holds the job queue, never the `ComputeThread` itself: an owner that is released
/// (a service whose start-up failed after creating it, a test that drops it) must not leave a
/// thread reaching for a destroyed object. Releasing the last reference stops the thread once
/// the jobs already queued have run.
public final class ComputeThread: @unchecked Sendable {
    private let queue = JobQueue()

    public init(name: String) {
        let queue = self.queue
        let thread = Thread { queue.drain() }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit { queue.stop() }

    /// Runs `body` on the compute thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Enqueues `job` without waiting.
    public func submit(_ job: @escaping () -> Void) { queue.append(job) }

    /// Number of jobs waiting (not counting the one running).
    public var backlog: Int { queue.count }

    /// Lets queued jobs finish, then ends the thread.
    public func stop() { queue.stop() }
}

/// The FIFO shared by a `ComputeThread` and its OS thread.
private final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopped = false

    func append(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Runs jobs until stopped and empty; the body of the OS thread.
    func drain() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
