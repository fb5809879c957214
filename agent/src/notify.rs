//! systemd's notify protocol: `READY=1` once running, `WATCHDOG=1` from the run loop, `STOPPING=1` on the way out.
//!
//! Messages are datagrams to the Unix socket named by `$NOTIFY_SOCKET` (a
//! path, or an abstract name when it starts with `@`). Without that variable
//! (not started by systemd with `Type=notify`, or the in-process demo) every
//! call does nothing. The watchdog is fed from the agent's run loop, so a
//! loop that stops turning stops the feeding and systemd restarts the agent.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Sends `msg` to the socket named `socket` (`@name` = abstract namespace).
pub fn notify_to(socket: &str, msg: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(msg.as_bytes(), &addr)?;
    } else {
        sock.send_to(msg.as_bytes(), socket)?;
    }
    Ok(())
}

/// Sends `msg` to `$NOTIFY_SOCKET` when set; a failure is logged, never fatal.
pub fn notify(msg: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        let socket = socket.to_string_lossy();
        if let Err(e) = notify_to(&socket, msg) {
            tracing::warn!(%socket, error = %e, "sd_notify failed");
        }
    }
}

/// Feeds systemd's watchdog at half its interval (`$WATCHDOG_USEC`, for this
/// process when `$WATCHDOG_PID` says so).
#[derive(Debug)]
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// From the environment systemd sets.
    pub fn from_env() -> Watchdog {
        Watchdog::new(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
    }

    /// From the two variables' values; `pid` is this process's.
    pub fn new(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Watchdog {
        let mine = for_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(pid));
        let every = usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && mine)
            .map(|u| Duration::from_micros(u) / 2);
        Watchdog { every, last: None }
    }

    /// The feeding interval, when systemd asked for a watchdog.
    pub fn interval(&self) -> Option<Duration> {
        self.every
    }

    /// Sends `WATCHDOG=1` when half the interval has passed since the last time.
    pub fn feed(&mut self, now: Instant) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        if self.last.is_some_and(|l| now.duration_since(l) < every) {
            return false;
        }
        self.last = Some(now);
        notify("WATCHDOG=1");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("shuzhuan-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(notify_to("/nonexistent/notify.sock", "READY=1").is_err());
    }

    #[test]
    fn the_watchdog_feeds_at_half_the_interval_and_only_for_this_pid() {
        let w = Watchdog::new(Some("30000000"), None, 7);
        assert_eq!(w.interval(), Some(Duration::from_secs(15)));
        assert_eq!(
            Watchdog::new(Some("30000000"), Some("8"), 7).interval(),
            None
        );
        assert_eq!(
            Watchdog::new(Some("30000000"), Some("7"), 7).interval(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(Watchdog::new(None, None, 7).interval(), None);
        assert_eq!(Watchdog::new(Some("0"), None, 7).interval(), None);
        let mut w = Watchdog::new(Some("2000000"), None, 7);
        let t0 = Instant::now();
        assert!(w.feed(t0), "the first tick feeds");
        assert!(!w.feed(t0 + Duration::from_millis(500)));
        assert!(w.feed(t0 + Duration::from_millis(1000)));
        assert!(
            !Watchdog::new(None, None, 7).feed(t0),
            "no watchdog asked: nothing sent"
        );
    }
}
