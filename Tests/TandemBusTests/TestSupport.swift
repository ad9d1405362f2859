import Foundation
import Synchronization
@testable import TandemBus

struct TestTimedOut: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "test step did not finish within \(limit)" }
}

/// Runs `body` but fails after `limit` even if `body` never returns (it is cancelled and
/// abandoned), so a hang fails the test instead of wedging CI.
func withTimeout<T: Sendable>(
    _ limit: Duration = .seconds(10), _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = OnceContinuation<T>()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        once.set(continuation)
        let task = Task {
            do { _ = once.finish(.success(try await body())) } catch { _ = once.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            if once.finish(.failure(TestTimedOut(limit: limit))) { task.cancel() }
        }
    }
}

/// Resumes a continuation at most once, from whichever side finishes first.
final class OnceContinuation<T: Sendable>: Sendable {
    private let state = Mutex<CheckedContinuation<T, any Error>?>(nil)
    func set(_ continuation: CheckedContinuation<T, any Error>) { state.withLock { $0 = continuation } }
    func finish(_ result: Result<T, any Error>) -> Bool {
        guard let continuation = state.withLock({ state in defer { state = nil }; return state }) else { return false }
        continuation.resume(with: result)
        return true
    }
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
func eventually(_ limit: Duration = .seconds(5), _ condition: @Sendable () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + limit
    while clock.now < end {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A fresh temporary directory for ipc:// socket files.
func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "tandem-bus-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A lock-protected value that closures can capture (Mutex itself is non-copyable).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout sending Value) throws -> sending R) rethrows -> R {
        try mutex.withLock(body)
    }
    var value: Value { mutex.withLock { $0 } }
}
