import Foundation

/// Monotonic and wall-clock helpers shared by services.
public enum ServiceClock {
    /// Wall clock, epoch milliseconds (the wire's timestamps and deadlines).
    public static func nowMillis() -> Double { Date().timeIntervalSince1970 * 1000 }

    /// Milliseconds elapsed since `start` on the monotonic clock.
    public static func millis(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}

extension Duration {
    /// This duration in (fractional) milliseconds.
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
