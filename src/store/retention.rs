//! Raw retention (`docs/operations.md`, "Retention"): raw bytes older than `raw_retention_days` are pruned in
//! small batches; readings, holds and the audit log never are.
//!
//! Pruning empties `raw_frames.bytes` and keeps the row (source, offset, hash, error, received
//! at, and the length it had), so every reading still points at a row that says where it came
//! from, and a capture ingested again is still recognised as already seen.

use super::insert::rfc3339;
use super::{Store, StoreError, Tx};
use chrono::{DateTime, Duration, Utc};
use rusqlite::params;

/// Frames emptied per transaction: small, so instrument and upload commits never wait long.
pub const BATCH: usize = 500;

/// The default of `server.raw_retention_days` (`docs/reference.md`, "Configuration").
pub const DEFAULT_DAYS: u32 = 400;

/// What one pruning pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub frames: u64,
    pub bytes: u64,
}

/// Frames received before this instant are due for pruning.
pub fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(days))
}

/// Empty at most `limit` frames received before `cutoff`, oldest first.
pub fn prune_batch(
    tx: &Tx<'_>,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: usize,
) -> rusqlite::Result<Pruned> {
    let bytes: i64 = tx.query_row(
        "SELECT COALESCE(SUM(length(bytes)), 0) FROM (
             SELECT bytes FROM raw_frames
             WHERE pruned_at IS NULL AND received_at < ?1
             ORDER BY received_at LIMIT ?2)",
        params![rfc3339(cutoff), limit as i64],
        |r| r.get(0),
    )?;
    let frames = tx.execute(
        "UPDATE raw_frames SET pruned_length = length(bytes), bytes = X'', pruned_at = ?3
         WHERE id IN (SELECT id FROM raw_frames
                      WHERE pruned_at IS NULL AND received_at < ?1
                      ORDER BY received_at LIMIT ?2)",
        params![rfc3339(cutoff), limit as i64, rfc3339(now)],
    )?;
    Ok(Pruned {
        frames: frames as u64,
        bytes: bytes.max(0) as u64,
    })
}

/// Prune everything due, one small transaction at a time, pausing between batches so other
/// writers get the store. Returns the total.
pub async fn prune_due(store: &Store, days: u32) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    loop {
        let now = Utc::now();
        let cut = cutoff(now, days);
        let done = store
            .write_async(move |tx| prune_batch(tx, cut, now, BATCH))
            .await?;
        total.frames += done.frames;
        total.bytes += done.bytes;
        if (done.frames as usize) < BATCH {
            return Ok(total);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Delete the raw archive's day files (`<root>/<instrument>/YYYY-MM-DD[.N].bin`) of days
/// before `before`; other files are left alone. Returns (files, bytes) deleted.
pub fn prune_archive(root: &std::path::Path, before: chrono::NaiveDate) -> (u64, u64) {
    let mut done = (0, 0);
    let Ok(instruments) = std::fs::read_dir(root) else {
        return done;
    };
    for dir in instruments.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let Some(day) = name
                .to_str()
                .filter(|n| n.ends_with(".bin"))
                .and_then(|n| n.get(..10))
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if day < before {
                let len = f.metadata().map_or(0, |m| m.len());
                match std::fs::remove_file(f.path()) {
                    Ok(()) => {
                        done.0 += 1;
                        done.1 += len;
                    }
                    Err(e) => tracing::warn!("raw retention: {}: {e}", f.path().display()),
                }
            }
        }
    }
    done
}

/// How often the pruner looks for raw bytes that came due.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prune now and then every [`EVERY`] until `stop` turns true; a failed pass is logged and
/// tried again next time (raw bytes waiting a little longer harm nothing).
pub fn spawn(
    store: Store,
    days: u32,
    archive: Option<std::path::PathBuf>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some(root) = archive.clone() {
                // A day file is due once its whole day is (a day early in the worst offset).
                let before = cutoff(Utc::now(), days).date_naive() - Duration::days(1);
                let swept = tokio::task::spawn_blocking(move || prune_archive(&root, before)).await;
                if let Ok((files, bytes)) = swept {
                    if files > 0 {
                        tracing::info!(
                            files,
                            bytes,
                            "raw archive files older than {days} days deleted"
                        );
                    }
                }
            }
            tokio::select! {
                done = prune_due(&store, days) => match done {
                    Ok(p) if p.frames > 0 => tracing::info!(
                        frames = p.frames,
                        bytes = p.bytes,
                        "raw bytes older than {days} days pruned"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("raw retention: {e}"),
                },
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
