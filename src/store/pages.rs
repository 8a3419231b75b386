//! The reads only the web pages make: a market's results of a day for its public board
//! (the columns shoppers may see, nothing personal) and the unfinished and overdue holds of
//! the dashboard.

use rusqlite::params;
use std::collections::BTreeMap;

/// A current (not superseded) result as the public board may show it. Deliberately no
/// `reading_json` (it carries the tester), uploader, instrument or vendor.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardReading {
    /// The instrument's clock (RFC 3339), if it sent one.
    pub measured_at: Option<String>,
    /// When foodgate received it (RFC 3339).
    pub received_at: String,
    /// The registered sample's name, else the instrument's.
    pub commodity: Option<String>,
    /// The hold's stall, else the reading's, else the registered sample's.
    pub stall: Option<String>,
    pub analyte: String,
    pub verdict: String,
    /// What was done about the hold this result opened, if any.
    pub hold: Option<super::Handling>,
    /// The instrument's result status (`P`: preliminary).
    pub result_status: Option<String>,
}

/// The current results of `market` on local day `day` (`YYYY-MM-DD`), in no order.
pub fn board_readings(
    db: &impl super::Db,
    market: &str,
    day: &str,
) -> rusqlite::Result<Vec<BoardReading>> {
    let conn = db.connection();
    conn.prepare_cached(
        "SELECT r.measured_at, r.received_at, coalesce(s.name, r.sample_name) AS commodity,
                coalesce(h.stall, r.stall, s.stall) AS stall, r.analyte, r.verdict,
                h.status AS hold_status, r.result_status, h.destroyed_kg,
                h.resample_reading IS NOT NULL AS resampled
         FROM readings r
         LEFT JOIN samples s ON s.id = r.sample_ref
         LEFT JOIN holds h ON h.reading = r.id
         WHERE r.market = ?1 AND r.local_day = ?2 AND r.superseded = 0",
    )?
    .query_map(params![market, day], |r| {
        Ok(BoardReading {
            measured_at: r.get("measured_at")?,
            received_at: r.get("received_at")?,
            commodity: r.get("commodity")?,
            stall: r.get("stall")?,
            analyte: r.get("analyte")?,
            verdict: r.get("verdict")?,
            hold: r
                .get::<_, Option<super::HoldStatus>>("hold_status")?
                .map(|status| -> rusqlite::Result<_> {
                    Ok(super::Handling {
                        status,
                        destroyed_kg: r.get("destroyed_kg")?,
                        resampled: r.get("resampled")?,
                    })
                })
                .transpose()?,
            result_status: r.get("result_status")?,
        })
    })?
    .collect()
}

/// An unfinished hold as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHold {
    pub created_at: String,
    /// When the failed test was made (measured, else received).
    pub tested_at: String,
    pub market: String,
    /// Empty when the market is no longer registered.
    pub market_name: String,
    pub stall: Option<String>,
    pub sample: Option<String>,
    pub analyte: String,
    pub value: Option<String>,
    pub unit: Option<String>,
    pub status: String,
    /// On the confirmed path with no passing re-sample in time (see `holds::OVERDUE`).
    pub overdue: bool,
}

/// Which unfinished holds [`open_holds`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldList {
    /// Every hold not closed or released, newest first.
    Unfinished,
    /// Only the overdue ones, the longest overdue first.
    Overdue,
}

/// Holds not closed or released, as `list` says, at most `limit`; `cutoff` is the overdue
/// cut-off now ([`super::holds::overdue_cutoff`]).
pub fn open_holds(
    db: &impl super::Db,
    list: HoldList,
    cutoff: &str,
    limit: usize,
) -> rusqlite::Result<Vec<OpenHold>> {
    let conn = db.connection();
    let overdue = super::holds::OVERDUE.replace("?1", "?2");
    let sql = format!(
        "SELECT h.created_at, coalesce(r.measured_at, r.received_at) AS tested_at, h.market,
                coalesce(m.name, '') AS market_name, h.stall,
                coalesce(s.name, r.sample_name) AS sample, r.analyte, r.value_text, r.unit,
                h.status, ({overdue}) AS overdue
         FROM holds h JOIN readings r ON r.id = h.reading
         LEFT JOIN samples s ON s.id = h.sample_ref
         LEFT JOIN markets m ON m.code = h.market
         WHERE h.status NOT IN ('closed', 'released') AND (?3 = 0 OR ({overdue}))
         ORDER BY CASE WHEN ?3 = 1 THEN julianday(tested_at) END, h.created_at DESC, h.id
         LIMIT ?1"
    );
    conn.prepare_cached(&sql)?
        .query_map(
            params![
                i64::try_from(limit).unwrap_or(i64::MAX),
                cutoff,
                i64::from(list == HoldList::Overdue)
            ],
            |r| {
                Ok(OpenHold {
                    created_at: r.get("created_at")?,
                    tested_at: r.get("tested_at")?,
                    market: r.get("market")?,
                    market_name: r.get("market_name")?,
                    stall: r.get("stall")?,
                    sample: r.get("sample")?,
                    analyte: r.get("analyte")?,
                    value: r.get("value_text")?,
                    unit: r.get("unit")?,
                    status: r.get("status")?,
                    overdue: r.get("overdue")?,
                })
            },
        )?
        .collect()
}

/// The number of holds in each status, all days.
pub fn hold_counts(db: &impl super::Db) -> rusqlite::Result<BTreeMap<String, u64>> {
    let conn = db.connection();
    conn.prepare_cached("SELECT status, count(*) AS n FROM holds GROUP BY status")?
        .query_map([], |r| {
            let n: i64 = r.get("n")?;
            Ok((r.get("status")?, u64::try_from(n).unwrap_or(0)))
        })?
        .collect()
}
