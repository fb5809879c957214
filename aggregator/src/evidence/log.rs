//! The evidence log's storage: one leaf per accepted report in
//! `evidence_leaves`, appended inside the ingest transaction through the
//! store's [`AcceptHook`], and the signed checkpoints in
//! `evidence_checkpoints`.
//!
//! The tables are created here (`CREATE TABLE IF NOT EXISTS`) rather than in
//! the store's migrations, so the log can be switched on for an existing
//! database; [`EvidenceLog::backfill`] then logs the reports accepted before.
//! Leaf `i` is the `i`-th report accepted; its leaf hash is
//! `SHA-256(0x00 || report hash)` (see `docs/specs/evidence.md`).

use super::EvidenceError;
use crate::store::{AcceptHook, SqliteStore, StoreError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use shuzhuan_common::merkle::{self, Checkpoint, CheckpointSigner, MerkleLog, SignedCheckpoint};
use shuzhuan_common::report::Hash32;
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS evidence_leaves (
    leaf_index INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    leaf_hash TEXT NOT NULL,
    UNIQUE (agent_id, seq)
);
CREATE TABLE IF NOT EXISTS evidence_checkpoints (
    size INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    root_hash TEXT NOT NULL,
    signature TEXT NOT NULL
);
";

/// The log of one aggregator: its origin line and signing key.
#[derive(Debug)]
pub struct EvidenceLog {
    pub origin: String,
    key: SigningKey,
}

/// Reads the log key (base64 of a 32-byte Ed25519 seed) from `path`,
/// creating it with a fresh random seed (mode 0600) when it does not exist.
pub fn load_or_create_log_key(path: &Path) -> Result<SigningKey, EvidenceError> {
    let io = |source| EvidenceError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(io)?;
        let raw = B64
            .decode(text.trim())
            .map_err(|_| EvidenceError::BadKey(path.display().to_string()))?;
        let seed: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| EvidenceError::BadKey(path.display().to_string()))?;
        return Ok(SigningKey::from_bytes(&seed));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| EvidenceError::Random(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    use std::io::Write as _;
    let mut f = opts.open(path).map_err(io)?;
    writeln!(f, "{}", B64.encode(seed)).map_err(io)?;
    tracing::info!(path = %path.display(), "created a new evidence log key");
    Ok(SigningKey::from_bytes(&seed))
}

impl EvidenceLog {
    /// Opens the log over `store`, creating its tables when missing.
    pub fn open(
        store: &SqliteStore,
        origin: impl Into<String>,
        key: SigningKey,
    ) -> Result<EvidenceLog, EvidenceError> {
        let origin = origin.into();
        let probe = Checkpoint {
            origin: origin.clone(),
            size: 0,
            root_hash: merkle::empty_root(),
        };
        probe.sign(&key)?;
        store.with_write_tx(|tx| tx.execute_batch(SCHEMA).map_err(StoreError::from))?;
        Ok(EvidenceLog { origin, key })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Base64 of the log's public key, as evaluators are given it.
    pub fn public_key_b64(&self) -> String {
        shuzhuan_common::report::verifying_key_to_b64(&self.key.verifying_key())
    }

    /// Logs every stored report that is not in the log yet, in the order
    /// they were received. Returns how many leaves were added.
    pub fn backfill(&self, store: &SqliteStore) -> Result<u64, EvidenceError> {
        Ok(store.with_write_tx(|tx| {
            let missing: Vec<(String, i64, String)> = {
                let mut st = tx.prepare(
                    "SELECT r.agent_id, r.seq, r.hash FROM reports r
                     LEFT JOIN evidence_leaves l ON l.agent_id = r.agent_id AND l.seq = r.seq
                     WHERE l.leaf_index IS NULL ORDER BY r.received_at, r.agent_id, r.seq",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            for (agent, seq, hash) in &missing {
                let h = Hash32::from_hex(hash).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                append(tx, agent, *seq as u64, &h)?;
            }
            Ok(missing.len() as u64)
        })?)
    }

    /// The whole log, rebuilt from the stored leaves.
    pub fn load(conn: &Connection) -> Result<MerkleLog, StoreError> {
        let mut st =
            conn.prepare("SELECT leaf_index, leaf_hash FROM evidence_leaves ORDER BY leaf_index")?;
        let mut log = MerkleLog::new();
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (i, h) = row?;
            let h = Hash32::from_hex(&h).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if log.push_leaf_hash(h) != i as u64 {
                return Err(StoreError::Corrupt(format!(
                    "evidence log: leaf {i} is out of sequence"
                )));
            }
        }
        Ok(log)
    }

    /// Signs a checkpoint of the current log, after proving it consistent
    /// with the last stored checkpoint, and stores it.
    pub fn checkpoint(
        &self,
        store: &SqliteStore,
    ) -> Result<(MerkleLog, SignedCheckpoint), EvidenceError> {
        store
            .with_write_tx(|tx| {
                let log = EvidenceLog::load(tx)?;
                let latest: Option<(i64, String, String)> = tx
                    .query_row(
                        "SELECT size, origin, root_hash FROM evidence_checkpoints ORDER BY size DESC LIMIT 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let latest = match latest {
                    Some((size, origin, root)) => Some(Checkpoint {
                        origin,
                        size: size as u64,
                        root_hash: Hash32::from_hex(&root).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    }),
                    None => None,
                };
                let mut signer = CheckpointSigner::new(self.origin.clone(), self.key.clone(), latest);
                let signed = signer.sign_log(&log).map_err(|e| StoreError::Hook(e.to_string()))?;
                let c = &signed.checkpoint;
                tx.execute(
                    "INSERT OR IGNORE INTO evidence_checkpoints (size, origin, root_hash, signature)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![c.size as i64, c.origin, c.root_hash.to_hex(), signed.signature],
                )?;
                Ok((log, signed))
            })
            .map_err(EvidenceError::from)
    }
}

fn append(tx: &Transaction<'_>, agent_id: &str, seq: u64, hash: &Hash32) -> Result<(), StoreError> {
    let next: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM evidence_leaves")?
        .query_row([], |r| r.get(0))?;
    tx.prepare_cached(
        "INSERT INTO evidence_leaves (leaf_index, agent_id, seq, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![next, agent_id, seq as i64, merkle::leaf_hash(&hash.0).to_hex()])?;
    Ok(())
}

impl AcceptHook for EvidenceLog {
    fn on_accepted(
        &self,
        tx: &Transaction<'_>,
        agent_id: &str,
        seq: u64,
        hash: &Hash32,
    ) -> Result<(), StoreError> {
        append(tx, agent_id, seq, hash)
    }
}
