//! Backup and restore of the SQLite store with SQLite's online backup API.
//!
//! A backup is taken from a reader connection in one step, so it is a
//! consistent snapshot of the committed data (WAL included) while the server
//! keeps ingesting. A restore checks the file first (`PRAGMA
//! integrity_check`, a schema version this build knows, the tables of a
//! store) and then copies it page by page into a temporary file beside the
//! target, which is renamed over the store: a failed restore leaves the old
//! store as it was. Restore with the server stopped.

use super::schema::MIGRATIONS;
use super::StoreError;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a backup or restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub schema_version: i64,
    pub reports: i64,
    pub evidence_leaves: i64,
    pub bytes: u64,
}

fn open_ro(path: &Path) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })
}

fn copy(src: &Connection, dst_path: &Path) -> Result<(), StoreError> {
    let mut dst = Connection::open(dst_path).map_err(|source| StoreError::Open {
        path: dst_path.display().to_string(),
        source,
    })?;
    {
        let b = Backup::new(src, &mut dst)?;
        // -1: every page in one step, under one read transaction, so the
        // copy is one consistent snapshot. Busy or locked: try again.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match b.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if std::time::Instant::now() > deadline => {
                    return Err(StoreError::Corrupt(
                        "backup: the database stayed busy for 60 s".into(),
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    // A standalone file: no WAL beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Checks that `path` is a whole, readable store this build understands.
pub fn check(path: &Path) -> Result<BackupSummary, StoreError> {
    let c = open_ro(path)?;
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
    if ok != "ok" {
        return Err(StoreError::Corrupt(format!(
            "{}: integrity check says {ok}",
            path.display()
        )));
    }
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::FutureSchema {
            found: version,
            known,
        });
    }
    if version == 0 {
        return Err(StoreError::Corrupt(format!(
            "{} is not an aggregator store (schema version 0)",
            path.display()
        )));
    }
    let reports: i64 = c
        .query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
    let has_log: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'evidence_leaves'",
        [],
        |r| r.get(0),
    )?;
    let evidence_leaves = if has_log {
        c.query_row("SELECT COUNT(*) FROM evidence_leaves", [], |r| r.get(0))?
    } else {
        0
    };
    Ok(BackupSummary {
        schema_version: version,
        reports,
        evidence_leaves,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    })
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes a consistent copy of the store at `store_path` to `out` (which
/// must not exist), then checks the copy.
pub fn backup(store_path: &Path, out: &Path) -> Result<BackupSummary, StoreError> {
    if out.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} exists; a backup never overwrites",
            out.display()
        )));
    }
    if !store_path.exists() {
        return Err(StoreError::Corrupt(format!(
            "store {} does not exist",
            store_path.display()
        )));
    }
    let src = Connection::open(store_path).map_err(|source| StoreError::Open {
        path: store_path.display().to_string(),
        source,
    })?;
    src.busy_timeout(Duration::from_secs(10))?;
    let tmp = sibling(out, ".partial");
    let _ = std::fs::remove_file(&tmp);
    let res = copy(&src, &tmp).and_then(|()| check(&tmp));
    match res {
        Ok(summary) => {
            std::fs::rename(&tmp, out)
                .map_err(|e| StoreError::Corrupt(format!("renaming to {}: {e}", out.display())))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces the store at `store_path` with the backup `from` (checked
/// first). Refuses to replace an existing store unless `force`.
pub fn restore(from: &Path, store_path: &Path, force: bool) -> Result<BackupSummary, StoreError> {
    let summary = check(from)?;
    if store_path.exists() && !force {
        return Err(StoreError::Corrupt(format!(
            "store {} exists; stop the server and pass --force to replace it",
            store_path.display()
        )));
    }
    let tmp = sibling(store_path, ".restoring");
    let _ = std::fs::remove_file(&tmp);
    let src = open_ro(from)?;
    if let Err(e) = copy(&src, &tmp).and_then(|()| check(&tmp).map(|_| ())) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(store_path, ext));
    }
    std::fs::rename(&tmp, store_path)
        .map_err(|e| StoreError::Corrupt(format!("renaming to {}: {e}", store_path.display())))?;
    Ok(summary)
}
