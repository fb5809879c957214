//! Hidden `shuzhuan-agent spool-stress --dir D --count N`: appends reports to
//! a spool as fast as it can, printing `stored <seq>` after each fsynced
//! append. The crash test kills it with SIGKILL mid-write and checks that
//! every printed seq is still there.

use crate::spool::{Spool, SpoolOptions, WhenFull};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `spool-stress`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
}

/// Runs; returns the exit code.
pub fn run(args: &Args) -> i32 {
    let mut opts = SpoolOptions::new(&args.dir, 1 << 30, WhenFull::DropNewest);
    opts.segment_bytes = 64 * 1024;
    let mut spool = match Spool::open(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    let start = spool.head().map_or(0, |h| h.0);
    for seq in start + 1..=start + args.count {
        let payload = vec![(seq % 251) as u8; 700 + (seq % 300) as usize];
        let hash = shuzhuan_common::report::Hash32::of(&payload).0;
        if let Err(e) = spool.append(seq, seq as i64, &hash, &payload) {
            eprintln!("{e}");
            return 1;
        }
        if writeln!(out, "stored {seq}")
            .and_then(|_| out.flush())
            .is_err()
        {
            return 1;
        }
    }
    0
}
