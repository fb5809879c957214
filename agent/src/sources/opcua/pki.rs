//! The agent's OPC UA certificate store on disk: `own/cert.der` and
//! `private/private.pem` (the agent's application instance certificate,
//! created self-signed at first start by async-opcua), `trusted/` (server
//! certificates an operator accepted) and `rejected/` (unknown server
//! certificates: refused, kept for the operator to move to `trusted/`).

use std::io;
use std::path::{Path, PathBuf};

/// The application URI in the agent's certificate.
pub const APPLICATION_URI: &str = "urn:shuzhuan:agent";

/// Creates the store's folders (owner-only, they hold a private key).
pub(crate) fn prepare(dir: &Path) -> io::Result<()> {
    for sub in ["own", "private", "trusted", "rejected"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    restrict(&dir.join("private"))
}

#[cfg(unix)]
fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Server certificates refused so far (files in `rejected/`).
pub fn rejected_certificates(dir: &Path) -> io::Result<Vec<PathBuf>> {
    list(&dir.join("rejected"))
}

/// Server certificates trusted (files in `trusted/`).
pub fn trusted_certificates(dir: &Path) -> io::Result<Vec<PathBuf>> {
    list(&dir.join("trusted"))
}

/// The operator's decision: moves a rejected certificate to `trusted/`.
pub fn trust_rejected(dir: &Path, file_name: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir.join("trusted"))?;
    std::fs::rename(
        dir.join("rejected").join(file_name),
        dir.join("trusted").join(file_name),
    )
}

fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let p = e?.path();
                if p.is_file() {
                    out.push(p);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_moves_a_rejected_certificate_to_trusted() {
        let d = tempfile::tempdir().unwrap();
        prepare(d.path()).unwrap();
        assert!(rejected_certificates(d.path()).unwrap().is_empty());
        std::fs::write(d.path().join("rejected/server [ab12].der"), b"x").unwrap();
        assert_eq!(rejected_certificates(d.path()).unwrap().len(), 1);
        trust_rejected(d.path(), "server [ab12].der").unwrap();
        assert!(rejected_certificates(d.path()).unwrap().is_empty());
        assert_eq!(trusted_certificates(d.path()).unwrap().len(), 1);
    }
}
