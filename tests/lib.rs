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
