//! Evidence on the service side: the transparency log kept beside the
//! store ([`log`]), evidence-bundle export for one enterprise and window,
//! claim verification producing JSON and a printable HTML report
//! ([`html`]), and offline bundle verification that needs no database.
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
    build_bundle, verify_bundle, Bundle, BundleScope, BundleVerdict, Enrolment,
};
use shuzhuan_common::report::{verifying_key_from_b64, SignedReport};
use shuzhuan_common::tomlpos::Located;
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
    #[error(transparent)]
    Merkle(#[from] shuzhuan_common::merkle::MerkleError),
}

/// Exports the evidence bundle of `enterprise` for `start..end`: every
/// logged report of the enterprise whose window lies inside, with inclusion
/// proofs against a freshly signed checkpoint.
pub fn export_bundle(
    store: &SqliteStore,
    log: &EvidenceLog,
    enterprise: &CreditCode,
    start: i64,
    end: i64,
) -> Result<Bundle, EvidenceError> {
    let (tree, checkpoint) = log.checkpoint(store)?;
    let (enrolments, entries) = store.with_read(|c| {
        let mut st = c.prepare(
            "SELECT a.agent_id, k.public_key, k.added_at, COALESCE(k.revoked_at, a.revoked_at)
             FROM agents a JOIN agent_keys k ON k.agent_id = a.agent_id
             WHERE a.enterprise = ?1 ORDER BY a.agent_id, k.added_at, k.public_key",
        )?;
        let enrolments = st
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
        let mut st = c.prepare(
            "SELECT l.leaf_index, r.payload, r.signature FROM reports r
             JOIN evidence_leaves l ON l.agent_id = r.agent_id AND l.seq = r.seq
             WHERE r.enterprise = ?1 AND r.window_start >= ?2 AND r.window_end <= ?3
               AND l.leaf_index < ?4
             ORDER BY l.leaf_index",
        )?;
        let entries = st
            .query_map(
                params![
                    enterprise.as_str(),
                    start,
                    end,
                    checkpoint.checkpoint.size as i64
                ],
                |r| {
                    let payload: Vec<u8> = r.get(1)?;
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        SignedReport {
                            payload: B64.encode(payload),
                            signature: r.get(2)?,
                        },
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((enrolments, entries))
    })?;
    if enrolments.is_empty() {
        return Err(EvidenceError::NoAgents(enterprise.to_string()));
    }
    let scope = BundleScope {
        enterprise: enterprise.clone(),
        window_start: start,
        window_end: end,
        enrolments,
    };
    Ok(build_bundle(scope, &tree, log.key(), checkpoint, entries)?)
}

/// A verified claim: the judgement, the verdict on its evidence, and the
/// evidence itself (to file beside the report).
#[derive(Debug, Serialize)]
pub struct ClaimOutcome {
    pub judgement: ClaimJudgement,
    pub evidence: BundleVerdict,
    #[serde(skip)]
    pub bundle: Bundle,
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

/// Verifies a claim against the store: exports the bundle for the claim's
/// window (and baseline), verifies it exactly as an evaluator would, with
/// the log's public key, and judges each claimed figure.
pub fn verify_claim(
    store: &SqliteStore,
    log: &EvidenceLog,
    claim: &Claim,
    policy: &ClaimPolicy,
) -> Result<ClaimOutcome, EvidenceError> {
    let (start, end) = claim.evidence_span();
    let bundle = export_bundle(store, log, &claim.enterprise, start, end)?;
    let evidence = verify_bundle(&bundle, &log.key().verifying_key());
    let judgement = judge(claim, &bundle, &evidence, policy);
    Ok(ClaimOutcome {
        judgement,
        evidence,
        bundle,
    })
}

/// Verifies a bundle file offline against a trusted log key (base64), with
/// no database.
pub fn verify_bundle_file(path: &Path, log_key_b64: &str) -> Result<BundleVerdict, EvidenceError> {
    let key = verifying_key_from_b64(log_key_b64)
        .ok_or_else(|| EvidenceError::BadPublicKey(log_key_b64.to_owned()))?;
    let bytes = std::fs::read(path).map_err(|source| EvidenceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let bundle = Bundle::from_json(&bytes)?;
    Ok(verify_bundle(&bundle, &key))
}
