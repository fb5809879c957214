//! The optional InfluxDB v2 sink for roll-ups (`[influxdb]` in
//! aggregator.toml): after each roll-up tick the current month's, quarter's
//! and year's indicators per city, county, industry chain and enterprise
//! are written as line protocol to `/api/v2/write`. Measurements, tags and
//! fields: docs/specs/influx.md, "Aggregator roll-ups".
//!
//! The figures come from [`rollup::enterprise_facts`] and
//! [`rollup::group_json`] (with [`rollup::add_energy`]), the functions
//! behind the indicator API, so InfluxDB shows what the API shows. The
//! line protocol encoder and the HTTP(S) client are the agent's
//! (`shuzhuan_agent::outputs::influx::{line, client}`).
//!
//! Roll-ups are state, not events: every tick writes the current values
//! again, so there is no buffer. A failed write is logged and counted
//! (`shuzhuan_aggregator_influx_write_errors_total{class}`) and never holds
//! up or fails the tick: [`InfluxSink::after_tick`] runs it in its own task,
//! and skips a tick while the previous write is still running.

use crate::api::AppState;
use crate::metrics::Metrics;
use crate::rollup::{self, EnterpriseFacts, Ratio, Reference};
use crate::store::{Period, Store, StoreError};
use serde::Deserialize;
use serde_json::Value;
use shuzhuan_agent::outputs::influx::client::{HttpWrite, WriteTransport};
use shuzhuan_agent::outputs::influx::line::{FieldValue, Point};
use shuzhuan_agent::ship::tls::TlsFiles;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `[influxdb]` as written in aggregator.toml (checked by [`section`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInflux {
    url: String,
    org: String,
    bucket: String,
    token_file: Option<String>,
    ca_file: Option<String>,
    timeout_ms: Option<i64>,
    gzip: Option<bool>,
    batch_lines: Option<i64>,
    measurement_prefix: Option<String>,
    enterprises: Option<bool>,
    interval_secs: Option<i64>,
}

/// `[influxdb]`, validated; paths resolved against the config's folder. The
/// token is read from `token_file` when the sink is built, never kept here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfluxConfig {
    /// `http://` or `https://host[:port][/prefix]`; `/api/v2/write` is appended.
    pub url: String,
    pub org: String,
    pub bucket: String,
    /// File holding the API token (sent as `Authorization: Token …`).
    pub token_file: Option<PathBuf>,
    /// PEM CA(s) trusted for an `https` URL (required for `https`).
    pub ca_file: Option<PathBuf>,
    /// Timeout of one write request (default 10000).
    pub timeout_ms: u64,
    /// Gzip the request bodies (default true).
    pub gzip: bool,
    /// Lines per write request at most (default 5000).
    pub batch_lines: usize,
    /// Put before every measurement name (default `shuzhuan_`).
    pub measurement_prefix: String,
    /// Write the per-enterprise points too (default true).
    pub enterprises: bool,
    /// Seconds between writes at least (default 900: a 2,000-enterprise
    /// city is about 85,000 lines, 14 MB before gzip, per write); a tick
    /// sooner than that after the last successful write writes nothing.
    pub interval_secs: i64,
}

/// Checks `[influxdb]`; every problem goes to `err(key, message)`.
pub(crate) fn section(
    raw: RawInflux,
    base: &Path,
    err: &mut dyn FnMut(&str, String),
) -> Option<InfluxConfig> {
    let mut ok = true;
    let https = raw.url.starts_with("https://");
    if !https && !raw.url.starts_with("http://") {
        err(
            "url",
            format!(
                "[influxdb] url `{}` is not an http:// or https:// URL; hint: \"http://127.0.0.1:8086\"",
                raw.url
            ),
        );
        ok = false;
    } else {
        // Host and port syntax, without reading any file.
        let plain = raw.url.replacen("https://", "http://", 1);
        if let Err(e) = HttpWrite::new(&plain, "o", "b", "s", None, Duration::from_secs(1)) {
            err("url", e.replace(&plain, &raw.url));
            ok = false;
        }
    }
    if https && raw.ca_file.is_none() {
        err(
            "url",
            format!(
                "[influxdb] url `{}` is https but ca_file is missing; hint: ca_file = \"ca.pem\", the PEM file of the CA that signed the InfluxDB server's certificate",
                raw.url
            ),
        );
        ok = false;
    }
    for (key, v) in [("org", &raw.org), ("bucket", &raw.bucket)] {
        if v.trim().is_empty() {
            err(key, format!("[influxdb] {key} must not be empty"));
            ok = false;
        }
    }
    let mut range = |key: &str, v: Option<i64>, default: i64, max: i64| match v {
        None => default,
        Some(v) if (1..=max).contains(&v) => v,
        Some(v) => {
            err(
                key,
                format!("[influxdb] {key} = {v} is out of range (1 to {max})"),
            );
            ok = false;
            default
        }
    };
    let timeout_ms = range("timeout_ms", raw.timeout_ms, 10_000, 600_000) as u64;
    let batch_lines = range("batch_lines", raw.batch_lines, 5_000, 1_000_000) as usize;
    let interval_secs = range("interval_secs", raw.interval_secs, 900, 86_400);
    let measurement_prefix = raw
        .measurement_prefix
        .unwrap_or_else(|| "shuzhuan_".to_owned());
    if measurement_prefix.contains(['\n', '\r']) {
        err(
            "measurement_prefix",
            "[influxdb] measurement_prefix must not contain a line break".to_owned(),
        );
        ok = false;
    }
    ok.then(|| InfluxConfig {
        url: raw.url,
        org: raw.org,
        bucket: raw.bucket,
        token_file: raw.token_file.map(|p| base.join(p)),
        ca_file: raw.ca_file.map(|p| base.join(p)),
        timeout_ms,
        gzip: raw.gzip.unwrap_or(true),
        batch_lines,
        measurement_prefix,
        enterprises: raw.enterprises.unwrap_or(true),
        interval_secs,
    })
}

/// The key of `[influxdb]` a [`InfluxSink::new`] error is about.
pub fn error_key(message: &str) -> &'static str {
    if message.contains("token_file") {
        "token_file"
    } else if message.contains("ca_file") {
        "ca_file"
    } else {
        "url"
    }
}

/// A failed write: the metric class and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    /// `network`, `server_error`, `throttled`, `rejected` or `store`.
    pub class: &'static str,
    pub message: String,
}

/// The sink: the agent's HTTP(S) writer and what to write.
pub struct InfluxSink {
    transport: HttpWrite,
    cfg: InfluxConfig,
    busy: AtomicBool,
    /// When (the state's clock, Unix seconds) the last successful write
    /// started; `i64::MIN` before the first.
    last_write: AtomicI64,
}

impl std::fmt::Debug for InfluxSink {
    // The transport holds the token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxSink")
            .field("url", &self.cfg.url)
            .field("bucket", &self.cfg.bucket)
            .finish_non_exhaustive()
    }
}

impl InfluxSink {
    /// Reads the token file and the CA file (errors name the key and file).
    pub fn new(cfg: &InfluxConfig) -> Result<InfluxSink, String> {
        let token = match &cfg.token_file {
            None => None,
            Some(f) => match std::fs::read_to_string(f) {
                Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
                Ok(_) => return Err(format!("[influxdb] token_file `{}` is empty", f.display())),
                Err(e) => return Err(format!("[influxdb] token_file `{}`: {e}", f.display())),
            },
        };
        let files = TlsFiles {
            ca_file: cfg.ca_file.clone(),
            ..TlsFiles::default()
        };
        let mut transport = HttpWrite::with_tls(
            &cfg.url,
            &cfg.org,
            &cfg.bucket,
            "s",
            token.as_deref(),
            Duration::from_millis(cfg.timeout_ms),
            &files,
        )?;
        transport.gzip = cfg.gzip;
        Ok(InfluxSink {
            transport,
            cfg: cfg.clone(),
            busy: AtomicBool::new(false),
            last_write: AtomicI64::new(i64::MIN),
        })
    }

    /// The encoded lines of the current roll-ups at the state's clock.
    pub fn lines(&self, state: &AppState) -> Result<Vec<String>, StoreError> {
        let pts = points(
            &*state.store,
            &state.reference,
            (state.clock)(),
            &self.cfg.measurement_prefix,
            self.cfg.enterprises,
        )?;
        Ok(pts.iter().filter_map(Point::encode).collect())
    }

    /// Builds and writes the current roll-ups once; the outcome is counted
    /// in `metrics` and a failure logged. Returns the lines written.
    pub async fn write_now(self: &Arc<Self>, state: &AppState) -> Result<usize, WriteError> {
        let started = (state.clock)();
        let (me, st) = (self.clone(), state.clone());
        let lines = tokio::task::spawn_blocking(move || me.lines(&st))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| WriteError {
                class: "store",
                message: format!("building the roll-up points: {message}"),
            });
        let res = match lines {
            Ok(lines) => self.send(lines, &state.metrics).await,
            Err(e) => Err(e),
        };
        if res.is_ok() {
            self.last_write.store(started, Ordering::Release);
        }
        if let Err(e) = &res {
            state
                .metrics
                .influx_write_errors
                .with_label_values(&[e.class])
                .inc();
            tracing::warn!(bucket = %self.cfg.bucket, class = e.class, error = %e, "InfluxDB roll-up write failed; the next tick writes the current values again");
        }
        res
    }

    /// Sends `lines` in batches of `batch_lines`; stops at the first failure.
    async fn send(&self, lines: Vec<String>, metrics: &Metrics) -> Result<usize, WriteError> {
        let mut written = 0;
        for chunk in lines.chunks(self.cfg.batch_lines) {
            let mut body = chunk.join("\n");
            body.push('\n');
            let err = |class, message| WriteError { class, message };
            match self.transport.write(body).await {
                Ok((s, _)) if (200..300).contains(&s) => {
                    written += chunk.len();
                    metrics.influx_lines_written.inc_by(chunk.len() as u64);
                }
                Ok((429, _)) => return Err(err("throttled", "429 Too Many Requests".into())),
                Ok((s, body)) if s >= 500 => {
                    return Err(err("server_error", format!("{s}: {}", body.trim())))
                }
                Ok((s, body)) => {
                    return Err(err(
                        "rejected",
                        format!("{s}: {} (bucket `{}`)", body.trim(), self.cfg.bucket),
                    ))
                }
                Err(e) => return Err(err("network", e)),
            }
        }
        Ok(written)
    }

    /// Whether a tick at `now` writes: `interval_secs` or more after the
    /// last successful write started (a failed write is retried at the next tick).
    pub fn due(&self, now: i64) -> bool {
        let last = self.last_write.load(Ordering::Acquire);
        last == i64::MIN || now.saturating_sub(last) >= self.cfg.interval_secs
    }

    /// Starts [`InfluxSink::write_now`] in its own task and returns at once;
    /// does nothing before the sink is [`due`](InfluxSink::due) or while the
    /// previous write is still running.
    pub fn after_tick(self: &Arc<Self>, state: AppState) {
        if !self.due((state.clock)()) {
            return;
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            tracing::debug!("previous InfluxDB roll-up write still running; skipping this tick");
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Ok(n) = me.write_now(&state).await {
                tracing::debug!(lines = n, "roll-ups written to InfluxDB");
            }
            me.busy.store(false, Ordering::Release);
        });
    }
}

/// The indicator bases written, as (tag value, key in [`rollup::group_json`]).
const BASES: [(&str, &str); 3] = [
    ("measured", "measured"),
    ("declared", "declared_questionnaire"),
    ("declared_inventory", "declared_inventory"),
];

/// The points of the current month, quarter and year at `now` (Unix
/// seconds; the timestamp of every point, precision `s`).
pub fn points(
    store: &dyn Store,
    reference: &Reference,
    now: i64,
    prefix: &str,
    enterprises: bool,
) -> Result<Vec<Point>, StoreError> {
    let day = crate::days::day_of(now, reference.utc_offset_secs);
    let counties = store.counties()?;
    let chains = store.chains()?;
    let mut out = Vec::new();
    for period in Period::containing(day) {
        let facts = rollup::enterprise_facts(store, reference, period)?;
        let mut w = Writer {
            prefix,
            period: period.key(),
            ts: now,
            out: &mut out,
        };
        let group = |pick: &dyn Fn(&EnterpriseFacts) -> bool| {
            let members: Vec<&EnterpriseFacts> = facts.iter().filter(|f| pick(f)).collect();
            rollup::group_indicators(&members, reference, period)
        };
        w.group("city", "city", &group(&|_| true));
        for c in &counties {
            w.group("county", &c.id, &group(&|f| f.county == c.id));
        }
        for c in &chains {
            w.group("chain", &c.id, &group(&|f| f.chain == c.id));
        }
        if enterprises {
            for f in facts.iter() {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                rollup::add_energy(&mut v, reference, period);
                w.enterprise(f, &v);
            }
        }
    }
    Ok(out)
}

/// Collects the points of one period.
struct Writer<'a> {
    prefix: &'a str,
    period: String,
    ts: i64,
    out: &'a mut Vec<Point>,
}

fn float(v: &Value) -> Option<FieldValue> {
    v.as_f64().map(FieldValue::Float)
}

impl Writer<'_> {
    fn point(&self, measurement: &str, level: &str, id: &str) -> Point {
        Point::new(format!("{}{measurement}", self.prefix), self.ts)
            .tag("level", level)
            .tag("id", id)
            .tag("period", self.period.as_str())
    }

    fn push(
        &mut self,
        p: Point,
        fields: impl IntoIterator<Item = (&'static str, Option<FieldValue>)>,
    ) {
        let mut p = p;
        for (k, v) in fields {
            if let Some(v) = v {
                p = p.field(k, v);
            }
        }
        if !p.fields.is_empty() {
            self.out.push(p);
        }
    }

    fn rate(&self, level: &str, id: &str, indicator: &str, basis: &str) -> Point {
        self.point("rollup_rate", level, id)
            .tag("indicator", indicator)
            .tag("basis", basis)
    }

    /// A county, chain or the city: a [`rollup::group_json`] object with
    /// `energy_converted` added.
    fn group(&mut self, level: &str, id: &str, g: &Value) {
        let mut rates: Vec<(&str, &str, &Value)> = Vec::new();
        for ind in ["digitization", "networking", "key_process_nc"] {
            for (basis, key) in BASES {
                rates.push((ind, basis, &g[ind][key]));
            }
        }
        rates.push((
            "rd_design_tools",
            "declared",
            &g["rd_design_tools"]["declared"],
        ));
        rates.push((
            "utilisation_known_time",
            "measured",
            &g["utilisation"]["productive_over_known_time"],
        ));
        rates.push((
            "utilisation_calendar_time",
            "measured",
            &g["utilisation"]["productive_over_calendar_time"],
        ));
        for (ind, basis, r) in rates {
            let p = self.rate(level, id, ind, basis);
            self.push(
                p,
                [
                    ("mean", float(&r["mean"])),
                    ("pooled", float(&r["pooled"])),
                    (
                        "enterprises",
                        r["enterprises_with_value"].as_i64().map(FieldValue::Int),
                    ),
                ],
            );
        }
        let count = |k: &str| g[k].as_i64().map(FieldValue::Int);
        let p = self.point("rollup_coverage", level, id);
        self.push(
            p,
            [
                ("above_scale", count("enterprises_above_scale")),
                (
                    "with_measured_data",
                    count("enterprises_with_measured_data"),
                ),
                ("declared_only", count("enterprises_declared_only")),
                ("reporting", count("enterprises_reporting")),
                (
                    "low_report_coverage",
                    count("enterprises_low_report_coverage"),
                ),
                ("sample_coverage_mean", float(&g["coverage"]["mean"])),
                ("report_coverage_mean", float(&g["report_coverage"]["mean"])),
            ],
        );
        self.energy(level, id, g);
    }

    /// Per carrier as metered, then the converted totals.
    fn energy(&mut self, level: &str, id: &str, v: &Value) {
        for e in v["energy"].as_array().into_iter().flatten() {
            let p = self
                .point("rollup_energy", level, id)
                .tag("carrier", e["carrier"].as_str().unwrap_or_default())
                .tag("unit", e["unit"].as_str().unwrap_or_default());
            self.push(
                p,
                [
                    ("quantity", float(&e["quantity"])),
                    ("exported", float(&e["exported"])),
                ],
            );
        }
        let c = &v["energy_converted"];
        let p = self.point("rollup_energy_total", level, id);
        self.push(
            p,
            [
                ("kgce", float(&c["kgce"])),
                ("kgce_gross", float(&c["kgce_gross"])),
                ("co2_kg", float(&c["co2_kg"])),
            ],
        );
    }

    /// One enterprise: its facts and their JSON with `energy_converted`.
    fn enterprise(&mut self, f: &EnterpriseFacts, v: &Value) {
        let id = f.credit_code.as_str();
        let ratio = |r: &Ratio| -> [(&'static str, Option<FieldValue>); 3] {
            let formed = r.value.is_some();
            [
                ("value", r.value.map(FieldValue::Float)),
                (
                    "numerator",
                    formed.then_some(FieldValue::Float(r.numerator)),
                ),
                (
                    "denominator",
                    formed.then_some(FieldValue::Float(r.denominator)),
                ),
            ]
        };
        let share = |s: Option<f64>| [("value", s.map(FieldValue::Float))];
        let rows: [(&str, &Ratio, &Ratio, Option<f64>); 3] = [
            (
                "digitization",
                &f.measured_digitization,
                &f.inventory_digitization,
                f.declared_digitization,
            ),
            (
                "networking",
                &f.measured_networking,
                &f.inventory_networking,
                f.declared_networking,
            ),
            (
                "key_process_nc",
                &f.measured_key_process_nc,
                &f.inventory_key_process_nc,
                f.declared_key_process_nc,
            ),
        ];
        for (ind, measured, inventory, declared) in rows {
            let p = self.rate("enterprise", id, ind, "measured");
            self.push(p, ratio(measured));
            let p = self.rate("enterprise", id, ind, "declared");
            self.push(p, share(declared));
            let p = self.rate("enterprise", id, ind, "declared_inventory");
            self.push(p, ratio(inventory));
        }
        let p = self.rate("enterprise", id, "rd_design_tools", "declared");
        self.push(
            p,
            share(f.rd_design_tools.map(|b| if b { 1.0 } else { 0.0 })),
        );
        for (ind, r) in [
            ("utilisation_known_time", &f.utilisation_of_known_time),
            ("utilisation_calendar_time", &f.utilisation_of_calendar_time),
        ] {
            let p = self.rate("enterprise", id, ind, "measured");
            self.push(p, ratio(r));
        }
        let p = self.point("rollup_coverage", "enterprise", id);
        self.push(
            p,
            [
                ("above_scale", Some(FieldValue::Bool(f.above_scale))),
                (
                    "production_devices",
                    Some(FieldValue::Int(f.production_devices as i64)),
                ),
                (
                    "measured",
                    Some(FieldValue::Bool(f.measured_digitization.value.is_some())),
                ),
                (
                    "reporting",
                    Some(FieldValue::Bool(f.coverage.denominator > 0.0)),
                ),
                ("sample_coverage", f.coverage.value.map(FieldValue::Float)),
                (
                    "report_coverage",
                    f.report_coverage.value.map(FieldValue::Float),
                ),
            ],
        );
        self.energy("enterprise", id, v);
    }
}

#[cfg(test)]
mod tests;
