//! Outputs besides the aggregator: Prometheus `/metrics` and the local
//! status page, served on `[http] listen`. Metric names are the ones in
//! docs/dev/contracts.md ("Prometheus metric names"); deploy/ queries them.
//! [`influx`] is the optional InfluxDB v2 sink.

pub mod influx;

use crate::series::{Kind, OneOf, Series};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use shuzhuan_common::state::DeviceState;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The agent's own metrics (sources register theirs in the same registry).
/// The per-device families are compact [`Series`] (`crate::series`).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    /// `shuzhuan_agent_samples_total{device}`.
    pub samples: Series,
    pub spool_reports: IntGauge,
    pub spool_bytes: IntGauge,
    pub spool_oldest_age: IntGauge,
    pub shipped: IntCounter,
    pub rejected: IntCounter,
    pub dropped: IntCounterVec,
    /// `shuzhuan_agent_device_state{device, state}`.
    pub device_state: OneOf,
    /// `shuzhuan_agent_device_power_kilowatts{device}`.
    pub power: Series,
    /// `shuzhuan_agent_window_energy{device, meter, carrier}`.
    pub energy: Series,
    pub reports_sealed: IntCounter,
}

impl AgentMetrics {
    /// Creates and registers every metric.
    pub fn register(reg: &Registry) -> prometheus::Result<AgentMetrics> {
        let m = AgentMetrics {
            samples: Series::new(
                Kind::Counter,
                "shuzhuan_agent_samples_total",
                "Poll cycles with good data received, per device",
                &["device"],
                &[],
            )?,
            spool_reports: IntGauge::new(
                "shuzhuan_agent_spool_reports",
                "Reports in the spool not yet acknowledged",
            )?,
            spool_bytes: IntGauge::new("shuzhuan_agent_spool_bytes", "Spool size on disk")?,
            spool_oldest_age: IntGauge::new(
                "shuzhuan_agent_spool_oldest_age_seconds",
                "Age of the oldest unacknowledged report (0 when empty)",
            )?,
            shipped: IntCounter::new(
                "shuzhuan_agent_reports_shipped_total",
                "Reports acknowledged by the aggregator (accepted or duplicate)",
            )?,
            rejected: IntCounter::new(
                "shuzhuan_agent_reports_rejected_total",
                "Reports moved to rejected/ (a 4xx other than 429)",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "shuzhuan_agent_spool_dropped_total",
                    "Reports dropped by the spool, by reason",
                ),
                &["reason"],
            )?,
            device_state: OneOf::new(
                "shuzhuan_agent_device_state",
                "1 for the state a device is in, else 0",
                "device",
                "state",
                &DeviceState::ALL.map(DeviceState::as_str),
            )?,
            power: Series::new(
                Kind::Gauge,
                "shuzhuan_agent_device_power_kilowatts",
                "Last good active power",
                &["device"],
                &[],
            )?,
            energy: Series::new(
                Kind::Gauge,
                "shuzhuan_agent_window_energy",
                "Energy of the last sealed window, in the carrier's unit",
                &["device", "meter", "carrier"],
                &[],
            )?,
            reports_sealed: IntCounter::new(
                "shuzhuan_agent_reports_sealed_total",
                "Reports sealed and stored in the spool",
            )?,
        };
        reg.register(Box::new(m.samples.clone()))?;
        reg.register(Box::new(m.spool_reports.clone()))?;
        reg.register(Box::new(m.spool_bytes.clone()))?;
        reg.register(Box::new(m.spool_oldest_age.clone()))?;
        reg.register(Box::new(m.shipped.clone()))?;
        reg.register(Box::new(m.rejected.clone()))?;
        reg.register(Box::new(m.dropped.clone()))?;
        reg.register(Box::new(m.device_state.clone()))?;
        reg.register(Box::new(m.power.clone()))?;
        reg.register(Box::new(m.energy.clone()))?;
        reg.register(Box::new(m.reports_sealed.clone()))?;
        Ok(m)
    }

    /// Sets a device's state gauges.
    pub fn set_state(&self, device: &str, state: DeviceState) {
        self.device_state.set(device, state.as_str());
    }
}

/// What the status page shows about one device.
#[derive(Debug, Clone, Default)]
pub struct DeviceStatus {
    pub name: String,
    pub link: Option<String>,
    pub state: Option<DeviceState>,
    pub power_kw: Option<f64>,
    pub last_ts_ms: Option<i64>,
}

/// Shared, updated by the model loop.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub agent_id: String,
    pub devices: BTreeMap<String, DeviceStatus>,
    pub last_report: Option<(u64, i64, i64)>,
    pub spool_reports: u64,
    /// The enterprise's rates over the last day (`crate::rates`).
    pub rates: Option<crate::rates::RatesSnapshot>,
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    status: Arc<Mutex<Status>>,
}

/// The router: `GET /metrics` and `GET /` (status page).
pub fn router(registry: Registry, status: Arc<Mutex<Status>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .with_state(AppState { registry, status })
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut buf = Vec::new();
    let enc = prometheus::TextEncoder::new();
    let _ = enc.encode(&st.registry.gather(), &mut buf);
    ([(header::CONTENT_TYPE, enc.format_type().to_owned())], buf).into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn page(State(st): State<AppState>) -> Html<String> {
    let s = st.status.lock().expect("status lock").clone();
    let mut h = format!(
        "<!doctype html><meta charset=utf-8><title>Shuzhuan agent {id}</title>\
         <h1>Shuzhuan agent {id}</h1><p>Spool: {n} reports waiting. ",
        id = esc(&s.agent_id),
        n = s.spool_reports
    );
    if let Some((seq, a, b)) = s.last_report {
        h.push_str(&format!("Last report: #{seq}, window {a}..{b}.</p>"));
    } else {
        h.push_str("No report sealed yet.</p>");
    }
    h.push_str("<table><tr><th>device</th><th>name</th><th>link</th><th>state</th><th>power kW</th><th>last data (ms)</th></tr>");
    for (id, d) in &s.devices {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id),
            esc(&d.name),
            esc(d.link.as_deref().unwrap_or("(none)")),
            d.state.map_or("-".to_owned(), |s| format!(
                "{} {}",
                s.as_str(),
                s.label_zh()
            )),
            d.power_kw.map_or("-".to_owned(), |p| format!("{p:.2}")),
            d.last_ts_ms.map_or("-".to_owned(), |t| t.to_string()),
        ));
    }
    h.push_str("</table>");
    if let Some(r) = &s.rates {
        h.push_str(&rates_table(r));
    }
    Html(h)
}

/// The enterprise's rates, declared beside measured, with the coverage and
/// the rules file behind the measured ones.
fn rates_table(r: &crate::rates::RatesSnapshot) -> String {
    use shuzhuan_common::indicators::Rate;
    let show = |x: &Rate| match x {
        Rate::Value { num, den, value } => format!("{:.1}% ({num}/{den})", value * 100.0),
        Rate::InsufficientData { reason } => esc(&reason.to_string()),
    };
    let m = r.measured.as_ref();
    let mut h = String::from(
        "<h2>Enterprise rates (last day)</h2><table><tr><th>rate</th><th>declared (inventory)</th><th>measured</th></tr>",
    );
    for (name, d, mv) in [
        (
            "生产设备数字化率 digitization",
            &r.declared.digitization,
            m.map(|m| &m.rates.digitization),
        ),
        (
            "设备联网率 networking",
            &r.declared.networking,
            m.map(|m| &m.rates.networking),
        ),
        (
            "关键工序数控化率 key-process NC",
            &r.declared.key_process_nc,
            m.map(|m| &m.rates.key_process_nc),
        ),
    ] {
        h.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>",
            show(d),
            mv.map_or("-".to_owned(), show)
        ));
    }
    h.push_str("</table>");
    if let Some(m) = m {
        h.push_str(&format!(
            "<p>Coverage: reports {}, samples {}, {} of {} production devices with data.</p>",
            show(&m.coverage.reports),
            show(&m.coverage.samples),
            m.coverage.devices_with_data,
            m.coverage.production_devices
        ));
    }
    h.push_str(&format!(
        "<p>Measurement rules: {}</p>",
        esc(&r.rules_source)
    ));
    h
}
