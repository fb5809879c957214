//! Evidence bundles (specified in `docs/specs/evidence.md`): everything an
//! evaluator needs to check one enterprise's measured figures for one
//! window offline, and the pure verification of such a bundle.
//!
//! A bundle is one JSON document holding the exact signed report envelopes,
//! the agents' enrolment records (attested by the log key), a signed
//! checkpoint of the aggregator's transparency log and one inclusion proof
//! per report. [`verify_bundle`] checks every signature, every chain link,
//! the enterprise and window of every report, key revocation, every
//! inclusion proof and the checkpoint, and then recomputes the measured
//! figures from the reports alone ([`figures`]). It never trusts a figure
//! the bundle could carry: a bundle carries none.
//!
//! The log's leaf for a report is the report hash (SHA-256 of the payload
//! bytes), so the leaf hash is `SHA-256(0x00 || SHA-256(payload))`.

pub mod figures;

use crate::credit_code::CreditCode;
use crate::merkle::{self, SignedCheckpoint};
use crate::report::{
    follow, verifying_key_from_b64, ChainHead, Hash32, SignedReport, VerifiedReport,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use figures::Figures;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The value of a bundle's `format` field this code reads and writes.
pub const BUNDLE_FORMAT: &str = "shuzhuan-evidence-bundle/1";

/// The first line of the enrolment attestation's signed body.
const ENROLMENTS_TAG: &str = "shuzhuan-enrolments/1";

/// One agent key as the aggregator enrolled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    pub agent_id: String,
    pub enterprise: CreditCode,
    /// Base64 Ed25519 public key.
    pub public_key: String,
    /// Unix seconds.
    pub enrolled_at: i64,
    /// Unix seconds; reports whose window ends at or after it are not accepted.
    pub revoked_at: Option<i64>,
}

/// One report with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub leaf_index: u64,
    pub report: SignedReport,
    /// Audit path from the leaf to the checkpoint's root (RFC 9162 order).
    pub inclusion_proof: Vec<Hash32>,
}

/// An evidence bundle: one enterprise, one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    pub enterprise: CreditCode,
    /// Unix seconds, inclusive.
    pub window_start: i64,
    /// Unix seconds, exclusive.
    pub window_end: i64,
    /// Base64 Ed25519 key of the log; the verifier compares it with the key
    /// it trusts and never uses it otherwise.
    pub log_public_key: String,
    pub checkpoint: SignedCheckpoint,
    pub enrolments: Vec<Enrolment>,
    /// The log key's signature (base64) over [`enrolments_body`].
    pub enrolments_signature: String,
    /// In ascending `leaf_index` order.
    pub entries: Vec<Entry>,
}

/// What kind of problem a verifier found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Wrong `format`, or a window that is empty or reversed.
    Format,
    /// The bundle names a log key other than the trusted one.
    LogKey,
    /// The checkpoint's signature does not verify.
    Checkpoint,
    /// The enrolment attestation does not verify.
    Enrolments,
    /// Entries are not in strictly ascending leaf order.
    Order,
    /// The report cannot be decoded or its agent has no enrolment.
    Malformed,
    UnknownAgent,
    /// No enrolled key of the agent verifies the signature.
    Signature,
    /// The report belongs to another enterprise.
    Enterprise,
    /// The report's window is not inside the bundle's window.
    Window,
    /// The only key that verifies was revoked before the window ended.
    RevokedKey,
    /// The inclusion proof does not lead to the checkpoint's root.
    Inclusion,
    /// A report does not follow the previous report of its agent in the bundle.
    Chain,
}

impl ProblemKind {
    /// Whether the problem discredits the whole bundle (rather than one report).
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ProblemKind::Format
                | ProblemKind::LogKey
                | ProblemKind::Checkpoint
                | ProblemKind::Enrolments
        )
    }
}

/// One problem, with the report it concerns when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub message: String,
}

/// The outcome of verifying a bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleVerdict {
    /// True when no problem at all was found.
    pub ok: bool,
    /// True when a fatal problem was found: no figure of this bundle can be trusted.
    pub untrusted: bool,
    pub enterprise: CreditCode,
    pub window_start: i64,
    pub window_end: i64,
    pub checkpoint_size: u64,
    pub entries: u64,
    /// Reports that passed every per-report check and enter the figures.
    pub reports_accepted: u64,
    pub problems: Vec<Problem>,
    /// Recomputed from the accepted reports alone.
    pub figures: Figures,
    /// The accepted reports, for judging sub-windows (not serialized).
    #[serde(skip)]
    pub accepted: Vec<VerifiedReport>,
}

/// Why a bundle cannot even be read or built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not valid JSON for format {BUNDLE_FORMAT}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("log public key `{0}` is not 32 bytes of base64")]
    LogKey(String),
    #[error("report {index} of the bundle to build: {message}")]
    Build { index: usize, message: String },
    #[error(transparent)]
    Merkle(#[from] merkle::MerkleError),
}

/// The log's leaf hash for a report payload.
pub fn report_leaf_hash(payload: &[u8]) -> Hash32 {
    merkle::leaf_hash(&Hash32::of(payload).0)
}

/// The signed body of the enrolment attestation: a tag line, the
/// enterprise, the checkpoint size, then one line per enrolment
/// `"<agent_id> <enterprise> <public_key> <enrolled_at> <revoked_at or ->"`,
/// in bundle order.
pub fn enrolments_body(
    enterprise: &CreditCode,
    checkpoint_size: u64,
    enrolments: &[Enrolment],
) -> String {
    let mut s = format!("{ENROLMENTS_TAG}\n{enterprise}\n{checkpoint_size}\n");
    for e in enrolments {
        let revoked = e
            .revoked_at
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        s.push_str(&format!(
            "{} {} {} {} {}\n",
            e.agent_id, e.enterprise, e.public_key, e.enrolled_at, revoked
        ));
    }
    s
}

/// Signs the enrolment attestation with the log key.
pub fn sign_enrolments(
    key: &SigningKey,
    enterprise: &CreditCode,
    checkpoint_size: u64,
    enrolments: &[Enrolment],
) -> String {
    B64.encode(
        key.sign(enrolments_body(enterprise, checkpoint_size, enrolments).as_bytes())
            .to_bytes(),
    )
}

fn verify_sig(key: &VerifyingKey, body: &[u8], sig_b64: &str) -> bool {
    let Ok(raw) = B64.decode(sig_b64) else {
        return false;
    };
    let Ok(arr) = <[u8; 64]>::try_from(raw.as_slice()) else {
        return false;
    };
    key.verify(body, &Signature::from_bytes(&arr)).is_ok()
}

impl Bundle {
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a bundle always serializes")
    }
}

fn problem(kind: ProblemKind, message: impl Into<String>) -> Problem {
    Problem {
        kind,
        leaf_index: None,
        agent_id: None,
        seq: None,
        message: message.into(),
    }
}

/// Verifies `bundle` against the log key the verifier trusts, then
/// recomputes its figures from the reports that pass.
pub fn verify_bundle(bundle: &Bundle, trusted_log_key: &VerifyingKey) -> BundleVerdict {
    let mut problems = Vec::new();
    if bundle.format != BUNDLE_FORMAT {
        problems.push(problem(
            ProblemKind::Format,
            format!(
                "format is `{}`, this verifier reads `{BUNDLE_FORMAT}`",
                bundle.format
            ),
        ));
    }
    if bundle.window_end <= bundle.window_start {
        problems.push(problem(
            ProblemKind::Format,
            format!(
                "window {}..{} is empty or reversed",
                bundle.window_start, bundle.window_end
            ),
        ));
    }
    if verifying_key_from_b64(&bundle.log_public_key) != Some(*trusted_log_key) {
        problems.push(problem(
            ProblemKind::LogKey,
            format!(
                "bundle names log key {}, which is not the trusted log key",
                bundle.log_public_key
            ),
        ));
    }
    let cp = &bundle.checkpoint.checkpoint;
    if let Err(e) = bundle.checkpoint.verify(trusted_log_key) {
        problems.push(problem(
            ProblemKind::Checkpoint,
            format!("checkpoint at size {}: {e}", cp.size),
        ));
    }
    let body = enrolments_body(&bundle.enterprise, cp.size, &bundle.enrolments);
    if !verify_sig(
        trusted_log_key,
        body.as_bytes(),
        &bundle.enrolments_signature,
    ) {
        problems.push(problem(
            ProblemKind::Enrolments,
            "enrolment records do not match the log's signature over them",
        ));
    }

    let mut keys: BTreeMap<&str, Vec<(&Enrolment, VerifyingKey)>> = BTreeMap::new();
    for e in &bundle.enrolments {
        match verifying_key_from_b64(&e.public_key) {
            Some(k) => keys.entry(e.agent_id.as_str()).or_default().push((e, k)),
            None => problems.push(problem(
                ProblemKind::Enrolments,
                format!(
                    "agent `{}`: enrolled key `{}` is not an Ed25519 key",
                    e.agent_id, e.public_key
                ),
            )),
        }
    }

    let mut accepted = Vec::new();
    let mut heads: BTreeMap<String, ChainHead> = BTreeMap::new();
    let mut last_index: Option<u64> = None;
    for entry in &bundle.entries {
        let at = |kind, agent: Option<&str>, seq: Option<u64>, message: String| Problem {
            kind,
            leaf_index: Some(entry.leaf_index),
            agent_id: agent.map(str::to_owned),
            seq,
            message,
        };
        if last_index.is_some_and(|l| entry.leaf_index <= l) {
            problems.push(at(
                ProblemKind::Order,
                None,
                None,
                format!(
                    "leaf {} follows leaf {}: entries must ascend",
                    entry.leaf_index,
                    last_index.unwrap_or(0)
                ),
            ));
        }
        last_index = Some(entry.leaf_index);

        let (report, payload) = match entry.report.peek() {
            Ok(p) => p,
            Err(e) => {
                problems.push(at(ProblemKind::Malformed, None, None, e.to_string()));
                continue;
            }
        };
        let (agent, seq) = (report.agent_id.as_str(), report.seq);
        let mut fine = true;
        let Some(candidates) = keys.get(agent) else {
            problems.push(at(
                ProblemKind::UnknownAgent,
                Some(agent),
                Some(seq),
                format!("agent `{agent}` has no enrolment in the bundle"),
            ));
            continue;
        };
        let verified = candidates
            .iter()
            .find_map(|(e, k)| entry.report.verify(k).ok().map(|v| (e, v)));
        let Some((enrolment, verified)) = verified else {
            let why = candidates
                .first()
                .map(|(_, k)| {
                    entry
                        .report
                        .verify(k)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            problems.push(at(
                ProblemKind::Signature,
                Some(agent),
                Some(seq),
                format!("report {seq} of agent `{agent}`: no enrolled key verifies it ({why})"),
            ));
            // Anchor the chain on the unverified payload, so the next report
            // is judged by whether it links to what is actually here.
            heads.insert(
                agent.to_owned(),
                ChainHead {
                    seq,
                    hash: Hash32::of(&payload),
                },
            );
            continue;
        };
        if let Some(rev) = enrolment.revoked_at {
            if rev <= report.window_end {
                fine = false;
                problems.push(at(
                    ProblemKind::RevokedKey,
                    Some(agent),
                    Some(seq),
                    format!(
                        "report {seq} of agent `{agent}`: window ends at {}, the key was revoked at {rev}",
                        report.window_end
                    ),
                ));
            }
        }
        if report.enterprise != bundle.enterprise || enrolment.enterprise != bundle.enterprise {
            fine = false;
            problems.push(at(
                ProblemKind::Enterprise,
                Some(agent),
                Some(seq),
                format!(
                    "report {seq} of agent `{agent}` is for enterprise {}, the bundle is for {}",
                    report.enterprise, bundle.enterprise
                ),
            ));
        }
        if report.window_start < bundle.window_start || report.window_end > bundle.window_end {
            fine = false;
            problems.push(at(
                ProblemKind::Window,
                Some(agent),
                Some(seq),
                format!(
                    "report {seq} of agent `{agent}` covers {}..{}, outside the bundle's window {}..{}",
                    report.window_start, report.window_end, bundle.window_start, bundle.window_end
                ),
            ));
        }
        let leaf = report_leaf_hash(&payload);
        if let Err(e) = merkle::verify_inclusion(
            &leaf,
            entry.leaf_index,
            cp.size,
            &entry.inclusion_proof,
            &cp.root_hash,
        ) {
            fine = false;
            problems.push(at(
                ProblemKind::Inclusion,
                Some(agent),
                Some(seq),
                format!("report {seq} of agent `{agent}`: {e}"),
            ));
        }
        // The first report of an agent in the bundle anchors its chain: its
        // own predecessor lies before the window. Every later one must follow.
        let head = heads.get(agent).copied().unwrap_or(ChainHead {
            seq: seq.saturating_sub(1),
            hash: report.prev_hash,
        });
        let head = if seq == 1 && !heads.contains_key(agent) {
            None
        } else {
            Some(head)
        };
        match follow(head, &report, verified.hash) {
            Ok(h) => {
                heads.insert(agent.to_owned(), h);
            }
            Err(e) => {
                problems.push(at(
                    ProblemKind::Chain,
                    Some(agent),
                    Some(seq),
                    format!("agent `{agent}`: {e}"),
                ));
                // Re-anchor on this report so one break is reported once.
                heads.insert(
                    agent.to_owned(),
                    ChainHead {
                        seq,
                        hash: verified.hash,
                    },
                );
            }
        }
        if fine {
            accepted.push(verified);
        }
    }

    let untrusted = problems.iter().any(|p| p.kind.is_fatal());
    let figures = Figures::compute(
        &accepted,
        bundle.window_start,
        bundle.window_end,
        &bundle.enrolments,
    );
    BundleVerdict {
        ok: problems.is_empty(),
        untrusted,
        enterprise: bundle.enterprise.clone(),
        window_start: bundle.window_start,
        window_end: bundle.window_end,
        checkpoint_size: cp.size,
        entries: bundle.entries.len() as u64,
        reports_accepted: accepted.len() as u64,
        problems,
        figures,
        accepted,
    }
}

/// What a bundle is about: one enterprise, one window, and the agents'
/// enrolment records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleScope {
    pub enterprise: CreditCode,
    pub window_start: i64,
    pub window_end: i64,
    pub enrolments: Vec<Enrolment>,
}

/// Builds a bundle from reports already in a log (the aggregator's export
/// and the tests use this). `entries` are `(leaf_index, report)` pairs in
/// ascending leaf order; `log` holds at least the checkpoint's leaves.
pub fn build_bundle(
    scope: BundleScope,
    log: &merkle::MerkleLog,
    log_key: &SigningKey,
    checkpoint: SignedCheckpoint,
    entries: Vec<(u64, SignedReport)>,
) -> Result<Bundle, BundleError> {
    let size = checkpoint.checkpoint.size;
    let mut out = Vec::with_capacity(entries.len());
    for (index, (leaf_index, report)) in entries.into_iter().enumerate() {
        let proof = log
            .inclusion_proof(leaf_index, size)
            .map_err(|e| BundleError::Build {
                index,
                message: e.to_string(),
            })?;
        out.push(Entry {
            leaf_index,
            report,
            inclusion_proof: proof,
        });
    }
    let enrolments_signature = sign_enrolments(log_key, &scope.enterprise, size, &scope.enrolments);
    Ok(Bundle {
        format: BUNDLE_FORMAT.to_owned(),
        enterprise: scope.enterprise,
        window_start: scope.window_start,
        window_end: scope.window_end,
        log_public_key: B64.encode(log_key.verifying_key().to_bytes()),
        checkpoint,
        enrolments: scope.enrolments,
        enrolments_signature,
        entries: out,
    })
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
