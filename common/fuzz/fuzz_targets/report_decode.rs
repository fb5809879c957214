//! Fuzz target: bytes posted as a signed report. Decoding, peeking the
//! payload and verifying against a fixed key must never panic; anything
//! accepted must be a report that validates and verifies again.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use shuzhuan_common::report::SignedReport;

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = serde_json::from_slice::<SignedReport>(data) else {
        return;
    };
    if let Ok((report, _payload)) = signed.peek() {
        let _ = report.validate();
    }
    let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    if let Ok(v) = signed.verify(&key) {
        assert!(v.report.validate().is_ok(), "verified but invalid");
        assert_eq!(signed.verify(&key).ok(), Some(v), "verification is deterministic");
    }
});
