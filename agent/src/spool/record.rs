//! The spool's record codec: `[magic "SZR1"][len u32 LE][crc32c u32 LE][body]`, body =
//! `seq u64 LE | created_at i64 LE | hash [32] | payload`. The reader never
//! fails on bad bytes: it skips what does not check out and says how much.

/// Marks the start of every record, so resynchronising after damage only
/// tries offsets where a record can begin.
pub const MAGIC: [u8; 4] = *b"SZR1";
/// Bytes before the body.
pub const HEADER_LEN: usize = 12;
/// Fixed part of the body before the payload.
pub const BODY_FIXED: usize = 8 + 8 + 32;
/// Upper bound of one body; a length field above it is corruption.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// The agent's clock when the report was sealed, Unix seconds.
    pub created_at: i64,
    /// SHA-256 of the report payload (the chain hash).
    pub hash: [u8; 32],
    /// The stored bytes (a `SignedReport` as JSON).
    pub payload: Vec<u8>,
}

/// Encodes one record, header included.
pub fn encode(seq: u64, created_at: i64, hash: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let body_len = BODY_FIXED + payload.len();
    let mut out = Vec::with_capacity(HEADER_LEN + body_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&created_at.to_le_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[HEADER_LEN..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A record found in a segment, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    /// Encoded length, header included.
    pub len: u64,
    pub record: Record,
}

/// What a scan of one segment found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Found>,
    /// Damaged stretches skipped between good records (each counted once).
    pub corrupt: u64,
    /// End of the last good record: bytes after it are a torn or damaged tail.
    pub valid_end: u64,
    /// Whether bytes after `valid_end` exist (a torn tail).
    pub torn_tail: bool,
}

fn try_record(buf: &[u8], at: usize) -> Option<(usize, Record)> {
    let rest = buf.get(at..)?;
    if rest.len() < HEADER_LEN + BODY_FIXED {
        return None;
    }
    if rest[0..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(rest[4..8].try_into().ok()?) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&len) || rest.len() < HEADER_LEN + len {
        return None;
    }
    let crc = u32::from_le_bytes(rest[8..12].try_into().ok()?);
    let body = &rest[HEADER_LEN..HEADER_LEN + len];
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(body[0..8].try_into().ok()?);
    let created_at = i64::from_le_bytes(body[8..16].try_into().ok()?);
    let hash: [u8; 32] = body[16..48].try_into().ok()?;
    Some((
        HEADER_LEN + len,
        Record {
            seq,
            created_at,
            hash,
            payload: body[BODY_FIXED..].to_vec(),
        },
    ))
}

/// Reads every good record of a segment. A damaged record is skipped by
/// searching forward for the next record whose checksum holds; the damaged
/// stretch counts once in `corrupt`. Damage at the very end with no good
/// record after it is a torn tail, not counted as corrupt.
pub fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut at = 0usize;
    while at < buf.len() {
        if let Some((n, rec)) = try_record(buf, at) {
            out.records.push(Found {
                offset: at as u64,
                len: n as u64,
                record: rec,
            });
            at += n;
            out.valid_end = at as u64;
            continue;
        }
        // Resynchronise: the next offset where a good record starts.
        let next = (at + 1..buf.len())
            .filter(|&i| buf[i..].starts_with(&MAGIC))
            .find(|&i| try_record(buf, i).is_some());
        match next {
            Some(next) => {
                out.corrupt += 1;
                at = next;
            }
            None => {
                out.torn_tail = true;
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_resync() {
        let mut buf = encode(1, 10, &[1; 32], b"one");
        let second = encode(2, 11, &[2; 32], b"two");
        let mut damaged = second.clone();
        damaged[HEADER_LEN + 20] ^= 0xff;
        buf.extend_from_slice(&damaged);
        buf.extend_from_slice(&encode(3, 12, &[3; 32], b"three"));
        let s = scan(&buf);
        let seqs: Vec<u64> = s.records.iter().map(|f| f.record.seq).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(s.corrupt, 1);
        assert!(!s.torn_tail);
        assert_eq!(s.records[1].record.payload, b"three");
    }

    #[test]
    fn torn_tail_is_not_corruption() {
        let mut buf = encode(1, 10, &[1; 32], b"one");
        let good = buf.len() as u64;
        let second = encode(2, 11, &[2; 32], b"two");
        buf.extend_from_slice(&second[..second.len() - 3]);
        let s = scan(&buf);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.corrupt, 0);
        assert!(s.torn_tail);
        assert_eq!(s.valid_end, good);
    }

    #[test]
    fn garbage_gives_nothing_and_no_panic() {
        let s = scan(&[0xff; 1000]);
        assert!(s.records.is_empty());
        assert!(s.torn_tail);
    }
}
