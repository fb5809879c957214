//! Storage behind a trait: the registry, enrolment, evidence (raw signed
//! reports), fine and daily rows, period roll-ups and API tokens.
//!
//! Invariant: SQL lives here and only here; indicator arithmetic lives in
//! `shuzhuan_common::indicators`. A backend returns sums and counts (state
//! seconds, samples, energy per carrier) and never a rate, so a PostgreSQL
//! backend can follow by implementing [`Store`] without touching the
//! indicator code.
//!
//! Every method takes `now` (Unix seconds) from the caller: the store reads no
//! clock, which keeps tests deterministic.

pub mod backup;
pub mod schema;
pub mod sqlite;

use serde::Serialize;
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::Inventory;
use shuzhuan_common::registry::{County, Enterprise, IndustryChain, Recognition};
use shuzhuan_common::report::{Hash32, VerifiedReport};

pub use sqlite::SqliteStore;

/// A storage failure the caller cannot fix by changing its input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database file `{path}`: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database schema version {found} is newer than this build knows ({known})")]
    FutureSchema { found: i64, known: i64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("evidence log: {0}")]
    Hook(String),
}

/// The roles an API token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including enrolment and registry changes.
    Admin,
    /// The industry bureau: reads everything, records assessment scores.
    Bureau,
    /// A county's staff: reads its own county.
    County,
    /// An enterprise: reads its own data.
    Enterprise,
    /// An evaluator: reads everything, verifies claims.
    Evaluator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Bureau => "bureau",
            Role::County => "county",
            Role::Enterprise => "enterprise",
            Role::Evaluator => "evaluator",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "bureau" => Role::Bureau,
            "county" => Role::County,
            "enterprise" => Role::Enterprise,
            "evaluator" => Role::Evaluator,
            _ => return None,
        })
    }
    /// County and enterprise tokens are bound to one county id or credit code.
    pub fn needs_scope(self) -> bool {
        matches!(self, Role::County | Role::Enterprise)
    }
}

/// An API token as stored (the secret itself is kept only as a SHA-256 hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    /// County id for `county`, credit code for `enterprise`.
    pub scope: Option<String>,
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRecord {
    pub agent_id: String,
    pub enterprise: String,
    pub enrolled_at: i64,
    pub revoked_at: Option<i64>,
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// The base64 Ed25519 key reports must verify against; `None` when revoked.
    pub active_key: Option<String>,
}

/// Why an enrolment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("enrolment token is unknown, expired or already used")]
    BadToken,
    #[error("enrolment token was issued for enterprise {token}, not {asked}")]
    WrongEnterprise { token: String, asked: String },
    #[error("agent `{agent_id}` is already enrolled for enterprise {enterprise}")]
    AgentTaken {
        agent_id: String,
        enterprise: String,
    },
    #[error("agent `{0}` was revoked; enrol it under a new id")]
    Revoked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub duplicates: u64,
    pub head_seq: u64,
}

/// Why a batch was refused as a whole (nothing of it is stored).
#[derive(Debug, thiserror::Error)]
pub enum IngestReject {
    #[error("agent `{agent_id}`: report {got} arrived but {expected} was expected (reports {expected}..{got} are missing)")]
    Gap {
        agent_id: String,
        expected: u64,
        got: u64,
    },
    #[error("agent `{agent_id}`: report {seq} differs from the stored report {seq} (hash {stored}): the chain forked")]
    Fork {
        agent_id: String,
        seq: u64,
        stored: String,
    },
    #[error("agent `{agent_id}`: report {seq} does not link to report {prev} (previous hash mismatch); expected seq {expected}")]
    BadLink {
        agent_id: String,
        seq: u64,
        prev: u64,
        expected: u64,
    },
    #[error("agent `{agent_id}`: {message}")]
    Chain {
        agent_id: String,
        message: String,
        expected: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The seam for the evidence log: called once per newly accepted report,
/// inside the ingest transaction, so the log and the store never disagree.
/// Returning an error rolls the whole batch back.
pub trait AcceptHook: Send + Sync {
    fn on_accepted(
        &self,
        tx: &rusqlite::Transaction<'_>,
        agent_id: &str,
        seq: u64,
        hash: &Hash32,
    ) -> Result<(), StoreError>;
}

/// The hook that does nothing (no evidence log configured).
#[derive(Debug, Default)]
pub struct NoHook;
impl AcceptHook for NoHook {
    fn on_accepted(
        &self,
        _: &rusqlite::Transaction<'_>,
        _: &str,
        _: u64,
        _: &Hash32,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A recorded chain gap (a batch that started past the expected seq).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub agent_id: String,
    pub expected_seq: u64,
    pub got_seq: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub times: u64,
    /// Whether the missing reports have since arrived.
    pub closed: bool,
}

/// Sums for one device over a set of days (a day or a period).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceTotals {
    pub enterprise: String,
    pub device_id: String,
    /// Days with at least one window.
    pub days: u64,
    /// Seconds per state, in `DeviceState::ALL` order.
    pub state_seconds: [u64; 7],
    pub nc_seconds: u64,
    pub parts: u64,
    pub samples_expected: u64,
    pub samples_received: u64,
}

/// Energy for one enterprise (or device) and carrier over a set of days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyTotal {
    pub enterprise: String,
    pub carrier: String,
    pub unit: String,
    pub quantity: f64,
    pub exported: f64,
}

/// One enterprise-day: the sum of its device-days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnterpriseDay {
    pub enterprise: String,
    /// Days since 1970-01-01 in the city's local time.
    pub day: i64,
    pub devices: u64,
    pub state_seconds: [u64; 7],
    pub nc_seconds: u64,
    pub parts: u64,
    pub samples_expected: u64,
    pub samples_received: u64,
}

/// A bureau-recorded assessment score.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AssessmentScore {
    pub county: String,
    pub year: i32,
    pub item: String,
    pub score: f64,
    pub evidence: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

/// A table for export: column names and rows of display strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The tables a caller may export whole.
pub const EXPORTABLE: &[&str] = &[
    "counties",
    "chains",
    "enterprises",
    "recognitions",
    "agents",
    "gaps",
    "device_days",
    "device_periods",
    "period_energy",
    "assessment_scores",
];

/// A named period key: `2026` (year), `2026-Q4` (quarter), `2026-11` (month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Year(i32),
    Quarter(i32, u8),
    Month(i32, u8),
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        let s = s.trim();
        if let Some((y, q)) = s.split_once("-Q") {
            let q: u8 = q.parse().ok()?;
            return (1..=4)
                .contains(&q)
                .then_some(Period::Quarter(y.parse().ok()?, q));
        }
        if let Some((y, m)) = s.split_once('-') {
            let m: u8 = m.parse().ok()?;
            return (1..=12)
                .contains(&m)
                .then_some(Period::Month(y.parse().ok()?, m));
        }
        let y: i32 = s.parse().ok()?;
        (1970..=9999).contains(&y).then_some(Period::Year(y))
    }
    pub fn key(&self) -> String {
        match self {
            Period::Year(y) => format!("{y}"),
            Period::Quarter(y, q) => format!("{y}-Q{q}"),
            Period::Month(y, m) => format!("{y}-{m:02}"),
        }
    }
    /// First day and the day after the last, as days since 1970-01-01.
    pub fn day_range(&self) -> (i64, i64) {
        let (y, m0, months) = match *self {
            Period::Year(y) => (y, 1, 12),
            Period::Quarter(y, q) => (y, 3 * (i32::from(q) - 1) + 1, 3),
            Period::Month(y, m) => (y, i32::from(m), 1),
        };
        let start = crate::days::days_from_civil(y, m0 as u32, 1);
        let end_m = m0 + months;
        let end = if end_m > 12 {
            crate::days::days_from_civil(y + 1, (end_m - 12) as u32, 1)
        } else {
            crate::days::days_from_civil(y, end_m as u32, 1)
        };
        (start, end)
    }
    /// The keys of the months the period spans.
    pub fn months(&self) -> Vec<String> {
        let (y, first, n) = match *self {
            Period::Year(y) => (y, 1, 12),
            Period::Quarter(y, q) => (y, 3 * (q - 1) + 1, 3),
            Period::Month(y, m) => (y, m, 1),
        };
        (first..first + n)
            .map(|m| Period::Month(y, m).key())
            .collect()
    }
    /// The month, quarter and year a day belongs to.
    pub fn containing(day: i64) -> [Period; 3] {
        let (y, m, _) = crate::days::civil_from_days(day);
        let m = m as u8;
        [
            Period::Month(y, m),
            Period::Quarter(y, (m - 1) / 3 + 1),
            Period::Year(y),
        ]
    }
}

/// Figures derived from a store's rows (the roll-ups' enterprise facts per
/// period), each kept under a key and the [`Store::rollup_generation`] it
/// was derived at. An entry is only returned for the generation asked for,
/// so a write that raises the generation invalidates every entry at once.
/// Holds at most [`DerivedCache::CAPACITY`] entries, the oldest used leaving
/// first.
#[derive(Default)]
pub struct DerivedCache {
    entries: std::sync::Mutex<Vec<DerivedEntry>>,
}

struct DerivedEntry {
    key: String,
    generation: u64,
    value: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for DerivedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("DerivedCache").field("entries", &n).finish()
    }
}

impl DerivedCache {
    /// Entries kept: a few periods of a few rule sets.
    pub const CAPACITY: usize = 16;

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<DerivedEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value under `key` derived at `generation`, if kept (and of type `T`).
    pub fn get<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        generation: u64,
    ) -> Option<std::sync::Arc<T>> {
        let mut entries = self.lock();
        let i = entries
            .iter()
            .position(|e| e.key == key && e.generation == generation)?;
        // Most recently used last.
        let e = entries.remove(i);
        let value = e.value.clone();
        entries.push(e);
        value.downcast::<T>().ok()
    }

    /// Keeps `value` under `key` for `generation`, replacing any older
    /// value of the key and dropping entries of older generations.
    pub fn put<T: std::any::Any + Send + Sync>(
        &self,
        key: String,
        generation: u64,
        value: std::sync::Arc<T>,
    ) {
        let mut entries = self.lock();
        entries.retain(|e| e.key != key && e.generation >= generation);
        if entries.len() >= Self::CAPACITY {
            entries.remove(0);
        }
        entries.push(DerivedEntry {
            key,
            generation,
            value,
        });
    }
}

/// Everything the aggregator stores. Implemented by [`SqliteStore`].
pub trait Store: Send + Sync {
    // Registry.
    fn upsert_counties(&self, counties: &[County]) -> Result<(), StoreError>;
    fn upsert_chains(&self, chains: &[IndustryChain]) -> Result<(), StoreError>;
    fn counties(&self) -> Result<Vec<County>, StoreError>;
    fn chains(&self) -> Result<Vec<IndustryChain>, StoreError>;
    /// Inserts or replaces enterprises and recognitions in one transaction.
    fn import_registry(
        &self,
        enterprises: &[Enterprise],
        recognitions: &[Recognition],
    ) -> Result<(), StoreError>;
    fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError>;
    fn enterprise(&self, code: &str) -> Result<Option<Enterprise>, StoreError>;
    fn recognitions(&self) -> Result<Vec<Recognition>, StoreError>;

    // Enrolment.
    fn create_enrol_token(
        &self,
        token_hash: &str,
        enterprise: &CreditCode,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Consumes a token and registers (or rotates) the agent's key.
    fn enroll(
        &self,
        token_hash: &str,
        agent_id: &str,
        enterprise: &CreditCode,
        public_key_b64: &str,
        now: i64,
    ) -> Result<(), EnrolError>;
    /// Revokes the agent and all its keys; returns false when unknown.
    fn revoke_agent(&self, agent_id: &str, now: i64) -> Result<bool, StoreError>;
    fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, StoreError>;
    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    // API tokens.
    fn create_api_token(
        &self,
        token_hash: &str,
        token: &ApiToken,
        now: i64,
    ) -> Result<(), StoreError>;
    fn api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;

    // Ingest.
    /// Stores a batch of one agent's verified reports (in seq order) in one
    /// transaction: duplicates acknowledged, everything else must follow the
    /// chain. `day_of` maps a window start to its local day.
    fn ingest_batch(
        &self,
        agent_id: &str,
        reports: &[(VerifiedReport, String)],
        now: i64,
        utc_offset_secs: i64,
        hook: &dyn AcceptHook,
    ) -> Result<IngestOutcome, IngestReject>;
    fn record_gap(
        &self,
        agent_id: &str,
        expected: u64,
        got: u64,
        now: i64,
    ) -> Result<(), StoreError>;
    fn gaps(&self) -> Result<Vec<Gap>, StoreError>;
    /// The latest declared inventory per enterprise (merged over its agents).
    fn inventories(&self) -> Result<Vec<(String, Inventory)>, StoreError>;
    /// The raw signed payload and signature of one report (evidence).
    fn raw_report(&self, agent_id: &str, seq: u64)
        -> Result<Option<(Vec<u8>, String)>, StoreError>;

    // Roll-ups.
    /// Recomputes the period rows of every (enterprise, period) touched since
    /// the last refresh. Returns how many (enterprise, period) pairs it redid.
    fn refresh_periods(&self) -> Result<u64, StoreError>;
    /// A counter raised by every committed write that changes what the
    /// enterprise facts are computed from: a refresh that redid period rows,
    /// a registry import. Reports ingested since the last refresh reach the
    /// figures with the next refresh (they mark their days dirty), so the
    /// pages show the city as of the last roll-up tick.
    fn rollup_generation(&self) -> Result<u64, StoreError>;
    /// The cache of figures derived from this store (see [`DerivedCache`]).
    fn derived(&self) -> &DerivedCache;
    fn device_periods(&self, period: &str) -> Result<Vec<DeviceTotals>, StoreError>;
    fn period_energy(&self, period: &str) -> Result<Vec<EnergyTotal>, StoreError>;
    /// Per enterprise with stored reports whose window starts in `[from,
    /// to)` (Unix seconds): `(credit code, first window start, last window
    /// end)`, read from the evidence rows (`reports`), which retention
    /// keeps. The roll-ups judge report coverage over this span. The
    /// default knows no spans (the roll-ups then judge coverage by days).
    fn report_spans(&self, from: i64, to: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let _ = (from, to);
        Ok(Vec::new())
    }
    fn enterprise_days(
        &self,
        enterprise: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<EnterpriseDay>, StoreError>;
    fn device_days(
        &self,
        enterprise: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, DeviceTotals)>, StoreError>;
    /// Deletes window rows whose window started before `before`; daily rows stay.
    fn prune_fine(&self, before: i64) -> Result<u64, StoreError>;

    // Assessment.
    fn record_score(&self, score: &AssessmentScore) -> Result<(), StoreError>;
    fn scores(&self, year: i32) -> Result<Vec<AssessmentScore>, StoreError>;

    // Maintenance and export.
    fn size_bytes(&self) -> Result<u64, StoreError>;
    fn export_table(&self, name: &str) -> Result<Option<Table>, StoreError>;
}

#[cfg(test)]
mod derived_cache_tests {
    use super::DerivedCache;
    use std::sync::Arc;

    #[test]
    fn an_entry_is_returned_only_for_its_key_generation_and_type() {
        let c = DerivedCache::default();
        c.put("a".into(), 3, Arc::new(7u32));
        assert_eq!(c.get::<u32>("a", 3).as_deref(), Some(&7));
        assert!(c.get::<u32>("a", 4).is_none(), "another generation");
        assert!(c.get::<u32>("b", 3).is_none(), "another key");
        assert!(c.get::<String>("a", 3).is_none(), "another type");
        // A newer generation drops the older entries.
        c.put("b".into(), 4, Arc::new(8u32));
        assert!(c.get::<u32>("a", 3).is_none());
        assert_eq!(c.get::<u32>("b", 4).as_deref(), Some(&8));
        // Replacing a key keeps one entry for it.
        c.put("b".into(), 4, Arc::new(9u32));
        assert_eq!(c.get::<u32>("b", 4).as_deref(), Some(&9));
        assert_eq!(c.entries.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_least_recently_used_entry_leaves_first() {
        let c = DerivedCache::default();
        for i in 0..DerivedCache::CAPACITY {
            c.put(format!("k{i}"), 1, Arc::new(i));
        }
        // Touch k0, so k1 is now the least recently used.
        assert!(c.get::<usize>("k0", 1).is_some());
        c.put("new".into(), 1, Arc::new(99usize));
        assert_eq!(c.entries.lock().unwrap().len(), DerivedCache::CAPACITY);
        assert!(c.get::<usize>("k0", 1).is_some());
        assert!(c.get::<usize>("k1", 1).is_none());
        assert!(c.get::<usize>("new", 1).is_some());
    }
}
