import GRDB
import TandemWire

/// The answers to ``MetricsQuery`` (docs/design.md §11 names). Every query reads one committed snapshot.
///
/// `since` (epoch ms, inclusive) filters on the events' own `at` timestamps. `limit` applies to
/// `session_latency` only (the other kinds return one row per group, already small).
extension EventStore {
    /// Rows returned by `session_latency` when the query gives no `limit`.
    static let defaultSessionLimit = 10_000
    /// Largest `limit` honoured (keeps replies far below the wire's frame limit).
    static let maxSessionLimit = 100_000

    func answer(_ query: MetricsQuery) async throws -> MetricsResult {
        switch query.kind {
        case .acceptance:
            MetricsResult(kind: .acceptance, acceptance: try await acceptance(since: query.since))
        case .batchLatency:
            MetricsResult(kind: .batchLatency, latency: try await batchLatency(since: query.since))
        case .sessionLatency:
            MetricsResult(kind: .sessionLatency,
                          sessions: try await sessionLatency(since: query.since, limit: query.limit))
        case .eventCounts:
            MetricsResult(kind: .eventCounts, eventCounts: try await eventCounts(since: query.since))
        case .profiles:
            MetricsResult(kind: .profiles, profiles: try await profiles(since: query.since))
        case .alignment:
            MetricsResult(kind: .alignment, alignment: try await alignment(since: query.since))
        }
    }

    /// Per (draft model, target model, K): rounds, drafted and accepted tokens,
    /// acceptance rate = accepted / drafted, mean acceptance length = 1 + accepted / rounds, and
    /// per-position acceptance = rounds that accepted draft position i / rounds (vLLM's
    /// `num_accepted_tokens_per_pos / num_drafts`; positions not drafted count as not accepted),
    /// so the per-position values sum to mean acceptance length − 1. Sorted by the key.
    func acceptance(since: EpochMillis?) async throws -> [AcceptanceRow] {
        try await read { db in
            let totals = try Row.fetchAll(db, sql: """
                SELECT draft_model, target_model, k, COUNT(*) AS rounds,
                       SUM(drafted) AS drafted, SUM(accepted) AS accepted
                FROM round_events WHERE (:since IS NULL OR at >= :since)
                GROUP BY draft_model, target_model, k
                ORDER BY draft_model, target_model, k
                """, arguments: ["since": since])
            let positions = try Row.fetchAll(db, sql: """
                SELECT r.draft_model, r.target_model, r.k, CAST(p.key AS INTEGER) AS pos, SUM(p.value) AS accepted
                FROM round_events AS r, json_each(r.accepted_per_position) AS p
                WHERE (:since IS NULL OR r.at >= :since)
                GROUP BY r.draft_model, r.target_model, r.k, pos
                """, arguments: ["since": since])
            var perPosition: [AcceptanceKey: [Int: Int]] = [:]
            for row in positions {
                let key = AcceptanceKey(draftModel: row["draft_model"], targetModel: row["target_model"], k: row["k"])
                perPosition[key, default: [:]][row["pos"]] = row["accepted"]
            }
            return totals.map { row in
                let key = AcceptanceKey(draftModel: row["draft_model"], targetModel: row["target_model"], k: row["k"])
                let rounds: Int = row["rounds"]
                let drafted: Int = row["drafted"]
                let accepted: Int = row["accepted"]
                let counts = perPosition[key] ?? [:]
                return AcceptanceRow(
                    draftModel: key.draftModel, targetModel: key.targetModel, k: key.k, rounds: rounds,
                    drafted: drafted, accepted: accepted,
                    acceptanceRate: drafted > 0 ? Double(accepted) / Double(drafted) : 0,
                    meanAcceptanceLength: 1 + Double(accepted) / Double(rounds),
                    perPosition: (0..<max(0, key.k)).map { Double(counts[$0] ?? 0) / Double(rounds) })
            }
        }
    }

    /// Verification batch wall time per verifier model (`key` = model): count, mean and
    /// nearest-rank p50/p90/p99 (rank ⌈p·n/100⌉ computed in SQL with window functions; see
    /// ``Percentile``). Sorted by model.
    func batchLatency(since: EpochMillis?) async throws -> [LatencyRow] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                WITH ranked AS (
                    SELECT model, wall_ms,
                           ROW_NUMBER() OVER (PARTITION BY model ORDER BY wall_ms) AS rn,
                           COUNT(*) OVER (PARTITION BY model) AS n
                    FROM batch_events WHERE (:since IS NULL OR at >= :since))
                SELECT model, n, AVG(wall_ms) AS mean,
                       MAX(CASE WHEN rn = (50 * n + 99) / 100 THEN wall_ms END) AS p50,
                       MAX(CASE WHEN rn = (90 * n + 99) / 100 THEN wall_ms END) AS p90,
                       MAX(CASE WHEN rn = (99 * n + 99) / 100 THEN wall_ms END) AS p99
                FROM ranked GROUP BY model ORDER BY model
                """, arguments: ["since": since]).map { row in
                LatencyRow(key: row["model"], count: row["n"], meanMs: row["mean"], p50Ms: row["p50"],
                           p90Ms: row["p90"], p99Ms: row["p99"])
            }
        }
    }

    /// One row per session from its latest event (the `finished` one when there is one, which
    /// carries TTFT/TPOT/metSLO; a session still running has nil latencies), most recent first.
    func sessionLatency(since: EpochMillis?, limit: Int?) async throws -> [SessionLatencyRow] {
        if let limit, limit <= 0 { throw ErrorReply(code: .invalidArgument, message: "limit must be positive") }
        let limit = min(limit ?? Self.defaultSessionLimit, Self.maxSessionLimit)
        return try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT session, model, output_tokens, ttft_ms, tpot_ms, met_slo FROM (
                    SELECT *, ROW_NUMBER() OVER (PARTITION BY session
                                                 ORDER BY phase = 'finished' DESC, at DESC, event_id DESC) AS rn
                    FROM session_events WHERE (:since IS NULL OR at >= :since))
                WHERE rn = 1
                ORDER BY at DESC, event_id DESC
                LIMIT :limit
                """, arguments: ["since": since, "limit": limit]).map { row in
                SessionLatencyRow(session: row["session"], model: row["model"], outputTokens: row["output_tokens"],
                                  ttftMs: row["ttft_ms"], tpotMs: row["tpot_ms"], metSLO: row["met_slo"])
            }
        }
    }

    /// Stored events per topic; every topic is present (0 when none).
    func eventCounts(since: EpochMillis?) async throws -> [String: Int] {
        try await read { db in
            var counts = Dictionary(uniqueKeysWithValues: EventTopic.allCases.map { ($0.rawValue, 0) })
            for row in try Row.fetchAll(db, sql: """
                SELECT kind, COUNT(*) AS n FROM events WHERE (:since IS NULL OR at >= :since) GROUP BY kind
                """, arguments: ["since": since]) {
                counts[row["kind"]] = row["n"]
            }
            return counts
        }
    }

    /// Per (device, draft model, quantization): sample count and the mean drafting speed and power.
    func profiles(since: EpochMillis?) async throws -> [ProfileRow] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT device, draft_model, quantization, COUNT(*) AS n,
                       AVG(draft_tokens_per_second) AS tps, AVG(power_watts) AS watts
                FROM profile_events WHERE (:since IS NULL OR at >= :since)
                GROUP BY device, draft_model, quantization
                ORDER BY device, draft_model, quantization
                """, arguments: ["since": since]).map { row in
                ProfileRow(device: row["device"], draftModel: row["draft_model"], quantization: row["quantization"],
                           samples: row["n"], draftTokensPerSecond: row["tps"], powerWatts: row["watts"])
            }
        }
    }

    /// Per (draft model, quantization, target model): the latest alignment measured (any device: alignment
    /// depends on the models, not on the machine; the speed is that machine's) and how many were stored.
    func alignment(since: EpochMillis?) async throws -> [AlignmentRow] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT *, (SELECT COUNT(*) FROM alignment_events b
                           WHERE b.draft_model = a.draft_model AND b.quantization = a.quantization
                             AND b.target_model = a.target_model AND (:since IS NULL OR b.at >= :since)) AS n
                FROM alignment_events a
                WHERE (:since IS NULL OR at >= :since) AND event_id = (
                    SELECT c.event_id FROM alignment_events c
                    WHERE c.draft_model = a.draft_model AND c.quantization = a.quantization
                      AND c.target_model = a.target_model AND (:since IS NULL OR c.at >= :since)
                    ORDER BY c.at DESC, c.event_id DESC LIMIT 1)
                ORDER BY draft_model, quantization, target_model
                """, arguments: ["since": since]).map { row in
                AlignmentRow(
                    device: row["device"], draftModel: row["draft_model"], quantization: row["quantization"],
                    targetModel: row["target_model"], samples: row["n"], perPosition: Self.numbers(row["per_position"]),
                    sampledPerPosition: Self.numbers(row["sampled_per_position"]), temperature: row["temperature"],
                    klDivergence: row["kl_divergence"], perplexity: row["perplexity"], positions: row["positions"],
                    draftTokensPerSecond: row["draft_tokens_per_second"], at: row["at"])
            }
        }
    }

    /// `[0.5,0.25]` (as written by the insert) back to numbers.
    static func numbers(_ text: String) -> [Double] {
        text.filter { $0 != "[" && $0 != "]" && $0 != " " }.split(separator: ",").compactMap { Double($0) }
    }

    /// Total stored events (all kinds).
    func totalEvents() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0 }
    }
}

/// The grouping key of the acceptance query.
struct AcceptanceKey: Hashable {
    var draftModel: String
    var targetModel: String
    var k: Int
}
