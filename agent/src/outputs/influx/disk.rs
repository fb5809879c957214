//! The InfluxDB sink's disk buffer (`buffer = "disk"`): lines wait in
//! segment files under `<data_dir>/influx/` until the server acknowledged
//! them, so they survive an outage of the server and a restart of the agent.
//!
//! Layout (docs/specs/influx.md, "Disk buffer"): segment files
//! `<id>.lp` (16 hex digits, oldest first) hold line protocol, one point a
//! line, each line ended by `\n`; `cursor` holds `<id> <offset> <lines>`:
//! how far the oldest segment has been acknowledged. A segment is deleted
//! once every line of it is acknowledged. Lines reach the kernel when
//! appended (a killed process loses none; a power cut may lose what the
//! page cache held). At open a torn last line (no `\n`) is cut off; a
//! cursor that does not fit its segment is ignored, so some lines may be
//! sent twice, which InfluxDB absorbs (a point with the same series and
//! timestamp overwrites itself).
//!
//! Bound: `max_bytes` of unacknowledged lines; beyond it whole oldest
//! segments are dropped and their lines counted by the caller.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    id: u64,
    bytes: u64,
    lines: u64,
}

/// Where a peeked batch sits: acknowledged only if the oldest segment is
/// still `id` and still read up to `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskToken {
    id: u64,
    from: u64,
    to: u64,
}

/// The queue of segment files.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segs: VecDeque<Seg>,
    /// Acknowledged bytes and lines of `segs[0]`.
    head: u64,
    head_lines: u64,
    /// Append handle of `segs.back()`.
    out: Option<File>,
    next_id: u64,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.lp"))
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

impl DiskQueue {
    /// Opens (or creates) the buffer in `dir`, holding at most `max_bytes`
    /// of unacknowledged lines.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<DiskQueue> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let hex = name.strip_suffix(".lp")?;
                (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
            })
            .collect();
        ids.sort_unstable();
        let cursor = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace().map(|x| x.parse::<u64>().ok());
                Some((it.next()??, it.next()??, it.next()??))
            });
        let mut segs = VecDeque::new();
        let (mut head, mut head_lines) = (0, 0);
        for id in ids {
            let path = seg_path(dir, id);
            if let Some((cid, _, _)) = cursor {
                if id < cid {
                    // Acknowledged before a crash kept it from being deleted.
                    std::fs::remove_file(&path)?;
                    continue;
                }
            }
            let mut data = std::fs::read(&path)?;
            let keep = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if keep < data.len() {
                tracing::warn!(file = %path.display(), cut = data.len() - keep, "InfluxDB disk buffer: torn last line cut off");
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(keep as u64)?;
                data.truncate(keep);
            }
            if data.is_empty() {
                std::fs::remove_file(&path)?;
                continue;
            }
            let seg = Seg {
                id,
                bytes: data.len() as u64,
                lines: count_lines(&data),
            };
            if segs.is_empty() {
                if let Some((cid, off, _)) = cursor {
                    let off = off as usize;
                    if cid == id && off <= data.len() && (off == 0 || data[off - 1] == b'\n') {
                        head = off as u64;
                        head_lines = count_lines(&data[..off]);
                    }
                }
            }
            segs.push_back(seg);
        }
        let next_id = segs.back().map_or(1, |s| s.id + 1);
        let mut q = DiskQueue {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1),
            // A few segments per bound, each between 64 KiB and 4 MiB.
            segment_bytes: (max_bytes / 8).clamp(64 * 1024, 4 * 1024 * 1024),
            segs,
            head,
            head_lines,
            out: None,
            next_id,
        };
        // A fully acknowledged oldest segment left by a crash.
        q.reap();
        Ok(q)
    }

    /// Unacknowledged lines.
    pub fn lines(&self) -> u64 {
        self.segs.iter().map(|s| s.lines).sum::<u64>() - self.head_lines
    }

    /// Unacknowledged bytes.
    pub fn bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.bytes).sum::<u64>() - self.head
    }

    /// Appends lines (each without its `\n`); returns how many older lines
    /// were dropped to stay within the bound.
    pub fn append(&mut self, lines: &[String]) -> std::io::Result<u64> {
        if lines.is_empty() {
            return Ok(0);
        }
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        let roll = match self.segs.back() {
            None => true,
            Some(s) => self.out.is_none() || s.bytes >= self.segment_bytes,
        };
        if roll {
            let id = self.next_id;
            self.next_id += 1;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, id))?;
            self.out = Some(f);
            self.segs.push_back(Seg {
                id,
                bytes: 0,
                lines: 0,
            });
        }
        let out = self.out.as_mut().expect("an open segment");
        if let Err(e) = out.write_all(&buf) {
            // The segment may now end in a torn line: start a new one next time.
            self.out = None;
            return Err(e);
        }
        let back = self.segs.back_mut().expect("a segment");
        back.bytes += buf.len() as u64;
        back.lines += lines.len() as u64;
        let mut dropped = 0;
        while self.bytes() > self.max_bytes && self.segs.len() > 1 {
            let s = self.segs.pop_front().expect("two segments");
            dropped += s.lines - self.head_lines;
            self.head = 0;
            self.head_lines = 0;
            let _ = std::fs::remove_file(seg_path(&self.dir, s.id));
        }
        if dropped > 0 {
            self.write_cursor();
        }
        Ok(dropped)
    }

    /// Deletes fully acknowledged segments (never the one being appended to).
    fn reap(&mut self) {
        while self.segs.len() > 1 && self.head >= self.segs[0].bytes {
            let s = self.segs.pop_front().expect("a segment");
            let _ = std::fs::remove_file(seg_path(&self.dir, s.id));
            self.head = 0;
            self.head_lines = 0;
        }
    }

    /// At most `max_lines` of the oldest unacknowledged lines, as one body
    /// (each line ended by `\n`), with their count and where they sit.
    pub fn peek(
        &mut self,
        max_lines: usize,
    ) -> std::io::Result<Option<(DiskToken, usize, String)>> {
        self.reap();
        let Some(seg) = self.segs.front().copied() else {
            return Ok(None);
        };
        if self.head >= seg.bytes {
            return Ok(None);
        }
        let mut f = File::open(seg_path(&self.dir, seg.id))?;
        f.seek(SeekFrom::Start(self.head))?;
        let mut data = Vec::with_capacity((seg.bytes - self.head) as usize);
        f.take(seg.bytes - self.head).read_to_end(&mut data)?;
        let mut n = 0;
        let mut end = 0;
        for (i, b) in data.iter().enumerate() {
            if *b == b'\n' {
                n += 1;
                end = i + 1;
                if n == max_lines.max(1) {
                    break;
                }
            }
        }
        data.truncate(end);
        let body = String::from_utf8_lossy(&data).into_owned();
        let token = DiskToken {
            id: seg.id,
            from: self.head,
            to: self.head + end as u64,
        };
        Ok(Some((token, n, body)))
    }

    /// Marks a peeked batch acknowledged; returns its line count, or 0 when
    /// it was dropped for room in the meantime.
    pub fn ack(&mut self, t: DiskToken, n: usize) -> u64 {
        match self.segs.front() {
            Some(s) if s.id == t.id && self.head == t.from => {}
            _ => return 0,
        }
        self.head = t.to;
        self.head_lines += n as u64;
        self.reap();
        self.write_cursor();
        n as u64
    }

    /// Records the acknowledged position (written aside, then renamed).
    fn write_cursor(&self) {
        let text = match self.segs.front() {
            Some(s) => format!("{} {} {}\n", s.id, self.head, self.head_lines),
            None => format!("{} 0 0\n", self.next_id),
        };
        let tmp = self.dir.join("cursor.tmp");
        let r = std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("cursor")));
        if let Err(e) = r {
            tracing::warn!(dir = %self.dir.display(), error = %e, "InfluxDB disk buffer: cannot write the cursor (lines may be sent twice after a restart)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: std::ops::Range<u32>) -> Vec<String> {
        r.map(|i| format!("m v={i} {i}")).collect()
    }

    #[test]
    fn lines_survive_a_reopen_and_acknowledged_ones_do_not_come_back() {
        let d = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(d.path(), 1 << 20).unwrap();
        assert_eq!(q.append(&lines(0..5)).unwrap(), 0);
        let (t, n, body) = q.peek(2).unwrap().unwrap();
        assert_eq!((n, body.as_str()), (2, "m v=0 0\nm v=1 1\n"));
        assert_eq!(q.ack(t, n), 2);
        assert_eq!(q.ack(t, n), 0, "a token counts once");
        drop(q);
        let mut q = DiskQueue::open(d.path(), 1 << 20).unwrap();
        assert_eq!(q.lines(), 3);
        let (t, n, body) = q.peek(10).unwrap().unwrap();
        assert_eq!((n, body.as_str()), (3, "m v=2 2\nm v=3 3\nm v=4 4\n"));
        q.ack(t, n);
        assert_eq!((q.lines(), q.bytes()), (0, 0));
        assert!(q.peek(10).unwrap().is_none());
    }

    #[test]
    fn a_torn_line_is_cut_and_a_bad_cursor_ignored() {
        let d = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(d.path(), 1 << 20).unwrap();
        q.append(&lines(0..3)).unwrap();
        drop(q);
        let seg = seg_path(d.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"m v=9 9").unwrap();
        std::fs::write(d.path().join("cursor"), "1 5 1\n").unwrap();
        let mut q = DiskQueue::open(d.path(), 1 << 20).unwrap();
        // Offset 5 is not at a line start: everything is sent again.
        assert_eq!(q.lines(), 3);
        let (_, n, body) = q.peek(10).unwrap().unwrap();
        assert_eq!(n, 3);
        assert!(!body.contains("v=9"));
        q.append(&lines(3..4)).unwrap();
        assert_eq!(q.lines(), 4);
        std::fs::write(d.path().join("cursor"), "garbage").unwrap();
        assert_eq!(DiskQueue::open(d.path(), 1 << 20).unwrap().lines(), 4);
    }

    #[test]
    fn the_bound_drops_whole_oldest_segments_and_counts_their_lines() {
        let d = tempfile::tempdir().unwrap();
        // 64 KiB segments, 200 KiB bound.
        let mut q = DiskQueue::open(d.path(), 200 * 1024).unwrap();
        let big: Vec<String> = (0..1000).map(|i| format!("m v={i:0>90}")).collect();
        let mut dropped = 0;
        let mut written = 0u64;
        for _ in 0..10 {
            dropped += q.append(&big).unwrap();
            written += 1000;
        }
        assert!(q.bytes() <= 200 * 1024, "{}", q.bytes());
        assert!(dropped > 0);
        assert_eq!(q.lines() + dropped, written);
        // The oldest line left is where the drops stopped, and a reopen agrees.
        let left = q.lines();
        let (t, n, _) = q.peek(7).unwrap().unwrap();
        q.ack(t, n);
        drop(q);
        let q = DiskQueue::open(d.path(), 200 * 1024).unwrap();
        assert_eq!(q.lines(), left - 7);
    }

    #[test]
    fn a_batch_dropped_while_in_flight_is_not_acknowledged_twice() {
        let d = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(d.path(), 100 * 1024).unwrap();
        let big: Vec<String> = (0..700).map(|i| format!("m v={i:0>90}")).collect();
        q.append(&big).unwrap();
        let (t, n, _) = q.peek(10).unwrap().unwrap();
        let mut dropped = 0;
        while dropped == 0 {
            dropped = q.append(&big).unwrap();
        }
        assert_eq!(q.ack(t, n), 0);
    }
}
