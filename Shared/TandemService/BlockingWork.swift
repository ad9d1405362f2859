import Foundation

/// Runs a blocking call (opening a database, loading and repacking a model) on its own thread so
/// it never occupies one of the few threads of Swift's cooperative pool.
public enum BlockingWork {
    public static func run<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try body() })
            }
            thread.name = name
            thread.start()
        }
    }
}
