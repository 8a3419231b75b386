//! The hold life cycle: a failing reading opens a hold (`held`); retests, corrections and
//! late registrations move it; every move is kept in its history and, where upstreams hear
//! of it, sent as an event.
//!
//! What a retest (one upload row for the held sample, stored like any upload) does:
//!
//! | hold is | retest | hold becomes | event |
//! | --- | --- | --- | --- |
//! | held | fail | confirmed | `hold.confirmed` |
//! | held | pass, other method or instrument | released | `hold.released` |
//! | held | pass, same method and instrument | held (noted: it cannot release) | none |
//! | confirmed | pass, other method or instrument | review (a conflict: a person decides) | `hold.review` |
//! | released | fail | review | `hold.review` |
//! | any | invalid / unknown, or nothing new | unchanged (noted) | none |
//!
//! A failing retest would open a hold of its own when stored; since it belongs to this hold,
//! that second hold and its `sample.failed` events are removed in the same transaction (they
//! were never committed, so no one saw them) and the hold's own event goes out instead.
//! Hold events go to `format = "events"` upstreams, after the hold's earlier events.

use super::codec::{parse_verdict, rfc3339, to_json, verdict_str};
use super::events::{hold_change_body, EventKind, HoldBody, HoldChange};
use super::identity::hold_id;
use super::Db;
use super::{StoreSettings, Tx};
use crate::judge::Verdict;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

pub use super::hold_status::{HistoryEntry, HoldStatus, UnknownHoldStatus};

pub(crate) fn add_history(tx: &Tx<'_>, hold: &str, e: &HistoryEntry) -> rusqlite::Result<()> {
    let fields = e.fields.as_ref().map(|f| f.to_string());
    tx.prepare_cached(
        "INSERT INTO hold_history (hold, at, status, by, reason, action, fields)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        hold, e.at, e.status, e.by, e.reason, e.action, fields
    ])?;
    Ok(())
}

/// Move a hold to `status`, record it in its history, return the whole history.
pub fn set_hold_status(
    tx: &Tx<'_>,
    hold: &str,
    status: HoldStatus,
    by: &str,
    reason: &str,
    at: &str,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    tx.prepare_cached("UPDATE holds SET status = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![status, at, hold])?;
    add_history(tx, hold, &HistoryEntry::new(at, status, by, reason))?;
    hold_history(tx.conn(), hold)
}

pub fn hold_history(conn: &Connection, hold: &str) -> rusqlite::Result<Vec<HistoryEntry>> {
    conn.prepare_cached(
        "SELECT at, status, by, reason, action, fields FROM hold_history WHERE hold = ?1 ORDER BY id",
    )?
    .query_map([hold], |row| {
        let fields: Option<String> = row.get(5)?;
        Ok(HistoryEntry {
            at: row.get(0)?,
            status: row.get(1)?,
            by: row.get(2)?,
            reason: row.get(3)?,
            action: row.get(4)?,
            fields: fields.and_then(|f| serde_json::from_str(&f).ok()),
        })
    })?
    .collect()
}

/// A hold a failing reading opens.
pub(crate) struct NewHold<'a> {
    /// The failing reading: its identity and row id make the hold's id.
    pub identity: &'a str,
    pub reading: i64,
    pub market: &'a str,
    pub stall: Option<&'a str>,
    pub sample_ref: Option<i64>,
    pub at: &'a str,
    pub by: &'a str,
    pub reason: String,
    pub now_ms: i64,
}

/// Open a hold (`held`); returns its id and its first history entry.
pub(crate) fn open_hold(tx: &Tx<'_>, h: NewHold<'_>) -> rusqlite::Result<(String, HistoryEntry)> {
    let id = hold_id(h.identity, h.reading, h.now_ms).to_string();
    tx.prepare_cached(
        "INSERT INTO holds (id, reading, market, stall, sample_ref, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        id,
        h.reading,
        h.market,
        h.stall,
        h.sample_ref,
        HoldStatus::Held,
        h.at
    ])?;
    let entry = HistoryEntry::new(h.at, HoldStatus::Held, h.by, h.reason);
    add_history(tx, &id, &entry)?;
    Ok((id, entry))
}

/// The open hold of reading `reading` (its goods still blocked: [`HoldStatus::is_open`]), if
/// any.
pub(crate) fn open_hold_of(tx: &Tx<'_>, reading: i64) -> rusqlite::Result<Option<String>> {
    let found: Option<(String, HoldStatus)> = tx
        .prepare_cached("SELECT id, status FROM holds WHERE reading = ?1")?
        .query_row([reading], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(found.filter(|(_, s)| s.is_open()).map(|(id, _)| id))
}

pub(crate) fn set_hold_stall(
    tx: &Tx<'_>,
    hold: &str,
    stall: Option<&str>,
    at: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE holds SET stall = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![stall, at, hold])?;
    Ok(())
}

pub(crate) fn hold_status(conn: &Connection, hold: &str) -> rusqlite::Result<HoldStatus> {
    conn.query_row("SELECT status FROM holds WHERE id = ?1", [hold], |r| {
        r.get(0)
    })
}

/// Remove a hold never committed, with its history and its queued events.
pub(super) fn delete_hold(tx: &Tx<'_>, hold: &str) -> rusqlite::Result<()> {
    super::outbox::delete_hold_events(tx, hold)?;
    tx.execute("DELETE FROM hold_history WHERE hold = ?1", [hold])?;
    tx.execute("DELETE FROM holds WHERE id = ?1", [hold])?;
    Ok(())
}

/// What a stall correction needs to know of a hold.
pub(crate) struct HoldSubject {
    pub stall: Option<String>,
    pub reading: i64,
    pub sample_ref: Option<i64>,
    /// The sample id its reading carries.
    pub sample_id: Option<String>,
    pub market: String,
}

pub(crate) fn hold_subject(conn: &Connection, hold: &str) -> rusqlite::Result<HoldSubject> {
    conn.query_row(
        "SELECT h.stall, h.reading, h.sample_ref, r.sample_id, h.market
         FROM holds h JOIN readings r ON r.id = h.reading WHERE h.id = ?1",
        [hold],
        |r| {
            Ok(HoldSubject {
                stall: r.get(0)?,
                reading: r.get(1)?,
                sample_ref: r.get(2)?,
                sample_id: r.get(3)?,
                market: r.get(4)?,
            })
        },
    )
}

/// A hold's sample as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SampleView {
    pub id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

/// A hold as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub id: String,
    pub market: String,
    pub stall: Option<String>,
    pub sample: SampleView,
    pub reading: serde_json::Value,
    pub status: HoldStatus,
    /// The status in Chinese, as the pages say it.
    pub status_zh: &'static str,
    /// The actions the hold's state allows now (`POST /api/v1/holds/{id}/actions`).
    pub actions: Vec<&'static str>,
    /// Kilograms destroyed, once destroyed.
    pub destroyed_kg: Option<f64>,
    /// The passing re-sample's reading (its `id` in `GET /api/v1/results`), once recorded.
    pub resample_reading: Option<String>,
    /// When the hold was first found overdue (its `hold.overdue` event), if it was.
    pub overdue_at: Option<String>,
    pub history: Vec<HistoryEntry>,
}

const HOLD_SELECT: &str = "SELECT h.id, h.market, h.stall, h.status,
        coalesce(s.sample_id, r.sample_id), coalesce(s.name, r.sample_name),
        coalesce(s.category, r.category), r.reading_json, r.uploader,
        h.destroyed_kg, (SELECT identity FROM readings WHERE id = h.resample_reading),
        h.overdue_at
     FROM holds h LEFT JOIN readings r ON r.id = h.reading LEFT JOIN samples s ON s.id = h.sample_ref";

fn hold_row(conn: &Connection, r: &rusqlite::Row<'_>) -> rusqlite::Result<HoldView> {
    let id: String = r.get(0)?;
    // A traced hold belongs to a sample, with no reading of its own (`super::trace`).
    let json: Option<String> = r.get(7)?;
    let mut reading: serde_json::Value = json
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    // An uploaded reading's protocol is the upload's, not an instrument's: shown as none.
    if r.get::<_, Option<String>>(8)?.is_some() {
        if let Some(o) = reading.as_object_mut() {
            o.insert("protocol".into(), serde_json::Value::Null);
        }
    }
    let status: HoldStatus = r.get(3)?;
    let resample_reading: Option<String> = r.get(10)?;
    Ok(HoldView {
        history: hold_history(conn, &id)?,
        id,
        market: r.get(1)?,
        stall: r.get(2)?,
        status,
        status_zh: status.zh(),
        // A traced hold is settled by a test of its sample, never by an action.
        actions: if reading.is_null() {
            Vec::new()
        } else {
            super::hold_status::allowed(status, resample_reading.is_some())
        },
        destroyed_kg: r.get(9)?,
        resample_reading,
        overdue_at: r.get(11)?,
        sample: SampleView {
            id: r.get(4)?,
            name: r.get(5)?,
            category: r.get(6)?,
        },
        reading,
    })
}

/// Hold `id` as the API shows it.
pub fn load_hold(reader: &super::Reader, id: &str) -> rusqlite::Result<Option<HoldView>> {
    let conn = reader.connection();
    let sql = format!("{HOLD_SELECT} WHERE h.id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], |r| hold_row(conn, r))
        .optional()
}

/// The SQL condition (over `holds h` joined with `readings r`) of an overdue hold, with the
/// cut-off time (RFC 3339: now less `resample_days`) as parameter `?1`.
pub(crate) const OVERDUE: &str = "h.status IN ('confirmed', 'stopped', 'lab', 'destroyed')
     AND h.resample_reading IS NULL
     AND julianday(coalesce(r.measured_at, r.received_at)) < julianday(?1)";

/// The cut-off of [`OVERDUE`] at `now`.
pub(crate) fn overdue_cutoff(settings: &StoreSettings, now: DateTime<Utc>) -> String {
    rfc3339(now - Duration::days(i64::from(settings.resample_days)))
}

/// Which holds [`list_holds`] lists.
#[derive(Debug, Clone, Default)]
pub struct HoldFilter {
    pub status: Option<HoldStatus>,
    /// Only these markets (a scoped token's).
    pub markets: Option<Vec<String>>,
    /// Only the holds overdue at this time, with the cut-off of
    /// [`overdue_cutoff`].
    pub overdue_cutoff: Option<String>,
}

/// Holds newest first, at most 1000, as `filter` says.
pub fn list_holds(reader: &super::Reader, filter: &HoldFilter) -> rusqlite::Result<Vec<HoldView>> {
    let conn = reader.connection();
    let scope = filter.markets.as_deref().map(to_json);
    let overdue = OVERDUE.replace("?1", "?3");
    let sql = format!(
        "{HOLD_SELECT} WHERE (?1 IS NULL OR h.status = ?1)
         AND (?2 IS NULL OR h.market IN (SELECT value FROM json_each(?2)))
         AND (?3 IS NULL OR ({overdue}))
         ORDER BY h.created_at DESC, h.id LIMIT 1000"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let v = stmt
        .query_map(params![filter.status, scope, filter.overdue_cutoff], |r| {
            hold_row(conn, r)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// The hold a retest is about, with what makes a retest independent of its reading.
struct RetestedHold {
    status: HoldStatus,
    method: Option<String>,
    /// The instrument, or the uploader of an upload.
    instrument: Option<String>,
    market: String,
    stall: Option<String>,
    sample_ref: Option<i64>,
}

/// The retest reading as stored.
struct RetestReading {
    verdict: Verdict,
    method: Option<String>,
    instrument: Option<String>,
    identity: String,
    json: String,
}

/// What a hold's `samples` row names.
#[derive(Default)]
struct SampleNames {
    sample_id: Option<String>,
    name: Option<String>,
    category: Option<String>,
}

/// What a retest does to hold `status` (see the module table): the next status, if any,
/// and the sentence for the history.
fn retest_decision(
    status: HoldStatus,
    verdict: Verdict,
    independent: bool,
) -> (Option<HoldStatus>, String) {
    use HoldStatus::{Confirmed, Held, Lab, Released, Review, Stopped};
    match (status, verdict) {
        (Held, Verdict::Fail) => (
            Some(Confirmed),
            "the retest failed too: the failure is confirmed; stop the sale and destroy the goods"
                .into(),
        ),
        (Held, Verdict::Pass) if independent => (
            Some(Released),
            "a retest by another method or instrument passed: the goods are released".into(),
        ),
        (Held, Verdict::Pass) => (
            None,
            "recorded, but a pass by the same instrument and method cannot release the hold: retest with another method or instrument".into(),
        ),
        (Confirmed | Stopped | Lab, Verdict::Pass) if independent => (
            Some(Review),
            "a retest by another method or instrument passed a confirmed hold: a person decides".into(),
        ),
        (Released, Verdict::Fail) => (
            Some(Review),
            "a retest failed a released hold: a person decides".into(),
        ),
        (_, Verdict::Pass | Verdict::Fail) => (None, format!("recorded; the hold stays {status}")),
        (_, v) => (
            None,
            format!(
                "recorded; a retest judged {} decides nothing: the hold stays {status}",
                verdict_str(v)
            ),
        ),
    }
}

/// Apply newly stored retest reading `reading` to hold `hold` (see the module table);
/// `own_hold` is the hold the retest opened when it was stored, if it failed. Returns what
/// the retest did, in one sentence.
pub fn apply_retest(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    hold: &str,
    by: &str,
    reading: i64,
    own_hold: Option<&str>,
) -> rusqlite::Result<String> {
    // A failing retest opened a hold of its own: it belongs to this one instead.
    if let Some(own) = own_hold {
        delete_hold(tx, own)?;
    }
    let held: RetestedHold = tx.query_row(
        "SELECT h.status, r.method, coalesce(r.instrument, r.uploader), h.market, h.stall,
                h.sample_ref
         FROM holds h JOIN readings r ON r.id = h.reading WHERE h.id = ?1",
        [hold],
        |r| {
            Ok(RetestedHold {
                status: r.get(0)?,
                method: r.get(1)?,
                instrument: r.get(2)?,
                market: r.get(3)?,
                stall: r.get(4)?,
                sample_ref: r.get(5)?,
            })
        },
    )?;
    let retest: RetestReading = tx.query_row(
        "SELECT verdict, method, coalesce(instrument, uploader), identity, reading_json
         FROM readings WHERE id = ?1",
        [reading],
        |r| {
            Ok(RetestReading {
                verdict: parse_verdict(r.get_ref(0)?.as_str()?),
                method: r.get(1)?,
                instrument: r.get(2)?,
                identity: r.get(3)?,
                json: r.get(4)?,
            })
        },
    )?;
    let independent = retest.method != held.method || retest.instrument != held.instrument;
    let (next, why) = retest_decision(held.status, retest.verdict, independent);
    let at = rfc3339(Utc::now());
    // The retest's reading, by the id the results API and a hub know it by.
    let fields = Some(serde_json::json!({ "retest": retest.identity }));
    let Some(next) = next else {
        let entry = HistoryEntry {
            fields,
            ..HistoryEntry::new(&at, held.status, by, why)
        };
        add_history(tx, hold, &entry)?;
        return Ok(entry.reason);
    };
    tx.prepare_cached("UPDATE holds SET status = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![next, at, hold])?;
    let entry = HistoryEntry {
        fields,
        ..HistoryEntry::new(&at, next, by, why.clone())
    };
    add_history(tx, hold, &entry)?;
    let history = hold_history(tx.conn(), hold)?;
    let sample = match held.sample_ref {
        Some(s) => tx
            .query_row(
                "SELECT sample_id, name, category FROM samples WHERE id = ?1",
                [s],
                |r| {
                    Ok(SampleNames {
                        sample_id: r.get(0)?,
                        name: r.get(1)?,
                        category: r.get(2)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default(),
        None => SampleNames::default(),
    };
    let Some(kind) = EventKind::of_hold(next) else {
        return Ok(why);
    };
    let (id, body) = hold_change_body(&HoldChange {
        kind,
        identity: &retest.identity,
        revision: 0,
        occurred_at: &at,
        market: &held.market,
        stall: held.stall.as_deref(),
        sample: (
            sample.sample_id.as_deref(),
            sample.name.as_deref(),
            sample.category.as_deref(),
        ),
        reading_json: &retest.json,
        hold: HoldBody {
            id: hold,
            status: next,
            history: &history,
        },
    });
    let now_ms = Utc::now().timestamp_millis();
    super::queue::queue_hold_change(tx, settings, reading, kind, hold, &id, &body, now_ms)?;
    Ok(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_statuses_read_back_and_serialize_as_their_text() {
        for s in HoldStatus::ALL {
            assert_eq!(s.as_str().parse::<HoldStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("open".parse::<HoldStatus>().is_err());
    }

    #[test]
    fn a_machine_never_releases_a_confirmed_hold_or_decides_on_an_invalid_retest() {
        use HoldStatus::*;
        assert_eq!(
            retest_decision(Held, Verdict::Fail, false).0,
            Some(Confirmed)
        );
        assert_eq!(retest_decision(Held, Verdict::Pass, true).0, Some(Released));
        assert_eq!(retest_decision(Held, Verdict::Pass, false).0, None);
        assert_eq!(
            retest_decision(Confirmed, Verdict::Pass, true).0,
            Some(Review)
        );
        assert_eq!(retest_decision(Confirmed, Verdict::Pass, false).0, None);
        assert_eq!(
            retest_decision(Released, Verdict::Fail, false).0,
            Some(Review)
        );
        let (next, why) = retest_decision(Review, Verdict::Invalid, true);
        assert_eq!(next, None);
        assert_eq!(
            why,
            "recorded; a retest judged invalid decides nothing: the hold stays review"
        );
    }
}
