//! Report wire format v1 (specified in `docs/specs/report.md`): a report is
//! one agent's window summaries for one window, chained to its predecessor by
//! hash and signed with the agent's Ed25519 key.
//!
//! The envelope carries the exact payload bytes that were signed (base64), so
//! verification never depends on re-encoding JSON the same way twice. The
//! report hash is SHA-256 over those payload bytes; `prev_hash` of report `n`
//! is the hash of report `n - 1`, and the first report (`seq` 1) has
//! 64 zeros.

use crate::credit_code::CreditCode;
use crate::inventory::Inventory;
use crate::summary::{SummaryError, WindowSummary};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The only schema version this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The `prev_hash` of an agent's first report.
    pub const GENESIS: Hash32 = Hash32([0; 32]);

    pub fn of(bytes: &[u8]) -> Hash32 {
        Hash32(Sha256::digest(bytes).into())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Result<Hash32, ReportError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ReportError::BadHash(s.to_owned()))?;
        Ok(Hash32(out))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.to_hex())
    }
}
impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash32::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The signed content of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    pub agent_id: String,
    /// The enterprise the agent was enrolled for.
    pub enterprise: CreditCode,
    /// 1 for the agent's first report, then +1 per report, no gaps.
    pub seq: u64,
    pub prev_hash: Hash32,
    /// Window start, Unix seconds (UTC), inclusive.
    pub window_start: i64,
    /// Window end, Unix seconds (UTC), exclusive.
    pub window_end: i64,
    /// The agent's clock when the report was sealed, Unix seconds.
    pub created_at: i64,
    /// The declared inventory, sent when it changed and at least once a day,
    /// so that a bundle of reports alone suffices to recompute the rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    pub summaries: Vec<WindowSummary>,
}

/// What travels on the wire and is stored: the signed payload bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReport {
    /// Base64 (standard alphabet, padded) of the report's canonical JSON.
    pub payload: String,
    /// Base64 of the 64-byte Ed25519 signature over the payload bytes.
    pub signature: String,
}

/// Why a report cannot be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("payload is not valid base64")]
    PayloadEncoding,
    #[error("signature is not 64 bytes of base64")]
    SignatureEncoding,
    #[error("signature does not verify against the agent's key")]
    BadSignature,
    #[error("payload is not a valid report: {0}")]
    Malformed(String),
    #[error("schema version {0} is not supported (this build reads schema 1)")]
    Schema(u32),
    #[error("`{0}` is not a 64-digit hex hash")]
    BadHash(String),
    #[error("window {start}..{end} is empty or reversed")]
    BadWindow { start: i64, end: i64 },
    #[error("device `{0}` appears twice in one report")]
    DuplicateDevice(String),
    #[error(transparent)]
    Summary(#[from] SummaryError),
}

impl Report {
    /// Checks the report's own consistency (schema, window, summaries).
    pub fn validate(&self) -> Result<(), ReportError> {
        if self.schema != SCHEMA_VERSION {
            return Err(ReportError::Schema(self.schema));
        }
        if self.window_end <= self.window_start {
            return Err(ReportError::BadWindow {
                start: self.window_start,
                end: self.window_end,
            });
        }
        let secs = (self.window_end - self.window_start) as u64;
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.summaries {
            if !seen.insert(s.device_id.as_str()) {
                return Err(ReportError::DuplicateDevice(s.device_id.clone()));
            }
            s.validate(secs)?;
        }
        Ok(())
    }

    /// The canonical payload: compact JSON in struct field order. Maps are
    /// ordered and floats use the shortest round-trip form, so the same report
    /// always encodes to the same bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a report always serializes")
    }

    /// Signs the canonical payload. Returns the envelope and the report hash.
    pub fn sign(&self, key: &SigningKey) -> (SignedReport, Hash32) {
        let payload = self.canonical_bytes();
        let sig = key.sign(&payload);
        let hash = Hash32::of(&payload);
        (
            SignedReport {
                payload: B64.encode(&payload),
                signature: B64.encode(sig.to_bytes()),
            },
            hash,
        )
    }
}

/// A report whose signature has been checked, with its hash and raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedReport {
    pub report: Report,
    pub hash: Hash32,
    pub payload: Vec<u8>,
}

impl SignedReport {
    /// Decodes the payload without checking the signature: used to learn
    /// `agent_id` and so find the key to verify with.
    pub fn peek(&self) -> Result<(Report, Vec<u8>), ReportError> {
        let payload = B64
            .decode(&self.payload)
            .map_err(|_| ReportError::PayloadEncoding)?;
        let report = parse_payload(&payload)?;
        Ok((report, payload))
    }

    /// Verifies the signature over the payload bytes with `key`, then parses
    /// and validates the report.
    pub fn verify(&self, key: &VerifyingKey) -> Result<VerifiedReport, ReportError> {
        let payload = B64
            .decode(&self.payload)
            .map_err(|_| ReportError::PayloadEncoding)?;
        let sig_bytes = B64
            .decode(&self.signature)
            .map_err(|_| ReportError::SignatureEncoding)?;
        let sig_arr: [u8; 64] = sig_bytes
            .as_slice()
            .try_into()
            .map_err(|_| ReportError::SignatureEncoding)?;
        let sig = Signature::from_bytes(&sig_arr);
        key.verify(&payload, &sig)
            .map_err(|_| ReportError::BadSignature)?;
        let report = parse_payload(&payload)?;
        report.validate()?;
        let hash = Hash32::of(&payload);
        Ok(VerifiedReport {
            report,
            hash,
            payload,
        })
    }
}

fn parse_payload(payload: &[u8]) -> Result<Report, ReportError> {
    // Look at the schema first so a newer agent gets "schema 2 unsupported",
    // not a confusing unknown-field error.
    #[derive(Deserialize)]
    struct SchemaOnly {
        schema: u32,
    }
    match serde_json::from_slice::<SchemaOnly>(payload) {
        Ok(s) if s.schema != SCHEMA_VERSION => return Err(ReportError::Schema(s.schema)),
        Ok(_) => {}
        Err(e) => return Err(ReportError::Malformed(e.to_string())),
    }
    serde_json::from_slice(payload).map_err(|e| ReportError::Malformed(e.to_string()))
}

/// Where a chain stands: the last accepted report's sequence number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Hash32,
}

/// How a report fails to follow its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("report {seq} was already accepted (replay)")]
    Replay { seq: u64 },
    #[error(
        "report {got} arrived but {expected} was expected: reports {expected}..{got} are missing"
    )]
    Gap { expected: u64, got: u64 },
    #[error("report {seq} names previous hash {got}, but report {prev} has hash {want}")]
    PrevHashMismatch {
        seq: u64,
        prev: u64,
        got: Hash32,
        want: Hash32,
    },
    #[error("report 1 must have the all-zero previous hash")]
    BadGenesis,
    #[error("sequence numbers start at 1, got 0")]
    ZeroSeq,
}

/// Checks that `report` (with hash `hash`) directly follows `head` (`None`
/// when the agent has no accepted report yet). Returns the new head.
pub fn follow(
    head: Option<ChainHead>,
    report: &Report,
    hash: Hash32,
) -> Result<ChainHead, ChainError> {
    if report.seq == 0 {
        return Err(ChainError::ZeroSeq);
    }
    match head {
        None => {
            if report.seq != 1 {
                return Err(ChainError::Gap {
                    expected: 1,
                    got: report.seq,
                });
            }
            if report.prev_hash != Hash32::GENESIS {
                return Err(ChainError::BadGenesis);
            }
        }
        Some(h) => {
            if report.seq <= h.seq {
                return Err(ChainError::Replay { seq: report.seq });
            }
            if report.seq != h.seq + 1 {
                return Err(ChainError::Gap {
                    expected: h.seq + 1,
                    got: report.seq,
                });
            }
            if report.prev_hash != h.hash {
                return Err(ChainError::PrevHashMismatch {
                    seq: report.seq,
                    prev: h.seq,
                    got: report.prev_hash,
                    want: h.hash,
                });
            }
        }
    }
    Ok(ChainHead {
        seq: report.seq,
        hash,
    })
}

/// Verifies a whole chain of already signature-checked reports, in order,
/// starting from `head`. Returns the final head.
pub fn verify_chain<'a>(
    head: Option<ChainHead>,
    reports: impl IntoIterator<Item = &'a VerifiedReport>,
) -> Result<Option<ChainHead>, ChainError> {
    let mut head = head;
    for r in reports {
        head = Some(follow(head, &r.report, r.hash)?);
    }
    Ok(head)
}

/// Parses a base64 Ed25519 public key.
pub fn verifying_key_from_b64(s: &str) -> Option<VerifyingKey> {
    let bytes = B64.decode(s.trim()).ok()?;
    let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
    VerifyingKey::from_bytes(&arr).ok()
}

/// Encodes an Ed25519 public key as base64.
pub fn verifying_key_to_b64(k: &VerifyingKey) -> String {
    B64.encode(k.to_bytes())
}

#[cfg(test)]
mod tests;
