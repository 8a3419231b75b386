//! Connection settings and the `PRAGMA user_version` migrator.

use super::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use std::time::Duration;

/// Every migration, in order; migration `i` brings `user_version` from `i` to `i + 1`.
/// Append only: a released migration is never edited.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_demo_markets.sql"),
    include_str!("migrations/0003_api.sql"),
    include_str!("migrations/0004_instrument_status.sql"),
    include_str!("migrations/0005_store_indexes.sql"),
    include_str!("migrations/0006_coverage_index.sql"),
    include_str!("migrations/0007_web_sessions.sql"),
    include_str!("migrations/0008_hub.sql"),
    include_str!("migrations/0009_coverage_days.sql"),
    include_str!("migrations/0010_raw_retention.sql"),
    include_str!("migrations/0011_demo_registry.sql"),
    include_str!("migrations/0012_totals_outbox_key.sql"),
    include_str!("migrations/0013_lazy_bodies.sql"),
    include_str!("migrations/0014_outbox_totals.sql"),
];

/// Settings every connection needs, writer and readers alike.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    // Takes effect only when this connection creates the database (an existing one keeps the
    // page size it was made with). Readings are ~1 KiB rows written in big batches: at a
    // million readings 16 KiB pages ingest about a sixth faster than 4 KiB (fewer pages to
    // split, checksum and write twice).
    conn.pragma_update(None, "page_size", 16_384)?;
    let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // FULL: an acknowledged commit survives power loss, not only a crash of the process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Savepoint journals of grouped jobs in memory, not in a temp file written page by page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 64 MiB of page cache: a big batch's index pages stay in memory until COMMIT.
    conn.pragma_update(None, "cache_size", -65_536)?;
    Ok(())
}

/// Apply the migrations this database has not seen, each in its own transaction.
/// Returns the schema version reached.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let known = MIGRATIONS.len() as u32;
    loop {
        // The version is read under the write lock: another process (`ingest` beside
        // `serve`) may have migrated while this one waited for it.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        let Some(sql) = MIGRATIONS.get(found as usize) else {
            return Ok(known);
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}
