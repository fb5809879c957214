//! The agent's Ed25519 identity: created at first start in `data_dir`
//! (`agent.key`, mode 0600, the 32-byte seed in base64), loaded afterwards.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the key inside `data_dir`.
pub const KEY_FILE: &str = "agent.key";

/// Where the key lives.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Loads the key, creating it (and `data_dir`) when absent.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = key_path(data_dir);
    if path.exists() {
        return load(&path);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", data_dir.display()))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot create key file {}: {e}", path.display()))?;
    f.write_all(B64.encode(seed).as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    tracing::info!(file = %path.display(), "agent key created");
    Ok(SigningKey::from_bytes(&seed))
}

/// Loads an existing key file.
pub fn load(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
    let bytes = B64.decode(text.trim()).map_err(|_| {
        anyhow::anyhow!(
            "key file {} is not base64 of a 32-byte seed",
            path.display()
        )
    })?;
    let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "key file {} holds {} bytes, expected 32",
            path.display(),
            bytes.len()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_private_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let a = load_or_create(tmp.path()).unwrap();
        let b = load_or_create(tmp.path()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(tmp.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
