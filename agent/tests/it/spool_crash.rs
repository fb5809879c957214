//! Crash test: a real child process appends to a spool and is killed with
//! SIGKILL mid-write; every report it had announced as stored must still be
//! there after reopening, and the chain continues without a gap.

use shuzhuan_agent::spool::{Spool, SpoolOptions, WhenFull};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn sigkill_mid_write_loses_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spool");
    let mut announced = 0u64;
    for round in 0..5u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shuzhuan-agent"))
            .args(["spool-stress", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = 0u64;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("stored ") {
                    last = n.parse().unwrap();
                }
            }
            last
        });
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        // SIGKILL by PID: no chance to flush or clean up.
        child.kill().unwrap();
        child.wait().unwrap();
        let last = reader.join().unwrap();
        assert!(
            last >= announced,
            "round {round}: restarted below what was stored"
        );
        announced = last;
        let mut opts = SpoolOptions::new(&dir, 1 << 30, WhenFull::DropNewest);
        opts.segment_bytes = 64 * 1024;
        let spool = Spool::open(opts).unwrap();
        let seqs: Vec<u64> = spool
            .pending(usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        // Everything announced is there, in order, gap-free; at most the
        // one record being written when killed may also have made it.
        assert!(
            seqs.len() as u64 >= announced,
            "round {round}: {} < {announced}",
            seqs.len()
        );
        assert!(seqs.iter().copied().eq(1..=seqs.len() as u64));
        assert!(seqs.len() as u64 <= announced + 1);
        assert_eq!(spool.stats().drops.get("corrupt"), None);
        announced = seqs.len() as u64;
    }
    assert!(announced > 0, "the child stored nothing");
}
