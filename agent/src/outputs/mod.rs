//! Outputs besides the aggregator: Prometheus /metrics, the status page, the InfluxDB v2 sink.
