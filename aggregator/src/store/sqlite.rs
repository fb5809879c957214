//! The embedded SQLite backend: one file in WAL mode, one writer connection
//! and one reader connection (WAL lets the reader run beside the writer).
//!
//! Durability: `synchronous = FULL`, so a batch acknowledged to an agent has
//! reached the disk; an interrupted batch is rolled back by SQLite on the
//! next open.

use super::schema::MIGRATIONS;
use super::{
    AcceptHook, AgentRecord, ApiToken, AssessmentScore, DerivedCache, DeviceTotals, EnergyTotal,
    EnrolError, EnterpriseDay, Gap, IngestOutcome, IngestReject, Period, Role, Store, StoreError,
    Table, EXPORTABLE,
};
use crate::days::day_of;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::Inventory;
use shuzhuan_common::registry::{County, DeclaredRates, Enterprise, IndustryChain, Recognition};
use shuzhuan_common::report::{follow, ChainError, ChainHead, Hash32, Report, VerifiedReport};
use shuzhuan_common::state::DeviceState;
use shuzhuan_common::summary::WindowSummary;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// The SQLite store.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// `None` for an in-memory database, where a second connection would see
    /// a different database.
    reader: Option<Mutex<Connection>>,
    /// The merged inventories as last parsed, with the `inventories` table's
    /// fingerprint they were parsed from (every page needs them; parsing
    /// 2,000 inventories' JSON was a quarter of a city page).
    inventory_cache: Mutex<Option<(InventoryStamp, Inventories)>>,
    /// Figures the roll-ups derived, under the generation they came from.
    derived: DerivedCache,
}

/// Per enterprise, its merged inventory.
type Inventories = Vec<(String, Inventory)>;

/// `(COUNT(*), SUM(seq), MAX(rowid))` of `inventories`: an insert changes the
/// count and the largest rowid, and an upsert replaces a row only with a
/// higher `seq`, so any change to the table changes the stamp.
type InventoryStamp = (i64, i64, i64);

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Page cache per connection, in KiB (SQLite's default is 2 MiB). A batch
/// writes megabytes of payload pages through the writer's cache; with the
/// default, those evicted the B-tree pages every batch needs again, which were
/// then read back from the WAL or the file on each seek.
const CACHE_KIB: i64 = 64 * 1024;

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Applies the migrations the file has not seen yet.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::FutureSchema { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    Ok(())
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn enum_parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("unknown value `{s}`")))
}

fn code_parse(s: &str) -> Result<CreditCode, StoreError> {
    CreditCode::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const STATE_COLS: &str =
    "productive, standby, engineering, scheduled_down, unscheduled_down, non_scheduled, disconnected";

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open = |p: &Path| {
            Connection::open(p).map_err(|source| StoreError::Open {
                path: p.display().to_string(),
                source,
            })
        };
        let mut writer = open(path)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let reader = open(path)?;
        configure(&reader)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Some(Mutex::new(reader)),
            inventory_cache: Mutex::new(None),
            derived: DerivedCache::default(),
        })
    }

    /// An in-memory database (tests and dry runs).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let mut writer = Connection::open_in_memory()?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: None,
            inventory_cache: Mutex::new(None),
            derived: DerivedCache::default(),
        })
    }

    fn w(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn r(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(r) => r.lock().unwrap_or_else(|p| p.into_inner()),
            None => self.w(),
        }
    }

    /// Runs `f` on the writer inside an immediate transaction (used by the
    /// benchmark's bulk generator and by the evidence engineer's tools).
    pub fn with_write_tx<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.w();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on the reader connection.
    pub fn with_read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.r())
    }
}

/// Raises the roll-up generation inside `tx` (see migration 6).
fn bump_generation(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE rollup_generation SET generation = generation + 1 WHERE id = 1",
        [],
    )?;
    Ok(())
}

fn read_enterprise(row: &rusqlite::Row<'_>) -> Result<Enterprise, StoreError> {
    let code: String = row.get(0)?;
    let it: String = row.get(5)?;
    Ok(Enterprise {
        credit_code: code_parse(&code)?,
        name: row.get(1)?,
        county: row.get(2)?,
        chain: row.get(3)?,
        above_scale: row.get(4)?,
        industry_type: enum_parse(&it)?,
        rd_design_tools: row.get(6)?,
        declared: DeclaredRates {
            digitization: row.get(7)?,
            networking: row.get(8)?,
            key_process_nc: row.get(9)?,
        },
    })
}

fn read_agent(conn: &Connection, row: &rusqlite::Row<'_>) -> Result<AgentRecord, StoreError> {
    let agent_id: String = row.get(0)?;
    let revoked_at: Option<i64> = row.get(3)?;
    let head_seq: Option<i64> = row.get(4)?;
    let active_key = if revoked_at.is_some() {
        None
    } else {
        conn.query_row(
            "SELECT public_key FROM agent_keys WHERE agent_id = ?1 AND revoked_at IS NULL
             ORDER BY added_at DESC LIMIT 1",
            [&agent_id],
            |r| r.get(0),
        )
        .optional()?
    };
    Ok(AgentRecord {
        agent_id,
        enterprise: row.get(1)?,
        enrolled_at: row.get(2)?,
        revoked_at,
        head_seq: head_seq.map(|s| s as u64),
        head_hash: row.get(5)?,
        active_key,
    })
}

/// (enterprise, device, day, carrier, unit) of a daily energy row, borrowed
/// from the batch's reports (no per-summary string copies).
type EnergyKey<'a> = (&'a str, &'a str, i64, &'a str, &'a str);

/// Daily sums of one batch, added to the stored daily rows once per
/// (device, day) instead of once per window: a batch of many windows of the
/// same devices touches each daily row once.
#[derive(Default)]
pub(crate) struct DayAcc<'a> {
    days: HashMap<(&'a str, &'a str, i64), [i64; 12]>,
    energy: HashMap<EnergyKey<'a>, (f64, f64)>,
}

impl<'a> DayAcc<'a> {
    /// Adds a report's summaries to the daily sums.
    fn add(&mut self, r: &'a Report, utc_offset_secs: i64) {
        let enterprise = r.enterprise.as_str();
        let day = day_of(r.window_start, utc_offset_secs);
        for s in &r.summaries {
            let st = |d: DeviceState| i64::from(s.state_seconds.get(d));
            let v = self
                .days
                .entry((enterprise, s.device_id.as_str(), day))
                .or_insert([0; 12]);
            let add = [
                1,
                st(DeviceState::Productive),
                st(DeviceState::Standby),
                st(DeviceState::Engineering),
                st(DeviceState::ScheduledDown),
                st(DeviceState::UnscheduledDown),
                st(DeviceState::NonScheduled),
                st(DeviceState::Disconnected),
                i64::from(s.nc_seconds),
                s.parts.unwrap_or(0) as i64,
                i64::from(s.samples_expected),
                i64::from(s.samples_received),
            ];
            for (a, b) in v.iter_mut().zip(add) {
                *a += b;
            }
            for e in &s.energy {
                let slot = self
                    .energy
                    .entry((
                        enterprise,
                        s.device_id.as_str(),
                        day,
                        e.carrier.as_str(),
                        e.unit.as_str(),
                    ))
                    .or_default();
                slot.0 += e.quantity;
                slot.1 += e.exported;
            }
        }
    }

    fn flush(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mut ins_day = tx.prepare_cached(
            "INSERT INTO device_days (enterprise, device_id, day, windows, productive, standby,
             engineering, scheduled_down, unscheduled_down, non_scheduled, disconnected, nc_seconds,
             parts, samples_expected, samples_received)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (enterprise, device_id, day) DO UPDATE SET
             windows = windows + excluded.windows,
             productive = productive + excluded.productive,
             standby = standby + excluded.standby,
             engineering = engineering + excluded.engineering,
             scheduled_down = scheduled_down + excluded.scheduled_down,
             unscheduled_down = unscheduled_down + excluded.unscheduled_down,
             non_scheduled = non_scheduled + excluded.non_scheduled,
             disconnected = disconnected + excluded.disconnected,
             nc_seconds = nc_seconds + excluded.nc_seconds,
             parts = parts + excluded.parts,
             samples_expected = samples_expected + excluded.samples_expected,
             samples_received = samples_received + excluded.samples_received",
        )?;
        for ((ent, dev, day), v) in &self.days {
            ins_day.execute(params![
                ent, dev, day, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
                v[11]
            ])?;
        }
        let mut ins_day_energy = tx.prepare_cached(
            "INSERT INTO device_day_energy (enterprise, device_id, day, carrier, unit, quantity, exported)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (enterprise, device_id, day, carrier, unit) DO UPDATE SET
             quantity = quantity + excluded.quantity, exported = exported + excluded.exported",
        )?;
        for ((ent, dev, day, carrier, unit), (q, x)) in &self.energy {
            ins_day_energy.execute(params![ent, dev, day, carrier, unit, q, x])?;
        }
        let mut dirty = tx
            .prepare_cached("INSERT OR IGNORE INTO dirty_days (enterprise, day) VALUES (?1, ?2)")?;
        let touched: BTreeSet<(&str, i64)> = self.days.keys().map(|(e, _, d)| (*e, *d)).collect();
        for (ent, day) in touched {
            dirty.execute(params![ent, day])?;
        }
        Ok(())
    }
}

/// A report's summaries' energy as JSON, in one buffer: made before the
/// writer lock is taken (serialising it was a tenth of the writer's time).
struct EnergyTexts {
    text: String,
    /// Per summary, its slice of `text`; `None`: no energy.
    spans: Vec<Option<(usize, usize)>>,
}

impl EnergyTexts {
    fn of(r: &Report) -> Result<EnergyTexts, StoreError> {
        let mut buf = Vec::with_capacity(r.summaries.len() * 128);
        let mut spans = Vec::with_capacity(r.summaries.len());
        for s in &r.summaries {
            if s.energy.is_empty() {
                spans.push(None);
                continue;
            }
            let start = buf.len();
            serde_json::to_writer(&mut buf, &s.energy)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            spans.push(Some((start, buf.len())));
        }
        // serde_json writes UTF-8 only.
        let text = String::from_utf8(buf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(EnergyTexts { text, spans })
    }

    fn get(&self, i: usize) -> Option<&str> {
        self.spans
            .get(i)
            .copied()
            .flatten()
            .map(|(a, b)| &self.text[a..b])
    }
}

/// Stores one accepted report: the signed report (evidence), its inventory
/// and its window rows.
fn store_report(
    tx: &Transaction<'_>,
    agent_id: &str,
    vr: &VerifiedReport,
    signature: &str,
    energy: &EnergyTexts,
    now: i64,
) -> Result<(), StoreError> {
    let r = &vr.report;
    let enterprise = r.enterprise.as_str();
    let seq = r.seq as i64;
    tx.prepare_cached(
        "INSERT INTO reports (agent_id, seq, hash, prev_hash, enterprise, window_start,
         window_end, created_at, received_at, payload, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        agent_id,
        seq,
        vr.hash.to_hex(),
        r.prev_hash.to_hex(),
        enterprise,
        r.window_start,
        r.window_end,
        r.created_at,
        now,
        vr.payload,
        signature
    ])?;
    if let Some(inv) = &r.inventory {
        let text = serde_json::to_string(inv).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO inventories (enterprise, agent_id, seq, inventory) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (enterprise, agent_id) DO UPDATE SET seq = excluded.seq,
             inventory = excluded.inventory WHERE excluded.seq > inventories.seq",
        )?
        .execute(params![enterprise, agent_id, seq, text])?;
    }
    // Full chunks of rows go through one multi-row INSERT each, the rest
    // one row at a time (two cached statements whatever the device count).
    static CHUNK_SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let chunk_sql = CHUNK_SQL.get_or_init(|| window_insert_sql(WINDOW_ROWS_PER_INSERT));
    let rows: Vec<(usize, &WindowSummary)> = r.summaries.iter().enumerate().collect();
    let mut chunks = rows.chunks_exact(WINDOW_ROWS_PER_INSERT);
    let mut ins_chunk = tx.prepare_cached(chunk_sql)?;
    for chunk in &mut chunks {
        for (k, &(i, s)) in chunk.iter().enumerate() {
            bind_window(
                &mut ins_chunk,
                k * WINDOW_COLS,
                agent_id,
                r,
                s,
                energy.get(i),
            )?;
        }
        ins_chunk.raw_execute()?;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut ins_one = tx.prepare_cached(&window_insert_sql(1))?;
        for &(i, s) in rest {
            bind_window(&mut ins_one, 0, agent_id, r, s, energy.get(i))?;
            ins_one.raw_execute()?;
        }
    }
    Ok(())
}

/// Columns of a `window_summaries` row as inserted.
const WINDOW_COLS: usize = 19;

/// Window rows per multi-row INSERT (19 parameters each; SQLite allows
/// 32,766): one statement step per 50 rows instead of per row.
const WINDOW_ROWS_PER_INSERT: usize = 50;

/// `INSERT INTO window_summaries ... VALUES (?, ...), ...` for `rows` rows.
fn window_insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; WINDOW_COLS].join(", "));
    format!(
        "INSERT INTO window_summaries (agent_id, seq, device_id, enterprise, window_start,
         window_end, productive, standby, engineering, scheduled_down, unscheduled_down,
         non_scheduled, disconnected, nc_seconds, parts, samples_expected, samples_received, flags,
         energy) VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// Binds one window row's 19 parameters after the first `base` ones.
fn bind_window(
    st: &mut rusqlite::Statement<'_>,
    base: usize,
    agent_id: &str,
    r: &Report,
    s: &WindowSummary,
    energy: Option<&str>,
) -> Result<(), rusqlite::Error> {
    let state = |d: DeviceState| i64::from(s.state_seconds.get(d));
    st.raw_bind_parameter(base + 1, agent_id)?;
    st.raw_bind_parameter(base + 2, r.seq as i64)?;
    st.raw_bind_parameter(base + 3, s.device_id.as_str())?;
    st.raw_bind_parameter(base + 4, r.enterprise.as_str())?;
    st.raw_bind_parameter(base + 5, r.window_start)?;
    st.raw_bind_parameter(base + 6, r.window_end)?;
    // `DeviceState::ALL` is in the order of `STATE_COLS`.
    for (k, d) in DeviceState::ALL.into_iter().enumerate() {
        st.raw_bind_parameter(base + 7 + k, state(d))?;
    }
    st.raw_bind_parameter(base + 14, s.nc_seconds)?;
    st.raw_bind_parameter(base + 15, s.parts.map(|p| p as i64))?;
    st.raw_bind_parameter(base + 16, s.samples_expected)?;
    st.raw_bind_parameter(base + 17, s.samples_received)?;
    if s.flags.is_empty() {
        st.raw_bind_parameter(base + 18, "")?;
    } else {
        let flags = s.flags.iter().map(enum_str).collect::<Vec<_>>().join(",");
        st.raw_bind_parameter(base + 18, flags)?;
    }
    st.raw_bind_parameter(base + 19, energy)?;
    Ok(())
}

/// Every stored inventory, merged per enterprise (an enterprise with
/// several gateways: the union of their devices and key processes).
fn read_inventories(conn: &Connection) -> Result<Vec<(String, Inventory)>, StoreError> {
    let mut st = conn
        .prepare("SELECT enterprise, inventory FROM inventories ORDER BY enterprise, agent_id")?;
    let mut q = st.query([])?;
    let mut merged: BTreeMap<String, (Inventory, BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    while let Some(r) = q.next()? {
        let ent: String = r.get(0)?;
        let text: String = r.get(1)?;
        let inv: Inventory =
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (acc, devs, kps) = merged.entry(ent).or_default();
        for d in inv.devices {
            if devs.insert(d.id.clone()) {
                acc.devices.push(d);
            }
        }
        for k in inv.key_processes {
            if kps.insert(k.id.clone()) {
                acc.key_processes.push(k);
            }
        }
    }
    Ok(merged
        .into_iter()
        .map(|(k, (inv, _, _))| (k, inv))
        .collect())
}

fn table_rows(conn: &Connection, sql: &str) -> Result<Table, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let n = columns.len();
    let mut rows = Vec::new();
    let mut q = stmt.query([])?;
    while let Some(row) = q.next()? {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(match row.get_ref(i)? {
                ValueRef::Null => String::new(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => hex::encode(b),
            });
        }
        rows.push(out);
    }
    Ok(Table { columns, rows })
}

impl Store for SqliteStore {
    fn upsert_counties(&self, counties: &[County]) -> Result<(), StoreError> {
        self.with_write_tx(|tx| {
            let mut st = tx.prepare(
                "INSERT INTO counties (id, name, name_en, kind, division_code) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_en = excluded.name_en,
                 kind = excluded.kind, division_code = excluded.division_code",
            )?;
            for c in counties {
                st.execute(params![c.id, c.name, c.name_en, enum_str(&c.kind), c.division_code])?;
            }
            Ok(())
        })
    }

    fn upsert_chains(&self, chains: &[IndustryChain]) -> Result<(), StoreError> {
        self.with_write_tx(|tx| {
            let mut st = tx.prepare(
                "INSERT INTO chains (id, name, name_en, cluster, industry_type) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_en = excluded.name_en,
                 cluster = excluded.cluster, industry_type = excluded.industry_type",
            )?;
            for c in chains {
                st.execute(params![c.id, c.name, c.name_en, c.cluster, enum_str(&c.industry_type)])?;
            }
            Ok(())
        })
    }

    fn counties(&self) -> Result<Vec<County>, StoreError> {
        let conn = self.r();
        let mut st = conn
            .prepare("SELECT id, name, name_en, kind, division_code FROM counties ORDER BY id")?;
        let mut q = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            let kind: String = r.get(3)?;
            out.push(County {
                id: r.get(0)?,
                name: r.get(1)?,
                name_en: r.get(2)?,
                kind: enum_parse(&kind)?,
                division_code: r.get(4)?,
            });
        }
        Ok(out)
    }

    fn chains(&self) -> Result<Vec<IndustryChain>, StoreError> {
        let conn = self.r();
        let mut st = conn
            .prepare("SELECT id, name, name_en, cluster, industry_type FROM chains ORDER BY id")?;
        let mut q = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            let it: String = r.get(4)?;
            out.push(IndustryChain {
                id: r.get(0)?,
                name: r.get(1)?,
                name_en: r.get(2)?,
                cluster: r.get(3)?,
                industry_type: enum_parse(&it)?,
            });
        }
        Ok(out)
    }

    fn import_registry(
        &self,
        enterprises: &[Enterprise],
        recognitions: &[Recognition],
    ) -> Result<(), StoreError> {
        self.with_write_tx(|tx| {
            let mut st = tx.prepare(
                "INSERT INTO enterprises (credit_code, name, county, chain, above_scale, industry_type,
                 rd_design_tools, declared_digitization, declared_networking, declared_key_process_nc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (credit_code) DO UPDATE SET name = excluded.name, county = excluded.county,
                 chain = excluded.chain, above_scale = excluded.above_scale,
                 industry_type = excluded.industry_type, rd_design_tools = excluded.rd_design_tools,
                 declared_digitization = excluded.declared_digitization,
                 declared_networking = excluded.declared_networking,
                 declared_key_process_nc = excluded.declared_key_process_nc",
            )?;
            for e in enterprises {
                st.execute(params![
                    e.credit_code.as_str(),
                    e.name,
                    e.county,
                    e.chain,
                    e.above_scale,
                    enum_str(&e.industry_type),
                    e.rd_design_tools,
                    e.declared.digitization,
                    e.declared.networking,
                    e.declared.key_process_nc
                ])?;
            }
            let mut st = tx.prepare(
                "INSERT INTO recognitions (credit_code, kind, level, year, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (credit_code, kind, level, year) DO UPDATE SET evidence = excluded.evidence",
            )?;
            for r in recognitions {
                st.execute(params![
                    r.credit_code.as_str(),
                    enum_str(&r.kind),
                    enum_str(&r.level),
                    r.year,
                    r.evidence
                ])?;
            }
            bump_generation(tx)?;
            Ok(())
        })
    }

    fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT credit_code, name, county, chain, above_scale, industry_type, rd_design_tools,
             declared_digitization, declared_networking, declared_key_process_nc
             FROM enterprises ORDER BY credit_code",
        )?;
        let mut q = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            out.push(read_enterprise(r)?);
        }
        Ok(out)
    }

    fn enterprise(&self, code: &str) -> Result<Option<Enterprise>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT credit_code, name, county, chain, above_scale, industry_type, rd_design_tools,
             declared_digitization, declared_networking, declared_key_process_nc
             FROM enterprises WHERE credit_code = ?1",
        )?;
        let mut q = st.query([code])?;
        match q.next()? {
            Some(r) => Ok(Some(read_enterprise(r)?)),
            None => Ok(None),
        }
    }

    fn recognitions(&self) -> Result<Vec<Recognition>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT credit_code, kind, level, year, evidence FROM recognitions
             ORDER BY credit_code, year, kind",
        )?;
        let mut q = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            let code: String = r.get(0)?;
            let kind: String = r.get(1)?;
            let level: String = r.get(2)?;
            out.push(Recognition {
                credit_code: code_parse(&code)?,
                kind: enum_parse(&kind)?,
                level: enum_parse(&level)?,
                year: r.get(3)?,
                evidence: r.get(4)?,
            });
        }
        Ok(out)
    }

    fn create_enrol_token(
        &self,
        token_hash: &str,
        enterprise: &CreditCode,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.w().execute(
            "INSERT INTO enrol_tokens (token_hash, enterprise, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, enterprise.as_str(), now, expires_at],
        )?;
        Ok(())
    }

    fn enroll(
        &self,
        token_hash: &str,
        agent_id: &str,
        enterprise: &CreditCode,
        public_key_b64: &str,
        now: i64,
    ) -> Result<(), EnrolError> {
        let mut conn = self.w();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let token_ent: Option<String> = tx
            .query_row(
                "SELECT enterprise FROM enrol_tokens
                 WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![token_hash, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::from)?;
        let Some(token_ent) = token_ent else {
            return Err(EnrolError::BadToken);
        };
        if token_ent != enterprise.as_str() {
            return Err(EnrolError::WrongEnterprise {
                token: token_ent,
                asked: enterprise.to_string(),
            });
        }
        let existing: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT enterprise, revoked_at FROM agents WHERE agent_id = ?1",
                [agent_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        match existing {
            Some((_, Some(_))) => return Err(EnrolError::Revoked(agent_id.to_owned())),
            Some((ent, None)) if ent != enterprise.as_str() => {
                return Err(EnrolError::AgentTaken {
                    agent_id: agent_id.to_owned(),
                    enterprise: ent,
                })
            }
            Some(_) => {
                // Rotation: the agent keeps its id and chain; the old key stops working.
                tx.execute(
                    "UPDATE agent_keys SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL
                     AND public_key <> ?3",
                    params![agent_id, now, public_key_b64],
                )
                .map_err(StoreError::from)?;
            }
            None => {
                tx.execute(
                    "INSERT INTO agents (agent_id, enterprise, enrolled_at) VALUES (?1, ?2, ?3)",
                    params![agent_id, enterprise.as_str(), now],
                )
                .map_err(StoreError::from)?;
            }
        }
        tx.execute(
            "INSERT INTO agent_keys (agent_id, public_key, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (agent_id, public_key) DO UPDATE SET revoked_at = NULL, added_at = excluded.added_at",
            params![agent_id, public_key_b64, now],
        )
        .map_err(StoreError::from)?;
        tx.execute(
            "UPDATE enrol_tokens SET used_at = ?2, used_by = ?3 WHERE token_hash = ?1",
            params![token_hash, now, agent_id],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    fn revoke_agent(&self, agent_id: &str, now: i64) -> Result<bool, StoreError> {
        self.with_write_tx(|tx| {
            let n = tx.execute(
                "UPDATE agents SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
                params![agent_id, now],
            )?;
            tx.execute(
                "UPDATE agent_keys SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
                params![agent_id, now],
            )?;
            Ok(n > 0)
        })
    }

    fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT agent_id, enterprise, enrolled_at, revoked_at, head_seq, head_hash
             FROM agents WHERE agent_id = ?1",
        )?;
        let mut q = st.query([agent_id])?;
        match q.next()? {
            Some(r) => Ok(Some(read_agent(&conn, r)?)),
            None => Ok(None),
        }
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT agent_id, enterprise, enrolled_at, revoked_at, head_seq, head_hash
             FROM agents ORDER BY agent_id",
        )?;
        let mut q = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = q.next()? {
            out.push(read_agent(&conn, r)?);
        }
        Ok(out)
    }

    fn create_api_token(
        &self,
        token_hash: &str,
        token: &ApiToken,
        now: i64,
    ) -> Result<(), StoreError> {
        self.w().execute(
            "INSERT INTO api_tokens (token_hash, name, role, scope, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash, token.name, token.role.as_str(), token.scope, now],
        )?;
        Ok(())
    }

    fn api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let conn = self.r();
        let row: Option<(String, String, Option<String>)> = conn
            .query_row(
                "SELECT name, role, scope FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
                [token_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((name, role, scope)) => {
                let role = Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown role `{role}`")))?;
                Ok(Some(ApiToken { name, role, scope }))
            }
        }
    }

    fn ingest_batch(
        &self,
        agent_id: &str,
        reports: &[(VerifiedReport, String)],
        now: i64,
        utc_offset_secs: i64,
        hook: &dyn AcceptHook,
    ) -> Result<IngestOutcome, IngestReject> {
        // What needs no database is done before the writer lock is taken, so
        // it overlaps another request's transaction: the energy JSON and the
        // daily sums (redone below without the replays if there are any).
        let energy = reports
            .iter()
            .map(|(vr, _)| EnergyTexts::of(&vr.report))
            .collect::<Result<Vec<_>, _>>()?;
        let mut acc = DayAcc::default();
        for (vr, _) in reports {
            acc.add(&vr.report, utc_offset_secs);
        }
        let mut conn = self.w();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let head: Option<(Option<i64>, Option<String>)> = tx
            .query_row(
                "SELECT head_seq, head_hash FROM agents WHERE agent_id = ?1",
                [agent_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        let mut head = match head {
            Some((Some(seq), Some(hash))) => Some(ChainHead {
                seq: seq as u64,
                hash: Hash32::from_hex(&hash).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            }),
            _ => None,
        };
        let expected = |h: Option<ChainHead>| h.map_or(1, |h| h.seq + 1);
        let (mut accepted, mut duplicates) = (0u64, 0u64);
        let mut stored = Vec::with_capacity(reports.len());
        for (i, (vr, signature)) in reports.iter().enumerate() {
            let seq = vr.report.seq;
            if let Some(h) = head {
                if seq <= h.seq && seq > 0 {
                    let stored: Option<String> = tx
                        .prepare_cached("SELECT hash FROM reports WHERE agent_id = ?1 AND seq = ?2")
                        .map_err(StoreError::from)?
                        .query_row(params![agent_id, seq as i64], |r| r.get(0))
                        .optional()
                        .map_err(StoreError::from)?;
                    match stored {
                        Some(s) if s == vr.hash.to_hex() => {
                            duplicates += 1;
                            continue;
                        }
                        Some(stored) => {
                            return Err(IngestReject::Fork {
                                agent_id: agent_id.to_owned(),
                                seq,
                                stored,
                            })
                        }
                        None => {
                            return Err(StoreError::Corrupt(format!(
                                "agent `{agent_id}` head is {} but report {seq} is missing",
                                h.seq
                            ))
                            .into())
                        }
                    }
                }
            }
            match follow(head, &vr.report, vr.hash) {
                Ok(h) => head = Some(h),
                Err(ChainError::Gap { expected, got }) => {
                    return Err(IngestReject::Gap {
                        agent_id: agent_id.to_owned(),
                        expected,
                        got,
                    })
                }
                Err(ChainError::PrevHashMismatch { seq, prev, .. }) => {
                    return Err(IngestReject::BadLink {
                        agent_id: agent_id.to_owned(),
                        seq,
                        prev,
                        expected: expected(head),
                    })
                }
                Err(e) => {
                    return Err(IngestReject::Chain {
                        agent_id: agent_id.to_owned(),
                        message: e.to_string(),
                        expected: expected(head),
                    })
                }
            }
            store_report(&tx, agent_id, vr, signature, &energy[i], now)?;
            hook.on_accepted(&tx, agent_id, seq, &vr.hash)?;
            stored.push(i);
            accepted += 1;
        }
        if duplicates > 0 {
            // Replays add nothing to the days: sum the stored reports only.
            acc = DayAcc::default();
            for &i in &stored {
                acc.add(&reports[i].0.report, utc_offset_secs);
            }
        }
        acc.flush(&tx)?;
        if let Some(h) = head {
            tx.execute(
                "UPDATE agents SET head_seq = ?2, head_hash = ?3 WHERE agent_id = ?1",
                params![agent_id, h.seq as i64, h.hash.to_hex()],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(IngestOutcome {
            accepted,
            duplicates,
            head_seq: head.map_or(0, |h| h.seq),
        })
    }

    fn record_gap(
        &self,
        agent_id: &str,
        expected: u64,
        got: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.w().execute(
            "INSERT INTO gaps (agent_id, expected_seq, got_seq, first_seen, last_seen, times)
             VALUES (?1, ?2, ?3, ?4, ?4, 1)
             ON CONFLICT (agent_id, expected_seq, got_seq) DO UPDATE SET
             last_seen = excluded.last_seen, times = times + 1",
            params![agent_id, expected as i64, got as i64, now],
        )?;
        Ok(())
    }

    fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT g.agent_id, g.expected_seq, g.got_seq, g.first_seen, g.last_seen, g.times,
             COALESCE(a.head_seq, 0) >= g.got_seq - 1
             FROM gaps g LEFT JOIN agents a ON a.agent_id = g.agent_id
             ORDER BY g.agent_id, g.expected_seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Gap {
                agent_id: r.get(0)?,
                expected_seq: r.get::<_, i64>(1)? as u64,
                got_seq: r.get::<_, i64>(2)? as u64,
                first_seen: r.get(3)?,
                last_seen: r.get(4)?,
                times: r.get::<_, i64>(5)? as u64,
                closed: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn inventories(&self) -> Result<Vec<(String, Inventory)>, StoreError> {
        let conn = self.r();
        let stamp: InventoryStamp = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(seq), 0), COALESCE(MAX(rowid), 0) FROM inventories",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut cache = self
            .inventory_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((s, merged)) = cache.as_ref() {
            if *s == stamp {
                return Ok(merged.clone());
            }
        }
        let merged = read_inventories(&conn)?;
        *cache = Some((stamp, merged.clone()));
        Ok(merged)
    }

    fn raw_report(
        &self,
        agent_id: &str,
        seq: u64,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        Ok(self
            .r()
            .query_row(
                "SELECT payload, signature FROM reports WHERE agent_id = ?1 AND seq = ?2",
                params![agent_id, seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn refresh_periods(&self) -> Result<u64, StoreError> {
        self.with_write_tx(|tx| {
            // Months are summed from daily rows; quarters and years from the
            // months just refreshed, so a tick that touches today re-reads a
            // month of days, not a year of them. Months sort first (rank 0).
            let mut pairs: BTreeMap<(u8, String, String), Period> = BTreeMap::new();
            {
                let mut st = tx.prepare("SELECT enterprise, day FROM dirty_days")?;
                let mut q = st.query([])?;
                while let Some(r) = q.next()? {
                    let ent: String = r.get(0)?;
                    for p in Period::containing(r.get(1)?) {
                        let rank = u8::from(!matches!(p, Period::Month(..)));
                        pairs.insert((rank, ent.clone(), p.key()), p);
                    }
                }
            }
            let mut del_dev =
                tx.prepare("DELETE FROM device_periods WHERE enterprise = ?1 AND period = ?2")?;
            let mut del_en =
                tx.prepare("DELETE FROM period_energy WHERE enterprise = ?1 AND period = ?2")?;
            let mut month_dev = tx.prepare(
                "INSERT INTO device_periods (enterprise, period, device_id, days, productive, known,
                 calendar, nc_seconds, parts, samples_expected, samples_received)
                 SELECT enterprise, ?2, device_id, COUNT(*), SUM(productive),
                 SUM(productive + standby + engineering + scheduled_down + unscheduled_down + non_scheduled),
                 SUM(productive + standby + engineering + scheduled_down + unscheduled_down + non_scheduled + disconnected),
                 SUM(nc_seconds), SUM(parts), SUM(samples_expected), SUM(samples_received)
                 FROM device_days WHERE enterprise = ?1 AND day >= ?3 AND day < ?4
                 GROUP BY device_id",
            )?;
            let mut month_en = tx.prepare(
                "INSERT INTO period_energy (enterprise, period, carrier, unit, quantity, exported)
                 SELECT enterprise, ?2, carrier, unit, SUM(quantity), SUM(exported)
                 FROM device_day_energy WHERE enterprise = ?1 AND day >= ?3 AND day < ?4
                 GROUP BY carrier, unit",
            )?;
            let mut span_dev = tx.prepare(
                "INSERT INTO device_periods (enterprise, period, device_id, days, productive, known,
                 calendar, nc_seconds, parts, samples_expected, samples_received)
                 SELECT enterprise, ?2, device_id, SUM(days), SUM(productive), SUM(known),
                 SUM(calendar), SUM(nc_seconds), SUM(parts), SUM(samples_expected), SUM(samples_received)
                 FROM device_periods WHERE enterprise = ?1 AND period IN (SELECT value FROM json_each(?3))
                 GROUP BY device_id",
            )?;
            let mut span_en = tx.prepare(
                "INSERT INTO period_energy (enterprise, period, carrier, unit, quantity, exported)
                 SELECT enterprise, ?2, carrier, unit, SUM(quantity), SUM(exported)
                 FROM period_energy WHERE enterprise = ?1 AND period IN (SELECT value FROM json_each(?3))
                 GROUP BY carrier, unit",
            )?;
            for ((_, ent, key), p) in &pairs {
                del_dev.execute(params![ent, key])?;
                del_en.execute(params![ent, key])?;
                if let Period::Month(..) = p {
                    let (a, b) = p.day_range();
                    month_dev.execute(params![ent, key, a, b])?;
                    month_en.execute(params![ent, key, a, b])?;
                } else {
                    let months = serde_json::to_string(&p.months())
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    span_dev.execute(params![ent, key, months])?;
                    span_en.execute(params![ent, key, months])?;
                }
            }
            tx.execute("DELETE FROM dirty_days", [])?;
            if !pairs.is_empty() {
                bump_generation(tx)?;
            }
            Ok(pairs.len() as u64)
        })
    }

    fn rollup_generation(&self) -> Result<u64, StoreError> {
        let conn = self.r();
        let g: i64 = conn
            .prepare_cached("SELECT generation FROM rollup_generation WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        Ok(g as u64)
    }

    fn derived(&self) -> &DerivedCache {
        &self.derived
    }

    fn device_periods(&self, period: &str) -> Result<Vec<DeviceTotals>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare_cached(
            "SELECT enterprise, device_id, days, productive, known, calendar, nc_seconds, parts,
             samples_expected, samples_received FROM device_periods WHERE period = ?1",
        )?;
        let rows = st.query_map([period], |r| {
            let productive: i64 = r.get(3)?;
            let known: i64 = r.get(4)?;
            let calendar: i64 = r.get(5)?;
            // Periods keep productive / known / calendar only: that is all the
            // utilisation denominators need. The other known states are
            // folded into `standby` so the sums stay right.
            let mut state_seconds = [0u64; 7];
            state_seconds[DeviceState::Productive.index()] = productive as u64;
            state_seconds[DeviceState::Standby.index()] = (known - productive) as u64;
            state_seconds[DeviceState::Disconnected.index()] = (calendar - known) as u64;
            Ok(DeviceTotals {
                enterprise: r.get(0)?,
                device_id: r.get(1)?,
                days: r.get::<_, i64>(2)? as u64,
                state_seconds,
                nc_seconds: r.get::<_, i64>(6)? as u64,
                parts: r.get::<_, i64>(7)? as u64,
                samples_expected: r.get::<_, i64>(8)? as u64,
                samples_received: r.get::<_, i64>(9)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn period_energy(&self, period: &str) -> Result<Vec<EnergyTotal>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare_cached(
            "SELECT enterprise, carrier, unit, quantity, exported FROM period_energy WHERE period = ?1",
        )?;
        let rows = st.query_map([period], |r| {
            Ok(EnergyTotal {
                enterprise: r.get(0)?,
                carrier: r.get(1)?,
                unit: r.get(2)?,
                quantity: r.get(3)?,
                exported: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn report_spans(&self, from: i64, to: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        // Two seeks per enterprise on `reports_enterprise_window`.
        let conn = self.r();
        let mut st = conn.prepare_cached(
            "SELECT credit_code,
               (SELECT window_start FROM reports WHERE enterprise = credit_code
                  AND window_start >= ?1 AND window_start < ?2 ORDER BY window_start LIMIT 1),
               (SELECT window_end FROM reports WHERE enterprise = credit_code
                  AND window_start >= ?1 AND window_start < ?2 ORDER BY window_start DESC LIMIT 1)
             FROM enterprises",
        )?;
        let rows = st.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            if let (code, Some(first), Some(last)) = row? {
                out.push((code, first, last));
            }
        }
        Ok(out)
    }

    fn enterprise_days(
        &self,
        enterprise: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<EnterpriseDay>, StoreError> {
        let conn = self.r();
        let sql = format!(
            "SELECT day, COUNT(*), {}, SUM(nc_seconds), SUM(parts), SUM(samples_expected),
             SUM(samples_received) FROM device_days WHERE enterprise = ?1 AND day >= ?2 AND day < ?3
             GROUP BY day ORDER BY day",
            STATE_COLS
                .split(", ")
                .map(|c| format!("SUM({c})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![enterprise, from, to], |r| {
            let mut state_seconds = [0u64; 7];
            for (i, s) in state_seconds.iter_mut().enumerate() {
                *s = r.get::<_, i64>(2 + i)? as u64;
            }
            Ok(EnterpriseDay {
                enterprise: enterprise.to_owned(),
                day: r.get(0)?,
                devices: r.get::<_, i64>(1)? as u64,
                state_seconds,
                nc_seconds: r.get::<_, i64>(9)? as u64,
                parts: r.get::<_, i64>(10)? as u64,
                samples_expected: r.get::<_, i64>(11)? as u64,
                samples_received: r.get::<_, i64>(12)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn device_days(
        &self,
        enterprise: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, DeviceTotals)>, StoreError> {
        let conn = self.r();
        let sql = format!(
            "SELECT day, device_id, {STATE_COLS}, nc_seconds, parts, samples_expected, samples_received
             FROM device_days WHERE enterprise = ?1 AND day >= ?2 AND day < ?3 ORDER BY day, device_id"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![enterprise, from, to], |r| {
            let mut state_seconds = [0u64; 7];
            for (i, s) in state_seconds.iter_mut().enumerate() {
                *s = r.get::<_, i64>(2 + i)? as u64;
            }
            Ok((
                r.get::<_, i64>(0)?,
                DeviceTotals {
                    enterprise: enterprise.to_owned(),
                    device_id: r.get(1)?,
                    days: 1,
                    state_seconds,
                    nc_seconds: r.get::<_, i64>(9)? as u64,
                    parts: r.get::<_, i64>(10)? as u64,
                    samples_expected: r.get::<_, i64>(11)? as u64,
                    samples_received: r.get::<_, i64>(12)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn prune_fine(&self, before: i64) -> Result<u64, StoreError> {
        // A window's energy travels in its summary row (migration 3), so
        // deleting the summary rows removes the window's energy with them.
        self.with_write_tx(|tx| {
            let n = tx.execute(
                "DELETE FROM window_summaries WHERE window_start < ?1",
                [before],
            )?;
            Ok(n as u64)
        })
    }

    fn record_score(&self, s: &AssessmentScore) -> Result<(), StoreError> {
        self.w().execute(
            "INSERT INTO assessment_scores (county, year, item, score, evidence, recorded_by, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (county, year, item) DO UPDATE SET score = excluded.score,
             evidence = excluded.evidence, recorded_by = excluded.recorded_by,
             recorded_at = excluded.recorded_at",
            params![s.county, s.year, s.item, s.score, s.evidence, s.recorded_by, s.recorded_at],
        )?;
        Ok(())
    }

    fn scores(&self, year: i32) -> Result<Vec<AssessmentScore>, StoreError> {
        let conn = self.r();
        let mut st = conn.prepare(
            "SELECT county, year, item, score, evidence, recorded_by, recorded_at
             FROM assessment_scores WHERE year = ?1 ORDER BY county, item",
        )?;
        let rows = st.query_map([year], |r| {
            Ok(AssessmentScore {
                county: r.get(0)?,
                year: r.get(1)?,
                item: r.get(2)?,
                score: r.get(3)?,
                evidence: r.get(4)?,
                recorded_by: r.get(5)?,
                recorded_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn size_bytes(&self) -> Result<u64, StoreError> {
        let conn = self.r();
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok((pages * size) as u64)
    }

    fn export_table(&self, name: &str) -> Result<Option<Table>, StoreError> {
        if !EXPORTABLE.contains(&name) {
            return Ok(None);
        }
        let sql = match name {
            // Keys are public, but a table of them invites misuse: export the agent's state only.
            "agents" => "SELECT agent_id, enterprise, enrolled_at, revoked_at, head_seq, head_hash FROM agents ORDER BY agent_id".to_owned(),
            other => format!("SELECT * FROM {other}"),
        };
        Ok(Some(table_rows(&self.r(), &sql)?))
    }
}
