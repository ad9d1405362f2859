import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Scheduling priority of a process's threads.
///
/// On Linux niceness belongs to each thread, and libdispatch sets its own workers' from their QoS, so a
/// niceness given when the process is started (`nice drafter-agent`) does not reach the threads that compute.
/// A service that shares a machine with a more important one (a drafter beside the verifier in `tandem up`)
/// lowers its threads itself, once they exist.
public enum ThreadPriority {
    /// Sets the niceness of every thread the process has now (raising it needs no privilege); returns how
    /// many were changed. Threads started later keep their own. A no-op off Linux.
    @discardableResult
    public static func lowerEveryThread(to niceness: Int32) -> Int {
        lower(threads: threadIDs(), to: niceness)
    }

    /// Sets the niceness of the given threads of this process where it is lower; returns how many changed.
    @discardableResult
    public static func lower(threads: [Int32], to niceness: Int32) -> Int {
        #if os(Linux)
        guard niceness > 0 else { return 0 }
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        return threads.filter { tid in
            let id = id_t(tid)
            return getpriority(which, id) < niceness && setpriority(which, id, niceness) == 0
        }.count
        #else
        return 0
        #endif
    }

    /// The kernel's ids of this process's threads (empty off Linux).
    public static func threadIDs() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) }
    }

    /// The kernel's id of the calling thread (from `/proc/thread-self`), nil off Linux.
    public static func currentThreadID() -> Int32? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))
            .flatMap { Int32(($0 as NSString).lastPathComponent) }
    }

    /// A thread's niceness as the kernel reports it (field 19 of `/proc/self/task/TID/stat`), nil if unknown.
    public static func niceness(ofThread tid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces): state is field 3, niceness field 19.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 16 ? Int32(fields[16]) : nil
    }
}
