//! Spool throughput: fsynced appends per second through `Spool::append`
//! against a baseline of plain `write` + `fdatasync` of the same bytes to one
//! file, measured in the same run on the same disk, plus replay (reading
//! every pending report back). Run: `cargo bench -p shuzhuan-agent --bench spool`
//! (`SPOOL_BENCH_N` sets the number of reports, default 2000;
//! `SPOOL_BENCH_DIR` the folder, default the system temp dir).

use shuzhuan_agent::spool::{Spool, SpoolOptions, WhenFull};
use std::io::Write;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("SPOOL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let base = std::env::var("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let tmp = tempfile::tempdir_in(base).unwrap();
    // A report of a plant with ~10 devices is about 3 KiB of JSON.
    let payload = vec![b'x'; 3000];
    let hash = [7u8; 32];

    let plain = tmp.path().join("plain.log");
    let mut f = std::fs::File::create(&plain).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&payload).unwrap();
        f.sync_data().unwrap();
    }
    let baseline = n as f64 / t.elapsed().as_secs_f64();

    let opts = SpoolOptions::new(tmp.path().join("spool"), 1 << 34, WhenFull::DropNewest);
    let mut spool = Spool::open(opts.clone()).unwrap();
    let t = Instant::now();
    for seq in 1..=n {
        spool.append(seq, 0, &hash, &payload).unwrap();
    }
    let spooled = n as f64 / t.elapsed().as_secs_f64();
    drop(spool);

    let t = Instant::now();
    let spool = Spool::open(opts).unwrap();
    let back = spool.pending(usize::MAX).unwrap().len();
    let replay = t.elapsed().as_secs_f64();
    assert_eq!(back as u64, n);

    let out = format!(
        "reports: {n} of {} bytes\nbaseline write+fdatasync: {baseline:.0} appends/s\nspool append (fsynced): {spooled:.0} appends/s\nratio spool/baseline: {:.2}\nreopen + read all pending: {replay:.3} s ({:.0} reports/s)\n",
        payload.len(),
        spooled / baseline,
        n as f64 / replay
    );
    std::io::stderr().write_all(out.as_bytes()).unwrap();
}
