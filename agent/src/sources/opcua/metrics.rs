//! Prometheus metrics of one OPC UA link. Every collector carries the link id
//! as a constant `link` label, so several links (and the Modbus sources, with
//! the same names and help texts) can share one registry.

use crate::series::{Kind, Series};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// Handles to the link's collectors.
#[derive(Clone)]
pub(crate) struct LinkMetrics {
    /// `shuzhuan_agent_link_up{link}`.
    pub up: IntGauge,
    /// `shuzhuan_agent_read_errors_total{link, device}`: tags that came back bad.
    pub read_errors: Series,
    /// `shuzhuan_agent_opcua_requests_total{link, service}`.
    pub requests: IntCounterVec,
    /// `shuzhuan_agent_opcua_errors_total{link, reason}` with bounded reasons.
    pub errors: IntCounterVec,
    /// `shuzhuan_agent_opcua_last_good_read_timestamp_seconds{link, device}`.
    pub last_good: Series,
}

impl LinkMetrics {
    /// Creates and registers the collectors. A collector the registry
    /// refuses (a clash of names) is logged and still counted locally, so
    /// acquisition never stops for a metrics problem.
    pub(crate) fn register(registry: &Registry, link: &str) -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("link", link);
        let m = LinkMetrics {
            up: IntGauge::with_opts(opts(
                "shuzhuan_agent_link_up",
                "1 when the link's last poll or session succeeded, else 0",
            ))
            .expect("valid metric"),
            read_errors: Series::new(
                Kind::Counter,
                "shuzhuan_agent_read_errors_total",
                "failed reads (timeouts, exceptions, bad status)",
                &["device"],
                &[("link", link)],
            )
            .expect("valid metric"),
            requests: IntCounterVec::new(
                opts(
                    "shuzhuan_agent_opcua_requests_total",
                    "OPC UA service requests sent, by service",
                ),
                &["service"],
            )
            .expect("valid metric"),
            errors: IntCounterVec::new(
                opts(
                    "shuzhuan_agent_opcua_errors_total",
                    "OPC UA link errors, by reason",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            last_good: Series::new(
                Kind::Gauge,
                "shuzhuan_agent_opcua_last_good_read_timestamp_seconds",
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
            Box::new(m.last_good.clone()),
        ];
        crate::sources::register_link_metrics(registry, link, "opcua", collectors);
        m
    }

    pub(crate) fn request(&self, service: &str) {
        self.requests.with_label_values(&[service]).inc();
    }

    pub(crate) fn error(&self, reason: &str) {
        self.errors.with_label_values(&[reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_links_share_a_registry() {
        let r = Registry::new();
        let a = LinkMetrics::register(&r, "ua-1");
        let b = LinkMetrics::register(&r, "ua-2");
        a.up.set(1);
        b.request("read");
        b.error("connect");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&r.gather())
            .unwrap();
        assert!(
            text.contains("shuzhuan_agent_link_up{link=\"ua-1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shuzhuan_agent_link_up{link=\"ua-2\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("shuzhuan_agent_opcua_requests_total{link=\"ua-2\",service=\"read\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("shuzhuan_agent_opcua_errors_total{link=\"ua-2\",reason=\"connect\"} 1"),
            "{text}"
        );
    }
}
