//! Evidence on the service side: the transparency log kept beside the
//! store ([`log`]), evidence-bundle export for one enterprise and window,
//! claim verification producing JSON and a printable HTML report
//! ([`html`]), and offline bundle verification that needs no database.
//! Exports and verification stream: reports are read from SQLite in leaf
//! order and written or checked one at a time ([`export_each`]).
//!
//! Wiring (done by the lead in `server.rs`/`main.rs`): open an
//! [`EvidenceLog`] over the `SqliteStore`, call [`EvidenceLog::backfill`] once
//! at start, and pass the log as the `AcceptHook` to ingest, so every newly
//! accepted report gets a leaf in the same transaction.

pub mod html;
pub mod log;

pub use log::{load_or_create_log_key, EvidenceLog};

use crate::store::{SqliteStore, StoreError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::params;
use serde::Serialize;
use shuzhuan_common::claim::{judge, Claim, ClaimJudgement, ClaimPolicy};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::evidence::{
    sign_enrolments, verify_bundle_stream, Bundle, BundleHeader, BundleVerdict, BundleWriter,
    Enrolment, Entry, StreamVerifier, BUNDLE_FORMAT,
};
use shuzhuan_common::report::{verifying_key_from_b64, SignedReport};
use shuzhuan_common::tomlpos::Located;
use std::io::Write;
use std::path::Path;

/// Why an evidence operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log key file `{path}`: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("log key file `{0}` does not hold base64 of a 32-byte Ed25519 seed")]
    BadKey(String),
    #[error("cannot draw random bytes for a new log key: {0}")]
    Random(String),
    #[error("log public key `{0}` is not base64 of a 32-byte Ed25519 key")]
    BadPublicKey(String),
    #[error("`{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Located>),
    #[error("enterprise {0} has no enrolled agent")]
    NoAgents(String),
    #[error(transparent)]
    Bundle(#[from] shuzhuan_common::evidence::BundleError),
    #[error("writing the bundle: {source}")]
    Write { source: std::io::Error },
    #[error(transparent)]
    Merkle(#[from] shuzhuan_common::merkle::MerkleError),
}

/// One piece of an export, in order: the header, then the entries.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    Header(&'a BundleHeader),
    Entry(&'a Entry),
}

/// Exports the evidence of `enterprise` for `start..end` as a stream: signs
/// a fresh checkpoint, hands `sink` the header, then reads the logged
/// reports of the enterprise whose window lies inside from SQLite in leaf
/// order and hands it each, with its inclusion proof, as it is read.
/// Nothing but the Merkle tree is held in memory. Returns the number of
/// entries.
pub fn export_each(
    store: &SqliteStore,
    log: &EvidenceLog,
    enterprise: &CreditCode,
    start: i64,
    end: i64,
    mut sink: impl FnMut(Piece<'_>) -> Result<(), EvidenceError>,
) -> Result<u64, EvidenceError> {
    let (tree, checkpoint) = log.checkpoint(store)?;
    let size = checkpoint.checkpoint.size;
    let enrolments = store.with_read(|c| {
        let mut st = c.prepare(
            "SELECT a.agent_id, k.public_key, k.added_at, COALESCE(k.revoked_at, a.revoked_at)
             FROM agents a JOIN agent_keys k ON k.agent_id = a.agent_id
             WHERE a.enterprise = ?1 ORDER BY a.agent_id, k.added_at, k.public_key",
        )?;
        let rows = st
            .query_map(params![enterprise.as_str()], |r| {
                Ok(Enrolment {
                    agent_id: r.get(0)?,
                    enterprise: enterprise.clone(),
                    public_key: r.get(1)?,
                    enrolled_at: r.get(2)?,
                    revoked_at: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })?;
    if enrolments.is_empty() {
        return Err(EvidenceError::NoAgents(enterprise.to_string()));
    }
    let enrolments_signature = sign_enrolments(log.key(), enterprise, size, &enrolments);
    let header = BundleHeader {
        format: BUNDLE_FORMAT.to_owned(),
        enterprise: enterprise.clone(),
        window_start: start,
        window_end: end,
        log_public_key: log.public_key_b64(),
        checkpoint,
        enrolments,
        enrolments_signature,
    };
    sink(Piece::Header(&header))?;
    // The callback's own error, carried out of the read closure.
    let mut failed: Option<EvidenceError> = None;
    let count = store.with_read(|c| {
        let mut st = c.prepare(
            "SELECT l.leaf_index, r.payload, r.signature FROM reports r
             JOIN evidence_leaves l ON l.agent_id = r.agent_id AND l.seq = r.seq
             WHERE r.enterprise = ?1 AND r.window_start >= ?2 AND r.window_end <= ?3
               AND l.leaf_index < ?4
             ORDER BY l.leaf_index",
        )?;
        let mut rows = st.query(params![enterprise.as_str(), start, end, size as i64])?;
        let mut count = 0u64;
        while let Some(r) = rows.next()? {
            let leaf_index = r.get::<_, i64>(0)? as u64;
            let payload: Vec<u8> = r.get(1)?;
            let entry = Entry {
                leaf_index,
                report: SignedReport {
                    payload: B64.encode(payload),
                    signature: r.get(2)?,
                },
                inclusion_proof: match tree.inclusion_proof(leaf_index, size) {
                    Ok(p) => p,
                    Err(e) => {
                        failed = Some(e.into());
                        break;
                    }
                },
            };
            if let Err(e) = sink(Piece::Entry(&entry)) {
                failed = Some(e);
                break;
            }
            count += 1;
        }
        Ok(count)
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(count),
    }
}

/// Exports the evidence bundle of `enterprise` for `start..end` in memory
/// (for short windows and tests; long windows use [`export_bundle_to`]).
pub fn export_bundle(
    store: &SqliteStore,
    log: &EvidenceLog,
    enterprise: &CreditCode,
    start: i64,
    end: i64,
) -> Result<Bundle, EvidenceError> {
    let mut head = None;
    let mut entries = Vec::new();
    export_each(store, log, enterprise, start, end, |p| {
        match p {
            Piece::Header(h) => head = Some(h.clone()),
            Piece::Entry(e) => entries.push(e.clone()),
        }
        Ok(())
    })?;
    let h = head.expect("export_each always yields a header");
    Ok(h.into_bundle(entries))
}

/// Writes the line-oriented bundle (format 2) of `enterprise` for
/// `start..end` to `out` as the reports are read. Returns the number of
/// entries and the audit-path nodes written and saved by reuse.
pub fn export_bundle_to<W: Write>(
    store: &SqliteStore,
    log: &EvidenceLog,
    enterprise: &CreditCode,
    start: i64,
    end: i64,
    out: W,
) -> Result<ExportStats, EvidenceError> {
    let mut writer: Option<BundleWriter<W>> = None;
    let mut out = Some(out);
    let io = |source| EvidenceError::Write { source };
    let entries = export_each(store, log, enterprise, start, end, |p| match p {
        Piece::Header(h) => {
            let w = out.take().expect("one header");
            writer = Some(BundleWriter::new(w, h).map_err(io)?);
            Ok(())
        }
        Piece::Entry(e) => writer
            .as_mut()
            .expect("the header comes first")
            .entry(e)
            .map_err(io),
    })?;
    let w = writer.expect("export_each always yields a header");
    let stats = ExportStats {
        entries,
        proof_nodes_written: w.proof_nodes_written,
        proof_nodes_reused: w.proof_nodes_reused,
    };
    w.finish().map_err(io)?;
    Ok(stats)
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExportStats {
    pub entries: u64,
    /// Audit-path nodes written into the file.
    pub proof_nodes_written: u64,
    /// Audit-path nodes left out because the previous line's path had them.
    pub proof_nodes_reused: u64,
}

/// A verified claim: the judgement and the verdict on its evidence.
#[derive(Debug, Serialize)]
pub struct ClaimOutcome {
    pub judgement: ClaimJudgement,
    pub evidence: BundleVerdict,
}

impl ClaimOutcome {
    /// The JSON report.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a claim outcome always serializes")
    }
    /// The printable, self-contained HTML report.
    pub fn to_html(&self) -> String {
        html::render(&self.judgement, &self.evidence)
    }
}

/// Reads and validates a claim file.
pub fn load_claim(path: &Path) -> Result<Claim, EvidenceError> {
    let text = read(path)?;
    Claim::parse(&path.display().to_string(), &text).map_err(EvidenceError::Config)
}

/// Reads and validates the claim policy (`config/claims/thresholds.toml`).
pub fn load_policy(path: &Path) -> Result<ClaimPolicy, EvidenceError> {
    let text = read(path)?;
    ClaimPolicy::parse(&path.display().to_string(), &text).map_err(EvidenceError::Config)
}

fn read(path: &Path) -> Result<String, EvidenceError> {
    std::fs::read_to_string(path).map_err(|source| EvidenceError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Verifies a claim against the store: exports the evidence for the
/// claim's window (and baseline) and verifies it exactly as an evaluator
/// would, with the log's public key, entry by entry as it is read (nothing
/// is kept but the figures), then judges each claimed figure.
pub fn verify_claim(
    store: &SqliteStore,
    log: &EvidenceLog,
    claim: &Claim,
    policy: &ClaimPolicy,
) -> Result<ClaimOutcome, EvidenceError> {
    verify_claim_writing(store, log, claim, policy, None::<std::io::Sink>)
}

/// [`verify_claim`], also writing the bundle (format 2) to `bundle_out`
/// while it is verified, so the evaluator can file it beside the report.
pub fn verify_claim_writing<W: Write>(
    store: &SqliteStore,
    log: &EvidenceLog,
    claim: &Claim,
    policy: &ClaimPolicy,
    bundle_out: Option<W>,
) -> Result<ClaimOutcome, EvidenceError> {
    let (start, end) = claim.evidence_span();
    let trusted = log.key().verifying_key();
    let windows = claim.windows();
    let mut verifier: Option<StreamVerifier> = None;
    let mut writer: Option<BundleWriter<W>> = None;
    let mut out = bundle_out;
    let io = |source| EvidenceError::Write { source };
    export_each(store, log, &claim.enterprise, start, end, |p| {
        match p {
            Piece::Header(h) => {
                verifier = Some(StreamVerifier::new(h.clone(), &trusted, &windows));
                if let Some(w) = out.take() {
                    writer = Some(BundleWriter::new(w, h).map_err(io)?);
                }
            }
            Piece::Entry(e) => {
                if let Some(w) = writer.as_mut() {
                    w.entry(e).map_err(io)?;
                }
                verifier.as_mut().expect("the header comes first").entry(e);
            }
        }
        Ok(())
    })?;
    if let Some(w) = writer {
        w.finish().map_err(io)?;
    }
    let evidence = verifier
        .expect("export_each always yields a header")
        .finish();
    let judgement = judge(claim, &evidence, policy);
    Ok(ClaimOutcome {
        judgement,
        evidence,
    })
}

/// Verifies a bundle file (either format) offline against a trusted log
/// key (base64), with no database, reading it one line at a time.
pub fn verify_bundle_file(path: &Path, log_key_b64: &str) -> Result<BundleVerdict, EvidenceError> {
    let key = verifying_key_from_b64(log_key_b64)
        .ok_or_else(|| EvidenceError::BadPublicKey(log_key_b64.to_owned()))?;
    let file = std::fs::File::open(path).map_err(|source| EvidenceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let input = std::io::BufReader::with_capacity(1 << 20, file);
    Ok(verify_bundle_stream(input, &key, &[])?)
}
