//! The evidence transparency log: an append-only Merkle tree in the style of
//! RFC 6962 / RFC 9162, with inclusion and consistency proofs and signed
//! checkpoints. Specified in `docs/specs/evidence.md`.
//!
//! Hashing follows RFC 9162 §2.1.1: a leaf hash is `SHA-256(0x00 || data)`, an
//! interior node `SHA-256(0x01 || left || right)`, the empty tree's hash is
//! `SHA-256("")`, and a tree of `n > 1` leaves splits at `k`, the largest
//! power of two smaller than `n`. Proof generation follows the PATH and
//! PROOF definitions of RFC 9162 §2.1.3.1 and §2.1.4.1; verification follows
//! the algorithms of §2.1.3.2 and §2.1.4.2.
//!
//! [`MerkleLog`] keeps every complete (power-of-two, aligned) subtree hash as
//! leaves are appended, so a proof or a root for any earlier size costs
//! `O(log n)` lookups plus `O(log n)` hashes of the right edge, never a walk
//! over all leaves. This matters when a bundle carries one proof per report
//! for a year of reports.
//!
//! A checkpoint is the log's signed statement "at size N my root is R". Its
//! signed body is the C2SP `tlog-checkpoint` text form
//! `"<origin>\n<size>\n<base64 root>\n"`, signed with Ed25519.
//! [`CheckpointSigner`] refuses to sign a checkpoint that is not provably an
//! extension of the last one it signed, so the log cannot fork or roll back
//! under its own key.

use crate::report::Hash32;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a proof, a checkpoint or a log operation fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the log ({len} leaves)")]
    SizeBeyondLog { size: u64, len: u64 },
    #[error("consistency from size {old} to size {new}: the old size is larger")]
    SizeRollback { old: u64, new: u64 },
    #[error("inclusion proof for leaf {index} in a tree of size {size} does not lead to the root")]
    InclusionMismatch { index: u64, size: u64 },
    #[error("consistency proof from size {old} to size {new} does not match the two roots")]
    ConsistencyMismatch { old: u64, new: u64 },
    #[error("checkpoint origin `{0}` is empty or contains a newline")]
    BadOrigin(String),
    #[error("checkpoint signature is not 64 bytes of base64")]
    SignatureEncoding,
    #[error("checkpoint signature does not verify against the log key")]
    BadSignature,
    #[error("checkpoint origin is `{got}`, this log is `{want}`")]
    OriginMismatch { got: String, want: String },
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash32(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash32 {
    Hash32::of(b"")
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree over leaf hashes.
///
/// `levels[h][i]` is the hash of the complete subtree of `2^h` leaves that
/// starts at leaf `i * 2^h`; level 0 holds the leaf hashes themselves.
#[derive(Debug, Clone, Default)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash32>>,
}

impl MerkleLog {
    pub fn new() -> Self {
        MerkleLog::default()
    }

    /// A log holding these leaf hashes, in order.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash32>) -> Self {
        let mut log = MerkleLog::new();
        for l in leaves {
            log.push_leaf_hash(l);
        }
        log
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf given its data; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf given its (already computed) leaf hash; returns its index.
    pub fn push_leaf_hash(&mut self, leaf: Hash32) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() as u64 - 1;
        // Each time a level gets an even length, its last two entries have
        // just completed a subtree one level up.
        let mut h = 0;
        while self.levels[h].len() % 2 == 0 {
            let n = self.levels[h].len();
            let parent = node_hash(&self.levels[h][n - 2], &self.levels[h][n - 1]);
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[h + 1].push(parent);
            h += 1;
        }
        index
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash32> {
        self.levels
            .first()
            .and_then(|l| l.get(index as usize))
            .copied()
    }

    /// The root of the tree made of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash32, MerkleError> {
        self.check_size(size)?;
        Ok(if size == 0 {
            empty_root()
        } else {
            self.subtree(0, size)
        })
    }

    /// The root of the whole log.
    pub fn root(&self) -> Hash32 {
        self.root_at(self.len())
            .expect("the log's own size is in range")
    }

    /// The audit path of leaf `index` in the tree of the first `size`
    /// leaves (RFC 9162 §2.1.3.1 PATH).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash32>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof between the trees of the first `old` and the
    /// first `new` leaves (RFC 9162 §2.1.4.1 PROOF). Empty when `old` is 0
    /// or equals `new`: those need no proof.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash32>, MerkleError> {
        self.check_size(new)?;
        if old > new {
            return Err(MerkleError::SizeRollback { old, new });
        }
        let mut proof = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.len() {
            return Err(MerkleError::SizeBeyondLog {
                size,
                len: self.len(),
            });
        }
        Ok(())
    }

    /// MTH(D[start:end]) for `end > start`.
    fn subtree(&self, start: u64, end: u64) -> Hash32 {
        let n = end - start;
        if n.is_power_of_two() && start % n == 0 {
            let h = n.trailing_zeros() as usize;
            return self.levels[h][(start / n) as usize];
        }
        let k = split(n);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    /// PATH(m, D[start:end]), appended to `out` in RFC order (bottom first).
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash32>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// SUBPROOF(m, D[start:end], b), appended to `out`.
    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash32>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves whose root
/// is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mismatch = MerkleError::InclusionMismatch { index, size };
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(mismatch);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && r == *root {
        Ok(())
    } else {
        Err(mismatch)
    }
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix
/// of the tree of `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
/// Size 0 is a prefix of everything; equal sizes need equal roots and an
/// empty proof.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), MerkleError> {
    let mismatch = MerkleError::ConsistencyMismatch { old, new };
    if old > new {
        return Err(MerkleError::SizeRollback { old, new });
    }
    if old == 0 {
        return if proof.is_empty() && *old_root == empty_root() {
            Ok(())
        } else {
            Err(mismatch)
        };
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(mismatch)
        };
    }
    if proof.is_empty() {
        return Err(mismatch);
    }
    let mut path: Vec<Hash32> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(mismatch);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if fr == *old_root && sr == *new_root && snode == 0 {
        Ok(())
    } else {
        Err(mismatch)
    }
}

/// The log's statement "at `size` leaves my root is `root_hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Names the log; a single line.
    pub origin: String,
    pub size: u64,
    pub root_hash: Hash32,
}

impl Checkpoint {
    /// The exact bytes that are signed: `"<origin>\n<size>\n<base64 root>\n"`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root_hash.0)
        )
    }

    fn check_origin(&self) -> Result<(), MerkleError> {
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(MerkleError::BadOrigin(self.origin.clone()));
        }
        Ok(())
    }

    /// Signs the body.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedCheckpoint, MerkleError> {
        self.check_origin()?;
        let sig = key.sign(self.body().as_bytes());
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            signature: B64.encode(sig.to_bytes()),
        })
    }
}

/// A checkpoint with the log's Ed25519 signature (base64) over its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signature: String,
}

impl SignedCheckpoint {
    /// Checks the signature with the log's public key.
    pub fn verify(&self, log_key: &VerifyingKey) -> Result<&Checkpoint, MerkleError> {
        self.checkpoint.check_origin()?;
        let raw = B64
            .decode(&self.signature)
            .map_err(|_| MerkleError::SignatureEncoding)?;
        let arr: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| MerkleError::SignatureEncoding)?;
        log_key
            .verify(
                self.checkpoint.body().as_bytes(),
                &Signature::from_bytes(&arr),
            )
            .map_err(|_| MerkleError::BadSignature)?;
        Ok(&self.checkpoint)
    }
}

/// Signs checkpoints for one log, never one that is inconsistent with the
/// last checkpoint it signed.
#[derive(Debug)]
pub struct CheckpointSigner {
    origin: String,
    key: SigningKey,
    latest: Option<Checkpoint>,
}

impl CheckpointSigner {
    /// `latest` is the last checkpoint this log signed, if any (restored
    /// from storage on start).
    pub fn new(origin: impl Into<String>, key: SigningKey, latest: Option<Checkpoint>) -> Self {
        CheckpointSigner {
            origin: origin.into(),
            key,
            latest,
        }
    }

    pub fn latest(&self) -> Option<&Checkpoint> {
        self.latest.as_ref()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs a checkpoint for `size` leaves with root `root`, after checking
    /// with `proof` that it extends the last signed checkpoint.
    pub fn sign(
        &mut self,
        size: u64,
        root: Hash32,
        proof: &[Hash32],
    ) -> Result<SignedCheckpoint, MerkleError> {
        if let Some(prev) = &self.latest {
            verify_consistency(prev.size, size, &prev.root_hash, &root, proof)?;
        }
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root_hash: root,
        };
        let signed = cp.sign(&self.key)?;
        self.latest = Some(cp);
        Ok(signed)
    }

    /// Signs the current state of `log`, proving consistency from the last
    /// checkpoint with the log itself.
    pub fn sign_log(&mut self, log: &MerkleLog) -> Result<SignedCheckpoint, MerkleError> {
        let size = log.len();
        let root = log.root();
        let proof = match &self.latest {
            Some(prev) if prev.size <= size => log.consistency_proof(prev.size, size)?,
            Some(prev) => {
                return Err(MerkleError::SizeRollback {
                    old: prev.size,
                    new: size,
                })
            }
            None => Vec::new(),
        };
        self.sign(size, root, &proof)
    }
}

#[cfg(test)]
mod tests;
