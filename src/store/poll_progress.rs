//! The last local day each polled instrument was read completely (`poll_progress`): where
//! the catch-up after a restart or an outage starts.

use super::{Db, Tx};
use chrono::NaiveDate;
use rusqlite::{params, OptionalExtension};

/// The last day `instrument` was read completely, if it ever was.
pub fn last_complete_day(db: &impl Db, instrument: &str) -> rusqlite::Result<Option<NaiveDate>> {
    let day: Option<String> = db
        .connection()
        .prepare_cached("SELECT last_complete_day FROM poll_progress WHERE instrument = ?1")?
        .query_row([instrument], |r| r.get(0))
        .optional()?;
    Ok(day.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()))
}

/// `instrument` has been read completely through `day`. A day earlier than the one stored
/// (a re-read of an old day) leaves the stored one.
pub fn day_complete(tx: &Tx<'_>, instrument: &str, day: NaiveDate) -> rusqlite::Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO poll_progress (instrument, last_complete_day, updated_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (instrument) DO UPDATE SET
                last_complete_day = max(poll_progress.last_complete_day, excluded.last_complete_day),
                updated_at = excluded.updated_at",
        )?
        .execute(params![
            instrument,
            day.format("%Y-%m-%d").to_string(),
            super::codec::rfc3339(chrono::Utc::now())
        ])?;
    Ok(())
}
