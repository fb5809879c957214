//! Evidence bundles (specified in `docs/specs/evidence.md`): everything an
//! evaluator needs to check one enterprise's measured figures for one
//! window offline, and the verification of such a bundle.
//!
//! A bundle holds the exact signed report envelopes, the agents' enrolment
//! records (attested by the log key), a signed checkpoint of the
//! aggregator's transparency log and one inclusion proof per report. On disk
//! it is a line-oriented file (format 2, [`BUNDLE_FORMAT`]): a header line,
//! one line per report, a trailer line, written by [`BundleWriter`] and read
//! and checked one line at a time by [`verify_bundle_stream`], so a year of
//! reports is exported and verified in bounded memory. Consecutive lines
//! share the top of their audit paths: a line carries only the nodes that
//! differ from the previous line's path (`proof_reuse`). The older
//! single-document form (format 1, [`BUNDLE_FORMAT_V1`]) is still read.
//!
//! [`StreamVerifier`] checks every signature, every chain link, the enterprise and
//! window of every report, key revocation, every inclusion proof and the
//! checkpoint, and folds the accepted reports into the figures of the
//! bundle's window (and of any sub-window asked for) as it goes
//! ([`figures::FiguresBuilder`]). It never trusts a figure the bundle could
//! carry: a bundle carries none.
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
use figures::{Figures, FiguresBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// The `format` of the line-oriented bundle this code writes (and reads).
pub const BUNDLE_FORMAT: &str = "shuzhuan-evidence-bundle/2";

/// The `format` of the older single-JSON-document bundle (still read; written
/// only by [`Bundle::to_json`], kept as the benchmark baseline).
pub const BUNDLE_FORMAT_V1: &str = "shuzhuan-evidence-bundle/1";

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

/// An evidence bundle held in memory: one enterprise, one window. Small
/// bundles and tests use it; exports and verification of long windows
/// stream instead ([`BundleWriter`], [`verify_bundle_stream`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`BUNDLE_FORMAT`] or [`BUNDLE_FORMAT_V1`].
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

/// The first line of a line-oriented bundle: everything but the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    pub enterprise: CreditCode,
    /// Unix seconds, inclusive.
    pub window_start: i64,
    /// Unix seconds, exclusive.
    pub window_end: i64,
    pub log_public_key: String,
    pub checkpoint: SignedCheckpoint,
    pub enrolments: Vec<Enrolment>,
    pub enrolments_signature: String,
}

impl BundleHeader {
    /// The whole bundle: this header with its `entries`.
    pub fn into_bundle(self, entries: Vec<Entry>) -> Bundle {
        Bundle {
            format: self.format,
            enterprise: self.enterprise,
            window_start: self.window_start,
            window_end: self.window_end,
            log_public_key: self.log_public_key,
            checkpoint: self.checkpoint,
            enrolments: self.enrolments,
            enrolments_signature: self.enrolments_signature,
            entries,
        }
    }
}

/// One report line of a line-oriented bundle: the entry with its audit path
/// shortened by the nodes it shares with the previous line's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine {
    leaf_index: u64,
    report: SignedReport,
    /// The audit path's nodes nearest the leaf, up to the shared part.
    inclusion_proof: Vec<Hash32>,
    /// How many nodes from the end of the previous line's full audit path
    /// complete this one (0 or absent: the path is complete).
    #[serde(default, skip_serializing_if = "is_zero")]
    proof_reuse: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The last line of a line-oriented bundle: `{"trailer":{"entries":N}}`, so
/// a truncated file is told from a short window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailerLine {
    trailer: Trailer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    entries: u64,
}

/// Only the `format` of the first line, to tell the two formats apart.
#[derive(Deserialize)]
struct FormatProbe {
    format: String,
}

/// Writes a line-oriented bundle one entry at a time.
pub struct BundleWriter<W: Write> {
    out: W,
    prev_path: Vec<Hash32>,
    entries: u64,
    /// Audit-path nodes written and nodes saved by reuse (for benchmarks).
    pub proof_nodes_written: u64,
    pub proof_nodes_reused: u64,
}

impl<W: Write> BundleWriter<W> {
    /// Writes the header line (its `format` is set to [`BUNDLE_FORMAT`]).
    pub fn new(mut out: W, header: &BundleHeader) -> std::io::Result<Self> {
        let mut h = header.clone();
        h.format = BUNDLE_FORMAT.to_owned();
        serde_json::to_writer(&mut out, &h)?;
        out.write_all(b"\n")?;
        Ok(BundleWriter {
            out,
            prev_path: Vec::new(),
            entries: 0,
            proof_nodes_written: 0,
            proof_nodes_reused: 0,
        })
    }

    /// Writes one entry line; `entry.inclusion_proof` is the full audit path.
    pub fn entry(&mut self, entry: &Entry) -> std::io::Result<()> {
        let path = &entry.inclusion_proof;
        let shared = path
            .iter()
            .rev()
            .zip(self.prev_path.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let line = EntryLine {
            leaf_index: entry.leaf_index,
            report: entry.report.clone(),
            inclusion_proof: path[..path.len() - shared].to_vec(),
            proof_reuse: shared,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.proof_nodes_written += (path.len() - shared) as u64;
        self.proof_nodes_reused += shared as u64;
        self.prev_path.clone_from(path);
        self.entries += 1;
        Ok(())
    }

    /// Writes the trailer line and hands back the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        serde_json::to_writer(
            &mut self.out,
            &TrailerLine {
                trailer: Trailer {
                    entries: self.entries,
                },
            },
        )?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
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
    /// The figures of the extra windows the verifier was asked for (a
    /// claim's window and baseline), in the order asked (not serialized).
    #[serde(skip)]
    pub windows: Vec<Figures>,
}

impl BundleVerdict {
    /// The figures of exactly `start..end`, when the verifier computed them.
    pub fn figures_for(&self, start: i64, end: i64) -> Option<&Figures> {
        std::iter::once(&self.figures)
            .chain(&self.windows)
            .find(|f| f.window_start == start && f.window_end == end)
    }
}

/// Why a bundle cannot even be read or built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not valid JSON for its format: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bundle header (line 1): {0}")]
    Header(String),
    #[error("reading the bundle: {0}")]
    Io(#[from] std::io::Error),
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
    /// Reads a format 1 bundle (one JSON document).
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The format 1 form: one JSON document (the whole bundle in memory).
    pub fn to_json(&self) -> Vec<u8> {
        let mut b = self.clone();
        b.format = BUNDLE_FORMAT_V1.to_owned();
        serde_json::to_vec(&b).expect("a bundle always serializes")
    }

    /// Everything but the entries.
    pub fn header(&self) -> BundleHeader {
        BundleHeader {
            format: BUNDLE_FORMAT.to_owned(),
            enterprise: self.enterprise.clone(),
            window_start: self.window_start,
            window_end: self.window_end,
            log_public_key: self.log_public_key.clone(),
            checkpoint: self.checkpoint.clone(),
            enrolments: self.enrolments.clone(),
            enrolments_signature: self.enrolments_signature.clone(),
        }
    }

    /// Writes the line-oriented form (format 2).
    pub fn write_lines<W: Write>(&self, out: W) -> std::io::Result<W> {
        let mut w = BundleWriter::new(out, &self.header())?;
        for e in &self.entries {
            w.entry(e)?;
        }
        w.finish()
    }

    /// The line-oriented form (format 2) as bytes.
    pub fn to_lines(&self) -> Vec<u8> {
        self.write_lines(Vec::new())
            .expect("writing to memory cannot fail")
    }

    /// Reads either format into memory (for small bundles and tests). A
    /// format 2 file must be well formed line by line.
    pub fn read(mut input: impl BufRead) -> Result<Bundle, BundleError> {
        let mut first = Vec::new();
        input.read_until(b'\n', &mut first)?;
        let probe: FormatProbe =
            serde_json::from_slice(&first).map_err(|e| BundleError::Header(e.to_string()))?;
        if probe.format == BUNDLE_FORMAT_V1 {
            let mut rest = Vec::new();
            input.read_to_end(&mut rest)?;
            first.extend_from_slice(&rest);
            return Bundle::from_json(&first);
        }
        let h: BundleHeader =
            serde_json::from_slice(&first).map_err(|e| BundleError::Header(e.to_string()))?;
        let mut entries = Vec::new();
        let mut prev: Vec<Hash32> = Vec::new();
        for line in input.lines() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_str::<EntryLine>(&line) {
                Ok(l) => {
                    let e = expand(l, &prev);
                    prev.clone_from(&e.inclusion_proof);
                    entries.push(e);
                }
                Err(e) => {
                    if serde_json::from_str::<TrailerLine>(&line).is_ok() {
                        break;
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(h.into_bundle(entries))
    }
}

/// The full entry of a line: its own path nodes, then the last
/// `proof_reuse` nodes of the previous line's full path (as many as exist;
/// a path made short by a bad `proof_reuse` fails its inclusion check).
fn expand(l: EntryLine, prev: &[Hash32]) -> Entry {
    let mut proof = l.inclusion_proof;
    let k = l.proof_reuse.min(prev.len());
    proof.extend_from_slice(&prev[prev.len() - k..]);
    Entry {
        leaf_index: l.leaf_index,
        report: l.report,
        inclusion_proof: proof,
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

/// Verifies an in-memory `bundle` against the log key the verifier trusts,
/// then recomputes its figures from the reports that pass.
pub fn verify_bundle(bundle: &Bundle, trusted_log_key: &VerifyingKey) -> BundleVerdict {
    verify_bundle_windows(bundle, trusted_log_key, &[])
}

/// [`verify_bundle`], also computing the figures of each of `windows`
/// (found afterwards with [`BundleVerdict::figures_for`]).
pub fn verify_bundle_windows(
    bundle: &Bundle,
    trusted_log_key: &VerifyingKey,
    windows: &[(i64, i64)],
) -> BundleVerdict {
    let mut header = bundle.header();
    header.format.clone_from(&bundle.format);
    let mut v = StreamVerifier::new(header, trusted_log_key, windows);
    for e in &bundle.entries {
        v.entry(e);
    }
    v.finish()
}

/// Verifies a bundle read from `input` one line at a time (format 2), or as
/// one document (format 1), in memory bounded by the number of agents and
/// devices rather than of reports. Fails only when the header cannot be
/// read; every later defect is a [`Problem`] of the verdict.
pub fn verify_bundle_stream(
    mut input: impl BufRead,
    trusted_log_key: &VerifyingKey,
    windows: &[(i64, i64)],
) -> Result<BundleVerdict, BundleError> {
    let mut first = Vec::new();
    input.read_until(b'\n', &mut first)?;
    let probe: FormatProbe =
        serde_json::from_slice(&first).map_err(|e| BundleError::Header(e.to_string()))?;
    if probe.format == BUNDLE_FORMAT_V1 {
        let mut rest = Vec::new();
        input.read_to_end(&mut rest)?;
        first.extend_from_slice(&rest);
        let b = Bundle::from_json(&first)?;
        return Ok(verify_bundle_windows(&b, trusted_log_key, windows));
    }
    let header: BundleHeader =
        serde_json::from_slice(&first).map_err(|e| BundleError::Header(e.to_string()))?;
    let mut v = StreamVerifier::new(header, trusted_log_key, windows);
    let mut prev: Vec<Hash32> = Vec::new();
    let mut trailer: Option<u64> = None;
    let mut line = String::new();
    let mut number = 1u64;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        if let Some(n) = trailer {
            v.problems.push(problem(
                ProblemKind::Format,
                format!("line {number}: text after the trailer line (which counted {n} entries)"),
            ));
            break;
        }
        match serde_json::from_str::<EntryLine>(text) {
            Ok(l) => {
                let e = expand(l, &prev);
                v.entry(&e);
                prev = e.inclusion_proof;
            }
            Err(err) => match serde_json::from_str::<TrailerLine>(text) {
                Ok(t) => trailer = Some(t.trailer.entries),
                Err(_) => {
                    v.entries += 1;
                    v.problems.push(problem(
                        ProblemKind::Malformed,
                        format!("line {number} is not an entry of format {BUNDLE_FORMAT}: {err}"),
                    ));
                }
            },
        }
    }
    match trailer {
        None => v.problems.push(problem(
            ProblemKind::Format,
            "the bundle ends without its trailer line: it is truncated",
        )),
        Some(n) if n != v.entries => v.problems.push(problem(
            ProblemKind::Format,
            format!(
                "the trailer counts {n} entries, the bundle holds {}",
                v.entries
            ),
        )),
        Some(_) => {}
    }
    Ok(v.finish())
}

/// Checks a bundle entry by entry and folds the accepted reports into the
/// figures of the bundle's window and of any extra windows. Memory grows
/// with agents, devices and problems found, not with reports.
pub struct StreamVerifier {
    header: BundleHeader,
    keys: BTreeMap<String, Vec<(Enrolment, VerifyingKey)>>,
    heads: BTreeMap<String, ChainHead>,
    last_index: Option<u64>,
    problems: Vec<Problem>,
    entries: u64,
    accepted: u64,
    figures: FiguresBuilder,
    windows: Vec<FiguresBuilder>,
}

impl StreamVerifier {
    /// Runs the bundle-level checks (V1 to V4) on `header`.
    pub fn new(
        header: BundleHeader,
        trusted_log_key: &VerifyingKey,
        windows: &[(i64, i64)],
    ) -> StreamVerifier {
        let mut problems = Vec::new();
        if header.format != BUNDLE_FORMAT && header.format != BUNDLE_FORMAT_V1 {
            problems.push(problem(
                ProblemKind::Format,
                format!(
                    "format is `{}`, this verifier reads `{BUNDLE_FORMAT}` and `{BUNDLE_FORMAT_V1}`",
                    header.format
                ),
            ));
        }
        if header.window_end <= header.window_start {
            problems.push(problem(
                ProblemKind::Format,
                format!(
                    "window {}..{} is empty or reversed",
                    header.window_start, header.window_end
                ),
            ));
        }
        if verifying_key_from_b64(&header.log_public_key) != Some(*trusted_log_key) {
            problems.push(problem(
                ProblemKind::LogKey,
                format!(
                    "bundle names log key {}, which is not the trusted log key",
                    header.log_public_key
                ),
            ));
        }
        let cp = &header.checkpoint.checkpoint;
        if let Err(e) = header.checkpoint.verify(trusted_log_key) {
            problems.push(problem(
                ProblemKind::Checkpoint,
                format!("checkpoint at size {}: {e}", cp.size),
            ));
        }
        let body = enrolments_body(&header.enterprise, cp.size, &header.enrolments);
        if !verify_sig(
            trusted_log_key,
            body.as_bytes(),
            &header.enrolments_signature,
        ) {
            problems.push(problem(
                ProblemKind::Enrolments,
                "enrolment records do not match the log's signature over them",
            ));
        }
        let mut keys: BTreeMap<String, Vec<(Enrolment, VerifyingKey)>> = BTreeMap::new();
        for e in &header.enrolments {
            match verifying_key_from_b64(&e.public_key) {
                Some(k) => keys
                    .entry(e.agent_id.clone())
                    .or_default()
                    .push((e.clone(), k)),
                None => problems.push(problem(
                    ProblemKind::Enrolments,
                    format!(
                        "agent `{}`: enrolled key `{}` is not an Ed25519 key",
                        e.agent_id, e.public_key
                    ),
                )),
            }
        }
        let figures =
            FiguresBuilder::new(header.window_start, header.window_end, &header.enrolments);
        let windows = windows
            .iter()
            .map(|&(s, e)| FiguresBuilder::new(s, e, &header.enrolments))
            .collect();
        StreamVerifier {
            header,
            keys,
            heads: BTreeMap::new(),
            last_index: None,
            problems,
            entries: 0,
            accepted: 0,
            figures,
            windows,
        }
    }

    /// Checks one entry (R1 to R8) and, when it passes, adds its report to
    /// the figures. `entry.inclusion_proof` is the full audit path.
    pub fn entry(&mut self, entry: &Entry) {
        self.entries += 1;
        let Some(verified) = self.check(entry) else {
            return;
        };
        self.accepted += 1;
        self.figures.add(&verified.report);
        for w in &mut self.windows {
            w.add(&verified.report);
        }
    }

    /// The checks of one entry; the verified report when it enters the figures.
    fn check(&mut self, entry: &Entry) -> Option<VerifiedReport> {
        let at = |kind, agent: Option<&str>, seq: Option<u64>, message: String| Problem {
            kind,
            leaf_index: Some(entry.leaf_index),
            agent_id: agent.map(str::to_owned),
            seq,
            message,
        };
        if self.last_index.is_some_and(|l| entry.leaf_index <= l) {
            self.problems.push(at(
                ProblemKind::Order,
                None,
                None,
                format!(
                    "leaf {} follows leaf {}: entries must ascend",
                    entry.leaf_index,
                    self.last_index.unwrap_or(0)
                ),
            ));
        }
        self.last_index = Some(entry.leaf_index);

        let (report, payload) = match entry.report.peek() {
            Ok(p) => p,
            Err(e) => {
                self.problems
                    .push(at(ProblemKind::Malformed, None, None, e.to_string()));
                return None;
            }
        };
        let (agent, seq) = (report.agent_id.as_str(), report.seq);
        let mut fine = true;
        let Some(candidates) = self.keys.get(agent) else {
            self.problems.push(at(
                ProblemKind::UnknownAgent,
                Some(agent),
                Some(seq),
                format!("agent `{agent}` has no enrolment in the bundle"),
            ));
            return None;
        };
        let verified = candidates
            .iter()
            .find_map(|(e, k)| entry.report.verify(k).ok().map(|v| (e.clone(), v)));
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
            self.problems.push(at(
                ProblemKind::Signature,
                Some(agent),
                Some(seq),
                format!("report {seq} of agent `{agent}`: no enrolled key verifies it ({why})"),
            ));
            // Anchor the chain on the unverified payload, so the next report
            // is judged by whether it links to what is actually here.
            self.heads.insert(
                agent.to_owned(),
                ChainHead {
                    seq,
                    hash: Hash32::of(&payload),
                },
            );
            return None;
        };
        if let Some(rev) = enrolment.revoked_at {
            if rev <= report.window_end {
                fine = false;
                self.problems.push(at(
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
        if report.enterprise != self.header.enterprise
            || enrolment.enterprise != self.header.enterprise
        {
            fine = false;
            self.problems.push(at(
                ProblemKind::Enterprise,
                Some(agent),
                Some(seq),
                format!(
                    "report {seq} of agent `{agent}` is for enterprise {}, the bundle is for {}",
                    report.enterprise, self.header.enterprise
                ),
            ));
        }
        if report.window_start < self.header.window_start
            || report.window_end > self.header.window_end
        {
            fine = false;
            self.problems.push(at(
                ProblemKind::Window,
                Some(agent),
                Some(seq),
                format!(
                    "report {seq} of agent `{agent}` covers {}..{}, outside the bundle's window {}..{}",
                    report.window_start, report.window_end, self.header.window_start, self.header.window_end
                ),
            ));
        }
        let leaf = report_leaf_hash(&payload);
        if let Err(e) = merkle::verify_inclusion(
            &leaf,
            entry.leaf_index,
            self.header.checkpoint.checkpoint.size,
            &entry.inclusion_proof,
            &self.header.checkpoint.checkpoint.root_hash,
        ) {
            fine = false;
            self.problems.push(at(
                ProblemKind::Inclusion,
                Some(agent),
                Some(seq),
                format!("report {seq} of agent `{agent}`: {e}"),
            ));
        }
        // The first report of an agent in the bundle anchors its chain: its
        // own predecessor lies before the window. Every later one must follow.
        let head = self.heads.get(agent).copied().unwrap_or(ChainHead {
            seq: seq.saturating_sub(1),
            hash: report.prev_hash,
        });
        let head = if seq == 1 && !self.heads.contains_key(agent) {
            None
        } else {
            Some(head)
        };
        match follow(head, &report, verified.hash) {
            Ok(h) => {
                self.heads.insert(agent.to_owned(), h);
            }
            Err(e) => {
                self.problems.push(at(
                    ProblemKind::Chain,
                    Some(agent),
                    Some(seq),
                    format!("agent `{agent}`: {e}"),
                ));
                // Re-anchor on this report so one break is reported once.
                self.heads.insert(
                    agent.to_owned(),
                    ChainHead {
                        seq,
                        hash: verified.hash,
                    },
                );
            }
        }
        fine.then_some(verified)
    }

    /// The verdict.
    pub fn finish(self) -> BundleVerdict {
        let untrusted = self.problems.iter().any(|p| p.kind.is_fatal());
        BundleVerdict {
            ok: self.problems.is_empty(),
            untrusted,
            enterprise: self.header.enterprise,
            window_start: self.header.window_start,
            window_end: self.header.window_end,
            checkpoint_size: self.header.checkpoint.checkpoint.size,
            entries: self.entries,
            reports_accepted: self.accepted,
            problems: self.problems,
            figures: self.figures.finish(),
            windows: self
                .windows
                .into_iter()
                .map(FiguresBuilder::finish)
                .collect(),
        }
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
