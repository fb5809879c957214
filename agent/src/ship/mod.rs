//! Report sealing, signing, enrolment and shipping to the aggregator.
//!
//! [`Sealer`] turns one window's summaries into the next report of the
//! agent's chain (`seq`, `prev_hash` from the spool's head), signs it and
//! stores it in the spool. [`run_shipper`] posts stored reports oldest first
//! in batches: 2xx acknowledges them, network errors, 5xx and 429 are retried
//! with capped exponential backoff and jitter, any other 4xx moves the batch
//! to `rejected/`.

pub mod http;
pub mod tls;

use crate::shutdown::Shutdown;
use crate::spool::{Spool, SpoolError};
use ed25519_dalek::SigningKey;
use prometheus::IntCounter;
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::Inventory;
use shuzhuan_common::report::{Hash32, Report, SCHEMA_VERSION};
use shuzhuan_common::summary::WindowSummary;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Builds and stores reports.
#[derive(Debug)]
pub struct Sealer {
    pub agent_id: String,
    pub enterprise: CreditCode,
    pub key: SigningKey,
}

impl Sealer {
    /// Seals the window's summaries into the next report and stores it
    /// (fsynced) in the spool. Returns the report's seq.
    pub fn seal(
        &self,
        spool: &Mutex<Spool>,
        window_start: i64,
        window_end: i64,
        created_at: i64,
        inventory: Option<Inventory>,
        summaries: Vec<WindowSummary>,
    ) -> Result<u64, SpoolError> {
        let mut spool = spool.lock().expect("spool lock");
        let (seq, prev) = match spool.head() {
            Some((s, h)) => (s + 1, Hash32(h)),
            None => (1, Hash32::GENESIS),
        };
        let report = Report {
            schema: SCHEMA_VERSION,
            agent_id: self.agent_id.clone(),
            enterprise: self.enterprise.clone(),
            seq,
            prev_hash: prev,
            window_start,
            window_end,
            created_at,
            inventory,
            summaries,
        };
        let (signed, hash) = report.sign(&self.key);
        let payload = serde_json::to_vec(&signed).expect("a signed report serializes");
        spool.append(seq, created_at, &hash.0, &payload)?;
        Ok(seq)
    }
}

/// How the shipper behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipOptions {
    /// Reports per POST (the aggregator's `max_batch`, default 256).
    pub max_batch: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Timeout of one POST.
    pub timeout: Duration,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            max_batch: 256,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }
}

/// What the aggregator answered to one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Acked,
    Retry(String),
    Rejected(String),
}

/// Classifies an HTTP answer: 2xx ack, 429 and 5xx retry, other statuses reject.
pub fn classify(res: Result<(u16, String), String>) -> Answer {
    match res {
        Err(e) => Answer::Retry(e),
        Ok((s, _)) if (200..300).contains(&s) => Answer::Acked,
        Ok((s, b)) if s == 429 || s >= 500 => Answer::Retry(format!("{s} {b}")),
        Ok((s, b)) => Answer::Rejected(format!("{s} {b}")),
    }
}

/// Sends one batch body and gives the raw answer (status and body, or a network error).
pub trait Transport: Send + Sync + 'static {
    fn post(&self, body: Vec<u8>) -> impl Future<Output = Result<(u16, String), String>> + Send;
}

/// The real transport: `POST {url}/api/v1/reports`.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    pub endpoint: http::Endpoint,
    pub timeout: Duration,
}

impl Transport for HttpTransport {
    async fn post(&self, body: Vec<u8>) -> Result<(u16, String), String> {
        http::post_json(&self.endpoint, "/api/v1/reports", body, self.timeout).await
    }
}

/// Counters the shipper bumps.
#[derive(Debug, Clone)]
pub struct ShipMetrics {
    pub shipped: IntCounter,
    pub rejected: IntCounter,
}

/// The delay before retry `attempt` (0-based): `initial × 2^attempt`, capped
/// at `max`, then a random 50–100 % of it so many agents do not retry in step.
pub fn backoff(opts: &ShipOptions, attempt: u32) -> Duration {
    let base = opts
        .backoff_initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(opts.backoff_max);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let frac = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 2.0;
    base.mul_f64(frac)
}

fn batch_body(records: &[crate::spool::record::Record]) -> Vec<u8> {
    let mut body = b"{\"reports\":[".to_vec();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&r.payload);
    }
    body.extend_from_slice(b"]}");
    body
}

/// Ships the spool until shutdown: oldest first, in batches, in order.
/// `wake` is notified when a report was sealed. On shutdown it makes one
/// last attempt to drain what is stored (no retries) and returns.
pub async fn run_shipper<T: Transport>(
    spool: Arc<Mutex<Spool>>,
    transport: T,
    opts: ShipOptions,
    metrics: ShipMetrics,
    wake: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let mut attempt = 0u32;
    loop {
        let batch = crate::blocking::off_runtime(|| {
            let s = spool.lock().expect("spool lock");
            s.pending(opts.max_batch)
        });
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                Vec::new()
            }
        };
        if batch.is_empty() {
            if shutdown.is_shutdown() {
                return;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = shutdown.recv() => {}
            }
            continue;
        }
        let answer = classify(transport.post(batch_body(&batch)).await);
        let last = batch.last().expect("non-empty");
        match answer {
            Answer::Acked => {
                attempt = 0;
                if let Err(e) = crate::blocking::off_runtime(|| {
                    spool
                        .lock()
                        .expect("spool lock")
                        .ack_through(last.seq, &last.hash)
                }) {
                    tracing::error!(error = %e, "cannot record the acknowledgement");
                }
                metrics.shipped.inc_by(batch.len() as u64);
                tracing::debug!(through = last.seq, n = batch.len(), "reports acknowledged");
            }
            Answer::Rejected(why) => {
                attempt = 0;
                tracing::warn!(first = batch[0].seq, last = last.seq, answer = %why, "aggregator refused reports: moved to rejected/");
                if let Err(e) = crate::blocking::off_runtime(|| {
                    spool
                        .lock()
                        .expect("spool lock")
                        .reject_through(&batch, &why)
                }) {
                    tracing::error!(error = %e, "cannot move refused reports aside");
                }
                metrics.rejected.inc_by(batch.len() as u64);
            }
            Answer::Retry(why) => {
                if shutdown.is_shutdown() {
                    return;
                }
                let d = backoff(&opts, attempt);
                attempt = attempt.saturating_add(1);
                tracing::info!(answer = %why, retry_in = ?d, "shipping failed, will retry");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.recv() => {}
                }
            }
        }
    }
}

/// Enrols the agent's key with the aggregator using a one-time token.
pub async fn enroll(
    endpoint: &http::Endpoint,
    token: &str,
    agent_id: &str,
    enterprise: &str,
    key: &SigningKey,
) -> anyhow::Result<String> {
    let body = serde_json::json!({
        "token": token,
        "agent_id": agent_id,
        "enterprise": enterprise,
        "public_key": shuzhuan_common::report::verifying_key_to_b64(&key.verifying_key()),
    });
    let (status, text) = http::post_json(
        endpoint,
        "/api/v1/enroll",
        serde_json::to_vec(&body)?,
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| anyhow::anyhow!("enrolment failed: {e}"))?;
    if (200..300).contains(&status) {
        Ok(text)
    } else {
        Err(anyhow::anyhow!("enrolment refused ({status}): {text}"))
    }
}

#[cfg(test)]
mod tests;
