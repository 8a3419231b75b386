//! A stall set by hand on a reading without a sample id, from a station to its hub.
//!
//! A reading with a sample id has its stall corrected through the sample's registration,
//! which reaches the hub as a `sample.record`. A reading without one has nothing to register:
//! the station queues a `result.stall` (`{"id","market","stall"}`, `id` the row id the hub
//! knows the reading by: its identity at the station) for each results upstream that got the
//! reading ([`super::queue::queue_stall`]), and the hub applies it to the reading it stored from that row and to its hold
//! ([`apply_forwarded_stall`]).

use super::samples::{correct_hold_stall, correct_reading_stall};
use super::{StoreSettings, Tx};
use crate::judge::Registered;
use rusqlite::params;

/// What a forwarded stall did at the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedStall {
    /// The reading (and its hold) now name the stall.
    Updated,
    /// They named it already (the same change sent again).
    Unchanged,
    /// No row `id` of this uploader is stored.
    UnknownRow,
    /// The row is stored for another market.
    OtherMarket,
}

/// Apply stall `stall` sent by `uploader` for its row `row_id` of `market`: the reading stored
/// from that row and its hold take it, as a `PATCH` of the hold would have done here.
pub fn apply_forwarded_stall(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    uploader: &str,
    row_id: &str,
    market: &str,
    stall: &str,
) -> rusqlite::Result<ForwardedStall> {
    let Some(seen) = super::results::seen_upload(tx, uploader, row_id)? else {
        return Ok(ForwardedStall::UnknownRow);
    };
    let (at_market, current, hold): (String, Option<String>, Option<String>) = tx.query_row(
        "SELECT r.market, r.stall, h.id FROM readings r LEFT JOIN holds h ON h.reading = r.id
         WHERE r.id = ?1",
        params![seen.reading],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if at_market != market {
        return Ok(ForwardedStall::OtherMarket);
    }
    if current.as_deref() == Some(stall) {
        return Ok(ForwardedStall::Unchanged);
    }
    let changed = match hold {
        Some(hold) => correct_hold_stall(tx, settings, &hold, stall, uploader)?.readings,
        None => {
            let why = format!(
                "stall set to {stall:?} (was {}) by {uploader}",
                current.as_deref().unwrap_or("unset")
            );
            let reg = Registered {
                stall: Some(stall.to_string()),
                name: None,
                category: None,
            };
            correct_reading_stall(tx, settings, seen.reading, &reg, uploader, &why)?
        }
    };
    Ok(if changed > 0 {
        ForwardedStall::Updated
    } else {
        ForwardedStall::Unchanged
    })
}
