import GRDB

/// The metrics database's schema, as an ordered list of GRDB migrations.
///
/// Migrations are append-only: never edit a registered one, add a new one. `DatabaseMigrator`
/// records applied migrations in `grdb_migrations`, so opening an existing database re-runs
/// nothing (opening is idempotent) and an older database is brought forward on start.
///
/// Layout: every event has one row in `events` (kind, time, replica, session, the envelope JSON)
/// and one row in its kind's typed table keyed by the same id, holding the numbers queries
/// aggregate, with indexes on the columns queries group and filter by.
enum StoreSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-events") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    at REAL NOT NULL,
                    replica TEXT,
                    session TEXT,
                    json TEXT NOT NULL,
                    received_at REAL NOT NULL
                );
                CREATE INDEX events_kind_at ON events(kind, at);
                CREATE INDEX events_session ON events(session) WHERE session IS NOT NULL;

                CREATE TABLE batch_events (
                    event_id INTEGER PRIMARY KEY REFERENCES events(id),
                    verifier TEXT NOT NULL,
                    model TEXT NOT NULL,
                    sequences INTEGER NOT NULL,
                    new_tokens INTEGER NOT NULL,
                    context_tokens INTEGER NOT NULL,
                    wall_ms REAL NOT NULL,
                    predicted_ms REAL,
                    at REAL NOT NULL
                );
                CREATE INDEX batch_events_model_wall ON batch_events(model, wall_ms);
                CREATE INDEX batch_events_at ON batch_events(at);

                CREATE TABLE round_events (
                    event_id INTEGER PRIMARY KEY REFERENCES events(id),
                    session TEXT NOT NULL,
                    drafter TEXT NOT NULL,
                    verifier TEXT NOT NULL,
                    draft_model TEXT NOT NULL,
                    target_model TEXT NOT NULL,
                    device TEXT NOT NULL,
                    k INTEGER NOT NULL,
                    drafted INTEGER NOT NULL,
                    accepted INTEGER NOT NULL,
                    accepted_per_position TEXT NOT NULL, -- JSON array of 0/1, one per drafted position
                    draft_ms REAL NOT NULL,
                    verify_ms REAL NOT NULL,
                    at REAL NOT NULL
                );
                CREATE INDEX round_events_config ON round_events(draft_model, target_model, k);
                CREATE INDEX round_events_at ON round_events(at);
                CREATE INDEX round_events_session ON round_events(session);

                CREATE TABLE session_events (
                    event_id INTEGER PRIMARY KEY REFERENCES events(id),
                    session TEXT NOT NULL,
                    phase TEXT NOT NULL,
                    model TEXT NOT NULL,
                    prompt_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL,
                    ttft_ms REAL,
                    tpot_ms REAL,
                    met_slo INTEGER,
                    finish_reason TEXT,
                    at REAL NOT NULL
                );
                CREATE INDEX session_events_session ON session_events(session, at);
                CREATE INDEX session_events_at ON session_events(at);

                CREATE TABLE profile_events (
                    event_id INTEGER PRIMARY KEY REFERENCES events(id),
                    device TEXT NOT NULL,
                    draft_model TEXT NOT NULL,
                    quantization TEXT NOT NULL,
                    draft_tokens_per_second REAL NOT NULL,
                    power_watts REAL NOT NULL,
                    at REAL NOT NULL
                );
                CREATE INDEX profile_events_key ON profile_events(device, draft_model, quantization);
                """)
        }
        // Draft/target alignment carried by profile events from `tandem profile --pair` (docs/alignment.md).
        migrator.registerMigration("v2-alignment") { db in
            try db.execute(sql: """
                CREATE TABLE alignment_events (
                    event_id INTEGER PRIMARY KEY REFERENCES events(id),
                    device TEXT NOT NULL,
                    draft_model TEXT NOT NULL,
                    quantization TEXT NOT NULL,
                    target_model TEXT NOT NULL,
                    per_position TEXT NOT NULL,
                    sampled_per_position TEXT NOT NULL,
                    temperature REAL NOT NULL,
                    kl_divergence REAL NOT NULL,
                    perplexity REAL NOT NULL,
                    positions INTEGER NOT NULL,
                    draft_tokens_per_second REAL NOT NULL,
                    at REAL NOT NULL
                );
                CREATE INDEX alignment_events_key ON alignment_events(draft_model, quantization, target_model, at);
                """)
        }
        return migrator
    }
}
