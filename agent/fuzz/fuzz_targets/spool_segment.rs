//! Fuzz the spool's segment reader: any bytes must scan without panicking,
//! every record it returns must re-encode to the bytes it was read from, and
//! records must not overlap. Run: `cd agent/fuzz && cargo fuzz run spool_segment`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shuzhuan_agent::spool::record::{encode, scan};

fuzz_target!(|data: &[u8]| {
    let s = scan(data);
    let mut end = 0u64;
    for f in &s.records {
        assert!(f.offset >= end);
        let r = &f.record;
        let bytes = encode(r.seq, r.created_at, &r.hash, &r.payload);
        let at = f.offset as usize;
        assert_eq!(&data[at..at + bytes.len()], &bytes[..]);
        end = f.offset + f.len;
    }
    assert!(s.valid_end as usize <= data.len());
});
