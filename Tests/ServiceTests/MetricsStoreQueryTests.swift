import Foundation
import GRDB
import Testing
import TandemWire
@testable import MetricsStore

/// EventStore: storage, migrations and every query, against hand-computed numbers.
@Suite("metrics-store: EventStore")
struct MetricsStoreQueryTests {
    typealias S = MetricsStoreTestSupport

    /// Runs `body` with a store on a fresh temporary database, then closes and removes it.
    func withStore(_ body: (EventStore, String) async throws -> Void) async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let path = dir + "/nested/metrics.sqlite"
        let store = try EventStore(path: path)
        try await body(store, path)
        try store.closeBlocking()
    }

    @Test("the database is in WAL mode, created with its folder, and migrations re-run idempotently")
    func migrations() async throws {
        try await withStore { store, path in
            #expect(try await store.journalMode() == "wal")
            #expect(try await store.appliedMigrations() == ["v1-events", "v2-alignment"])
            try await store.append(S.stored([S.round(k: 2, accepted: [true, false])]))
            // Opening the same file again (as a restart does) applies nothing and keeps the data.
            let again = try EventStore(path: path)
            #expect(try await again.appliedMigrations() == ["v1-events", "v2-alignment"])
            #expect(try await again.totalEvents() == 1)
            try again.closeBlocking()
            // Running the migrator on an up-to-date database is a no-op as well.
            let third = try EventStore(path: path)
            #expect(try await third.eventCounts(since: nil)["round"] == 1)
            try third.closeBlocking()
        }
    }

    @Test("every event kind lands in events and its typed table, with the envelope JSON")
    func storage() async throws {
        try await withStore { store, _ in
            let session = SessionEvent(session: "s9", phase: .finished, model: "target", promptTokens: 10,
                                       outputTokens: 20, ttftMs: 300, tpotMs: 40, metSLO: true,
                                       finishReason: .stop, at: 5)
            try await store.append(S.stored([
                S.batch(model: "target", wallMs: 25, at: 1),
                S.round(session: "s9", k: 3, accepted: [true, true, false], at: 2),
                .session(session),
                .profile(ProfileEvent(device: "rpi5", draftModel: "d", quantization: "q4", draftTokensPerSecond: 9,
                                      powerWatts: 6, at: 4)),
            ]))
            let rows = try await store.read { db in
                try String.fetchAll(db, sql: "SELECT kind || ':' || IFNULL(session, '-') FROM events ORDER BY id")
            }
            #expect(rows == ["batch:-", "round:s9", "session:s9", "profile:-"])
            let batch = try await store.read { db -> [Double] in
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT new_tokens, context_tokens, sequences, predicted_ms FROM batch_events
                    """) else { return [] }
                return [row["new_tokens"], row["context_tokens"], row["sequences"], row["predicted_ms"]]
            }
            #expect(batch == [8, 140, 2, 26])
            let perPosition = try await store.read { db in
                try String.fetchOne(db, sql: "SELECT accepted_per_position FROM round_events")
            }
            #expect(perPosition == "[1,1,0]")
            let json = try await store.read { db in
                try String.fetchOne(db, sql: "SELECT json FROM events WHERE kind = 'session'")
            }
            // The raw JSON is the envelope and decodes back to the same event.
            let envelope = try JSONDecoder().decode(Envelope.self, from: Data((json ?? "").utf8))
            #expect(envelope.message == .session(session))
        }
    }

    @Test("acceptance: rate, mean acceptance length and per-position acceptance per (draft, target, K)")
    func acceptance() async throws {
        try await withStore { store, _ in
            try await store.append(S.stored([
                S.round(draft: "a", k: 4, accepted: [true, true, false, false], at: 10),
                S.round(draft: "a", k: 4, accepted: [true, true, true, true], at: 20),
                // The controller stopped after 3 drafts; none accepted.
                S.round(draft: "a", k: 4, accepted: [false, false, false], at: 30),
                S.round(draft: "b", k: 2, accepted: [true, false], at: 40),
            ]))
            let rows = try await store.acceptance(since: nil)
            #expect(rows.count == 2)
            let a = try #require(rows.first)
            #expect(a.draftModel == "a" && a.targetModel == "target" && a.k == 4)
            #expect(a.rounds == 3 && a.drafted == 11 && a.accepted == 6)
            #expect(abs(a.acceptanceRate - 6.0 / 11.0) < 1e-12)
            #expect(abs(a.meanAcceptanceLength - 3.0) < 1e-12)  // 1 + 6/3
            let expected: [Double] = [2, 2, 1, 1].map { $0 / 3 }
            #expect(a.perPosition == expected)
            // Per-position values sum to mean acceptance length − 1.
            #expect(abs(a.perPosition.reduce(0, +) - (a.meanAcceptanceLength - 1)) < 1e-12)
            let b = rows[1]
            #expect(b.draftModel == "b" && b.k == 2 && b.rounds == 1)
            #expect(b.acceptanceRate == 0.5 && b.meanAcceptanceLength == 2 && b.perPosition == [1, 0])
            // since: only the rounds at or after t=20.
            let recent = try await store.acceptance(since: 20)
            #expect(recent.first?.rounds == 2 && recent.first?.drafted == 7 && recent.first?.accepted == 4)
            #expect(recent.first?.perPosition == [0.5, 0.5, 0.5, 0.5])
        }
    }

    @Test("batch_latency: count, mean and nearest-rank p50/p90/p99 per verifier model")
    func batchLatency() async throws {
        try await withStore { store, _ in
            let values: [Double] = [7, 3, 10, 1, 9, 2, 8, 5, 4, 6]  // 1...10 shuffled
            try await store.append(S.stored(values.map { S.batch(model: "m", wallMs: $0, at: $0) }
                                            + [S.batch(model: "n", wallMs: 42, at: 1)]))
            let rows = try await store.batchLatency(since: nil)
            #expect(rows == [
                LatencyRow(key: "m", count: 10, meanMs: 5.5, p50Ms: 5, p90Ms: 9, p99Ms: 10),
                LatencyRow(key: "n", count: 1, meanMs: 42, p50Ms: 42, p90Ms: 42, p99Ms: 42),
            ])
            // since = 8 keeps 8, 9, 10 of model m (and n's event at t=1 drops out).
            let recent = try await store.batchLatency(since: 8)
            #expect(recent == [LatencyRow(key: "m", count: 3, meanMs: 9, p50Ms: 9, p90Ms: 10, p99Ms: 10)])
        }
    }

    @Test("the SQL percentiles equal the Swift nearest-rank reference on random data")
    func percentilesMatchReference() async throws {
        var rng = SystemRandomNumberGenerator()
        try await withStore { store, _ in
            var byModel: [String: [Double]] = [:]
            var messages: [WireMessage] = []
            for (index, n) in [1, 2, 3, 7, 99, 100, 101, 257].enumerated() {
                let model = "model-\(index)"
                let values = (0..<n).map { _ in Double(Int.random(in: 0..<500, using: &rng)) / 4 }
                byModel[model] = values.sorted()
                messages += values.map { S.batch(model: model, wallMs: $0) }
            }
            try await store.append(S.stored(messages))
            let rows = try await store.batchLatency(since: nil)
            #expect(rows.count == byModel.count)
            for row in rows {
                let sorted = try #require(byModel[row.key])
                #expect(row.count == sorted.count)
                #expect(abs(row.meanMs - sorted.reduce(0, +) / Double(sorted.count)) < 1e-9)
                #expect(row.p50Ms == Percentile.nearestRank(sorted, 50), "\(row.key)")
                #expect(row.p90Ms == Percentile.nearestRank(sorted, 90), "\(row.key)")
                #expect(row.p99Ms == Percentile.nearestRank(sorted, 99), "\(row.key)")
            }
        }
    }

    @Test("nearest-rank reference values")
    func nearestRank() {
        let ten = (1...10).map(Double.init)
        #expect(Percentile.nearestRank(ten, 50) == 5)
        #expect(Percentile.nearestRank(ten, 90) == 9)
        #expect(Percentile.nearestRank(ten, 99) == 10)
        #expect(Percentile.nearestRank(ten, 0) == 1)
        #expect(Percentile.nearestRank(ten, 100) == 10)
        #expect(Percentile.nearestRank([1, 2, 3], 50) == 2)
        #expect(Percentile.nearestRank([], 50) == nil)
    }

    @Test("session_latency: one row per session from its latest event, newest first, with limit and since")
    func sessionLatency() async throws {
        try await withStore { store, _ in
            func event(_ id: String, _ phase: SessionPhase, at: Double, ttft: Double? = nil, tpot: Double? = nil,
                       met: Bool? = nil, out: Int = 0) -> WireMessage {
                .session(SessionEvent(session: id, phase: phase, model: "target", promptTokens: 12, outputTokens: out,
                                      ttftMs: ttft, tpotMs: tpot, metSLO: met,
                                      finishReason: phase == .finished ? .stop : nil, at: at))
            }
            try await store.append(S.stored([
                event("s1", .started, at: 100),
                event("s2", .started, at: 110),
                event("s1", .finished, at: 200, ttft: 150, tpot: 30, met: true, out: 64),
                event("s3", .started, at: 120),
                event("s3", .finished, at: 300, ttft: 2500, tpot: 90, met: false, out: 10),
            ]))
            let all = try await store.sessionLatency(since: nil, limit: nil)
            #expect(all == [
                SessionLatencyRow(session: "s3", model: "target", outputTokens: 10, ttftMs: 2500, tpotMs: 90,
                                  metSLO: false),
                SessionLatencyRow(session: "s1", model: "target", outputTokens: 64, ttftMs: 150, tpotMs: 30,
                                  metSLO: true),
                SessionLatencyRow(session: "s2", model: "target", outputTokens: 0, ttftMs: nil, tpotMs: nil,
                                  metSLO: nil),
            ])
            #expect(try await store.sessionLatency(since: nil, limit: 2).map(\.session) == ["s3", "s1"])
            #expect(try await store.sessionLatency(since: 150, limit: nil).map(\.session) == ["s3", "s1"])
            await #expect(throws: ErrorReply.self) { try await store.sessionLatency(since: nil, limit: 0) }
        }
    }

    @Test("event_counts (every topic present) and profiles (mean per device, model, quantization)")
    func countsAndProfiles() async throws {
        try await withStore { store, _ in
            func profile(_ device: String, _ tps: Double, _ watts: Double, at: Double) -> WireMessage {
                .profile(ProfileEvent(device: device, draftModel: "d", quantization: "q4", draftTokensPerSecond: tps,
                                      powerWatts: watts, at: at))
            }
            try await store.append(S.stored([
                profile("rpi5", 10, 5, at: 1), profile("rpi5", 14, 7, at: 2), profile("orin", 40, 15, at: 3),
                S.batch(model: "m", wallMs: 1, at: 5),
            ]))
            #expect(try await store.eventCounts(since: nil) == ["batch": 1, "round": 0, "session": 0, "profile": 3])
            #expect(try await store.eventCounts(since: 2) == ["batch": 1, "round": 0, "session": 0, "profile": 2])
            #expect(try await store.profiles(since: nil) == [
                ProfileRow(device: "orin", draftModel: "d", quantization: "q4", samples: 1, draftTokensPerSecond: 40,
                           powerWatts: 15),
                ProfileRow(device: "rpi5", draftModel: "d", quantization: "q4", samples: 2, draftTokensPerSecond: 12,
                           powerWatts: 6),
            ])
            let result = try await store.answer(MetricsQuery(kind: .profiles, since: 2))
            #expect(result.kind == .profiles && result.profiles.map(\.samples) == [1, 1])
            #expect(result.acceptance.isEmpty && result.latency.isEmpty && result.sessions.isEmpty)
        }
    }

    @Test("an empty database answers every query with empty results")
    func emptyDatabase() async throws {
        try await withStore { store, _ in
            for kind in MetricsQueryKind.allCases {
                let result = try await store.answer(MetricsQuery(kind: kind))
                #expect(result.kind == kind)
                #expect(result.acceptance.isEmpty && result.latency.isEmpty && result.sessions.isEmpty
                        && result.profiles.isEmpty)
            }
            #expect(try await store.eventCounts(since: nil).values.allSatisfy { $0 == 0 })
        }
    }
}
