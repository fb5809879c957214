//! Prometheus metrics of one Modbus link. Every collector carries the link id
//! as a constant `link` label; `shuzhuan_agent_link_up` and
//! `shuzhuan_agent_read_errors_total` have the same names and help texts as
//! the OPC UA link's (`sources/opcua/metrics.rs`), so all links share one
//! registry.

use crate::series::{Kind, Series};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Help text shared with the OPC UA links (the registry refuses a second
/// help text for the same name).
pub(crate) const HELP_UP: &str = "1 when the link's last poll or session succeeded, else 0";
pub(crate) const HELP_READ_ERRORS: &str = "failed reads (timeouts, exceptions, bad status)";

/// Handles to the link's collectors.
#[derive(Clone)]
pub(crate) struct LinkMetrics {
    /// `shuzhuan_agent_link_up{link}`.
    pub up: IntGauge,
    /// `shuzhuan_agent_read_errors_total{link, device}`: tags that came back bad.
    pub read_errors: Series,
    /// `shuzhuan_agent_modbus_requests_total{link, device}`.
    pub requests: Series,
    /// `shuzhuan_agent_modbus_errors_total{link, reason}` with bounded reasons.
    pub errors: IntCounterVec,
    /// `shuzhuan_agent_modbus_request_seconds{link}`: round-trip time of answered requests.
    pub rtt: Histogram,
    /// `shuzhuan_agent_modbus_last_good_read_timestamp_seconds{link, device}`.
    pub last_good: Series,
}

impl LinkMetrics {
    /// Creates and registers the collectors. A collector the registry
    /// refuses is logged and still counted locally, so acquisition never
    /// stops for a metrics problem.
    pub(crate) fn register(registry: &Registry, link: &str) -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("link", link);
        let m = LinkMetrics {
            up: IntGauge::with_opts(opts("shuzhuan_agent_link_up", HELP_UP)).expect("valid metric"),
            read_errors: Series::new(
                Kind::Counter,
                "shuzhuan_agent_read_errors_total",
                HELP_READ_ERRORS,
                &["device"],
                &[("link", link)],
            )
            .expect("valid metric"),
            requests: Series::new(
                Kind::Counter,
                "shuzhuan_agent_modbus_requests_total",
                "Modbus read requests sent, by device",
                &["device"],
                &[("link", link)],
            )
            .expect("valid metric"),
            errors: IntCounterVec::new(
                opts(
                    "shuzhuan_agent_modbus_errors_total",
                    "Modbus link errors, by reason",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            rtt: Histogram::with_opts(
                HistogramOpts::new(
                    "shuzhuan_agent_modbus_request_seconds",
                    "Round-trip time of answered Modbus requests",
                )
                .const_label("link", link)
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .expect("valid metric"),
            last_good: Series::new(
                Kind::Gauge,
                "shuzhuan_agent_modbus_last_good_read_timestamp_seconds",
                "Unix time (agent clock) of the device's newest good value",
                &["device"],
                &[("link", link)],
            )
            .expect("valid metric"),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.up.clone()),
            Box::new(m.read_errors.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.rtt.clone()),
            Box::new(m.last_good.clone()),
        ];
        crate::sources::register_link_metrics(registry, link, "modbus", collectors);
        m
    }

    pub(crate) fn error(&self, reason: &str) {
        self.errors.with_label_values(&[reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modbus_and_opcua_links_share_a_registry() {
        let r = Registry::new();
        let a = LinkMetrics::register(&r, "plc");
        let b = LinkMetrics::register(&r, "meters");
        // The OPC UA links register the shared names with these help texts.
        let opcua = include_str!("../opcua/metrics.rs");
        assert!(opcua.contains(HELP_UP) && opcua.contains(HELP_READ_ERRORS));
        let ua = IntGauge::with_opts(
            Opts::new("shuzhuan_agent_link_up", HELP_UP).const_label("link", "ua"),
        )
        .unwrap();
        r.register(Box::new(ua.clone())).unwrap();
        a.up.set(1);
        b.read_errors.inc(&["m1"]);
        b.error("timeout");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&r.gather())
            .unwrap();
        assert!(
            text.contains("shuzhuan_agent_link_up{link=\"plc\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shuzhuan_agent_link_up{link=\"ua\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("shuzhuan_agent_read_errors_total{device=\"m1\",link=\"meters\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "shuzhuan_agent_modbus_errors_total{link=\"meters\",reason=\"timeout\"} 1"
            ),
            "{text}"
        );
        drop(ua);
    }
}
