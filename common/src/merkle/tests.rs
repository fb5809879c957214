//! Tests of the transparency log: RFC 6962 known answers, proofs for every
//! leaf and every pair of sizes, tampering, and the checkpoint signer.

use super::*;
use proptest::prelude::*;

/// The Certificate Transparency reference leaves (RFC 6962 test vectors).
const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// MTH of the first 1..=8 CT leaves, as published with the CT test vectors.
const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(s: &str) -> Hash32 {
    Hash32::from_hex(s).unwrap()
}

fn ct_log() -> MerkleLog {
    let mut log = MerkleLog::new();
    for l in CT_LEAVES {
        log.push(&hex::decode(l).unwrap());
    }
    log
}

/// A log of `n` distinct leaves.
fn log_of(n: u64) -> MerkleLog {
    MerkleLog::from_leaf_hashes((0..n).map(|i| leaf_hash(&i.to_be_bytes())))
}

/// The RFC's recursive definition, written independently of the cached
/// levels, as an oracle.
fn mth(leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

#[test]
fn roots_match_the_ct_test_vectors() {
    let log = ct_log();
    assert_eq!(
        log.root_at(0).unwrap().to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    for (i, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(
            log.root_at(i as u64 + 1).unwrap(),
            h(want),
            "size {}",
            i + 1
        );
    }
}

#[test]
fn inclusion_proof_matches_the_ct_test_vector() {
    let log = ct_log();
    let proof = log.inclusion_proof(5, 8).unwrap();
    let want = [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ];
    assert_eq!(proof, want.map(h).to_vec());
    verify_inclusion(&log.leaf(5).unwrap(), 5, 8, &proof, &h(CT_ROOTS[7])).unwrap();
}

#[test]
fn consistency_proof_matches_the_ct_test_vector() {
    let log = ct_log();
    let proof = log.consistency_proof(3, 8).unwrap();
    let want = [
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ];
    assert_eq!(proof, want.map(h).to_vec());
    verify_consistency(3, 8, &h(CT_ROOTS[2]), &h(CT_ROOTS[7]), &proof).unwrap();
}

#[test]
fn cached_roots_agree_with_the_recursive_definition() {
    let log = log_of(70);
    let leaves: Vec<Hash32> = (0..70).map(|i| log.leaf(i).unwrap()).collect();
    for size in 0..=70u64 {
        assert_eq!(
            log.root_at(size).unwrap(),
            mth(&leaves[..size as usize]),
            "size {size}"
        );
    }
}

#[test]
fn every_leaf_of_every_size_up_to_64_proves_inclusion() {
    let log = log_of(64);
    for size in 1..=64 {
        let root = log.root_at(size).unwrap();
        for index in 0..size {
            let proof = log.inclusion_proof(index, size).unwrap();
            verify_inclusion(&log.leaf(index).unwrap(), index, size, &proof, &root)
                .unwrap_or_else(|e| panic!("leaf {index} size {size}: {e}"));
            // The same proof never vouches for another leaf or position.
            let other = leaf_hash(b"not in the log");
            assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
            if size > 1 {
                let wrong = (index + 1) % size;
                assert!(
                    verify_inclusion(&log.leaf(index).unwrap(), wrong, size, &proof, &root)
                        .is_err(),
                    "leaf {index} size {size} accepted at {wrong}"
                );
            }
        }
    }
}

#[test]
fn every_pair_of_sizes_up_to_64_proves_consistency() {
    let log = log_of(64);
    for new in 0..=64 {
        let new_root = log.root_at(new).unwrap();
        for old in 0..=new {
            let old_root = log.root_at(old).unwrap();
            let proof = log.consistency_proof(old, new).unwrap();
            verify_consistency(old, new, &old_root, &new_root, &proof)
                .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
            if old > 0 && old < new {
                // A root of another tree of the old size is not a prefix.
                let forked = leaf_hash(b"fork");
                assert!(verify_consistency(old, new, &forked, &new_root, &proof).is_err());
                assert!(verify_consistency(old, new, &old_root, &forked, &proof).is_err());
            }
        }
    }
}

#[test]
fn out_of_range_requests_are_named() {
    let log = log_of(5);
    assert_eq!(
        log.inclusion_proof(5, 5),
        Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        log.root_at(6),
        Err(MerkleError::SizeBeyondLog { size: 6, len: 5 })
    );
    assert_eq!(
        log.consistency_proof(4, 3),
        Err(MerkleError::SizeRollback { old: 4, new: 3 })
    );
    let root = log.root();
    assert_eq!(
        verify_consistency(5, 4, &root, &root, &[]),
        Err(MerkleError::SizeRollback { old: 5, new: 4 })
    );
}

fn flip(h: &mut Hash32, byte: usize, bit: u8) {
    h.0[byte % 32] ^= 1 << bit;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any change to the proof, the leaf, the index or the root makes an
    /// inclusion proof fail. (The tree size is not bound by the proof alone:
    /// leaf 0 has the same path in trees of 3 and 4 leaves. It is bound by
    /// the signed checkpoint, whose test covers a changed size.)
    #[test]
    fn tampered_inclusion_fails(size in 2u64..=64, idx in any::<prop::sample::Index>(),
                                what in 0u8..5, pick in any::<prop::sample::Index>(),
                                byte in 0usize..32, bit in 0u8..8, delta in 1u64..64) {
        let log = log_of(64);
        let index = idx.index(size as usize) as u64;
        let mut proof = log.inclusion_proof(index, size).unwrap();
        let mut leaf = log.leaf(index).unwrap();
        let mut root = log.root_at(size).unwrap();
        let mut i = index;
        match what {
            0 => { let n = pick.index(proof.len()); flip(&mut proof[n], byte, bit) }
            1 => flip(&mut leaf, byte, bit),
            2 => flip(&mut root, byte, bit),
            3 => { i = (index + delta) % size; prop_assume!(i != index); }
            _ => { proof.pop(); }
        }
        prop_assert!(verify_inclusion(&leaf, i, size, &proof, &root).is_err());
    }

    /// Any change to the proof, either root or either size makes a
    /// consistency proof fail.
    #[test]
    fn tampered_consistency_fails(new in 2u64..=64, o in any::<prop::sample::Index>(),
                                  what in 0u8..6, pick in any::<prop::sample::Index>(),
                                  byte in 0usize..32, bit in 0u8..8) {
        let log = log_of(65);
        let old = 1 + o.index(new as usize - 1) as u64;
        let mut proof = log.consistency_proof(old, new).unwrap();
        let mut old_root = log.root_at(old).unwrap();
        let mut new_root = log.root_at(new).unwrap();
        let (mut m, mut n) = (old, new);
        match what {
            0 => { let k = pick.index(proof.len()); flip(&mut proof[k], byte, bit) }
            1 => flip(&mut old_root, byte, bit),
            2 => flip(&mut new_root, byte, bit),
            3 => { m = old - 1; prop_assume!(m > 0); old_root = log.root_at(m).unwrap(); }
            4 => { n = new + 1; new_root = log.root_at(n).unwrap(); }
            _ => { proof.pop(); }
        }
        prop_assert!(verify_consistency(m, n, &old_root, &new_root, &proof).is_err());
    }
}

fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

#[test]
fn checkpoint_body_is_the_c2sp_text_form() {
    let cp = Checkpoint {
        origin: "shuzhuan.test/log".into(),
        size: 8,
        root_hash: h(CT_ROOTS[7]),
    };
    assert_eq!(
        cp.body(),
        "shuzhuan.test/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    );
    let signed = cp.sign(&log_key()).unwrap();
    assert_eq!(signed.verify(&log_key().verifying_key()).unwrap(), &cp);
    let other = SigningKey::from_bytes(&[43; 32]).verifying_key();
    assert_eq!(signed.verify(&other), Err(MerkleError::BadSignature));
    let mut bumped = signed.clone();
    bumped.checkpoint.size = 9;
    assert_eq!(
        bumped.verify(&log_key().verifying_key()),
        Err(MerkleError::BadSignature)
    );
    let bad = Checkpoint {
        origin: "a\nb".into(),
        size: 1,
        root_hash: Hash32::GENESIS,
    };
    assert!(matches!(
        bad.sign(&log_key()),
        Err(MerkleError::BadOrigin(_))
    ));
}

#[test]
fn signer_extends_but_never_forks_or_rolls_back() {
    let mut log = log_of(10);
    let mut signer = CheckpointSigner::new("shuzhuan.test/log", log_key(), None);
    let first = signer.sign_log(&log).unwrap();
    assert_eq!(first.checkpoint.size, 10);
    log.push(b"eleven");
    let second = signer.sign_log(&log).unwrap();
    assert_eq!(second.checkpoint.size, 11);

    // A forked log of the same length and more: refused.
    let forked = MerkleLog::from_leaf_hashes((0..12).map(|i| leaf_hash(&[i as u8; 3])));
    let err = signer.sign_log(&forked).unwrap_err();
    assert_eq!(err, MerkleError::ConsistencyMismatch { old: 11, new: 12 });
    // A rollback: refused.
    assert_eq!(
        signer.sign_log(&log_of(5)),
        Err(MerkleError::SizeRollback { old: 11, new: 5 })
    );
    // A caller-supplied root without a valid proof: refused.
    let root12 = {
        let mut l = log.clone();
        l.push(b"twelve");
        l.root()
    };
    assert!(signer.sign(12, root12, &[]).is_err());
    // The refusals left the signer's state alone.
    assert_eq!(signer.latest().unwrap().size, 11);

    // A signer restored from storage keeps the guarantee.
    let mut restored = CheckpointSigner::new(
        "shuzhuan.test/log",
        log_key(),
        Some(second.checkpoint.clone()),
    );
    assert!(restored.sign_log(&forked).is_err());
    log.push(b"twelve");
    assert_eq!(
        restored.sign_log(&log).unwrap().checkpoint.root_hash,
        root12
    );
}
