//! The on-disk spool of sealed reports (format in docs/specs/spool.md).
//!
//! Reports are appended as checksummed records to segment files and fsynced
//! before [`Spool::append`] returns, so a report counts as stored only when
//! it is on disk. A report leaves the spool only when the aggregator has
//! acknowledged it ([`Spool::ack_through`]) or refused it for good
//! ([`Spool::reject_through`], which keeps a copy in `rejected/`). The spool
//! is bounded by `max_bytes`; what happens when it is full is an explicit
//! [`WhenFull`] policy and every dropped report is counted with its reason.
//! Opening never fails on damaged data: bad records are skipped and counted.

pub mod record;

use record::{encode, scan, Record};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What to do when appending would take the spool past `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Delete the oldest segments, acknowledged or not, to make room.
    #[default]
    DropOldest,
    /// Refuse the new report (the caller counts it as dropped); the chain
    /// does not advance, so what is stored stays a gap-free chain.
    DropNewest,
}

/// Drop reasons, as counted in [`SpoolStats::drops`] and the metrics.
pub mod reason {
    /// A stored report deleted unsent to make room (`WhenFull::DropOldest`).
    pub const FULL_DROP_OLDEST: &str = "full_drop_oldest";
    /// A new report refused because the spool was full (`WhenFull::DropNewest`).
    pub const FULL_DROP_NEWEST: &str = "full_drop_newest";
    /// A new report that the disk had no room for, even after the policy
    /// made what room it could (`DropOldest` deletes older segments first).
    pub const DISK_FULL: &str = "disk_full";
    /// A damaged record skipped when the spool was read.
    pub const CORRUPT: &str = "corrupt";
    /// A file in the spool folder that is not a readable segment.
    pub const UNREADABLE_SEGMENT: &str = "unreadable_segment";
}

/// Whether an I/O error says the file system has no room (ENOSPC, EDQUOT).
fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(122)
}

/// How the spool is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Folder of the segments (created if missing), e.g. `<data_dir>/spool`.
    pub dir: PathBuf,
    /// Upper bound of the segment files' total size.
    pub max_bytes: u64,
    pub when_full: WhenFull,
    /// A new segment is started when the open one reaches this size.
    pub segment_bytes: u64,
    /// fsync each append and each acknowledgement (false only in benchmarks).
    pub fsync: bool,
}

impl SpoolOptions {
    /// Defaults for a folder: 256 MiB, drop oldest, 4 MiB segments (at most
    /// an eighth of the bound), fsync on.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64, when_full: WhenFull) -> Self {
        SpoolOptions {
            dir: dir.into(),
            max_bytes,
            when_full,
            segment_bytes: (4 * 1024 * 1024).min((max_bytes / 8).max(4096)),
            fsync: true,
        }
    }
}

/// Why an append did not store the report.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool at {dir} is full ({bytes} of {max} bytes) and `when_full` is drop_newest: report {seq} dropped")]
    Full {
        dir: PathBuf,
        seq: u64,
        bytes: u64,
        max: u64,
    },
    #[error("report {got} does not follow the spool's head {head}: expected {}", head + 1)]
    OutOfOrder { head: u64, got: u64 },
    #[error("report {seq} ({len} bytes) is larger than the whole spool bound of {max} bytes")]
    TooLarge { seq: u64, len: u64, max: u64 },
    #[error("spool at {dir}: the disk is full: report {seq} not stored (counted as dropped, reason disk_full)")]
    DiskFull { dir: PathBuf, seq: u64 },
    #[error("spool at {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Counts and gauges for metrics and the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Stored reports not yet acknowledged.
    pub reports: u64,
    /// Size of the segment files.
    pub bytes: u64,
    /// `created_at` of the oldest unacknowledged report.
    pub oldest_created_at: Option<i64>,
    /// Reports dropped, by reason (see [`reason`]), since the spool was opened.
    pub drops: BTreeMap<&'static str, u64>,
    /// Highest acknowledged seq.
    pub acked: u64,
    /// Seq and hash of the newest stored report (the chain head).
    pub head: Option<(u64, [u8; 32])>,
}

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    created_at: i64,
    segment: u64,
    offset: u64,
    len: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
}

/// The spool. Not shared between processes; wrap it in a mutex to share
/// between tasks.
#[derive(Debug)]
pub struct Spool {
    opts: SpoolOptions,
    segments: VecDeque<Segment>,
    /// Records still on disk, oldest first (acknowledged ones included until
    /// their segment is deleted).
    entries: VecDeque<Entry>,
    active: Option<File>,
    acked: (u64, [u8; 32]),
    head: Option<(u64, [u8; 32])>,
    drops: BTreeMap<&'static str, u64>,
}

const ACK_FILE: &str = "ack";
const SEG_PREFIX: &str = "seg-";
const SEG_SUFFIX: &str = ".log";

fn seg_name(id: u64) -> String {
    format!("{SEG_PREFIX}{id:020}{SEG_SUFFIX}")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (or creates) the spool, recovering the chain head, the
    /// acknowledged position and the unacknowledged reports. Damaged records
    /// are skipped and counted; a torn tail of the newest segment is cut off.
    pub fn open(opts: SpoolOptions) -> Result<Spool, SpoolError> {
        let dir = opts.dir.clone();
        let io_err = |source| SpoolError::Io {
            dir: dir.clone(),
            source,
        };
        fs::create_dir_all(&opts.dir).map_err(io_err)?;
        let mut drops = BTreeMap::new();
        let acked = read_ack(&opts.dir.join(ACK_FILE));
        let mut ids = Vec::new();
        for e in fs::read_dir(&opts.dir).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix(SEG_PREFIX)
                .and_then(|r| r.strip_suffix(SEG_SUFFIX))
                .and_then(|d| d.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        // Empty segments hold nothing (a crash right after one was created):
        // remove them so the newest segment with data is the one appended to.
        ids.retain(|&id| {
            let p = opts.dir.join(seg_name(id));
            let empty = fs::metadata(&p).is_ok_and(|m| m.len() == 0);
            if empty {
                let _ = fs::remove_file(&p);
            }
            !empty
        });
        let mut segments = VecDeque::new();
        let mut entries: VecDeque<Entry> = VecDeque::new();
        let mut head: Option<(u64, [u8; 32])> = None;
        let last_id = ids.last().copied();
        for id in ids {
            let path = opts.dir.join(seg_name(id));
            let buf = match fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "spool segment unreadable, skipped");
                    *drops.entry(reason::UNREADABLE_SEGMENT).or_insert(0) += 1;
                    continue;
                }
            };
            let s = scan(&buf);
            if s.corrupt > 0 {
                tracing::warn!(segment = %path.display(), damaged = s.corrupt, "damaged spool records skipped");
                *drops.entry(reason::CORRUPT).or_insert(0) += s.corrupt;
            }
            let mut bytes = buf.len() as u64;
            if s.torn_tail {
                if Some(id) == last_id {
                    tracing::warn!(segment = %path.display(), at = s.valid_end, "torn tail cut off");
                    let f = OpenOptions::new().write(true).open(&path).map_err(io_err)?;
                    f.set_len(s.valid_end).map_err(io_err)?;
                    f.sync_all().map_err(io_err)?;
                    bytes = s.valid_end;
                } else {
                    *drops.entry(reason::CORRUPT).or_insert(0) += 1;
                }
            }
            for f in s.records {
                // Records must ascend; anything else is stale or damaged.
                if head.is_some_and(|(h, _)| f.record.seq <= h) {
                    *drops.entry(reason::CORRUPT).or_insert(0) += 1;
                    continue;
                }
                head = Some((f.record.seq, f.record.hash));
                entries.push_back(Entry {
                    seq: f.record.seq,
                    created_at: f.record.created_at,
                    segment: id,
                    offset: f.offset,
                    len: f.len,
                });
            }
            segments.push_back(Segment { id, bytes });
        }
        if acked.0 > 0 && head.is_none_or(|(h, _)| h < acked.0) {
            head = Some(acked);
        }
        let mut spool = Spool {
            opts,
            segments,
            entries,
            active: None,
            acked,
            head,
            drops,
        };
        spool.delete_acked_segments()?;
        Ok(spool)
    }

    /// The options it was opened with.
    pub fn options(&self) -> &SpoolOptions {
        &self.opts
    }

    /// Seq and hash of the newest stored report: the next report is
    /// `seq + 1` with this `prev_hash`. `None` for a fresh agent.
    pub fn head(&self) -> Option<(u64, [u8; 32])> {
        self.head
    }

    fn io(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.opts.dir.clone(),
            source,
        }
    }

    /// Total size of the segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn count_drop(&mut self, why: &'static str, n: u64) {
        if n > 0 {
            *self.drops.entry(why).or_insert(0) += n;
        }
    }

    /// Stores one report durably. `seq` must be the head's successor (1 for
    /// the first). Returns only after the record is fsynced.
    pub fn append(
        &mut self,
        seq: u64,
        created_at: i64,
        hash: &[u8; 32],
        payload: &[u8],
    ) -> Result<(), SpoolError> {
        let head = self.head.map_or(0, |h| h.0);
        if seq != head + 1 {
            return Err(SpoolError::OutOfOrder { head, got: seq });
        }
        let rec = encode(seq, created_at, hash, payload);
        let len = rec.len() as u64;
        if len > self.opts.max_bytes {
            self.count_drop(reason::FULL_DROP_NEWEST, 1);
            return Err(SpoolError::TooLarge {
                seq,
                len,
                max: self.opts.max_bytes,
            });
        }
        while self.bytes() + len > self.opts.max_bytes {
            match self.opts.when_full {
                WhenFull::DropNewest => {
                    self.count_drop(reason::FULL_DROP_NEWEST, 1);
                    return Err(SpoolError::Full {
                        dir: self.opts.dir.clone(),
                        seq,
                        bytes: self.bytes(),
                        max: self.opts.max_bytes,
                    });
                }
                WhenFull::DropOldest => {
                    if !self.drop_oldest_segment()? {
                        break;
                    }
                }
            }
        }
        // The disk itself may fill up before the configured bound (other
        // files, a small card): the same policy applies, then the report is
        // refused and counted.
        loop {
            match self.write_record(seq, created_at, hash, &rec) {
                Err(SpoolError::Io { source, .. }) if is_disk_full(&source) => {
                    let can_drop = self.opts.when_full == WhenFull::DropOldest
                        && self
                            .segments
                            .front()
                            .is_some_and(|s| s.bytes > 0 || self.segments.len() > 1);
                    if can_drop && self.drop_oldest_segment()? {
                        tracing::warn!(seq, "disk full: oldest spool segment deleted to make room");
                        continue;
                    }
                    self.count_drop(reason::DISK_FULL, 1);
                    return Err(SpoolError::DiskFull {
                        dir: self.opts.dir.clone(),
                        seq,
                    });
                }
                other => return other,
            }
        }
    }

    /// Writes one encoded record at the end of the active segment (a new one
    /// when due) and fsyncs it; a failed write is cut off again.
    fn write_record(
        &mut self,
        seq: u64,
        created_at: i64,
        hash: &[u8; 32],
        rec: &[u8],
    ) -> Result<(), SpoolError> {
        let len = rec.len() as u64;
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => s.bytes > 0 && s.bytes + len > self.opts.segment_bytes,
        };
        if need_new {
            let id = seq;
            let path = self.opts.dir.join(seg_name(id));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| self.io(e))?;
            if self.opts.fsync {
                sync_dir(&self.opts.dir).map_err(|e| self.io(e))?;
            }
            self.segments.push_back(Segment { id, bytes: 0 });
            self.active = Some(f);
        }
        if self.active.is_none() {
            let id = self.segments.back().map(|s| s.id).unwrap_or(seq);
            let f = OpenOptions::new()
                .append(true)
                .open(self.opts.dir.join(seg_name(id)))
                .map_err(|e| self.io(e))?;
            self.active = Some(f);
        }
        let fsync = self.opts.fsync;
        let f = self.active.as_mut().expect("opened above");
        let res = f
            .write_all(rec)
            .and_then(|_| if fsync { f.sync_data() } else { Ok(()) });
        let seg = self.segments.back_mut().expect("a segment exists");
        let offset = seg.bytes;
        if let Err(e) = res {
            // The record may be half written: cut it off so the segment
            // stays a sequence of whole records.
            self.active = None;
            let path = self.opts.dir.join(seg_name(seg.id));
            if let Ok(f) = OpenOptions::new().write(true).open(path) {
                let _ = f.set_len(offset);
            }
            return Err(self.io(e));
        }
        seg.bytes += len;
        let segment = seg.id;
        self.entries.push_back(Entry {
            seq,
            created_at,
            segment,
            offset,
            len,
        });
        self.head = Some((seq, *hash));
        Ok(())
    }

    /// Deletes the oldest segment (if another exists after it or it holds
    /// records); counts unacknowledged reports in it as dropped.
    fn drop_oldest_segment(&mut self) -> Result<bool, SpoolError> {
        let Some(seg) = self.segments.front() else {
            return Ok(false);
        };
        let id = seg.id;
        let mut lost = 0;
        while self.entries.front().is_some_and(|e| e.segment == id) {
            let e = self.entries.pop_front().expect("checked");
            if e.seq > self.acked.0 {
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::warn!(
                segment = id,
                reports = lost,
                "spool full: oldest unsent reports dropped"
            );
        }
        self.count_drop(reason::FULL_DROP_OLDEST, lost);
        fs::remove_file(self.opts.dir.join(seg_name(id))).map_err(|e| self.io(e))?;
        self.segments.pop_front();
        if self.segments.is_empty() {
            self.active = None;
        }
        Ok(true)
    }

    /// Up to `max` unacknowledged reports, oldest first.
    pub fn pending(&self, max: usize) -> Result<Vec<Record>, SpoolError> {
        let mut out = Vec::new();
        let mut open: Option<(u64, File)> = None;
        for e in self
            .entries
            .iter()
            .filter(|e| e.seq > self.acked.0)
            .take(max)
        {
            if open.as_ref().is_none_or(|(id, _)| *id != e.segment) {
                let f =
                    File::open(self.opts.dir.join(seg_name(e.segment))).map_err(|x| self.io(x))?;
                open = Some((e.segment, f));
            }
            let f = &mut open.as_mut().expect("opened").1;
            let mut buf = vec![0u8; e.len as usize];
            f.seek(SeekFrom::Start(e.offset)).map_err(|x| self.io(x))?;
            f.read_exact(&mut buf).map_err(|x| self.io(x))?;
            let s = scan(&buf);
            match s.records.into_iter().next() {
                Some(found) if found.record.seq == e.seq => out.push(found.record),
                _ => {
                    return Err(self.io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("record {} changed on disk", e.seq),
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Marks every report up to `seq` (with hash `hash`) acknowledged, durably,
    /// and deletes segments that hold only acknowledged reports.
    pub fn ack_through(&mut self, seq: u64, hash: &[u8; 32]) -> Result<(), SpoolError> {
        if seq <= self.acked.0 {
            return Ok(());
        }
        self.acked = (seq, *hash);
        match write_ack(&self.opts.dir, self.acked, self.opts.fsync) {
            Ok(()) => {}
            Err(e) if is_disk_full(&e) => {
                // No room even for the small ack file: first delete older
                // segments the aggregator already holds (after a crash before
                // the ack is written they are simply absent, which reads back
                // as acknowledged), then record the acknowledgement.
                self.delete_acked_segments()?;
                write_ack(&self.opts.dir, self.acked, self.opts.fsync).map_err(|e| self.io(e))?;
            }
            Err(e) => return Err(self.io(e)),
        }
        self.delete_acked_segments()
    }

    /// Copies `records` and the aggregator's answer into `rejected/`, then
    /// acknowledges them so shipping moves on.
    pub fn reject_through(&mut self, records: &[Record], answer: &str) -> Result<(), SpoolError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let dir = self.opts.dir.join("rejected");
        fs::create_dir_all(&dir).map_err(|e| self.io(e))?;
        let first = records[0].seq;
        let mut text = format!("# aggregator answer: {}\n", answer.replace('\n', " "));
        for r in records {
            text.push_str(&String::from_utf8_lossy(&r.payload));
            text.push('\n');
        }
        let path = dir.join(format!("{first:020}-{:020}.jsonl", last.seq));
        let mut f = File::create(&path).map_err(|e| self.io(e))?;
        f.write_all(text.as_bytes()).map_err(|e| self.io(e))?;
        if self.opts.fsync {
            f.sync_all().map_err(|e| self.io(e))?;
        }
        self.ack_through(last.seq, &last.hash)
    }

    fn delete_acked_segments(&mut self) -> Result<(), SpoolError> {
        // Keep the newest segment (it is where appends go); delete older ones
        // whose records are all acknowledged.
        while self.segments.len() > 1 {
            let id = self.segments[0].id;
            let all_acked = self
                .entries
                .iter()
                .take_while(|e| e.segment == id)
                .all(|e| e.seq <= self.acked.0);
            if !all_acked {
                break;
            }
            while self.entries.front().is_some_and(|e| e.segment == id) {
                self.entries.pop_front();
            }
            fs::remove_file(self.opts.dir.join(seg_name(id))).map_err(|e| self.io(e))?;
            self.segments.pop_front();
        }
        // The newest segment, fully acknowledged: truncate it by starting afresh.
        if self.segments.len() == 1 && self.entries.iter().all(|e| e.seq <= self.acked.0) {
            let id = self.segments[0].id;
            if self.segments[0].bytes > 0 {
                self.entries.clear();
                self.active = None;
                fs::remove_file(self.opts.dir.join(seg_name(id))).map_err(|e| self.io(e))?;
                self.segments.clear();
            }
        }
        Ok(())
    }

    /// Counts and gauges.
    pub fn stats(&self) -> SpoolStats {
        let pending = self.entries.iter().filter(|e| e.seq > self.acked.0);
        let mut reports = 0;
        let mut oldest = None;
        for e in pending {
            reports += 1;
            if oldest.is_none() {
                oldest = Some(e.created_at);
            }
        }
        SpoolStats {
            reports,
            bytes: self.bytes(),
            oldest_created_at: oldest,
            drops: self.drops.clone(),
            acked: self.acked.0,
            head: self.head,
        }
    }
}

/// The ack file: `seq u64 LE | hash [32] | crc32c u32 LE` of the two.
fn read_ack(path: &Path) -> (u64, [u8; 32]) {
    let Ok(b) = fs::read(path) else {
        return (0, [0; 32]);
    };
    if b.len() != 44 || crc32c::crc32c(&b[..40]).to_le_bytes() != b[40..44] {
        tracing::warn!(file = %path.display(), "spool ack file damaged: unacknowledged state assumed (the aggregator answers replays as duplicates)");
        return (0, [0; 32]);
    }
    let seq = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
    let hash: [u8; 32] = b[8..40].try_into().expect("32 bytes");
    (seq, hash)
}

fn write_ack(dir: &Path, (seq, hash): (u64, [u8; 32]), fsync: bool) -> io::Result<()> {
    let mut b = Vec::with_capacity(44);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&hash);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("ack.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&b)?;
    if fsync {
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(ACK_FILE))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
