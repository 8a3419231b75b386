//! A consistent copy of a live database, safe while `serve` writes.
//!
//! SQLite's online backup API copies every page in one step, inside one read transaction:
//! in WAL mode that read sees one commit and never blocks the writer, so the copy holds
//! exactly what was committed when it started. (Copying in small steps would restart each
//! time `serve` commits, and could never finish under load.) The copy is written beside
//! its destination and renamed over it only when complete and synced, so a crash or a full
//! disk never leaves a half backup under the name an operator trusts.

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database stayed locked for 10 minutes; no backup written")]
    Locked,
    #[error("the copy failed its check ({check}); kept at {kept}")]
    Check { check: String, kept: PathBuf },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the finished copy holds.
#[derive(Debug, Clone, Copy)]
pub struct BackupSummary {
    pub bytes: u64,
    pub readings: i64,
    pub schema_version: i64,
}

/// How long a copy waits for locks held by others (a checkpoint) before giving up.
const PATIENCE: Duration = Duration::from_secs(600);

/// Copy the database at `source` to `dest` (see the module comment).
pub fn backup(source: &Path, dest: &Path) -> Result<BackupSummary, BackupError> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| BackupError::Open {
        path: source.to_path_buf(),
        source: e,
    })?;
    src.busy_timeout(Duration::from_secs(30))?;
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    {
        let mut dst = Connection::open(&partial).map_err(|e| BackupError::Open {
            path: partial.clone(),
            source: e,
        })?;
        let job = Backup::new(&src, &mut dst)?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            match job.step(-1)? {
                StepResult::Done => break,
                // Another connection holds a lock it should release soon (a checkpoint).
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    if Instant::now() > deadline {
                        let _ = std::fs::remove_file(&partial);
                        return Err(BackupError::Locked);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    let summary = {
        let copy = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let ok: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(BackupError::Check {
                check: ok,
                kept: partial,
            });
        }
        // The copy keeps WAL mode; fold any WAL back so the file alone is the backup.
        copy.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        BackupSummary {
            bytes: 0,
            readings: copy.query_row("SELECT count(*) FROM readings", [], |r| r.get(0))?,
            schema_version: copy.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        }
    };
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { what, path, source }
    };
    let f = std::fs::File::open(&partial).map_err(io("cannot open", &partial))?;
    f.sync_all().map_err(io("cannot sync", &partial))?;
    let bytes = f.metadata().map_err(io("cannot stat", &partial))?.len();
    drop(f);
    std::fs::rename(&partial, dest).map_err(io("cannot move the copy to", dest))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(BackupSummary { bytes, ..summary })
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}
