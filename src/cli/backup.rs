//! `foodgate backup FILE`: a consistent copy of the live database, safe while `serve` writes.
//!
//! SQLite's online backup API copies every page in one step, inside one read transaction:
//! in WAL mode that read sees one commit and never blocks the writer, so the copy holds
//! exactly what was committed when it started. (Copying in small steps would restart each
//! time `serve` commits, and could never finish under load.) The copy is written beside
//! FILE and renamed over it only when complete and synced, so a crash or a full disk never
//! leaves a half backup under the name an operator trusts.

use crate::config::Config;
use anyhow::{bail, Context};
use clap::Args;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the copy (replaced atomically if it exists).
    file: PathBuf,
}

pub fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("foodgate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let source = config.database_path();
    if !source.exists() {
        eprintln!("foodgate: no database at {}", source.display());
        return Ok(ExitCode::from(1));
    }
    if same_file(&source, &args.file) {
        eprintln!("foodgate: the backup file must not be the live database itself");
        return Ok(ExitCode::from(2));
    }
    let started = Instant::now();
    let summary = backup(&source, &args.file)?;
    eprintln!(
        "foodgate: backup of {} written to {} in {:.1} s",
        source.display(),
        args.file.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        serde_json::json!({
            "file": args.file.display().to_string(),
            "bytes": summary.bytes,
            "readings": summary.readings,
            "schema_version": summary.schema_version,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// What the finished copy holds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub bytes: u64,
    pub readings: i64,
    pub schema_version: i64,
}

/// Copy the database at `source` to `dest` (see the module comment).
pub fn backup(source: &Path, dest: &Path) -> anyhow::Result<Summary> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", source.display()))?;
    src.busy_timeout(Duration::from_secs(30))?;
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    {
        let mut dst = Connection::open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let job = Backup::new(&src, &mut dst)?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match job.step(-1)? {
                StepResult::Done => break,
                // Another connection holds a lock it should release soon (a checkpoint).
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    if Instant::now() > deadline {
                        let _ = std::fs::remove_file(&partial);
                        bail!("the database stayed locked for 10 minutes; no backup written");
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
            bail!(
                "the copy failed its check ({ok}); kept at {}",
                partial.display()
            );
        }
        // The copy keeps WAL mode; fold any WAL back so the file alone is the backup.
        copy.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Summary {
            bytes: 0,
            readings: copy.query_row("SELECT count(*) FROM readings", [], |r| r.get(0))?,
            schema_version: copy.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        }
    };
    let f = std::fs::File::open(&partial)?;
    f.sync_all()?;
    let bytes = f.metadata()?.len();
    drop(f);
    std::fs::rename(&partial, dest)
        .with_context(|| format!("cannot move the copy to {}", dest.display()))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(Summary { bytes, ..summary })
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
