import Foundation

/// A dedicated OS thread that runs blocking compute (model forward passes) in FIFO order.
///
/// Forward passes take tens of milliseconds and use the engine's own worker threads; running them
/// on Swift's cooperative pool would starve every other task in the process. Callers `await`
/// a job; the thread executes it and resumes them. Jobs run one at a time, so state touched only
/// inside jobs (KV caches, session tables) needs no further locking.
public final class ComputeThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopped = false
    private var thread: Thread?

    public init(name: String) {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Runs `body` on the compute thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Enqueues `job` without waiting.
    public func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Number of jobs waiting (not counting the one running).
    public var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count
    }

    /// Lets queued jobs finish, then ends the thread.
    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
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
