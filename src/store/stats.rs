//! The operational reads: what `/metrics`, `/healthz` and the instrument list take from the
//! store. Each is a few rows (kept aggregates, one row per instrument), never a scan of the
//! readings, so a scrape costs the same at a year of data as on the first day.

use super::outbox::{self, OutboxCounts};
use super::Tx;

/// An instrument as `serve` last recorded it (it writes each link's status every few
/// seconds and at shutdown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstrumentRow {
    pub id: String,
    pub market: String,
    pub protocol: String,
    pub serial_number: Option<String>,
    pub firmware: Option<String>,
    pub last_seen: Option<String>,
    pub online: bool,
    pub readings: u64,
    pub duplicates: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// Every recorded instrument, in no particular order.
pub fn recorded_instruments(db: &impl super::Db) -> rusqlite::Result<Vec<InstrumentRow>> {
    let conn = db.connection();
    conn.prepare_cached(
        "SELECT id, market, protocol, serial_number, firmware, last_seen, online,
                readings, duplicates, decode_errors, reconnects, last_error
         FROM instruments",
    )?
    .query_map([], |r| {
        let count = |i: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
        };
        Ok(InstrumentRow {
            id: r.get(0)?,
            market: r.get(1)?,
            protocol: r.get(2)?,
            serial_number: r.get(3)?,
            firmware: r.get(4)?,
            last_seen: r.get(5)?,
            online: r.get(6)?,
            readings: count(7)?,
            duplicates: count(8)?,
            decode_errors: count(9)?,
            reconnects: count(10)?,
            last_error: r.get(11)?,
        })
    })?
    .collect()
}

/// The health probe's statement: run inside a write transaction, so that its commit proves
/// the database writable. Answers the number of registered markets.
pub fn health_probe(tx: &Tx<'_>) -> rusqlite::Result<i64> {
    tx.hot("SELECT count(*) FROM markets", |s| {
        s.query_row([], |r| r.get(0))
    })
}

/// The store's figures for one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Stored readings per verdict, every verdict present (zero when none).
    pub readings_by_verdict: Vec<(&'static str, u64)>,
    /// Outbox events per upstream that has any, by upstream name.
    pub outbox: Vec<OutboxCounts>,
}

/// Read the figures of one scrape (the readings' totals are kept with the readings, the
/// outbox counts per upstream: a few rows).
pub fn store_figures(conn: &super::Reader) -> rusqlite::Result<StoreFigures> {
    Ok(StoreFigures {
        readings_by_verdict: super::coverage::reading_totals(conn)?,
        outbox: outbox::counts(conn)?,
    })
}
