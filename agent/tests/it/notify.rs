//! systemd notify protocol: the real agent binary, started with
//! `NOTIFY_SOCKET` and `WATCHDOG_USEC` as systemd would, says `READY=1`,
//! feeds the watchdog at half its interval from the run loop, and says
//! `STOPPING=1` on SIGTERM before it exits cleanly.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example config with its data folder, HTTP port and aggregator made
/// local to the test (its links point at devices that are not there: the
/// run loop turns regardless).
fn config(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("config/examples/agent.toml")).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let agent = doc["agent"].as_table_mut().unwrap();
    agent.insert(
        "data_dir".into(),
        dir.join("data").display().to_string().into(),
    );
    agent.insert(
        "profiles_dir".into(),
        root.join("config/profiles").display().to_string().into(),
    );
    doc.remove("aggregator");
    doc["http"]
        .as_table_mut()
        .unwrap()
        .insert("listen".into(), "127.0.0.1:0".into());
    let path = dir.join("agent.toml");
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

#[test]
fn the_agent_says_ready_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shuzhuan-agent"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        // A 2 s watchdog: fed every second.
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let mut recv = || -> String {
        let n = sock.recv(&mut buf).expect("a notify message within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(), "READY=1");
    let t0 = Instant::now();
    let mut feeds = 0;
    while feeds < 3 {
        assert_eq!(recv(), "WATCHDOG=1");
        feeds += 1;
    }
    // Three feeds: the first at start, then one per second.
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "fed too slowly: {:?}",
        t0.elapsed()
    );
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut last = recv();
    while last == "WATCHDOG=1" {
        last = recv();
    }
    assert_eq!(last, "STOPPING=1");
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
