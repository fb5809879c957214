//! Tests of the report wire format: signing, verification and chain checks.

use super::*;
use crate::state::{DeviceState, StateSeconds};
use crate::summary::{EnergyDelta, EnergyMethod, WindowSummary};
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn summary(dev: &str, productive: u32, window: u32) -> WindowSummary {
    let mut s = StateSeconds::default();
    s.add(DeviceState::Productive, productive);
    s.add(DeviceState::Standby, window - productive);
    WindowSummary {
        device_id: dev.into(),
        state_seconds: s,
        nc_seconds: productive / 2,
        energy: vec![EnergyDelta {
            meter: "m1".into(),
            carrier: "electricity".into(),
            quantity: 12.5 + f64::from(productive) / 7.0,
            unit: "kWh".into(),
            method: EnergyMethod::Counter,
            exported: 0.0,
        }],
        parts: Some(u64::from(productive / 60)),
        samples_expected: 900,
        samples_received: 897,
        flags: vec![],
    }
}

fn report(seq: u64, prev: Hash32) -> Report {
    let start = 1_700_000_000 + (seq as i64) * 900;
    Report {
        schema: SCHEMA_VERSION,
        agent_id: "gw-1".into(),
        enterprise: CreditCode::parse("91350100M000100Y43").unwrap(),
        seq,
        prev_hash: prev,
        window_start: start,
        window_end: start + 900,
        created_at: start + 905,
        inventory: None,
        summaries: vec![
            summary("cnc-1", 600 + seq as u32 % 100, 900),
            summary("press-2", 10, 900),
        ],
    }
}

/// Builds a valid chain of `n` signed reports.
fn chain(n: u64) -> Vec<SignedReport> {
    let k = key(7);
    let mut prev = Hash32::GENESIS;
    (1..=n)
        .map(|seq| {
            let (signed, h) = report(seq, prev).sign(&k);
            prev = h;
            signed
        })
        .collect()
}

fn verify_all(signed: &[SignedReport]) -> Result<(), String> {
    let vk = key(7).verifying_key();
    let verified: Vec<VerifiedReport> = signed
        .iter()
        .map(|s| s.verify(&vk).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    verify_chain(None, &verified).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn sign_then_verify_round_trips() {
    let r = report(1, Hash32::GENESIS);
    let (signed, hash) = r.sign(&key(7));
    let v = signed.verify(&key(7).verifying_key()).unwrap();
    assert_eq!(v.report, r);
    assert_eq!(v.hash, hash);
    assert_eq!(v.payload, r.canonical_bytes());
}

#[test]
fn canonical_encoding_is_stable() {
    let r = report(3, Hash32::of(b"x"));
    let again: Report = serde_json::from_slice(&r.canonical_bytes()).unwrap();
    assert_eq!(again.canonical_bytes(), r.canonical_bytes());
}

#[test]
fn another_key_is_a_forgery() {
    let (signed, _) = report(1, Hash32::GENESIS).sign(&key(8));
    assert_eq!(
        signed.verify(&key(7).verifying_key()),
        Err(ReportError::BadSignature)
    );
}

#[test]
fn newer_schema_is_named() {
    let mut r = report(1, Hash32::GENESIS);
    r.schema = 2;
    let (signed, _) = r.sign(&key(7));
    assert_eq!(
        signed.verify(&key(7).verifying_key()),
        Err(ReportError::Schema(2))
    );
}

#[test]
fn inconsistent_summary_is_refused() {
    let mut r = report(1, Hash32::GENESIS);
    r.summaries[0].state_seconds.add(DeviceState::Standby, 1);
    let (signed, _) = r.sign(&key(7));
    let err = signed
        .verify(&key(7).verifying_key())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cnc-1") && err.contains("901"), "{err}");
}

#[test]
fn chain_errors_say_what_happened() {
    let signed = chain(3);
    let vk = key(7).verifying_key();
    let v: Vec<_> = signed.iter().map(|s| s.verify(&vk).unwrap()).collect();
    let h1 = follow(None, &v[0].report, v[0].hash).unwrap();
    assert_eq!(
        follow(Some(h1), &v[2].report, v[2].hash),
        Err(ChainError::Gap {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(
        follow(Some(h1), &v[0].report, v[0].hash),
        Err(ChainError::Replay { seq: 1 })
    );
    assert_eq!(
        follow(None, &v[1].report, v[1].hash),
        Err(ChainError::Gap {
            expected: 1,
            got: 2
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Flipping any bit of any byte of any report's payload or signature is caught.
    #[test]
    fn every_single_byte_change_is_rejected(which in 0usize..4, pos in any::<prop::sample::Index>(), bit in 0u8..8, in_sig in any::<bool>()) {
        let mut signed = chain(4);
        let target = &mut signed[which];
        let field = if in_sig { &mut target.signature } else { &mut target.payload };
        let mut raw = B64.decode(&*field).unwrap();
        let i = pos.index(raw.len());
        raw[i] ^= 1 << bit;
        *field = B64.encode(&raw);
        prop_assert!(verify_all(&signed).is_err());
    }

    /// Dropping, duplicating or swapping reports breaks the chain.
    #[test]
    fn drop_duplicate_reorder_are_rejected(n in 3u64..8, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(), op in 0u8..3) {
        let mut signed = chain(n);
        // Dropping the newest report is truncation, which only a checkpoint
        // (the evidence log) can reveal; any other drop breaks the chain.
        let i = a.index(signed.len() - 1);
        match op {
            0 => { signed.remove(i); }
            1 => { let dup = signed[i].clone(); signed.insert(i, dup); }
            _ => {
                let j = b.index(signed.len());
                prop_assume!(i != j);
                signed.swap(i, j);
            }
        }
        prop_assert!(verify_all(&signed).is_err());
    }

    #[test]
    fn intact_chains_verify(n in 1u64..10) {
        prop_assert!(verify_all(&chain(n)).is_ok());
    }
}
