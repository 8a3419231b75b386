//! A station's holds, mirrored at its hub. The hub stores a station's failures from the rows
//! it forwards, each with a hold of its own; what the testing room does next (the retest, stop
//! sale, laboratory, destruction, re-sample, close, the deadline) happens at the station. So
//! after each such change the station queues a `hold.state` (the hold as it is now, and its
//! history after the entry that opened it) for every results upstream
//! ([`queue_hold_state`]), and the hub brings its hold of the same row to that state, adds the
//! history entries it does not have yet, and sends its own upstreams the events the new
//! entries stand for ([`apply_hold_state`]). The regulators' monthly report at the hub counts
//! destructions made at the stations from it.
//!
//! The station is the authority for its holds: the hub takes its state as sent, in the order
//! the uplink delivers them (each `hold.state` after everything queued before it). A state
//! with no entry the hub lacks changes nothing, so a repeated or late one is harmless.

use super::events::{revised_event_id, EventKind, HoldStateBody};
use super::hold_actions::{queue_hold_event, subject};
use super::holds::{add_history, delete_hold, hold_history, HistoryEntry, HoldStatus};
use super::queue::queue_event;
use super::results::seen_upload;
use super::{StoreSettings, Tx};
use crate::config::Format;
use chrono::Utc;
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;

/// A hold's state as [`queue_hold_state`] reads it.
struct StationHold {
    reading: i64,
    identity: String,
    market: String,
    status: HoldStatus,
    destroyed_kg: Option<f64>,
    destroyed_at: Option<String>,
    resample: Option<String>,
    overdue_at: Option<String>,
}

/// Queue hold `hold` as it is now for every results upstream (its hub); nothing when the
/// station has none or the hold has nothing beyond the entry that opened it.
pub fn queue_hold_state(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    hold: &str,
) -> rusqlite::Result<usize> {
    if !settings.routes.iter().any(|r| r.format == Format::Results) {
        return Ok(0);
    }
    let Some(s) = tx
        .prepare_cached(
            "SELECT h.reading, r.identity, h.market, h.status, h.destroyed_kg, h.destroyed_at,
                    (SELECT identity FROM readings WHERE id = h.resample_reading), h.overdue_at
             FROM holds h JOIN readings r ON r.id = h.reading WHERE h.id = ?1",
        )?
        .query_row([hold], |r| {
            Ok(StationHold {
                reading: r.get(0)?,
                identity: r.get(1)?,
                market: r.get(2)?,
                status: r.get(3)?,
                destroyed_kg: r.get(4)?,
                destroyed_at: r.get(5)?,
                resample: r.get(6)?,
                overdue_at: r.get(7)?,
            })
        })
        .optional()?
    else {
        return Ok(0);
    };
    let history = hold_history(tx.conn(), hold)?;
    if history.len() <= 1 {
        return Ok(0);
    }
    let body = serde_json::to_vec(&HoldStateBody {
        id: &s.identity,
        market: &s.market,
        status: s.status,
        destroyed_kg: s.destroyed_kg,
        destroyed_at: s.destroyed_at.as_deref(),
        resample: s.resample.as_deref(),
        overdue_at: s.overdue_at.as_deref(),
        history: &history[1..],
    })
    .unwrap_or_default();
    // Each state its own event: the history only grows, so its length tells them apart.
    let revision = u32::try_from(history.len()).unwrap_or(u32::MAX);
    let id = revised_event_id(&s.identity, EventKind::HoldState, revision);
    let now_ms = Utc::now().timestamp_millis();
    let mut n = 0;
    for route in settings
        .routes
        .iter()
        .filter(|r| r.format == Format::Results)
    {
        n += queue_event(
            tx,
            Some(s.reading),
            route,
            EventKind::HoldState,
            Some(hold),
            &id,
            &body,
            now_ms,
            false,
        )?;
    }
    tx.events_added(n);
    Ok(n)
}

/// A `hold.state` as the hub receives it (see [`HoldStateBody`]); keys it does not know are
/// ignored, so a newer station's state still applies.
#[derive(Debug, Clone, Deserialize)]
pub struct HoldState {
    pub id: String,
    pub market: String,
    pub status: HoldStatus,
    #[serde(default)]
    pub destroyed_kg: Option<f64>,
    #[serde(default)]
    pub destroyed_at: Option<String>,
    #[serde(default)]
    pub resample: Option<String>,
    #[serde(default)]
    pub overdue_at: Option<String>,
    pub history: Vec<HistoryEntry>,
}

/// What a `hold.state` did at the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateApplied {
    /// The hold took the state and the entries it lacked.
    Updated,
    /// It had every entry already (the same state sent again, or an older one).
    Unchanged,
    /// No row `id` of this uploader is stored.
    UnknownRow,
    /// The row is stored for another market.
    OtherMarket,
    /// The row's reading has no hold here (it did not fail here).
    NoHold,
}

/// The event a mirrored history entry stands for at the hub, if any: an action's own, or a
/// retest's when it moved the hold (`before` is the status before the entry).
fn event_of(e: &HistoryEntry, before: HoldStatus) -> Option<EventKind> {
    match e.action.as_deref() {
        Some("stop_sale") => Some(EventKind::HoldStopSale),
        Some("lab_sent") => Some(EventKind::HoldLabSent),
        Some("lab_result") => Some(EventKind::HoldLabResult),
        Some("destroy") => Some(EventKind::HoldDestroyed),
        Some("resample") => Some(EventKind::HoldResampled),
        Some("close") => Some(EventKind::HoldClosed),
        Some("overdue") => Some(EventKind::HoldOverdue),
        Some(_) => None,
        None if e.status != before => EventKind::of_hold(e.status),
        None => None,
    }
}

/// Bring the hold of `uploader`'s row `state.id` to `state`: its status and facts, the
/// history entries it lacks (their `by` prefixed with the uploader: `station/tester`), a
/// failing retest's own hold folded into it as the station did, and for each new entry the
/// event the hub's own upstreams get.
pub fn apply_hold_state(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    uploader: &str,
    state: &HoldState,
) -> rusqlite::Result<StateApplied> {
    let Some(seen) = seen_upload(tx, uploader, &state.id)? else {
        return Ok(StateApplied::UnknownRow);
    };
    let (market, hold): (String, Option<String>) = tx.query_row(
        "SELECT r.market, h.id FROM readings r LEFT JOIN holds h ON h.reading = r.id
         WHERE r.id = ?1",
        [seen.reading],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if market != state.market {
        return Ok(StateApplied::OtherMarket);
    }
    let Some(hold) = hold else {
        return Ok(StateApplied::NoHold);
    };
    let mut have = hold_history(tx.conn(), &hold)?;
    let mut fresh = Vec::new();
    for e in &state.history {
        let e = HistoryEntry {
            by: format!("{uploader}/{}", e.by),
            ..e.clone()
        };
        let known = have
            .iter()
            .any(|h| h.at == e.at && h.status == e.status && h.by == e.by && h.action == e.action);
        if !known {
            have.push(e.clone());
            fresh.push(e);
        }
    }
    if fresh.is_empty() {
        return Ok(StateApplied::Unchanged);
    }
    let row_reading = |tx: &Tx<'_>, row: &str| -> rusqlite::Result<Option<i64>> {
        Ok(seen_upload(tx, uploader, row)?.map(|s| s.reading))
    };
    // A failing retest forwarded as a row opened a hold of its own here: the station folded
    // it into this one, and so does the hub.
    for e in &fresh {
        let Some(retest) = e.fields.as_ref().and_then(|f| f.get("retest")?.as_str()) else {
            continue;
        };
        if let Some(r) = row_reading(tx, retest)? {
            let own: Option<String> = tx
                .prepare_cached("SELECT id FROM holds WHERE reading = ?1")?
                .query_row([r], |row| row.get(0))
                .optional()?;
            if let Some(own) = own.filter(|o| *o != hold) {
                delete_hold(tx, &own)?;
            }
        }
    }
    let resample = match &state.resample {
        Some(row) => row_reading(tx, row)?,
        None => None,
    };
    let before = hold_history(tx.conn(), &hold)?
        .last()
        .map(|h| h.status)
        .unwrap_or(HoldStatus::Held);
    tx.prepare_cached(
        "UPDATE holds SET status = ?1, destroyed_kg = ?2, destroyed_at = ?3,
             resample_reading = ?4, overdue_at = ?5, updated_at = ?6 WHERE id = ?7",
    )?
    .execute(params![
        state.status,
        state.destroyed_kg,
        state.destroyed_at,
        resample,
        state.overdue_at,
        super::codec::rfc3339(Utc::now()),
        hold
    ])?;
    let mut status = before;
    for e in &fresh {
        add_history(tx, &hold, e)?;
        let kind = event_of(e, status);
        status = e.status;
        let (Some(kind), Some(s)) = (kind, subject(tx.conn(), &hold)?) else {
            continue;
        };
        // As at the station: a repeated action is a new event, counted by its earlier ones.
        let revision = match &e.action {
            Some(a) => tx.query_row(
                "SELECT count(*) - 1 FROM hold_history WHERE hold = ?1 AND action = ?2",
                params![hold, a],
                |r| r.get(0),
            )?,
            None => 0,
        };
        queue_hold_event(tx, settings, &s, &hold, kind, revision, e.status, &e.at)?;
    }
    Ok(StateApplied::Updated)
}
