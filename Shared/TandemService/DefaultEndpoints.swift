/// The well-known ports of docs/design.md §2 on loopback. Every endpoint can be overridden by
/// flag or by the environment variable named next to it.
public enum DefaultEndpoints {
    /// Gateway `control` ROUTER (`TANDEM_GATEWAY_CONTROL` / bind `TANDEM_CONTROL_BIND`).
    public static let gatewayControl = "tcp://127.0.0.1:5550"
    public static let gatewayHTTP = "127.0.0.1:8080"
    /// Verifier `verify` ROUTER (`TANDEM_VERIFY_BIND`).
    public static let verify = "tcp://127.0.0.1:5560"
    /// Estimator ROUTER (`TANDEM_ESTIMATOR`, bind `TANDEM_ESTIMATOR_BIND`).
    public static let estimator = "tcp://127.0.0.1:5570"
    /// Config-advisor ROUTER (`TANDEM_ADVISOR`, bind `TANDEM_ADVISOR_BIND`).
    public static let advisor = "tcp://127.0.0.1:5575"
    /// Metrics-store XSUB, where publishers connect (`TANDEM_EVENTS_PUB`).
    public static let eventsPublish = "tcp://127.0.0.1:5580"
    /// Metrics-store XPUB, where subscribers connect (`TANDEM_EVENTS_SUB`).
    public static let eventsSubscribe = "tcp://127.0.0.1:5581"
    /// Metrics-store query ROUTER (`TANDEM_METRICS_QUERY`).
    public static let metricsQuery = "tcp://127.0.0.1:5585"
}
