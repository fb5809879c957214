//! The SQLite schema as an ordered list of migrations, applied at start.
//!
//! Invariant: a migration, once committed to the repository, is never edited;
//! a change is a new entry at the end. `PRAGMA user_version` records how many
//! have been applied, and each one runs in its own transaction together with
//! the version bump, so a crash leaves the file at a whole version.
//!
//! Layout: registry tables (counties, chains, enterprises, recognitions);
//! enrolment (enrol_tokens, agents, agent_keys); evidence (reports: raw
//! payload and signature per `(agent_id, seq)`, a rowid table since
//! migration 4 so the large payloads stay out of the key's B-tree); fine rows (window_summaries,
//! with their energy as JSON since migration 3, pruned after a retention period); daily rows (device_days,
//! device_day_energy, kept); period roll-ups (device_periods,
//! enterprise_periods) refreshed from the daily rows for dirty pairs; chain
//! gaps; API tokens; bureau-recorded assessment scores.

/// The migrations, in order. Index + 1 is the schema version after applying it.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE counties (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_en TEXT NOT NULL,
    kind TEXT NOT NULL,
    division_code TEXT
);
CREATE TABLE chains (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_en TEXT NOT NULL,
    cluster TEXT,
    industry_type TEXT NOT NULL
);
CREATE TABLE enterprises (
    credit_code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    county TEXT NOT NULL REFERENCES counties(id),
    chain TEXT NOT NULL REFERENCES chains(id),
    above_scale INTEGER NOT NULL,
    industry_type TEXT NOT NULL,
    rd_design_tools INTEGER,
    declared_digitization REAL,
    declared_networking REAL,
    declared_key_process_nc REAL
);
CREATE INDEX enterprises_county ON enterprises(county);
CREATE INDEX enterprises_chain ON enterprises(chain);
CREATE TABLE recognitions (
    credit_code TEXT NOT NULL REFERENCES enterprises(credit_code),
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    year INTEGER NOT NULL,
    evidence TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (credit_code, kind, level, year)
);
CREATE TABLE enrol_tokens (
    token_hash TEXT PRIMARY KEY,
    enterprise TEXT NOT NULL REFERENCES enterprises(credit_code),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    used_by TEXT
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    enterprise TEXT NOT NULL REFERENCES enterprises(credit_code),
    enrolled_at INTEGER NOT NULL,
    revoked_at INTEGER,
    head_seq INTEGER,
    head_hash TEXT
);
CREATE TABLE agent_keys (
    agent_id TEXT NOT NULL REFERENCES agents(agent_id),
    public_key TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    revoked_at INTEGER,
    PRIMARY KEY (agent_id, public_key)
);
CREATE TABLE reports (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    enterprise TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    payload BLOB NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
CREATE INDEX reports_enterprise_window ON reports(enterprise, window_start);
CREATE TABLE inventories (
    enterprise TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    inventory TEXT NOT NULL,
    PRIMARY KEY (enterprise, agent_id)
);
CREATE TABLE window_summaries (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    enterprise TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    productive INTEGER NOT NULL,
    standby INTEGER NOT NULL,
    engineering INTEGER NOT NULL,
    scheduled_down INTEGER NOT NULL,
    unscheduled_down INTEGER NOT NULL,
    non_scheduled INTEGER NOT NULL,
    disconnected INTEGER NOT NULL,
    nc_seconds INTEGER NOT NULL,
    parts INTEGER,
    samples_expected INTEGER NOT NULL,
    samples_received INTEGER NOT NULL,
    flags TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq, device_id)
) WITHOUT ROWID;
CREATE INDEX window_summaries_start ON window_summaries(window_start);
CREATE TABLE window_energy (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    meter TEXT NOT NULL,
    carrier TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity REAL NOT NULL,
    exported REAL NOT NULL,
    method TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq, device_id, meter, carrier)
) WITHOUT ROWID;
CREATE TABLE device_days (
    enterprise TEXT NOT NULL,
    device_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    windows INTEGER NOT NULL,
    productive INTEGER NOT NULL,
    standby INTEGER NOT NULL,
    engineering INTEGER NOT NULL,
    scheduled_down INTEGER NOT NULL,
    unscheduled_down INTEGER NOT NULL,
    non_scheduled INTEGER NOT NULL,
    disconnected INTEGER NOT NULL,
    nc_seconds INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    samples_expected INTEGER NOT NULL,
    samples_received INTEGER NOT NULL,
    PRIMARY KEY (enterprise, device_id, day)
) WITHOUT ROWID;
CREATE INDEX device_days_day ON device_days(day);
CREATE TABLE device_day_energy (
    enterprise TEXT NOT NULL,
    device_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity REAL NOT NULL,
    exported REAL NOT NULL,
    PRIMARY KEY (enterprise, device_id, day, carrier, unit)
) WITHOUT ROWID;
CREATE TABLE dirty_days (
    enterprise TEXT NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (enterprise, day)
) WITHOUT ROWID;
CREATE TABLE device_periods (
    enterprise TEXT NOT NULL,
    period TEXT NOT NULL,
    device_id TEXT NOT NULL,
    days INTEGER NOT NULL,
    productive INTEGER NOT NULL,
    known INTEGER NOT NULL,
    calendar INTEGER NOT NULL,
    nc_seconds INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    samples_expected INTEGER NOT NULL,
    samples_received INTEGER NOT NULL,
    PRIMARY KEY (enterprise, period, device_id)
) WITHOUT ROWID;
CREATE TABLE period_energy (
    enterprise TEXT NOT NULL,
    period TEXT NOT NULL,
    carrier TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity REAL NOT NULL,
    exported REAL NOT NULL,
    PRIMARY KEY (enterprise, period, carrier, unit)
) WITHOUT ROWID;
CREATE TABLE gaps (
    agent_id TEXT NOT NULL,
    expected_seq INTEGER NOT NULL,
    got_seq INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    times INTEGER NOT NULL,
    PRIMARY KEY (agent_id, expected_seq, got_seq)
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE assessment_scores (
    county TEXT NOT NULL REFERENCES counties(id),
    year INTEGER NOT NULL,
    item TEXT NOT NULL,
    score REAL NOT NULL,
    evidence TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (county, year, item)
);
"#,
    // 2: no query reads device_days by day alone (every read starts with the
    // enterprise), and the index cost a random insert per device-day.
    "DROP INDEX device_days_day;",
    // 3: a window's energy rows travel with its summary row (one write per
    // summary instead of one per meter); the raw payload keeps the original.
    "DROP TABLE window_energy; ALTER TABLE window_summaries ADD COLUMN energy TEXT;",
    // 4: `reports` becomes a rowid table. As a WITHOUT ROWID table its rows
    // (tens of kB of payload each) were the cells of the primary-key B-tree,
    // so every seek on (agent_id, seq), for an insert or a replay check, read
    // whole overflowing rows to compare keys (docs/bench/aggregator.md: the
    // largest single cost of ingest). Now the key lives in a small index and
    // the payload, last, is read only when asked for.
    r#"
CREATE TABLE reports_v4 (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    enterprise TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    signature TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
INSERT INTO reports_v4 (agent_id, seq, hash, prev_hash, enterprise, window_start, window_end,
    created_at, received_at, signature, payload)
    SELECT agent_id, seq, hash, prev_hash, enterprise, window_start, window_end,
    created_at, received_at, signature, payload FROM reports ORDER BY received_at, agent_id, seq;
DROP TABLE reports;
ALTER TABLE reports_v4 RENAME TO reports;
CREATE INDEX reports_enterprise_window ON reports(enterprise, window_start);
"#,
    // 5: period rows keyed period first. Every page reads one period for all
    // enterprises (`WHERE period = ?`), which with the enterprise first was a
    // scan of every period's rows (1.4 M rows for a 2,000-enterprise year;
    // docs/bench/aggregator.md, city). The refresh's per-(enterprise,
    // period) statements use the same key, in the other order.
    r#"
CREATE TABLE device_periods_v5 (
    enterprise TEXT NOT NULL,
    period TEXT NOT NULL,
    device_id TEXT NOT NULL,
    days INTEGER NOT NULL,
    productive INTEGER NOT NULL,
    known INTEGER NOT NULL,
    calendar INTEGER NOT NULL,
    nc_seconds INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    samples_expected INTEGER NOT NULL,
    samples_received INTEGER NOT NULL,
    PRIMARY KEY (period, enterprise, device_id)
) WITHOUT ROWID;
INSERT INTO device_periods_v5 SELECT enterprise, period, device_id, days, productive, known,
    calendar, nc_seconds, parts, samples_expected, samples_received FROM device_periods;
DROP TABLE device_periods;
ALTER TABLE device_periods_v5 RENAME TO device_periods;
CREATE TABLE period_energy_v5 (
    enterprise TEXT NOT NULL,
    period TEXT NOT NULL,
    carrier TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity REAL NOT NULL,
    exported REAL NOT NULL,
    PRIMARY KEY (period, enterprise, carrier, unit)
) WITHOUT ROWID;
INSERT INTO period_energy_v5 SELECT enterprise, period, carrier, unit, quantity, exported
    FROM period_energy;
DROP TABLE period_energy;
ALTER TABLE period_energy_v5 RENAME TO period_energy;
"#,
    // 6: the roll-up generation: one counter, raised in the same transaction
    // as every write that changes what the enterprise facts are computed
    // from (a period refresh that redid rows, a registry import). Pages cache
    // derived figures under it, across processes sharing the file.
    r#"
CREATE TABLE rollup_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO rollup_generation (id, generation) VALUES (1, 0);
"#,
];
