import Logging
import TandemBus
import TandemService
import TandemWire

/// Asks the metrics-store's query ROUTER for what the advisor needs: `acceptance`, `profiles` and
/// `batch_latency`, concurrently, each with a short timeout. A failed query is logged once per
/// failure streak and reported as nil (the cache then keeps or drops the previous answer).
struct MetricsStoreClient: Sendable {
    let endpoint: BusEndpoint
    let timeout: Duration
    let logger: Logger

    init(context: BusContext, connect: String, timeout: Duration, logger: Logger) throws {
        self.endpoint = try BusEndpoint.dealer(context: context, connect: connect, logger: logger)
        self.timeout = timeout
        self.logger = logger
    }

    func fetch() async -> MeasurementCache.Fetched {
        async let acceptance = query(.acceptance)
        async let profiles = query(.profiles)
        async let latency = query(.batchLatency)
        async let alignment = query(.alignment)
        return MeasurementCache.Fetched(acceptance: await acceptance?.acceptance, profiles: await profiles?.profiles,
                                        batchLatency: await latency?.latency, alignment: await alignment?.alignment)
    }

    private func query(_ kind: MetricsQueryKind) async -> MetricsResult? {
        do {
            let reply = try await endpoint.call(.metricsQuery(MetricsQuery(kind: kind)), timeout: timeout)
            guard case .metricsResult(let result) = reply, result.kind == kind else {
                logger.warning("metrics-store answered with an unexpected message",
                               metadata: ["query": "\(kind.rawValue)", "reply": "\(reply.kind.rawValue)"])
                return nil
            }
            return result
        } catch {
            logger.debug("metrics-store query failed; using cached data or priors",
                         metadata: ["query": "\(kind.rawValue)", "error": "\(error)"])
            return nil
        }
    }
}
