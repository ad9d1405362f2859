import Foundation
import GRDB
import TandemWire

/// The metrics database: appends events in batched transactions and answers the metrics queries.
///
/// A GRDB `DatabasePool`, so the file is in WAL mode: queries read a committed snapshot while the
/// ingest writer commits, and neither blocks the other. `synchronous = FULL` makes every commit
/// durable before `append` returns, so "the query showed it" implies "a crash cannot lose it".
/// All database work runs on GRDB's own dispatch queues (the async `read`/`write` API), never on
/// Swift's cooperative pool.
final class EventStore: Sendable {
    /// The database file.
    let path: String
    private let pool: DatabasePool

    /// Opens (creating the file and its folder if needed) and migrates the database at `path`.
    /// Opening the same file again is harmless: applied migrations are skipped.
    init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        var config = Configuration()
        config.label = "metrics-store"
        // Readers and the writer are separate connections; a checkpoint can hold the write lock
        // briefly, so wait for it instead of failing.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        self.path = url.path
        self.pool = try DatabasePool(path: url.path, configuration: config)
        try StoreSchema.migrator.migrate(pool)
    }

    /// Stores `events` in one transaction: all of them or (on error) none.
    func append(_ events: [StoredEvent]) async throws {
        guard !events.isEmpty else { return }
        try await pool.write { db in
            let insertEvent = try db.cachedStatement(sql: """
                INSERT INTO events (kind, at, replica, session, json, received_at) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for event in events {
                try insertEvent.execute(arguments: [event.topic.rawValue, event.at, event.replica, event.session,
                                                    event.json, event.receivedAt])
                try Self.insertTyped(event.body, id: db.lastInsertedRowID, db: db)
            }
        }
    }

    private static func insertTyped(_ body: StoredEvent.Body, id: Int64, db: Database) throws {
        switch body {
        case .batch(let e):
            try db.cachedStatement(sql: """
                INSERT INTO batch_events (event_id, verifier, model, sequences, new_tokens, context_tokens,
                                          wall_ms, predicted_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [id, e.verifierID, e.model, e.sequences, e.tokensPerSequence.reduce(0, +),
                                         e.contextLengths.reduce(0, +), e.wallMs, e.predictedMs, e.at])
        case .round(let e):
            let perPosition = "[" + e.acceptedPerPosition.map { $0 ? "1" : "0" }.joined(separator: ",") + "]"
            try db.cachedStatement(sql: """
                INSERT INTO round_events (event_id, session, drafter, verifier, draft_model, target_model, device, k,
                                          drafted, accepted, accepted_per_position, draft_ms, verify_ms, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [id, e.session, e.drafterID, e.verifierID, e.draftModel, e.targetModel,
                                         e.device, e.k, e.drafted, e.accepted, perPosition, e.draftMs, e.verifyMs,
                                         e.at])
        case .session(let e):
            try db.cachedStatement(sql: """
                INSERT INTO session_events (event_id, session, phase, model, prompt_tokens, output_tokens, ttft_ms,
                                            tpot_ms, met_slo, finish_reason, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [id, e.session, e.phase.rawValue, e.model, e.promptTokens, e.outputTokens,
                                         e.ttftMs, e.tpotMs, e.metSLO, e.finishReason?.rawValue, e.at])
        case .profile(let e):
            try db.cachedStatement(sql: """
                INSERT INTO profile_events (event_id, device, draft_model, quantization, draft_tokens_per_second,
                                            power_watts, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [id, e.device, e.draftModel, e.quantization, e.draftTokensPerSecond,
                                         e.powerWatts, e.at])
            if let a = e.alignment {
                func list(_ v: [Double]) -> String { "[" + v.map { String($0) }.joined(separator: ",") + "]" }
                try db.cachedStatement(sql: """
                    INSERT INTO alignment_events (event_id, device, draft_model, quantization, target_model, per_position,
                                                  sampled_per_position, temperature, kl_divergence, perplexity, positions,
                                                  draft_tokens_per_second, at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [id, e.device, e.draftModel, e.quantization, a.targetModel, list(a.perPosition),
                                             list(a.sampledPerPosition), a.temperature, a.klDivergence, a.perplexity,
                                             a.positions, e.draftTokensPerSecond, e.at])
            }
        }
    }

    /// Runs `body` against a committed snapshot (never sees a half-written batch).
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    /// The SQLite journal mode in effect (`wal`), for health replies and tests.
    func journalMode() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?" }
    }

    /// Names of the migrations applied to this file.
    func appliedMigrations() async throws -> [String] {
        try await pool.read { db in try StoreSchema.migrator.appliedMigrations(db) }
    }

    /// Closes every connection (after in-flight reads and writes finish). Blocks: call it from a
    /// dedicated thread (``BlockingWork``), not from the cooperative pool.
    func closeBlocking() throws {
        try pool.close()
    }
}
