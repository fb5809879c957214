//! Spool tests: a proptest model (append, ack, reopen, torn tail) and the
//! known-corruption suite (flipped checksum, truncated segment, garbage file).

use super::*;
use proptest::prelude::*;

fn opts(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 30,
        when_full: WhenFull::DropOldest,
        segment_bytes: 600,
        fsync: false,
    }
}

fn h(seq: u64) -> [u8; 32] {
    let mut x = [0u8; 32];
    x[..8].copy_from_slice(&seq.to_le_bytes());
    x
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize + i) as u8).collect()
}

fn pending_seqs(s: &Spool) -> Vec<u64> {
    s.pending(usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Ack(usize),
    Reopen,
    TornTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..200).prop_map(Op::Append),
        2 => (0usize..5).prop_map(Op::Ack),
        1 => Just(Op::Reopen),
        1 => (1usize..40).prop_map(Op::TornTail),
    ]
}

fn newest_segment(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(SEG_PREFIX)
        })
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    v.sort();
    v.pop()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn spool_matches_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(opts(tmp.path())).unwrap();
        // Reference: pending seqs, the head, the acked position.
        let mut model: Vec<u64> = Vec::new();
        let mut head = 0u64;
        let mut acked = 0u64;
        for op in ops {
            match op {
                Op::Append(len) => {
                    let seq = head + 1;
                    spool.append(seq, seq as i64, &h(seq), &payload(seq, len)).unwrap();
                    head = seq;
                    model.push(seq);
                }
                Op::Ack(k) => {
                    if k < model.len() {
                        let seq = model[k];
                        spool.ack_through(seq, &h(seq)).unwrap();
                        model.retain(|&s| s > seq);
                        acked = seq;
                    }
                }
                Op::Reopen => {
                    drop(spool);
                    spool = Spool::open(opts(tmp.path())).unwrap();
                }
                Op::TornTail(n) => {
                    // A crash during the newest append: its record is cut
                    // short; only an unacknowledged newest record can be torn.
                    drop(spool);
                    if model.last() == Some(&head) {
                        if let Some(seg) = newest_segment(tmp.path()) {
                            let len = fs::metadata(&seg).unwrap().len();
                            let f = OpenOptions::new().write(true).open(&seg).unwrap();
                            f.set_len(len.saturating_sub(n as u64)).unwrap();
                            model.pop();
                            head -= 1;
                        }
                    }
                    spool = Spool::open(opts(tmp.path())).unwrap();
                    prop_assert_eq!(spool.stats().drops.get(reason::CORRUPT).copied(), None);
                }
            }
            prop_assert_eq!(pending_seqs(&spool), model.clone());
            prop_assert_eq!(spool.head().map_or(0, |x| x.0), head.max(acked));
            if let Some((s, hash)) = spool.head() {
                prop_assert_eq!(hash, h(s));
            }
            prop_assert_eq!(spool.stats().reports, model.len() as u64);
        }
        // Payloads come back intact.
        for r in spool.pending(usize::MAX).unwrap() {
            prop_assert_eq!(r.payload.len() < 200, true);
            prop_assert_eq!(&r.payload, &payload(r.seq, r.payload.len()));
        }
    }
}

#[test]
fn acked_segments_are_deleted_and_head_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Spool::open(opts(tmp.path())).unwrap();
    for seq in 1..=20 {
        s.append(seq, 0, &h(seq), &payload(seq, 100)).unwrap();
    }
    assert!(s.segments.len() > 2);
    s.ack_through(20, &h(20)).unwrap();
    assert_eq!(s.bytes(), 0);
    assert!(newest_segment(tmp.path()).is_none());
    drop(s);
    let s = Spool::open(opts(tmp.path())).unwrap();
    assert_eq!(s.head(), Some((20, h(20))));
    assert!(pending_seqs(&s).is_empty());
}

#[test]
fn out_of_order_append_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Spool::open(opts(tmp.path())).unwrap();
    assert!(matches!(
        s.append(2, 0, &h(2), b"x"),
        Err(SpoolError::OutOfOrder { head: 0, got: 2 })
    ));
}

#[test]
fn flipped_checksum_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Spool::open(opts(tmp.path())).unwrap();
    for seq in 1..=3 {
        s.append(seq, 0, &h(seq), b"report").unwrap();
    }
    drop(s);
    let seg = newest_segment(tmp.path()).unwrap();
    let mut b = fs::read(&seg).unwrap();
    let rec_len = b.len() / 3;
    b[rec_len + 9] ^= 0x01; // the second record's checksum
    fs::write(&seg, &b).unwrap();
    let s = Spool::open(opts(tmp.path())).unwrap();
    assert_eq!(pending_seqs(&s), vec![1, 3]);
    assert_eq!(s.stats().drops.get(reason::CORRUPT), Some(&1));
    assert_eq!(s.head().unwrap().0, 3);
}

#[test]
fn truncated_segment_and_garbage_file_do_not_stop_opening() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Spool::open(opts(tmp.path())).unwrap();
    for seq in 1..=12 {
        s.append(seq, 0, &h(seq), &payload(seq, 150)).unwrap();
    }
    drop(s);
    // Truncate an older segment mid-record and add a garbage segment.
    let mut segs: Vec<PathBuf> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let first = &segs[0];
    let len = fs::metadata(first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    fs::write(tmp.path().join(seg_name(0)), vec![0xa5u8; 5000]).unwrap();
    let mut s = Spool::open(opts(tmp.path())).unwrap();
    let p = pending_seqs(&s);
    assert_eq!(*p.last().unwrap(), 12);
    assert!(p.len() >= 10, "{p:?}");
    assert!(s.stats().drops.get(reason::CORRUPT).copied().unwrap_or(0) >= 2);
    // The chain continues after the damage.
    s.append(13, 0, &h(13), b"next").unwrap();
}

#[test]
fn drop_oldest_counts_what_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(tmp.path());
    o.max_bytes = 2000;
    o.segment_bytes = 500;
    let mut s = Spool::open(o).unwrap();
    for seq in 1..=40 {
        s.append(seq, 0, &h(seq), &payload(seq, 100)).unwrap();
        assert!(s.bytes() <= 2000);
    }
    let st = s.stats();
    let dropped = st.drops.get(reason::FULL_DROP_OLDEST).copied().unwrap_or(0);
    assert!(dropped > 0);
    assert_eq!(dropped + st.reports, 40);
    assert_eq!(*pending_seqs(&s).last().unwrap(), 40);
}

#[test]
fn drop_newest_refuses_and_keeps_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(tmp.path());
    o.max_bytes = 1000;
    o.when_full = WhenFull::DropNewest;
    let mut s = Spool::open(o).unwrap();
    let mut seq = 1;
    loop {
        match s.append(seq, 0, &h(seq), &payload(seq, 100)) {
            Ok(()) => seq += 1,
            Err(SpoolError::Full { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(s.stats().drops.get(reason::FULL_DROP_NEWEST), Some(&1));
    assert_eq!(s.head().unwrap().0, seq - 1);
    s.ack_through(seq - 1, &h(seq - 1)).unwrap();
    s.append(seq, 0, &h(seq), &payload(seq, 100)).unwrap();
}

#[test]
fn rejected_reports_are_kept_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Spool::open(opts(tmp.path())).unwrap();
    s.append(1, 0, &h(1), b"{\"payload\":\"x\"}").unwrap();
    let recs = s.pending(10).unwrap();
    s.reject_through(&recs, "400 bad_schema").unwrap();
    assert!(pending_seqs(&s).is_empty());
    let files: Vec<_> = fs::read_dir(tmp.path().join("rejected")).unwrap().collect();
    assert_eq!(files.len(), 1);
}

/// A real small file system (tmpfs, mounted for the test; needs root, as in
/// CI) that fills up before the spool's configured bound.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// `None` when not root (a developer's machine): the caller says so and returns.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Uid:"))?
            .split_whitespace()
            .nth(1)?
            .to_owned();
        if uid != "0" {
            return None;
        }
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(st.success(), "mounting a tmpfs as root failed");
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

fn on_small_disk(when_full: WhenFull) -> Option<(Tmpfs, Spool)> {
    let Some(fs) = Tmpfs::mount("256k") else {
        eprintln!("not root: the tmpfs disk-full test needs root (CI runs as root)");
        return None;
    };
    let spool = Spool::open(SpoolOptions {
        dir: fs.0.path().join("spool"),
        max_bytes: 64 << 20, // far above the disk: the disk fills first
        when_full,
        segment_bytes: 32 << 10,
        fsync: true,
    })
    .unwrap();
    Some((fs, spool))
}

#[test]
fn a_full_disk_with_drop_oldest_deletes_old_segments_and_keeps_a_gapless_tail() {
    let Some((fs, mut spool)) = on_small_disk(WhenFull::DropOldest) else {
        return;
    };
    // 200 reports of 4 KiB = 800 KiB onto a 256 KiB disk.
    for seq in 1..=200u64 {
        spool
            .append(seq, seq as i64, &h(seq), &payload(seq, 4096))
            .unwrap_or_else(|e| panic!("report {seq}: {e}"));
    }
    let st = spool.stats();
    assert_eq!(st.head.map(|x| x.0), Some(200));
    let kept = pending_seqs(&spool);
    let dropped = st.drops.get(reason::FULL_DROP_OLDEST).copied().unwrap_or(0);
    assert!(
        dropped > 100,
        "only {dropped} dropped: the disk did not fill"
    );
    assert_eq!(
        dropped + kept.len() as u64,
        200,
        "every report kept or counted"
    );
    assert_eq!(kept, ((201 - kept.len() as u64)..=200).collect::<Vec<_>>());
    assert_eq!(st.drops.get(reason::DISK_FULL), None);
    // What is on disk reads back whole after a restart.
    let dir = fs.0.path().join("spool");
    drop(spool);
    let again = Spool::open(SpoolOptions {
        dir,
        max_bytes: 64 << 20,
        when_full: WhenFull::DropOldest,
        segment_bytes: 32 << 10,
        fsync: true,
    })
    .unwrap();
    assert_eq!(pending_seqs(&again), kept);
    assert_eq!(again.stats().drops.get(reason::CORRUPT), None);
}

#[test]
fn a_full_disk_with_drop_newest_refuses_and_counts_then_resumes_after_acks() {
    let Some((_fs, mut spool)) = on_small_disk(WhenFull::DropNewest) else {
        return;
    };
    let mut seq = 1u64;
    let mut refused = 0u64;
    for _ in 0..200 {
        match spool.append(seq, seq as i64, &h(seq), &payload(seq, 4096)) {
            Ok(()) => seq += 1,
            Err(SpoolError::DiskFull { seq: s, .. }) => {
                assert_eq!(s, seq);
                refused += 1;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let stored = seq - 1;
    assert!(
        refused > 0 && stored > 20,
        "stored {stored}, refused {refused}"
    );
    let st = spool.stats();
    assert_eq!(st.drops.get(reason::DISK_FULL).copied(), Some(refused));
    assert_eq!(pending_seqs(&spool), (1..=stored).collect::<Vec<_>>());
    // The aggregator acknowledges everything: segments are deleted and the
    // chain goes on from where it stopped.
    spool.ack_through(stored, &h(stored)).unwrap();
    spool
        .append(seq, seq as i64, &h(seq), &payload(seq, 4096))
        .expect("room again after the acknowledgement");
    assert_eq!(pending_seqs(&spool), vec![seq]);
}
