//! Helpers shared by the workspace-level end-to-end tests: where the repo,
//! the Python venv and the Node peers are, free loopback ports, and child
//! processes that are killed by PID when dropped.

use std::path::PathBuf;
use std::process::{Child, Command};

/// The repository root.
pub fn repo_root() -> PathBuf {
    std::env::var_os("SHUZHUAN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// The venv's Python with pymodbus and asyncua (installed by `tests/peers/install.sh`).
/// Panics with the fix when it is missing: a missing peer fails a test, it never skips it.
pub fn python() -> PathBuf {
    let p = std::env::var_os("SHUZHUAN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run `bash tests/peers/install.sh`",
        p.display()
    );
    p
}

/// `node_modules` with modbus-serial and node-opcua.
pub fn node_modules() -> PathBuf {
    let p = std::env::var_os("SHUZHUAN_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/peers/node/node_modules"));
    assert!(
        p.exists(),
        "{} is missing: run `bash tests/peers/install.sh`",
        p.display()
    );
    p
}

/// Where tests leave files worth looking at (screenshots, logs).
pub fn artifacts() -> PathBuf {
    let p = std::env::var_os("SHUZHUAN_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("artifacts"));
    std::fs::create_dir_all(&p).ok();
    p
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for peers
/// that cannot be told to bind port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (by PID) and reaped when dropped.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on `port`, up to `secs`.
pub fn wait_for_port(port: u16, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// A plain HTTP/1.0 request to 127.0.0.1:`port` (blocking; no chunked
/// bodies): the status and the body. For peers in other processes; a
/// server running in the test's own single-threaded runtime needs an async
/// client instead.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// VictoriaMetrics, the InfluxDB-v2-compatible peer (installed by
/// `tests/peers/install.sh`): started on a loopback port, read back through
/// its export API.
pub mod victoria {
    use super::{http, wait_for_port, Proc};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// VictoriaMetrics on 127.0.0.1:`port` storing in `dir` (log in
    /// `dir/vm.log`), serving HTTPS with `(cert, key)` when given; keeps
    /// everything (test clocks are in the past); killed on drop.
    pub fn start(port: u16, dir: &Path, tls: Option<(&Path, &Path)>) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("vm.log"))
            .unwrap();
        let mut cmd = Command::new("victoria-metrics");
        if let Some((cert, key)) = tls {
            cmd.arg("-tls")
                .arg(format!("-tlsCertFile={}", cert.display()))
                .arg(format!("-tlsKeyFile={}", key.display()));
        }
        let p = Proc::spawn(
            cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-storageDataPath={}", dir.join("vm").display()))
                .arg("-search.latencyOffset=0s")
                .arg("-retentionPeriod=100y")
                .stdout(Stdio::null())
                .stderr(log),
        );
        assert!(
            wait_for_port(port, 30),
            "victoria-metrics did not listen on {port} (installed by tests/peers/install.sh?)"
        );
        p
    }

    /// One exported series: its labels (`__name__` included) and samples.
    #[derive(Debug, serde::Deserialize)]
    pub struct Series {
        pub metric: BTreeMap<String, String>,
        pub values: Vec<f64>,
        pub timestamps: Vec<i64>,
    }

    /// Every series matching the series selector `sel` (e.g.
    /// `{__name__=~"x_.*"}`), after a forced flush, over plain HTTP.
    pub fn export(port: u16, sel: &str) -> Vec<Series> {
        let (st, _) = http(port, "POST", "/internal/force_flush");
        assert_eq!(st, 200, "force_flush");
        let enc: String = sel
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (st, body) = http(
            port,
            "GET",
            &format!("/api/v1/export?match[]={enc}&start=0"),
        );
        assert_eq!(st, 200, "export: {body}");
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
