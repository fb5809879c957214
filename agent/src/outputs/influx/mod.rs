//! The optional InfluxDB v2 sink (`[influxdb]`): every device's poll batch
//! and every sealed window summary as line protocol, written to
//! `/api/v2/write` in batches. Measurements, tags and fields are in
//! docs/specs/influx.md.
//!
//! The run loop only appends to an in-memory buffer ([`InfluxSink::push_batch`]
//! never waits), so acquisition never blocks on the database. A writer task
//! ([`run_writer`]) sends the oldest lines first: a 2xx removes them;
//! network errors, 5xx and 429 keep them and retry with capped exponential
//! backoff and jitter; any other 4xx logs the server's message with the
//! bucket, counts the batch as rejected and drops it (it would never be
//! accepted). The buffer holds at most `max_buffer_lines`; beyond it the
//! oldest lines are dropped and counted (`reason="buffer_full"`). The buffer
//! is memory only: lines still unsent when the agent stops after its final
//! flush attempt are counted with `reason="shutdown"`.

pub mod client;
pub mod disk;
pub mod line;

use crate::config::{InfluxBuffer, InfluxDbSection, Precision};
use crate::sample::{Quality, SampleBatch, Value};
use crate::shutdown::Shutdown;
use client::WriteTransport;
use line::{FieldValue, Point};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use shuzhuan_common::state::DeviceState;
use shuzhuan_common::summary::{QualityFlag, WindowSummary};
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The sink's metrics (names in docs/specs/influx.md).
#[derive(Debug, Clone)]
pub struct InfluxMetrics {
    pub written: IntCounter,
    pub dropped: IntCounterVec,
    pub errors: IntCounterVec,
    pub buffered: IntGauge,
    pub buffered_bytes: IntGauge,
}

impl InfluxMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<InfluxMetrics> {
        let m = InfluxMetrics {
            written: IntCounter::new(
                "shuzhuan_agent_influx_lines_written_total",
                "Lines the InfluxDB server acknowledged (2xx)",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "shuzhuan_agent_influx_lines_dropped_total",
                    "Lines given up, by reason (buffer_full, rejected, shutdown)",
                ),
                &["reason"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "shuzhuan_agent_influx_write_errors_total",
                    "Failed write requests, by class (network, server_error, throttled, rejected)",
                ),
                &["class"],
            )?,
            buffered: IntGauge::new(
                "shuzhuan_agent_influx_buffer_lines",
                "Lines waiting (in memory or in the disk buffer) for the InfluxDB server",
            )?,
            buffered_bytes: IntGauge::new(
                "shuzhuan_agent_influx_buffer_bytes",
                "Bytes of lines waiting in the disk buffer (0 with the memory buffer)",
            )?,
        };
        reg.register(Box::new(m.written.clone()))?;
        reg.register(Box::new(m.dropped.clone()))?;
        reg.register(Box::new(m.errors.clone()))?;
        reg.register(Box::new(m.buffered.clone()))?;
        reg.register(Box::new(m.buffered_bytes.clone()))?;
        Ok(m)
    }
}

/// Lines waiting, oldest first; `base` is the sequence number of the front
/// line, so a batch sent while the front was dropped for room is removed
/// only as far as it still is in the buffer.
#[derive(Debug, Default)]
struct Buffer {
    lines: VecDeque<String>,
    base: u64,
}

/// Where a peeked batch sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Sequence number of the batch's first line in the memory buffer.
    Memory(u64),
    Disk(disk::DiskToken),
}

/// Shared between the run loop (producer) and the writer task.
#[derive(Debug)]
pub struct Shared {
    buf: Mutex<Buffer>,
    /// Set with `buffer = "disk"`: lines go here instead of `buf`.
    disk: Option<Mutex<disk::DiskQueue>>,
    notify: Notify,
    max_lines: usize,
    batch_lines: usize,
    metrics: InfluxMetrics,
}

impl Shared {
    pub fn new(max_lines: usize, batch_lines: usize, metrics: InfluxMetrics) -> Shared {
        Shared {
            buf: Mutex::new(Buffer::default()),
            disk: None,
            notify: Notify::new(),
            max_lines: max_lines.max(1),
            batch_lines: batch_lines.max(1),
            metrics,
        }
    }

    /// A sink buffering on disk in `queue`.
    pub fn with_disk(queue: disk::DiskQueue, batch_lines: usize, metrics: InfluxMetrics) -> Shared {
        metrics.buffered.set(queue.lines() as i64);
        metrics.buffered_bytes.set(queue.bytes() as i64);
        let mut s = Shared::new(usize::MAX, batch_lines, metrics);
        s.disk = Some(Mutex::new(queue));
        s
    }

    /// Appends lines; never waits on the network.
    pub fn push(&self, lines: impl IntoIterator<Item = String>) {
        if let Some(d) = &self.disk {
            let lines: Vec<String> = lines.into_iter().collect();
            let mut q = d.lock().expect("influx disk lock");
            match q.append(&lines) {
                Ok(0) => {}
                Ok(n) => self
                    .metrics
                    .dropped
                    .with_label_values(&["buffer_full"])
                    .inc_by(n),
                Err(e) => {
                    self.metrics
                        .dropped
                        .with_label_values(&["disk_error"])
                        .inc_by(lines.len() as u64);
                    tracing::error!(error = %e, lines = lines.len(), "InfluxDB disk buffer: cannot append; lines dropped");
                }
            }
            self.metrics.buffered.set(q.lines() as i64);
            self.metrics.buffered_bytes.set(q.bytes() as i64);
            let full = q.lines() >= self.batch_lines as u64;
            drop(q);
            if full {
                self.notify.notify_one();
            }
            return;
        }
        let mut b = self.buf.lock().expect("influx buffer lock");
        let mut dropped = 0u64;
        for l in lines {
            b.lines.push_back(l);
            if b.lines.len() > self.max_lines {
                b.lines.pop_front();
                b.base += 1;
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.metrics
                .dropped
                .with_label_values(&["buffer_full"])
                .inc_by(dropped);
        }
        self.metrics.buffered.set(b.lines.len() as i64);
        let full = b.lines.len() >= self.batch_lines;
        drop(b);
        if full {
            self.notify.notify_one();
        }
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        if let Some(d) = &self.disk {
            return d.lock().expect("influx disk lock").lines() as usize;
        }
        self.buf.lock().expect("influx buffer lock").lines.len()
    }

    /// Whether lines stay on disk over a restart.
    pub fn is_disk(&self) -> bool {
        self.disk.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oldest batch: where it sits, its line count and body.
    fn peek(&self) -> Option<(Token, usize, String)> {
        if let Some(d) = &self.disk {
            return match d.lock().expect("influx disk lock").peek(self.batch_lines) {
                Ok(p) => p.map(|(t, n, body)| (Token::Disk(t), n, body)),
                Err(e) => {
                    tracing::error!(error = %e, "InfluxDB disk buffer: cannot read");
                    None
                }
            };
        }
        let b = self.buf.lock().expect("influx buffer lock");
        if b.lines.is_empty() {
            return None;
        }
        let n = b.lines.len().min(self.batch_lines);
        let mut body = String::new();
        for l in b.lines.iter().take(n) {
            body.push_str(l);
            body.push('\n');
        }
        Some((Token::Memory(b.base), n, body))
    }

    /// Removes what is left of a sent batch; returns how many lines that was.
    fn remove(&self, token: Token, n: usize) -> u64 {
        let first = match token {
            Token::Memory(first) => first,
            Token::Disk(t) => {
                let mut q = self
                    .disk
                    .as_ref()
                    .expect("a disk buffer")
                    .lock()
                    .expect("influx disk lock");
                let k = q.ack(t, n);
                self.metrics.buffered.set(q.lines() as i64);
                self.metrics.buffered_bytes.set(q.bytes() as i64);
                return k;
            }
        };
        let mut b = self.buf.lock().expect("influx buffer lock");
        let end = first + n as u64;
        let k = end.saturating_sub(b.base).min(b.lines.len() as u64);
        b.lines.drain(..k as usize);
        b.base += k;
        self.metrics.buffered.set(b.lines.len() as i64);
        k
    }
}

/// Builds lines from the agent's data (the run loop's handle).
#[derive(Debug, Clone)]
pub struct InfluxSink {
    pub shared: Arc<Shared>,
    agent: String,
    prefix: String,
    precision: Precision,
    samples: bool,
    windows: bool,
}

/// Field names the sample line sets itself; a tag of the same name is left out.
const SAMPLE_FIXED: &[&str] = &["reachable", "state_code", "power_kw", "bad_tags"];

/// A device tag name as a field key: `time` is reserved by InfluxDB.
fn field_key(name: &str) -> String {
    if name == "time" {
        "time_".to_owned()
    } else {
        name.to_owned()
    }
}

impl InfluxSink {
    pub fn new(cfg: &InfluxDbSection, agent: &str, shared: Arc<Shared>) -> InfluxSink {
        InfluxSink {
            shared,
            agent: agent.to_owned(),
            prefix: cfg.measurement_prefix.clone(),
            precision: cfg.precision,
            samples: cfg.samples,
            windows: cfg.windows,
        }
    }

    /// The line of one device's poll batch: the model's state and power
    /// after feeding it, and every tag value that came back good or uncertain.
    pub fn sample_line(
        &self,
        b: &SampleBatch,
        state: DeviceState,
        power_kw: Option<f64>,
    ) -> Option<String> {
        let mut p = Point::new(
            format!("{}device", self.prefix),
            self.precision.from_ms(b.ts_ms),
        )
        .tag("agent", &*self.agent)
        .tag("device", &*b.device)
        .tag("state", state.as_str())
        .field("reachable", FieldValue::Bool(b.reachable))
        .field("state_code", FieldValue::Int(state.index() as i64));
        if let Some(kw) = power_kw {
            p = p.field("power_kw", FieldValue::Float(kw));
        }
        let mut seen: BTreeSet<String> = SAMPLE_FIXED.iter().map(|s| (*s).to_owned()).collect();
        let mut bad = 0i64;
        for s in &b.samples {
            let Some(v) = s
                .value
                .as_ref()
                .filter(|_| !matches!(s.quality, Quality::Bad(_)))
            else {
                bad += 1;
                continue;
            };
            let key = field_key(&s.tag);
            if !seen.insert(key.clone()) {
                continue;
            }
            let fv = match v {
                Value::Number(n) => FieldValue::Float(*n),
                Value::Bool(x) => FieldValue::Bool(*x),
                Value::Text(t) => FieldValue::Str(t.clone()),
            };
            p = p.field(key, fv);
        }
        p = p.field("bad_tags", FieldValue::Int(bad));
        p.encode()
    }

    /// The lines of one sealed window: one `window` line per device and one
    /// `window_energy` line per meter and carrier, stamped with the window start.
    pub fn window_lines(
        &self,
        start_ms: i64,
        end_ms: i64,
        summaries: &[WindowSummary],
    ) -> Vec<String> {
        let ts = self.precision.from_ms(start_ms);
        let mut out = Vec::new();
        for s in summaries {
            let mut p = Point::new(format!("{}window", self.prefix), ts)
                .tag("agent", &*self.agent)
                .tag("device", &*s.device_id)
                .field(
                    "window_secs",
                    FieldValue::Int((end_ms - start_ms).div_euclid(1000)),
                )
                .field(
                    "partial",
                    FieldValue::Bool(s.flags.contains(&QualityFlag::PartialWindow)),
                );
            for st in DeviceState::ALL {
                p = p.field(
                    format!("seconds_{}", st.as_str()),
                    FieldValue::Int(i64::from(s.state_seconds.get(st))),
                );
            }
            p = p
                .field("nc_seconds", FieldValue::Int(i64::from(s.nc_seconds)))
                .field(
                    "samples_expected",
                    FieldValue::Int(i64::from(s.samples_expected)),
                )
                .field(
                    "samples_received",
                    FieldValue::Int(i64::from(s.samples_received)),
                );
            if let Some(parts) = s.parts {
                p = p.field(
                    "parts",
                    FieldValue::Int(i64::try_from(parts).unwrap_or(i64::MAX)),
                );
            }
            let kwh: f64 = s
                .energy
                .iter()
                .filter(|e| e.carrier == "electricity")
                .map(|e| e.quantity)
                .sum();
            if s.energy.iter().any(|e| e.carrier == "electricity") {
                p = p.field("electricity_kwh", FieldValue::Float(kwh));
            }
            if !s.flags.is_empty() {
                let flags: Vec<String> = s
                    .flags
                    .iter()
                    .map(|f| {
                        serde_json::to_value(f)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    })
                    .collect();
                p = p.field("flags", FieldValue::Str(flags.join(",")));
            }
            out.extend(p.encode());
            for e in &s.energy {
                let method = serde_json::to_value(e.method)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let mut p = Point::new(format!("{}window_energy", self.prefix), ts)
                    .tag("agent", &*self.agent)
                    .tag("device", &*s.device_id)
                    .tag("meter", &*e.meter)
                    .tag("carrier", &*e.carrier)
                    .tag("unit", &*e.unit)
                    .tag("method", method)
                    .field("quantity", FieldValue::Float(e.quantity));
                if e.exported != 0.0 {
                    p = p.field("exported", FieldValue::Float(e.exported));
                }
                out.extend(p.encode());
            }
        }
        out
    }

    /// Called by the run loop for every batch it fed to the model.
    pub fn push_batch(&self, b: &SampleBatch, state: DeviceState, power_kw: Option<f64>) {
        if self.samples {
            self.shared.push(self.sample_line(b, state, power_kw));
        }
    }

    /// Called by the run loop for every sealed window.
    pub fn push_window(&self, start_ms: i64, end_ms: i64, s: &[WindowSummary]) {
        if self.windows {
            self.shared.push(self.window_lines(start_ms, end_ms, s));
        }
    }
}

/// How the writer paces itself.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub flush_interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long the final flush may take once shutdown is signalled.
    pub final_flush: Duration,
    /// Named in the log line of a rejected batch.
    pub bucket: String,
}

impl WriterOptions {
    pub fn from_config(cfg: &InfluxDbSection) -> WriterOptions {
        WriterOptions {
            flush_interval: Duration::from_millis(cfg.flush_interval_ms),
            backoff_initial: Duration::from_millis(cfg.backoff_initial_ms),
            backoff_max: Duration::from_millis(cfg.backoff_max_ms),
            final_flush: Duration::from_secs(5),
            bucket: cfg.bucket.clone(),
        }
    }
}

/// The delay before retry number `attempt` (0-based): `initial × 2^attempt`
/// capped at `max`, then a random point in its upper half (jitter).
pub fn backoff(opts: &WriterOptions, attempt: u32) -> Duration {
    let full = opts
        .backoff_initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(opts.backoff_max);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let frac = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    full.mul_f64(0.5 + 0.5 * frac)
}

/// What one write answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// Keep the lines and retry; the class is the metric label.
    Retry(&'static str),
    /// Drop the lines; the server's message.
    Rejected(u16, String),
}

pub fn classify(res: &Result<(u16, String), String>) -> Outcome {
    match res {
        Ok((s, _)) if (200..300).contains(s) => Outcome::Written,
        Ok((429, _)) => Outcome::Retry("throttled"),
        Ok((s, _)) if *s >= 500 => Outcome::Retry("server_error"),
        Ok((s, body)) => Outcome::Rejected(*s, body.clone()),
        Err(_) => Outcome::Retry("network"),
    }
}

/// Sends buffered lines until shutdown, then makes a final flush attempt of
/// at most `opts.final_flush`.
pub async fn run_writer<T: WriteTransport>(
    shared: Arc<Shared>,
    transport: T,
    opts: WriterOptions,
    mut stop: Shutdown,
) {
    let mut attempt = 0u32;
    loop {
        // Drain what is there.
        while let Some((first, n, body)) = shared.peek() {
            let res = tokio::select! {
                r = transport.write(body) => r,
                _ = stop.recv() => break,
            };
            match classify(&res) {
                Outcome::Written => {
                    attempt = 0;
                    let k = shared.remove(first, n);
                    shared.metrics.written.inc_by(k);
                }
                Outcome::Rejected(status, msg) => {
                    attempt = 0;
                    let k = shared.remove(first, n);
                    shared.metrics.errors.with_label_values(&["rejected"]).inc();
                    shared
                        .metrics
                        .dropped
                        .with_label_values(&["rejected"])
                        .inc_by(k);
                    tracing::error!(
                        bucket = %opts.bucket,
                        status,
                        lines = k,
                        server = %msg.trim(),
                        "InfluxDB refused a batch of lines for bucket `{}`; dropped (not retried)",
                        opts.bucket
                    );
                }
                Outcome::Retry(class) => {
                    shared.metrics.errors.with_label_values(&[class]).inc();
                    let d = backoff(&opts, attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(
                        bucket = %opts.bucket,
                        class,
                        error = %match &res { Ok((s, b)) => format!("{s} {}", b.trim()), Err(e) => e.clone() },
                        retry_in_ms = d.as_millis() as u64,
                        "InfluxDB write failed; lines kept"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = stop.recv() => break,
                    }
                }
            }
        }
        if stop.is_shutdown() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.flush_interval) => {}
            _ = shared.notify.notified() => {}
            _ = stop.recv() => {}
        }
    }
    // Final flush: one pass over the buffer, no retries past the deadline.
    let deadline = tokio::time::Instant::now() + opts.final_flush;
    while let Some((first, n, body)) = shared.peek() {
        let res = match tokio::time::timeout_at(deadline, transport.write(body)).await {
            Ok(r) => r,
            Err(_) => break,
        };
        match classify(&res) {
            Outcome::Written => {
                let k = shared.remove(first, n);
                shared.metrics.written.inc_by(k);
            }
            Outcome::Rejected(status, msg) => {
                let k = shared.remove(first, n);
                shared.metrics.errors.with_label_values(&["rejected"]).inc();
                shared
                    .metrics
                    .dropped
                    .with_label_values(&["rejected"])
                    .inc_by(k);
                tracing::error!(bucket = %opts.bucket, status, server = %msg.trim(), "InfluxDB refused a batch at shutdown");
            }
            Outcome::Retry(class) => {
                shared.metrics.errors.with_label_values(&[class]).inc();
                break;
            }
        }
    }
    let left = shared.len();
    if left > 0 && shared.is_disk() {
        tracing::info!(lines = left, bucket = %opts.bucket, "InfluxDB lines unsent at stop stay in the disk buffer for the next start");
    } else if left > 0 {
        let mut b = shared.buf.lock().expect("influx buffer lock");
        b.lines.clear();
        shared.metrics.buffered.set(0);
        shared
            .metrics
            .dropped
            .with_label_values(&["shutdown"])
            .inc_by(left as u64);
        tracing::warn!(lines = left, bucket = %opts.bucket, "stopping with InfluxDB lines unsent (memory buffer)");
    }
}

/// Registers the metrics, builds the sink and spawns the writer.
pub fn start(
    cfg: &InfluxDbSection,
    agent: &str,
    data_dir: &std::path::Path,
    registry: &Registry,
    stop: Shutdown,
) -> anyhow::Result<InfluxSink> {
    let metrics = InfluxMetrics::register(registry)?;
    let mut transport = client::HttpWrite::with_tls(
        &cfg.url,
        &cfg.org,
        &cfg.bucket,
        cfg.precision.as_str(),
        cfg.token.as_deref(),
        Duration::from_millis(cfg.timeout_ms),
        &cfg.tls_files(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let shared = Arc::new(match cfg.buffer {
        InfluxBuffer::Memory => Shared::new(cfg.max_buffer_lines, cfg.batch_lines, metrics),
        InfluxBuffer::Disk => {
            let dir = data_dir.join("influx");
            let q = disk::DiskQueue::open(&dir, cfg.max_buffer_bytes)
                .map_err(|e| anyhow::anyhow!("[influxdb] disk buffer {}: {e}", dir.display()))?;
            if q.lines() > 0 {
                tracing::info!(lines = q.lines(), dir = %dir.display(), "InfluxDB lines from before the restart will be sent first");
            }
            Shared::with_disk(q, cfg.batch_lines, metrics)
        }
    });
    transport.gzip = cfg.gzip;
    tokio::spawn(run_writer(
        shared.clone(),
        transport,
        WriterOptions::from_config(cfg),
        stop,
    ));
    tracing::info!(url = %cfg.url, bucket = %cfg.bucket, "InfluxDB sink on");
    Ok(InfluxSink::new(cfg, agent, shared))
}

#[cfg(test)]
mod tests;
