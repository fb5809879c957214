//! `POST /api/v1/reports` as a library function: parse the batch, find the
//! agent's key, verify every signature and window, then hand the batch to the
//! store, which checks the chain and stores it in one transaction.
//!
//! Everything CPU-bound (base64, Ed25519, JSON) happens before the store's
//! write lock is taken. A batch is refused as a whole: either every new
//! report in it is stored, or none is.

use crate::config::IngestLimits;
use crate::store::{AcceptHook, IngestOutcome, IngestReject, Store, StoreError};
use serde::Deserialize;
use shuzhuan_common::report::{verifying_key_from_b64, ReportError, SignedReport, VerifiedReport};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub reports: Vec<SignedReport>,
}

/// Why a batch was refused, with the HTTP status and code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("request body is not a report batch: {0}")]
    Malformed(String),
    #[error("report {index} in the batch: {source}")]
    BadReport { index: usize, source: ReportError },
    #[error("report {index} in the batch: schema version {schema} is not supported (this aggregator reads schema 1)")]
    Schema { index: usize, schema: u32 },
    #[error("batch is empty")]
    Empty,
    #[error("batch has {got} reports, at most {max} are accepted per request")]
    TooMany { got: usize, max: usize },
    #[error("request body exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("a batch must come from one agent, but it holds reports from `{0}` and `{1}`")]
    MixedAgents(String, String),
    #[error("agent `{0}` is not enrolled")]
    UnknownAgent(String),
    #[error("agent `{0}` has been revoked")]
    RevokedAgent(String),
    #[error("report {index} (seq {seq}): signature does not verify against agent `{agent_id}`'s enrolled key")]
    BadSignature {
        index: usize,
        seq: u64,
        agent_id: String,
    },
    #[error("report seq {seq} names enterprise {got}, but agent `{agent_id}` is enrolled for {enrolled}")]
    WrongEnterprise {
        seq: u64,
        agent_id: String,
        got: String,
        enrolled: String,
    },
    #[error("report seq {seq}: window ends {ahead_secs} s ahead of the aggregator's clock (at most {max} s allowed)")]
    Future { seq: u64, ahead_secs: i64, max: i64 },
    #[error(
        "report seq {seq}: window started {age_days} days ago, older than the {max_days}-day limit"
    )]
    TooOld {
        seq: u64,
        age_days: i64,
        max_days: i64,
    },
    #[error("reports in a batch must be in seq order: seq {after} follows seq {before}")]
    Order { before: u64, after: u64 },
    #[error(transparent)]
    Rejected(#[from] IngestReject),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// HTTP status per docs/dev/contracts.md.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::Malformed(_)
            | IngestError::BadReport { .. }
            | IngestError::Schema { .. }
            | IngestError::Empty
            | IngestError::MixedAgents(..)
            | IngestError::Order { .. } => 400,
            IngestError::UnknownAgent(_)
            | IngestError::RevokedAgent(_)
            | IngestError::BadSignature { .. }
            | IngestError::WrongEnterprise { .. } => 401,
            IngestError::Rejected(IngestReject::Store(_)) | IngestError::Store(_) => 503,
            IngestError::Rejected(_) => 409,
            IngestError::TooMany { .. } | IngestError::TooLarge { .. } => 413,
            IngestError::Future { .. } | IngestError::TooOld { .. } => 422,
        }
    }

    /// Stable snake_case code, also the `reason` label of the reject counter.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::BadReport { .. } => "malformed_report",
            IngestError::Schema { .. } => "unsupported_schema",
            IngestError::Empty => "empty_batch",
            IngestError::TooMany { .. } => "batch_too_large",
            IngestError::TooLarge { .. } => "body_too_large",
            IngestError::MixedAgents(..) => "mixed_agents",
            IngestError::UnknownAgent(_) => "unknown_agent",
            IngestError::RevokedAgent(_) => "revoked_agent",
            IngestError::BadSignature { .. } => "bad_signature",
            IngestError::WrongEnterprise { .. } => "wrong_enterprise",
            IngestError::Future { .. } => "window_in_future",
            IngestError::TooOld { .. } => "window_too_old",
            IngestError::Order { .. } => "out_of_order",
            IngestError::Rejected(IngestReject::Gap { .. }) => "chain_gap",
            IngestError::Rejected(IngestReject::Fork { .. }) => "chain_fork",
            IngestError::Rejected(IngestReject::BadLink { .. }) => "chain_fork",
            IngestError::Rejected(IngestReject::Chain { .. }) => "chain_invalid",
            IngestError::Rejected(IngestReject::Store(_)) | IngestError::Store(_) => {
                "store_unavailable"
            }
        }
    }

    /// The seq the aggregator expects next, for chain errors.
    pub fn expected_seq(&self) -> Option<u64> {
        match self {
            IngestError::Rejected(IngestReject::Gap { expected, .. })
            | IngestError::Rejected(IngestReject::BadLink { expected, .. })
            | IngestError::Rejected(IngestReject::Chain { expected, .. }) => Some(*expected),
            _ => None,
        }
    }
}

/// Parses and verifies a batch, then stores it. `now` is the server clock
/// (Unix seconds).
pub fn ingest(
    store: &dyn Store,
    hook: &dyn AcceptHook,
    limits: &IngestLimits,
    utc_offset_secs: i64,
    body: &[u8],
    now: i64,
) -> Result<IngestOutcome, IngestError> {
    if body.len() > limits.max_body_bytes {
        return Err(IngestError::TooLarge {
            max: limits.max_body_bytes,
        });
    }
    let batch: Batch =
        serde_json::from_slice(body).map_err(|e| IngestError::Malformed(e.to_string()))?;
    if batch.reports.is_empty() {
        return Err(IngestError::Empty);
    }
    if batch.reports.len() > limits.max_batch {
        return Err(IngestError::TooMany {
            got: batch.reports.len(),
            max: limits.max_batch,
        });
    }
    // The first report names the agent; its key verifies every report.
    let (first, _) = batch.reports[0].peek().map_err(|e| classify(0, e))?;
    let agent_id = first.agent_id;
    let agent = store
        .agent(&agent_id)?
        .ok_or_else(|| IngestError::UnknownAgent(agent_id.clone()))?;
    let key_b64 = match (&agent.revoked_at, &agent.active_key) {
        (None, Some(k)) => k.clone(),
        _ => return Err(IngestError::RevokedAgent(agent_id)),
    };
    let key = verifying_key_from_b64(&key_b64).ok_or_else(|| {
        StoreError::Corrupt(format!("agent `{agent_id}` key is not an Ed25519 key"))
    })?;
    // Signatures are checked (and payloads parsed) on all cores at once; the
    // results are then examined in batch order, so the error reported is the
    // one the first bad report gives, as if checked one by one.
    let checked = verify_all(&batch.reports, &key);
    let mut verified: Vec<(VerifiedReport, String)> = Vec::with_capacity(batch.reports.len());
    for (index, (sr, checked)) in batch.reports.into_iter().zip(checked).enumerate() {
        let vr = match checked {
            Ok(vr) => vr,
            Err(ReportError::BadSignature) | Err(ReportError::SignatureEncoding) => {
                let seq = sr.peek().map(|(r, _)| r.seq).unwrap_or(0);
                return Err(IngestError::BadSignature {
                    index,
                    seq,
                    agent_id,
                });
            }
            Err(e) => return Err(classify(index, e)),
        };
        let r = &vr.report;
        if r.agent_id != agent_id {
            return Err(IngestError::MixedAgents(agent_id, r.agent_id.clone()));
        }
        if r.enterprise.as_str() != agent.enterprise {
            return Err(IngestError::WrongEnterprise {
                seq: r.seq,
                agent_id,
                got: r.enterprise.to_string(),
                enrolled: agent.enterprise,
            });
        }
        if r.window_end - now > limits.max_future_secs {
            return Err(IngestError::Future {
                seq: r.seq,
                ahead_secs: r.window_end - now,
                max: limits.max_future_secs,
            });
        }
        if now - r.window_start > limits.max_age_secs {
            return Err(IngestError::TooOld {
                seq: r.seq,
                age_days: (now - r.window_start) / 86_400,
                max_days: limits.max_age_secs / 86_400,
            });
        }
        if let Some((prev, _)) = verified.last() {
            if r.seq < prev.report.seq {
                return Err(IngestError::Order {
                    before: prev.report.seq,
                    after: r.seq,
                });
            }
        }
        verified.push((vr, sr.signature));
    }
    match store.ingest_batch(&agent_id, &verified, now, utc_offset_secs, hook) {
        Ok(o) => Ok(o),
        Err(IngestReject::Gap {
            agent_id,
            expected,
            got,
        }) => {
            // The gap is recorded outside the refused batch so the bureau sees it.
            store.record_gap(&agent_id, expected, got, now)?;
            Err(IngestReject::Gap {
                agent_id,
                expected,
                got,
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Most threads one batch's verification uses.
const MAX_VERIFY_THREADS: usize = 8;

/// `SignedReport::verify` of every report, in order, spread over the
/// machine's cores (scoped threads, one contiguous slice each).
fn verify_all(
    reports: &[SignedReport],
    key: &ed25519_dalek::VerifyingKey,
) -> Vec<Result<VerifiedReport, ReportError>> {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_VERIFY_THREADS)
    });
    let threads = cores.min(reports.len());
    if threads <= 1 {
        return reports.iter().map(|sr| sr.verify(key)).collect();
    }
    let per = reports.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = reports.chunks(per);
        // The calling thread takes the first slice itself.
        let first = chunks.next().unwrap_or(&[]);
        let handles: Vec<_> = chunks
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|sr| sr.verify(key)).collect::<Vec<_>>())
            })
            .collect();
        let mut out: Vec<_> = first.iter().map(|sr| sr.verify(key)).collect();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

fn classify(index: usize, e: ReportError) -> IngestError {
    match e {
        ReportError::Schema(schema) => IngestError::Schema { index, schema },
        other => IngestError::BadReport {
            index,
            source: other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::secret_hash;
    use crate::store::{NoHook, SqliteStore};
    use shuzhuan_common::credit_code::CreditCode;
    use shuzhuan_common::inventory::IndustryType;
    use shuzhuan_common::registry::{County, CountyKind, DeclaredRates, Enterprise, IndustryChain};
    use shuzhuan_common::report::{verifying_key_to_b64, Hash32, Report, SCHEMA_VERSION};
    use shuzhuan_common::state::{DeviceState, StateSeconds};
    use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, QualityFlag, WindowSummary};

    const NOW: i64 = 1_795_824_000;

    fn store_with_agent(key: &ed25519_dalek::SigningKey, code: &CreditCode) -> SqliteStore {
        let store = SqliteStore::in_memory().unwrap();
        store
            .upsert_counties(&[County {
                id: "c1".into(),
                name: "县".into(),
                name_en: "County".into(),
                kind: CountyKind::County,
                division_code: None,
            }])
            .unwrap();
        store
            .upsert_chains(&[IndustryChain {
                id: "ch1".into(),
                name: "链".into(),
                name_en: "Chain".into(),
                cluster: None,
                industry_type: IndustryType::Discrete,
            }])
            .unwrap();
        let ent = Enterprise {
            credit_code: code.clone(),
            name: "企业".into(),
            county: "c1".into(),
            chain: "ch1".into(),
            above_scale: true,
            industry_type: IndustryType::Discrete,
            rd_design_tools: None,
            declared: DeclaredRates {
                digitization: None,
                networking: None,
                key_process_nc: None,
            },
        };
        store.import_registry(&[ent], &[]).unwrap();
        store
            .create_enrol_token(&secret_hash("t"), code, NOW, NOW + 60)
            .unwrap();
        store
            .enroll(
                &secret_hash("t"),
                "gw-1",
                code,
                &verifying_key_to_b64(&key.verifying_key()),
                NOW,
            )
            .unwrap();
        store
    }

    /// Window rows of 120 devices (two multi-row INSERTs of 50 and 20 single
    /// rows) round-trip, energy and flags included, and a report repeated in
    /// its batch is stored and summed into the days once.
    #[test]
    fn window_rows_in_chunks_and_replays_summed_once() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let code = CreditCode::from_body("91411721000000001").unwrap();
        let store = store_with_agent(&key, &code);
        let mut prev = Hash32::GENESIS;
        let mut signed = Vec::new();
        for seq in 1..=2u64 {
            let start = NOW - 86_400 + seq as i64 * 900;
            let summaries = (0..120)
                .map(|i| {
                    let mut st = StateSeconds::default();
                    st.add(DeviceState::Productive, 600);
                    st.add(DeviceState::Standby, 300);
                    WindowSummary {
                        device_id: format!("d{i:03}"),
                        state_seconds: st,
                        nc_seconds: i,
                        energy: if i % 2 == 0 {
                            vec![EnergyDelta {
                                meter: format!("m{i}"),
                                carrier: "electricity".into(),
                                quantity: 1.5,
                                unit: "kWh".into(),
                                method: EnergyMethod::Counter,
                                exported: 0.0,
                            }]
                        } else {
                            vec![]
                        },
                        parts: (i % 3 == 0).then_some(u64::from(i)),
                        samples_expected: 900,
                        samples_received: 900,
                        flags: if i == 77 {
                            vec![QualityFlag::CounterReset]
                        } else {
                            vec![]
                        },
                    }
                })
                .collect();
            let r = Report {
                schema: SCHEMA_VERSION,
                agent_id: "gw-1".into(),
                enterprise: code.clone(),
                seq,
                prev_hash: prev,
                window_start: start,
                window_end: start + 900,
                created_at: start + 900,
                inventory: None,
                summaries,
            };
            let (sr, h) = r.sign(&key);
            prev = h;
            signed.push(sr);
        }
        // Report 2 twice: the second is a replay within the batch.
        signed.push(signed[1].clone());
        let body = serde_json::to_vec(&serde_json::json!({ "reports": signed })).unwrap();
        let o = ingest(
            &store,
            &NoHook,
            &IngestLimits::default(),
            8 * 3600,
            &body,
            NOW,
        )
        .unwrap();
        assert_eq!((o.accepted, o.duplicates, o.head_seq), (2, 1, 2));
        store
            .with_write_tx(|tx| {
                let n: i64 =
                    tx.query_row("SELECT COUNT(*) FROM window_summaries", [], |r| r.get(0))?;
                assert_eq!(n, 240);
                let (nc, parts, energy, flags): (i64, Option<i64>, Option<String>, String) = tx
                    .query_row(
                        "SELECT nc_seconds, parts, energy, flags FROM window_summaries
                         WHERE seq = 2 AND device_id = 'd078'",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )?;
                assert_eq!((nc, parts, flags.as_str()), (78, Some(78), ""));
                let e: Vec<EnergyDelta> = serde_json::from_str(&energy.unwrap()).unwrap();
                assert_eq!(e[0].meter, "m78");
                let (energy, flags): (Option<String>, String) = tx.query_row(
                    "SELECT energy, flags FROM window_summaries WHERE seq = 1 AND device_id = 'd077'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                assert_eq!((energy, flags.as_str()), (None, "counter_reset"));
                let (windows, productive): (i64, i64) = tx.query_row(
                    "SELECT windows, productive FROM device_days WHERE device_id = 'd119'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                assert_eq!((windows, productive), (2, 1200));
                let q: f64 = tx.query_row(
                    "SELECT quantity FROM device_day_energy WHERE device_id = 'd000'",
                    [],
                    |r| r.get(0),
                )?;
                assert_eq!(q, 3.0);
                Ok(())
            })
            .unwrap();
    }
}
