//! `aggregator.toml`: parsed raw from its text (`deny_unknown_fields`, so a
//! typo is reported at file:line:column), then validated into [`Config`]
//! with every problem collected at once.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! # tls_cert_file = "tls/server.pem"   # serve HTTPS: PEM certificate chain (leaf first)
//! # tls_key_file = "tls/server.key"    # and its PEM private key
//! # tls_client_ca_file = "tls/agents-ca.pem"  # optional: require client certificates (mutual TLS)
//!
//! [store]
//! path = "/var/lib/shuzhuan/aggregator.sqlite"
//! fine_retention_days = 400      # window rows; daily rows are kept
//!
//! [ingest]
//! max_batch = 256
//! max_body_bytes = 16777216
//! max_future_secs = 600          # window end may lead the server clock by this much
//! max_age_days = 400             # windows that started longer ago are refused
//!
//! [city]
//! utc_offset_secs = 28800        # days are local days (China Standard Time)
//! reference_dir = "config"       # city/, plan/, energy/ reference data
//!
//! [rollup]
//! interval_secs = 60
//! enrol_token_ttl_secs = 604800
//!
//! [evidence]
//! log_key_file = "evidence-log.key"  # default: beside the database; created (0600) when missing
//! origin = "shuzhuan/evidence"        # the origin line of signed checkpoints
//!
//! # [influxdb]                         # optional: roll-ups to InfluxDB v2 (docs/specs/influx.md)
//! # url = "http://127.0.0.1:8086"
//! # org = "city"
//! # bucket = "rollups"
//! ```

use serde::Deserialize;
use shuzhuan_common::tomlpos::{self, Located};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    server: RawServer,
    store: RawStore,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    city: RawCity,
    #[serde(default)]
    rollup: RawRollup,
    #[serde(default)]
    evidence: RawEvidence,
    influxdb: Option<crate::influx::RawInflux>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    log_key_file: Option<String>,
    origin: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    tls_client_ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: String,
    fine_retention_days: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_batch: Option<i64>,
    max_body_bytes: Option<i64>,
    max_future_secs: Option<i64>,
    max_age_days: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCity {
    utc_offset_secs: Option<i64>,
    reference_dir: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRollup {
    interval_secs: Option<i64>,
    enrol_token_ttl_secs: Option<i64>,
}

/// Limits applied to every ingest request.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestLimits {
    pub max_batch: usize,
    pub max_body_bytes: usize,
    pub max_future_secs: i64,
    pub max_age_secs: i64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_batch: 256,
            max_body_bytes: 16 << 20,
            max_future_secs: 600,
            max_age_secs: 400 * 86_400,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub store_path: PathBuf,
    pub fine_retention_days: i64,
    pub ingest: IngestLimits,
    pub utc_offset_secs: i64,
    /// Folder holding `city/`, `plan/` and `energy/` reference data.
    pub reference_dir: PathBuf,
    pub rollup_interval_secs: u64,
    pub enrol_token_ttl_secs: i64,
    /// The evidence log's signing key (base64 Ed25519 seed).
    pub log_key_file: PathBuf,
    /// The origin line of the evidence log's checkpoints.
    pub log_origin: String,
    /// Serve HTTPS with these files (`[server] tls_*`); `None`: plain HTTP.
    pub tls: Option<ServerTls>,
    /// `[influxdb]`: write roll-ups to InfluxDB v2 after each tick; `None`: off.
    pub influxdb: Option<crate::influx::InfluxConfig>,
}

/// `[server] tls_cert_file`, `tls_key_file`, `tls_client_ca_file` (paths
/// resolved against the config's folder; read and checked at `serve` start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<Located>);

impl Config {
    /// Reads and validates `path`; relative paths inside are resolved
    /// against the config file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![Located {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = Config::parse(&file, &text, base)?;
        // The TLS files are read now too, so that check-config finds a bad one.
        if let Some(tls) = &config.tls {
            if let Err(e) = crate::server::tls_acceptor(tls) {
                let msg = e.to_string();
                let key = ["tls_client_ca_file", "tls_key_file", "tls_cert_file"]
                    .into_iter()
                    .find(|k| msg.starts_with(&format!("[server] {k}")))
                    .unwrap_or("tls_cert_file");
                let at = tomlpos::find_key(&text, "server", key);
                return Err(ConfigErrors(vec![tomlpos::locate(&file, &text, at, msg)]));
            }
        }
        // So are the InfluxDB token and CA files.
        if let Some(i) = &config.influxdb {
            if let Err(msg) = crate::influx::InfluxSink::new(i) {
                let at = tomlpos::find_key(&text, "influxdb", crate::influx::error_key(&msg));
                return Err(ConfigErrors(vec![tomlpos::locate(&file, &text, at, msg)]));
            }
        }
        Ok(config)
    }

    /// Parses and validates config text.
    pub fn parse(file: &str, text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let raw: Raw = tomlpos::parse(file, text).map_err(|e| ConfigErrors(vec![e]))?;
        let mut errors = Vec::new();
        let mut err = |table: &str, key: &str, msg: String| {
            errors.push(tomlpos::locate(
                file,
                text,
                tomlpos::find_key(text, table, key),
                msg,
            ));
        };
        let listen_text = raw
            .server
            .listen
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            err(
                "server",
                "listen",
                format!("`{listen_text}` is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let mut positive =
            |table: &str, key: &str, v: Option<i64>, default: i64, max: i64| -> i64 {
                match v {
                    None => default,
                    Some(v) if v >= 1 && v <= max => v,
                    Some(v) => {
                        err(
                            table,
                            key,
                            format!("{key} = {v} is out of range (1 to {max})"),
                        );
                        default
                    }
                }
            };
        let d = IngestLimits::default();
        let fine_retention_days = positive(
            "store",
            "fine_retention_days",
            raw.store.fine_retention_days,
            400,
            36_500,
        );
        let max_batch =
            positive("ingest", "max_batch", raw.ingest.max_batch, 256, 100_000) as usize;
        let max_body_bytes = positive(
            "ingest",
            "max_body_bytes",
            raw.ingest.max_body_bytes,
            d.max_body_bytes as i64,
            1 << 30,
        ) as usize;
        let max_future_secs = positive(
            "ingest",
            "max_future_secs",
            raw.ingest.max_future_secs,
            600,
            86_400 * 30,
        );
        let max_age_days = positive(
            "ingest",
            "max_age_days",
            raw.ingest.max_age_days,
            400,
            36_500,
        );
        let rollup_interval_secs = positive(
            "rollup",
            "interval_secs",
            raw.rollup.interval_secs,
            60,
            86_400,
        ) as u64;
        let enrol_token_ttl_secs = positive(
            "rollup",
            "enrol_token_ttl_secs",
            raw.rollup.enrol_token_ttl_secs,
            7 * 86_400,
            365 * 86_400,
        );
        let utc_offset_secs = raw.city.utc_offset_secs.unwrap_or(8 * 3600);
        if utc_offset_secs.abs() > 14 * 3600 {
            err("city", "utc_offset_secs", format!("utc_offset_secs = {utc_offset_secs} is not a time zone offset (at most ±50400)"));
        }
        if raw.store.path.trim().is_empty() {
            err("store", "path", "store path is empty".to_owned());
        }
        let log_origin = raw
            .evidence
            .origin
            .unwrap_or_else(|| "shuzhuan/evidence".to_owned());
        if log_origin.trim().is_empty() || log_origin.contains('\n') {
            err(
                "evidence",
                "origin",
                "origin must be one non-empty line".to_owned(),
            );
        }
        let store_path = base.join(&raw.store.path);
        let log_key_file = match raw.evidence.log_key_file {
            Some(p) => base.join(p),
            None => store_path.with_file_name("evidence-log.key"),
        };
        let tls = match (
            raw.server.tls_cert_file,
            raw.server.tls_key_file,
            raw.server.tls_client_ca_file,
        ) {
            (Some(cert), Some(key), client_ca) => Some(ServerTls {
                cert_file: base.join(cert),
                key_file: base.join(key),
                client_ca_file: client_ca.map(|p| base.join(p)),
            }),
            (None, None, None) => None,
            (cert, key, _) => {
                let (at, msg) = match (cert, key) {
                    (Some(_), None) => ("tls_cert_file", "tls_cert_file needs tls_key_file too (both, or neither for plain HTTP)"),
                    (None, Some(_)) => ("tls_key_file", "tls_key_file needs tls_cert_file too (both, or neither for plain HTTP)"),
                    _ => ("tls_client_ca_file", "tls_client_ca_file needs tls_cert_file and tls_key_file: client certificates are asked for over HTTPS only"),
                };
                err("server", at, msg.to_owned());
                None
            }
        };
        let influxdb = raw.influxdb.and_then(|i| {
            crate::influx::section(i, base, &mut |key, msg| err("influxdb", key, msg))
        });
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            listen,
            store_path,
            fine_retention_days,
            ingest: IngestLimits {
                max_batch,
                max_body_bytes,
                max_future_secs,
                max_age_secs: max_age_days * 86_400,
            },
            utc_offset_secs,
            reference_dir: base.join(
                raw.city
                    .reference_dir
                    .unwrap_or_else(|| "config".to_owned()),
            ),
            rollup_interval_secs,
            enrol_token_ttl_secs,
            log_key_file,
            log_origin,
            tls,
            influxdb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(
            "a.toml",
            "[store]\npath = \"x.sqlite\"\n",
            Path::new("/etc/sz"),
        )
        .unwrap();
        assert_eq!(c.store_path, Path::new("/etc/sz/x.sqlite"));
        assert_eq!(c.ingest.max_batch, 256);
        assert_eq!(c.utc_offset_secs, 28_800);
        assert_eq!(c.log_key_file, Path::new("/etc/sz/evidence-log.key"));
        assert_eq!(c.log_origin, "shuzhuan/evidence");
        assert_eq!(c.tls, None);
    }

    #[test]
    fn load_reads_the_tls_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agg.toml");
        std::fs::write(
            &path,
            "[server]\ntls_cert_file = \"none.pem\"\ntls_key_file = \"none.key\"\n[store]\npath = \"x\"\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("agg.toml:2:1: [server] tls_cert_file") && e.contains("none.pem"),
            "{e}"
        );
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let c = Config::parse(
            "a.toml",
            "[server]\ntls_cert_file = \"tls/c.pem\"\ntls_key_file = \"/k.pem\"\n[store]\npath = \"x\"\n",
            Path::new("/etc/sz"),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/sz/tls/c.pem"));
        assert_eq!(tls.key_file, Path::new("/k.pem"));
        assert_eq!(tls.client_ca_file, None);
        let e = Config::parse(
            "a.toml",
            "[server]\ntls_client_ca_file = \"ca.pem\"\ntls_key_file = \"k.pem\"\n[store]\npath = \"x\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a.toml:3:1: tls_key_file needs tls_cert_file"),
            "{e}"
        );
    }

    #[test]
    fn typo_is_located() {
        let e = Config::parse(
            "a.toml",
            "[store]\npath = \"x\"\n[ingest]\nmax_bach = 3\n",
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(
            e.to_string()
                .starts_with("a.toml:4:1: unknown field `max_bach`"),
            "{e}"
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let text =
            "[server]\nlisten = \"nowhere\"\n[store]\npath = \"x\"\n[ingest]\nmax_batch = 0\n";
        let e = Config::parse("a.toml", text, Path::new(".")).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert_eq!((e.0[0].line, e.0[1].line), (2, 6), "{e}");
    }
}
