//! The `instruments` table: the last known status of each live link, with its counters
//! summed over every run of `serve` (a restart does not reset them).

use super::Db;
use super::{Reader, Tx};
use rusqlite::params;
use std::collections::HashMap;

/// An instrument's counters as stored by earlier runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub readings: i64,
    pub duplicates: i64,
    pub decode_errors: i64,
    pub reconnects: i64,
    pub retransmissions: i64,
    pub refused_commits: i64,
}

/// The stored counters of every instrument, by id.
pub fn counters(reader: &Reader) -> rusqlite::Result<HashMap<String, Counters>> {
    let mut stmt = reader.connection().prepare(
        "SELECT id, readings, duplicates, decode_errors, reconnects, retransmissions,
                refused_commits FROM instruments",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>("id")?,
            Counters {
                readings: r.get("readings")?,
                duplicates: r.get("duplicates")?,
                decode_errors: r.get("decode_errors")?,
                reconnects: r.get("reconnects")?,
                retransmissions: r.get("retransmissions")?,
                refused_commits: r.get("refused_commits")?,
            },
        ))
    })?;
    rows.collect()
}

/// One instrument's status as written; `None` keeps what is stored (identity, last seen,
/// last error).
#[derive(Debug, Clone)]
pub struct StatusRow<'a> {
    pub id: &'a str,
    pub market: &'a str,
    pub protocol: &'a str,
    pub serial_number: Option<&'a str>,
    pub model: Option<&'a str>,
    pub firmware: Option<&'a str>,
    /// RFC 3339; also the first time seen when the instrument is new.
    pub last_seen: Option<String>,
    pub online: bool,
    /// Totals over every run (the stored [`Counters`] plus this run's).
    pub counters: Counters,
    pub last_error: Option<&'a str>,
    /// RFC 3339: when the status was taken.
    pub status_at: &'a str,
}

/// Write `row` (insert or update). An instrument whose market the registry does not know is
/// skipped: its row would point nowhere.
pub fn upsert_status(tx: &Tx<'_>, row: &StatusRow<'_>) -> rusqlite::Result<()> {
    let mut stmt = tx.conn().prepare_cached(
        "INSERT INTO instruments (id, market, protocol, serial_number, model, firmware,
            first_seen, last_seen, online, readings, duplicates, decode_errors,
            reconnects, retransmissions, refused_commits, last_error, status_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16
         WHERE EXISTS (SELECT 1 FROM markets WHERE code = ?2)
         ON CONFLICT (id) DO UPDATE SET
            market = excluded.market,
            protocol = excluded.protocol,
            serial_number = coalesce(excluded.serial_number, instruments.serial_number),
            model = coalesce(excluded.model, instruments.model),
            firmware = coalesce(excluded.firmware, instruments.firmware),
            first_seen = coalesce(instruments.first_seen, excluded.first_seen),
            last_seen = coalesce(excluded.last_seen, instruments.last_seen),
            online = excluded.online,
            readings = excluded.readings,
            duplicates = excluded.duplicates,
            decode_errors = excluded.decode_errors,
            reconnects = excluded.reconnects,
            retransmissions = excluded.retransmissions,
            refused_commits = excluded.refused_commits,
            last_error = coalesce(excluded.last_error, instruments.last_error),
            status_at = excluded.status_at",
    )?;
    let c = &row.counters;
    stmt.execute(params![
        row.id,
        row.market,
        row.protocol,
        row.serial_number,
        row.model,
        row.firmware,
        row.last_seen,
        row.online,
        c.readings,
        c.duplicates,
        c.decode_errors,
        c.reconnects,
        c.retransmissions,
        c.refused_commits,
        row.last_error,
        row.status_at,
    ])?;
    Ok(())
}
