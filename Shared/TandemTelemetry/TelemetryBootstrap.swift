import Logging
import Metrics
import Prometheus

/// Process-wide logging and metrics setup. Only executables call this (once, at start);
/// libraries take a `Logger` and emit through swift-metrics without knowing the backend.
public enum TelemetryBootstrap {
    /// Bootstraps swift-log (stderr, given level) and swift-metrics (Prometheus); returns the
    /// registry whose text exposition a service serves (gateway `/metrics`) or logs.
    @discardableResult
    public static func bootstrap(label: String, level: Logger.Level) -> PrometheusCollectorRegistry {
        LoggingSystem.bootstrap { name in
            var handler = StreamLogHandler.standardError(label: name)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// Prometheus text exposition of `registry`.
    public static func exposition(_ registry: PrometheusCollectorRegistry) -> String {
        var buffer = [UInt8]()
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
