//! Connection settings and the `PRAGMA user_version` migrator.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::time::Duration;

/// Every migration, in order; migration `i` brings `user_version` from `i` to `i + 1`.
/// Append only: a released migration's schema is never edited. (0002 and 0011 no longer insert
/// demo markets: applied migrations are not re-run and their text is not checked.)
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
    include_str!("migrations/0015_poll_progress.sql"),
    include_str!("migrations/0016_hold_workflow.sql"),
    include_str!("migrations/0017_trace.sql"),
    include_str!("migrations/0018_plans.sql"),
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
///
/// Foreign keys are off while they run (SQLite's procedure for changing a table's schema):
/// with them on, dropping a rebuilt table deletes its rows one by one and looks for rows that
/// reference each, and `readings.superseded_by` has no index, so migration 0012 scanned
/// `readings` once per reading (it did not finish in ten minutes at a year of data). Each
/// migration instead ends with `PRAGMA foreign_key_check` and is rolled back if it broke a
/// reference.
///
/// Temporary data (the sorts that build a rebuilt table's indexes) goes to files meanwhile:
/// in memory it took 2 GB to migrate a year of readings.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.pragma_update(None, "temp_store", "FILE")?;
    let reached = apply(conn, MIGRATIONS);
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    reached
}

fn apply(conn: &mut Connection, migrations: &[&str]) -> Result<u32, StoreError> {
    let known = migrations.len() as u32;
    loop {
        // The version is read under the write lock: another process (`ingest` beside
        // `serve`) may have migrated while this one waited for it.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        let Some(sql) = migrations.get(found as usize) else {
            return Ok(known);
        };
        tx.execute_batch(sql)?;
        let broken: Option<(String, i64)> = tx
            .prepare("PRAGMA foreign_key_check")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((table, rowid)) = broken {
            return Err(StoreError::Migration {
                version: found + 1,
                reason: format!("row {rowid} of {table} references a row that is not there"),
            });
        }
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_that_breaks_a_reference_is_rolled_back() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        conn.pragma_update(None, "foreign_keys", false)
            .expect("pragma");
        let migrations = [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id));
             INSERT INTO parent (id) VALUES (1);
             INSERT INTO child (id, parent) VALUES (1, 1);",
            // A rebuild that loses the parent row.
            "CREATE TABLE parent_new (id INTEGER PRIMARY KEY);
             DROP TABLE parent;
             ALTER TABLE parent_new RENAME TO parent;",
        ];
        let err = apply(&mut conn, &migrations).expect_err("refused");
        assert!(
            matches!(&err, StoreError::Migration { version: 2, reason } if reason.contains("child")),
            "{err}"
        );
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, 1);
        let parents: i64 = conn
            .query_row("SELECT count(*) FROM parent", [], |r| r.get(0))
            .expect("count");
        assert_eq!(parents, 1, "the second migration was not rolled back");
    }
}
