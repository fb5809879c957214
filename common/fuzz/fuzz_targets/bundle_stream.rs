//! Fuzz target: bytes given to the offline bundle verifier (format 1 or 2).
//! It must never panic and must never call garbage "ok": with a log key
//! nobody can sign for, no input may verify.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use shuzhuan_common::evidence::verify_bundle_stream;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
    if let Ok(verdict) = verify_bundle_stream(data, &key, &[]) {
        assert!(!verdict.ok, "a bundle not signed by the log's key verified");
    }
});
