//! `[influxdb]`: the optional InfluxDB v2 sink (per-poll samples and window
//! summaries as line protocol, see docs/specs/influx.md). Parsed and checked
//! here so the rest of the loader only calls [`section`].

use super::load::{get, Ctx};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::de::DeValue;
use toml::Spanned;

/// Timestamp precision of the written lines (`precision=` of `/api/v2/write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Precision {
    #[serde(rename = "s")]
    Seconds,
    #[default]
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "us")]
    Micros,
    #[serde(rename = "ns")]
    Nanos,
}

impl Precision {
    /// The query parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Seconds => "s",
            Precision::Millis => "ms",
            Precision::Micros => "us",
            Precision::Nanos => "ns",
        }
    }

    /// A Unix-milliseconds timestamp in this precision.
    pub fn from_ms(self, ms: i64) -> i64 {
        match self {
            Precision::Seconds => ms.div_euclid(1000),
            Precision::Millis => ms,
            Precision::Micros => ms.saturating_mul(1000),
            Precision::Nanos => ms.saturating_mul(1_000_000),
        }
    }
}

/// Where lines wait for the server (`buffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfluxBuffer {
    /// Segment files under `<data_dir>/influx/`, kept over restarts,
    /// bounded by `max_buffer_bytes`.
    #[default]
    Disk,
    /// Memory only, bounded by `max_buffer_lines`; lost at a stop.
    Memory,
}

/// `[influxdb]`, validated. The token is read from `token_file` at load time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxDbSection {
    /// `http://` or `https://host:port[/prefix]` of the InfluxDB v2 API;
    /// `/api/v2/write` is appended.
    pub url: String,
    /// PEM file of the CA(s) that signed an `https` server's certificate
    /// (only these are trusted); relative: from the config's folder.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM) for servers asking for one.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    pub org: String,
    pub bucket: String,
    /// API token, sent as `Authorization: Token …` (none: no header).
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the token (relative: from the config's folder); instead of `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Put before every measurement name (default `shuzhuan_`).
    #[serde(default = "default_prefix")]
    pub measurement_prefix: String,
    /// `s`, `ms` (default), `us` or `ns`.
    #[serde(default)]
    pub precision: Precision,
    /// Lines per write request at most (default 5000).
    #[serde(default = "default_batch_lines")]
    pub batch_lines: usize,
    /// Wall milliseconds between writes while lines wait (default 1000).
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// `disk` (default) or `memory`.
    #[serde(default)]
    pub buffer: InfluxBuffer,
    /// With `buffer = "memory"`: lines kept while the server is unreachable
    /// (default 100000); beyond it the oldest lines are dropped and counted.
    #[serde(default = "default_max_buffer")]
    pub max_buffer_lines: usize,
    /// With `buffer = "disk"`: bytes of unsent lines kept on disk (default
    /// 64 MiB); beyond it the oldest segment files are dropped and counted.
    #[serde(default = "default_max_buffer_bytes")]
    pub max_buffer_bytes: u64,
    /// Timeout of one write request (default 10000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// First retry delay after a failed write; doubles (with jitter) up to
    /// `backoff_max_ms` (defaults 500 and 30000).
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Write one line per device per poll (default true).
    #[serde(default = "yes")]
    pub samples: bool,
    /// Write the window summaries (default true).
    #[serde(default = "yes")]
    pub windows: bool,
    /// Gzip the request bodies (default true).
    #[serde(default = "yes")]
    pub gzip: bool,
}

impl InfluxDbSection {
    /// The TLS files of an `https` URL.
    pub fn tls_files(&self) -> crate::ship::tls::TlsFiles {
        crate::ship::tls::TlsFiles {
            ca_file: self.ca_file.clone(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
        }
    }
}

fn default_prefix() -> String {
    "shuzhuan_".to_owned()
}
fn default_batch_lines() -> usize {
    5000
}
fn default_flush_ms() -> u64 {
    1000
}
fn default_max_buffer() -> usize {
    100_000
}
fn default_max_buffer_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_backoff_initial() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    30_000
}
fn yes() -> bool {
    true
}

/// Reads and checks `[influxdb]`; problems go to `cx` at their positions.
pub(super) fn section<'t>(
    cx: &mut Ctx<'t>,
    v: &Spanned<DeValue<'t>>,
    base: &Path,
) -> Option<InfluxDbSection> {
    let mut s = cx.de::<InfluxDbSection>(v, "[influxdb]")?;
    let t = v.get_ref().as_table().expect("a table deserialized");
    let span = |k: &str| get(t, k).map(|x| x.span()).or_else(|| Some(v.span()));
    let mut ok = true;
    let https = s.url.starts_with("https://");
    if !s.url.starts_with("http://") && !https {
        cx.err(
            span("url"),
            format!(
                "[influxdb] url `{}` is not an http:// or https:// URL; hint: \"http://127.0.0.1:8086\"",
                s.url
            ),
        );
        ok = false;
    }
    s.ca_file = s.ca_file.map(|p| base.join(p));
    s.client_cert_file = s.client_cert_file.map(|p| base.join(p));
    s.client_key_file = s.client_key_file.map(|p| base.join(p));
    if https && s.ca_file.is_none() {
        cx.err(
            span("url"),
            format!("[influxdb] url `{}` is https but ca_file is missing; hint: ca_file = \"ca.pem\", the PEM file of the CA that signed the InfluxDB server's certificate", s.url),
        );
        ok = false;
    }
    if s.client_cert_file.is_some() != s.client_key_file.is_some() {
        cx.err(
            span("client_cert_file").or(span("client_key_file")),
            "[influxdb] client_cert_file and client_key_file go together: set both or neither",
        );
        ok = false;
    }
    // The PEM files are read now so that check-config finds a bad one.
    if ok && https {
        if let Err(e) = crate::outputs::influx::client::HttpWrite::with_tls(
            &s.url,
            &s.org,
            &s.bucket,
            s.precision.as_str(),
            None,
            std::time::Duration::from_millis(1),
            &s.tls_files(),
        ) {
            let key = if e.contains("client_") {
                "client_cert_file"
            } else {
                "ca_file"
            };
            cx.err(span(key), e);
            ok = false;
        }
    }
    for (key, val) in [("org", &s.org), ("bucket", &s.bucket)] {
        if val.trim().is_empty() {
            cx.err(span(key), format!("[influxdb] {key} must not be empty"));
            ok = false;
        }
    }
    if s.measurement_prefix.contains(['\n', '\r']) {
        cx.err(
            span("measurement_prefix"),
            "[influxdb] measurement_prefix must not contain a line break",
        );
        ok = false;
    }
    for (key, val) in [
        ("batch_lines", s.batch_lines as u64),
        ("flush_interval_ms", s.flush_interval_ms),
        ("max_buffer_lines", s.max_buffer_lines as u64),
        ("max_buffer_bytes", s.max_buffer_bytes),
        ("timeout_ms", s.timeout_ms),
        ("backoff_initial_ms", s.backoff_initial_ms),
    ] {
        if val == 0 {
            cx.err(span(key), format!("[influxdb] {key} must be at least 1"));
            ok = false;
        }
    }
    if s.backoff_max_ms < s.backoff_initial_ms {
        cx.err(
            span("backoff_max_ms"),
            "[influxdb] backoff_max_ms must not be below backoff_initial_ms",
        );
        ok = false;
    }
    if s.buffer == InfluxBuffer::Memory && s.max_buffer_lines < s.batch_lines {
        cx.err(
            span("max_buffer_lines"),
            format!(
                "[influxdb] max_buffer_lines = {} is below batch_lines = {}; hint: keep room for several batches",
                s.max_buffer_lines, s.batch_lines
            ),
        );
        ok = false;
    }
    match (&s.token, &s.token_file) {
        (Some(_), Some(_)) => {
            cx.err(
                span("token_file"),
                "[influxdb] token and token_file both set: give one",
            );
            ok = false;
        }
        (None, Some(f)) => {
            let f = base.join(f);
            match std::fs::read_to_string(&f) {
                Ok(text) if !text.trim().is_empty() => s.token = Some(text.trim().to_owned()),
                Ok(_) => {
                    cx.err(
                        span("token_file"),
                        format!("[influxdb] token_file {} is empty", f.display()),
                    );
                    ok = false;
                }
                Err(e) => {
                    cx.err(
                        span("token_file"),
                        format!("[influxdb] token_file {}: {e}", f.display()),
                    );
                    ok = false;
                }
            }
            s.token_file = Some(f);
        }
        _ => {}
    }
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use crate::config::{AgentConfig, ConfigErrors, Precision};

    const HEAD: &str =
        "[agent]\nid = \"gw\"\nenterprise = \"91411700MA00000019\"\ndata_dir = \"data\"\n\n";

    fn load(dir: &std::path::Path, influx: &str) -> Result<AgentConfig, ConfigErrors> {
        AgentConfig::from_text(dir.join("agent.toml"), &format!("{HEAD}{influx}"))
    }

    #[test]
    fn defaults_and_the_token_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("t.token"), "abc\n").unwrap();
        let c = load(
            d.path(),
            "[influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"t.token\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let i = c.influxdb.unwrap();
        assert_eq!(i.token.as_deref(), Some("abc"));
        assert_eq!(i.token_file, Some(d.path().join("t.token")));
        assert_eq!(i.precision, Precision::Millis);
        assert_eq!(i.measurement_prefix, "shuzhuan_");
        assert_eq!((i.batch_lines, i.max_buffer_lines), (5000, 100_000));
        assert_eq!(i.buffer, super::InfluxBuffer::Disk);
        assert_eq!(i.max_buffer_bytes, 64 << 20);
        assert!(i.samples && i.windows && i.gzip);
        assert!(load(d.path(), "").unwrap().influxdb.is_none());
    }

    #[test]
    fn problems_are_located_and_explained() {
        let d = tempfile::tempdir().unwrap();
        let text = "[influxdb]\nurl = \"https://influx\"\norg = \"\"\nbucket = \"b\"\ntoken = \"x\"\ntoken_file = \"missing\"\nbatch_lines = 10\nmax_buffer_lines = 5\nbuffer = \"memory\"\n";
        let e = load(d.path(), text).unwrap_err();
        let all = e.to_string();
        assert_eq!(e.0.len(), 4, "{all}");
        let line = |n: usize| e.0.iter().filter(|x| x.line == n + 5).count();
        assert_eq!(line(2), 1, "url: {all}");
        assert!(all.contains("https but ca_file is missing"), "{all}");
        assert_eq!(line(3), 1, "org: {all}");
        assert_eq!(line(6), 1, "token and token_file: {all}");
        assert_eq!(line(8), 1, "buffer below batch: {all}");
        // Unknown keys name the known ones.
        let e = load(
            d.path(),
            "[influxdb]\nurl = \"http://x:1\"\norg = \"o\"\nbucket = \"b\"\nbuket = \"c\"\n",
        )
        .unwrap_err();
        let all = e.to_string();
        assert!(all.contains("buket") && all.contains("bucket"), "{all}");
        assert_eq!(e.0[0].line, 10, "{all}");
        // Bad precision and an unreadable token file.
        let e = load(
            d.path(),
            "[influxdb]\nurl = \"http://x:1\"\norg = \"o\"\nbucket = \"b\"\nprecision = \"m\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`s`, `ms`, `us`, `ns`"), "{e}");
        let e = load(
            d.path(),
            "[influxdb]\nurl = \"http://x:1\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"nope\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
