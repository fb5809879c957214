//! The aggregator's own telemetry, in one place: ingest counters (every
//! reject counted with a bounded `reason`, the error code), batch latency,
//! store size and the city's headline indicators, exposed at `/metrics` in
//! the Prometheus text format (content type `text/plain; version=0.0.4`).

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// All metrics; cheap to clone (prometheus handles are reference counted).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reports_accepted: IntCounter,
    pub reports_duplicate: IntCounter,
    pub summaries_accepted: IntCounter,
    pub rejects: IntCounterVec,
    pub enrolments: IntCounter,
    pub batch_seconds: Histogram,
    pub store_bytes: IntGauge,
    /// `indicator` (digitization, networking, key_process_nc, rd_design_tools),
    /// `basis` (measured, declared), `aggregation` (mean, pooled).
    pub city_rate: GaugeVec,
    pub city_enterprises: GaugeVec,
    /// `[influxdb]` roll-up lines the server acknowledged.
    pub influx_lines_written: IntCounter,
    /// Failed `[influxdb]` roll-up writes by `class` (network, server_error,
    /// throttled, rejected, store).
    pub influx_write_errors: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("shuzhuan_aggregator".into()), None)
            .expect("static prefix is valid");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let reports_accepted = counter("reports_accepted_total", "Reports stored.");
        let reports_duplicate = counter(
            "reports_duplicate_total",
            "Replayed reports acknowledged as duplicates.",
        );
        let summaries_accepted = counter(
            "summaries_accepted_total",
            "Device window summaries stored.",
        );
        let enrolments = counter("enrolments_total", "Agent enrolments and key rotations.");
        let rejects = IntCounterVec::new(
            Opts::new(
                "ingest_rejects_total",
                "Refused report batches by reason (error code).",
            ),
            &["reason"],
        )
        .expect("static metric");
        registry
            .register(Box::new(rejects.clone()))
            .expect("unique metric");
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ingest_batch_seconds",
                "Time to verify and store one batch.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )
        .expect("static metric");
        registry
            .register(Box::new(batch_seconds.clone()))
            .expect("unique metric");
        let store_bytes =
            IntGauge::new("store_size_bytes", "Size of the database file.").expect("static metric");
        registry
            .register(Box::new(store_bytes.clone()))
            .expect("unique metric");
        let city_rate = GaugeVec::new(
            Opts::new(
                "city_rate_ratio",
                "City headline rates of above-scale enterprises (0..1) for the current year.",
            ),
            &["indicator", "basis", "aggregation"],
        )
        .expect("static metric");
        registry
            .register(Box::new(city_rate.clone()))
            .expect("unique metric");
        let city_enterprises = GaugeVec::new(
            Opts::new(
                "city_enterprises",
                "Above-scale enterprises by data basis for the current year.",
            ),
            &["basis"],
        )
        .expect("static metric");
        registry
            .register(Box::new(city_enterprises.clone()))
            .expect("unique metric");
        let influx_lines_written = counter(
            "influx_lines_written_total",
            "Roll-up lines the InfluxDB server acknowledged.",
        );
        let influx_write_errors = IntCounterVec::new(
            Opts::new(
                "influx_write_errors_total",
                "Failed InfluxDB roll-up writes by class (network, server_error, throttled, rejected, store).",
            ),
            &["class"],
        )
        .expect("static metric");
        registry
            .register(Box::new(influx_write_errors.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            reports_accepted,
            reports_duplicate,
            summaries_accepted,
            rejects,
            enrolments,
            batch_seconds,
            store_bytes,
            city_rate,
            city_enterprises,
            influx_lines_written,
            influx_write_errors,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
