import Foundation
import Logging
import TandemService
import TandemWire

/// Answers requests on the query ROUTER: `metrics_query` with a `metrics_result` (or an error
/// reply for invalid arguments or a failing database), `health` with the ingest state.
/// Undecodable requests never get here: the shared `serve` answers them with an error.
struct QueryResponder: Sendable {
    let store: EventStore
    let ingest: IngestService
    let stats: IngestStats
    let replicaID: ReplicaID
    /// Fixed facts for the health reply (endpoints, database path).
    let facts: [String: String]
    let started: ContinuousClock.Instant
    let logger: Logger

    func respond(_ message: WireMessage) async -> WireMessage? {
        switch message {
        case .metricsQuery(let query):
            do {
                return .metricsResult(try await store.answer(query))
            } catch let error as ErrorReply {
                return .error(error)
            } catch {
                logger.error("metrics query failed", metadata: ["kind": "\(query.kind.rawValue)", "error": "\(error)"])
                return .error(ErrorReply(code: .internal, message: "query failed: \(error)"))
            }
        case .health:
            var details = facts
            for (key, value) in stats.snapshot() { details[key] = String(value) }
            details["queued"] = String(ingest.pendingTotal)
            details["queue_high_water"] = String(ingest.queue.highWater)
            return .healthReply(HealthReply(role: .metricsStore, replicaID: replicaID, status: "ok",
                                            uptimeSeconds: ServiceClock.millis(since: started) / 1000,
                                            details: details))
        default:
            return nil
        }
    }
}
