import Foundation
import Synchronization
import TandemService
import Testing

/// A drafter sharing a machine with a verifier lowers its threads' priority (`drafter-agent --nice`,
/// `tandem up --drafter-nice`). Checked on one thread of its own, so the test process keeps its priority.
struct ThreadPriorityTests {
    #if os(Linux)
    @Test func aThreadIsLoweredToTheNicenessAskedAndNeverRaised() throws {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let tid = Mutex<Int32>(0)
        let thread = Thread {
            tid.withLock { $0 = ThreadPriority.currentThreadID() ?? -1 }
            started.signal()
            release.wait()
        }
        thread.start()
        started.wait()
        defer { release.signal() }
        let id = tid.withLock { $0 }
        #expect(ThreadPriority.threadIDs().contains(id))
        #expect(ThreadPriority.niceness(ofThread: id) == 0)
        #expect(ThreadPriority.lower(threads: [id], to: 7) == 1)
        #expect(ThreadPriority.niceness(ofThread: id) == 7)
        // Already as low: nothing to change; a smaller value would raise it, which is never done.
        #expect(ThreadPriority.lower(threads: [id], to: 7) == 0)
        #expect(ThreadPriority.lower(threads: [id], to: 3) == 0)
        #expect(ThreadPriority.niceness(ofThread: id) == 7)
        #expect(ThreadPriority.lower(threads: [id], to: 0) == 0)
    }
    #endif
}
