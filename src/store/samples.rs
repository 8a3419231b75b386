//! Registered samples (`POST /api/v1/samples`, `docs/reference.md`) and stall corrections.
//!
//! A registration is the sampling record a person makes: which stall a sample came from,
//! what it is and its category. It lives in the sample's own `samples` row (keyed by market
//! and sample id), marked `registered_at`. Its rules:
//!
//! - A reading stored later whose sample id matches takes the registered stall, name and
//!   category (a field the registration leaves out keeps the reading's), and is judged with
//!   that category (by [`crate::judge::Judge::take_registered`], called by [`super::insert`]).
//! - Registering the same content again is a no-op (`duplicate`); other content is a
//!   correction (`updated`): given fields replace the registered ones, left-out fields keep
//!   what is known, the revision goes up, the old values go to the audit log.
//! - A registration or correction that comes after readings of the sample were stored is
//!   applied to them ([`apply_to_readings`]): their stall, name and category, and the stall of
//!   their holds, are filled in or corrected, noted in the hold history, and the corrected
//!   events go upstream (a new revision: see [`super::events::revised_event_id`]).
//! - Those readings are judged again with the registered category. A machine never lifts a
//!   hold: a reading that failed and would not fail under the registered category keeps its
//!   verdict and its open hold (`held`, `confirmed`) goes to `review` (`hold.review`): a
//!   person decides. A reading that
//!   did not fail and fails under the registered category is a failure now: its verdict
//!   changes and a hold opens (`sample.failed`), as it would have had the registration come
//!   first. Any other change of verdict (pass ↔ invalid/unknown) is taken as it is.
//! - Results upstreams (a hub) get the sample record itself (type `sample.record`, posted to
//!   the hub's `/api/v1/samples`): the hub applies it to the readings it has by the same rules.
//!
//! A stall set by hand on a hold (`PATCH /api/v1/holds/{id}`) is a correction of the
//! registration of the hold's sample when the sample has an id (so it reaches every reading
//! of the sample, and the hub); a hold whose reading has no sample id has only its own stall
//! and its reading's corrected, and the hub gets the change as a `result.stall`
//! ([`super::stalls`]).

use super::codec::{judged_from_json, rfc3339, to_json, verdict_str};
use super::events::{EventCx, EventKind, HoldBody};
use super::holds::{
    add_history, hold_history, hold_status, hold_subject, open_hold, set_hold_stall,
    set_hold_status, HistoryEntry, HoldStatus, NewHold,
};
use super::queue::{queue_reading_events, queue_revision, queue_sample_record};
use super::{StoreSettings, Tx};
use crate::config::{Format, SendMode};
use crate::judge::{JudgedReading, Verdict};
use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The `samples.key` of sample `sample_id` of `market`.
pub fn id_key(market: &str, sample_id: &str) -> String {
    format!("{market}\u{1f}id\u{1f}{sample_id}")
}

pub use crate::judge::Registered;

/// The registration of `sample_id` in `market`, if any.
pub fn registered(
    conn: &Connection,
    market: &str,
    sample_id: &str,
) -> rusqlite::Result<Option<Registered>> {
    conn.prepare_cached(
        "SELECT stall, name, category FROM samples WHERE key = ?1 AND registered_at IS NOT NULL",
    )?
    .query_row([id_key(market, sample_id)], |r| {
        Ok(Registered {
            stall: r.get(0)?,
            name: r.get(1)?,
            category: r.get(2)?,
        })
    })
    .optional()
}

/// A valid sample record (one row of `POST /api/v1/samples`), as forwarded to a hub too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SampleRecord {
    pub sample_id: String,
    pub market: String,
    pub stall: Option<String>,
    pub sample_name: Option<String>,
    pub category: Option<String>,
    pub vendor: Option<String>,
    pub supplier: Option<String>,
    pub certificate_no: Option<String>,
    pub sampled_at: Option<String>,
}

impl SampleRecord {
    /// What makes "the same registration again".
    fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for v in [
            Some(&self.sample_id),
            Some(&self.market),
            self.stall.as_ref(),
            self.sample_name.as_ref(),
            self.category.as_ref(),
            self.vendor.as_ref(),
            self.supplier.as_ref(),
            self.certificate_no.as_ref(),
            self.sampled_at.as_ref(),
        ] {
            match v {
                None => h.update([0u8]),
                Some(v) => {
                    h.update([1u8]);
                    h.update((v.len() as u64).to_le_bytes());
                    h.update(v.as_bytes());
                }
            }
        }
        hex::encode(h.finalize())
    }
}

/// What became of one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// First registration of the sample (readings stored before may have been completed).
    Stored { readings: usize },
    /// The same content as registered: nothing changed.
    Duplicate,
    /// A correction of the registration.
    Updated { readings: usize },
    /// The market is not registered: nothing stored.
    UnknownMarket,
}

/// A `samples` row as a registration finds it.
struct KnownSample {
    id: i64,
    registered: bool,
    registration_hash: Option<String>,
    stall: Option<String>,
    name: Option<String>,
    category: Option<String>,
}

/// What an audit entry of a correction keeps of the registration before it.
#[derive(Serialize)]
struct Before<'a> {
    stall: Option<&'a str>,
    name: Option<&'a str>,
    category: Option<&'a str>,
}

/// The audit detail of a registration.
#[derive(Serialize)]
struct RegisterAudit<'a> {
    market: &'a str,
    record: &'a SampleRecord,
    before: Option<Before<'a>>,
}

/// The audit detail of a stall set by hand.
#[derive(Serialize)]
struct StallAudit<'a> {
    market: &'a str,
    stall: &'a str,
    hold: &'a str,
}

/// Register (or correct) a sample; readings already stored are completed or corrected, and
/// results upstreams get the record. The caller checked the token's scope.
pub fn register(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    rec: &SampleRecord,
    by: &str,
) -> rusqlite::Result<Registration> {
    let key = id_key(&rec.market, &rec.sample_id);
    let hash = rec.content_hash();
    let now = rfc3339(Utc::now());
    if !super::markets::exists(tx, &rec.market)? {
        return Ok(Registration::UnknownMarket);
    }
    let known: Option<KnownSample> = tx
        .prepare_cached(
            "SELECT id, registered_at IS NOT NULL, registration_hash, stall, name, category
             FROM samples WHERE key = ?1",
        )?
        .query_row([&key], |r| {
            Ok(KnownSample {
                id: r.get(0)?,
                registered: r.get(1)?,
                registration_hash: r.get(2)?,
                stall: r.get(3)?,
                name: r.get(4)?,
                category: r.get(5)?,
            })
        })
        .optional()?;
    let (id, was_registered) = match &known {
        Some(k) if k.registered && k.registration_hash.as_deref() == Some(hash.as_str()) => {
            return Ok(Registration::Duplicate)
        }
        Some(k) => {
            tx.prepare_cached(
                "UPDATE samples SET stall = coalesce(?1, stall), name = coalesce(?2, name),
                    category = coalesce(?3, category), vendor = coalesce(?4, vendor),
                    supplier = coalesce(?5, supplier),
                    certificate_no = coalesce(?6, certificate_no),
                    sampled_at = coalesce(?7, sampled_at), registered_at = ?8,
                    registered_by = ?9, registration_hash = ?10, revision = revision + 1
                 WHERE id = ?11",
            )?
            .execute(params![
                rec.stall,
                rec.sample_name,
                rec.category,
                rec.vendor,
                rec.supplier,
                rec.certificate_no,
                rec.sampled_at,
                now,
                by,
                hash,
                k.id
            ])?;
            (k.id, k.registered)
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO samples (key, market, stall, sample_id, name, category, vendor,
                    supplier, certificate_no, sampled_at, created_at, registered_at,
                    registered_by, registration_hash, revision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, 1)",
            )?
            .execute(params![
                key,
                rec.market,
                rec.stall,
                rec.sample_id,
                rec.sample_name,
                rec.category,
                rec.vendor,
                rec.supplier,
                rec.certificate_no,
                rec.sampled_at,
                now,
                by,
                hash
            ])?;
            (tx.last_insert_rowid(), false)
        }
    };
    super::audit::audit(
        tx,
        by,
        if was_registered {
            "sample.correct"
        } else {
            "sample.register"
        },
        Some(&rec.sample_id),
        &serde_json::to_value(RegisterAudit {
            market: &rec.market,
            record: rec,
            before: known.as_ref().map(|k| Before {
                stall: k.stall.as_deref(),
                name: k.name.as_deref(),
                category: k.category.as_deref(),
            }),
        })
        .unwrap_or_default(),
    )?;
    let why = format!("sample {:?} registered by {by}", rec.sample_id);
    let readings = apply_to_readings(tx, settings, id, by, &why)?;
    forward_record(tx, settings, id)?;
    if rec.certificate_no.is_some() || rec.supplier.is_some() {
        let now_ms = Utc::now().timestamp_millis();
        super::trace::trace_registered(tx, settings, id, now_ms)?;
    }
    Ok(if was_registered {
        Registration::Updated { readings }
    } else {
        Registration::Stored { readings }
    })
}

/// A sample's current record, as its hub gets it.
struct CurrentRecord {
    key: String,
    revision: u32,
    record: SampleRecord,
}

/// Queue the sample's current record for every results upstream (its hub).
fn forward_record(tx: &mut Tx<'_>, settings: &StoreSettings, sample: i64) -> rusqlite::Result<()> {
    if !settings.routes.iter().any(|r| r.format == Format::Results) {
        return Ok(());
    }
    let current: CurrentRecord = tx.query_row(
        "SELECT key, revision, sample_id, market, stall, name, category, vendor, supplier,
                certificate_no, sampled_at FROM samples WHERE id = ?1",
        [sample],
        |r| {
            Ok(CurrentRecord {
                key: r.get(0)?,
                revision: r.get(1)?,
                record: SampleRecord {
                    sample_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    market: r.get(3)?,
                    stall: r.get(4)?,
                    sample_name: r.get(5)?,
                    category: r.get(6)?,
                    vendor: r.get(7)?,
                    supplier: r.get(8)?,
                    certificate_no: r.get(9)?,
                    sampled_at: r.get(10)?,
                },
            })
        },
    )?;
    let body = serde_json::to_vec(&current.record).unwrap_or_default();
    let now_ms = Utc::now().timestamp_millis();
    queue_sample_record(tx, settings, &current.key, current.revision, &body, now_ms)?;
    Ok(())
}

/// One stored reading as a correction needs it.
struct Stored {
    id: i64,
    identity: String,
    market: String,
    stall: Option<String>,
    reading: JudgedReading,
    revision: u32,
    received_at: String,
    local_day: String,
    sample_ref: Option<i64>,
    /// Its hold, if any, and the hold's status.
    hold: Option<(String, HoldStatus)>,
}

fn stored_readings(tx: &Tx<'_>, sql_where: &str, arg: i64) -> rusqlite::Result<Vec<Stored>> {
    let sql = format!(
        "SELECT r.id, r.identity, r.market, r.stall, r.reading_json, r.revision, r.received_at,
                h.id, h.status, r.local_day, r.sample_ref
         FROM readings r LEFT JOIN holds h ON h.reading = r.id
         WHERE {sql_where} AND r.superseded = 0 ORDER BY r.id"
    );
    tx.prepare_cached(&sql)?
        .query_map([arg], |r| {
            let json: String = r.get(4)?;
            let hold: Option<String> = r.get(7)?;
            let status: Option<HoldStatus> = r.get(8)?;
            Ok(Stored {
                id: r.get(0)?,
                identity: r.get(1)?,
                market: r.get(2)?,
                stall: r.get(3)?,
                reading: judged_from_json(4, &json)?,
                revision: r.get(5)?,
                received_at: r.get(6)?,
                local_day: r.get(9)?,
                sample_ref: r.get(10)?,
                hold: hold.zip(status),
            })
        })?
        .collect()
}

/// Apply the sample's registration to its stored readings (see the module notes); returns
/// how many readings changed.
pub fn apply_to_readings(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    sample: i64,
    by: &str,
    why: &str,
) -> rusqlite::Result<usize> {
    let reg: Registered = tx.query_row(
        "SELECT stall, name, category FROM samples WHERE id = ?1",
        [sample],
        |r| {
            Ok(Registered {
                stall: r.get(0)?,
                name: r.get(1)?,
                category: r.get(2)?,
            })
        },
    )?;
    let mut changed = 0;
    for s in stored_readings(tx, "r.sample_ref = ?1", sample)? {
        if correct_reading(tx, settings, s, &reg, by, why)? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Correct one stored reading to `reg`; `false` when nothing changes.
fn correct_reading(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    s: Stored,
    reg: &Registered,
    by: &str,
    why: &str,
) -> rusqlite::Result<bool> {
    let before = s.reading.verdict;
    let mut judged = s.reading.clone();
    // The stored reading's stall is the stall column (an upload's or `--stall`), not always
    // its `source`: compare with that.
    judged.reading.source = s.stall.as_deref().map(Into::into);
    let stall_changed = reg.stall.is_some() && reg.stall != s.stall;
    let changed = settings.judge.take_registered(&mut judged, reg);
    if !changed && !stall_changed {
        return Ok(false);
    }
    let stall = reg.stall.clone().or(s.stall.clone());
    let at = rfc3339(Utc::now());
    let now_ms = Utc::now().timestamp_millis();
    let lifted = before == Verdict::Fail && judged.verdict != Verdict::Fail;
    let mut kept_note = None;
    if lifted {
        // A machine never lifts a hold: the verdict and its reason stay; a person decides.
        kept_note = Some(format!(
            "the registered category {:?} would give {}: {}",
            judged.reading.category.as_deref().unwrap_or(""),
            verdict_str(judged.verdict),
            judged.reason
        ));
        judged.verdict = s.reading.verdict;
        judged.reason = s.reading.reason.clone();
        judged.limit = s.reading.limit.clone();
        judged.reading.category = s.reading.reading.category.clone();
    }
    if judged.verdict != before {
        // The coverage aggregate counts failures and pass/fail samples: move this reading.
        let cov = tx.coverage();
        cov.remove(&s.market, &s.local_day, s.sample_ref, before);
        cov.add(
            &s.market,
            &s.local_day,
            s.sample_ref,
            judged.verdict,
            &s.received_at,
        );
        cov.verdict_changed(before, judged.verdict);
    }
    let revision = s.revision + 1;
    let json = to_json(&judged);
    super::outbox::freeze_bodies(tx, s.id)?;
    tx.prepare_cached(
        "UPDATE readings SET stall = ?1, sample_name = ?2, category = ?3, verdict = ?4,
            reason = ?5, limit_value = ?6, limit_unit = ?7, limit_source = ?8,
            reading_json = ?9, revision = ?10
         WHERE id = ?11",
    )?
    .execute(params![
        stall,
        judged.reading.sample_name.as_deref(),
        judged.reading.category.as_deref(),
        verdict_str(judged.verdict),
        judged.reason.as_str(),
        judged.limit.as_ref().map(|l| l.value),
        judged.limit.as_ref().map(|l| l.unit.as_str()),
        judged.limit.as_ref().map(|l| l.source.as_str()),
        json,
        revision,
        s.id
    ])?;
    let cx = EventCx {
        reading_id: s.id,
        identity: &s.identity,
        occurred_at: &s.received_at,
        market: &s.market,
        stall: stall.as_deref(),
        reading: &judged.reading,
        reading_json: &json,
        fresh: false,
    };
    let mut events = 0;
    match &s.hold {
        Some((hold, status)) => {
            let mut note = format!(
                "{why}: stall {}, sample {:?}, category {:?}",
                stall.as_deref().unwrap_or("unset"),
                judged.reading.sample_name.as_deref().unwrap_or(""),
                judged.reading.category.as_deref().unwrap_or("")
            );
            set_hold_stall(tx, hold, stall.as_deref(), &at)?;
            let mut status = *status;
            // Only an open hold goes to a person; one already in review, or released by a
            // retest, gets the note.
            let to_review = kept_note.is_some() && status.is_open();
            if let Some(kept) = &kept_note {
                let _ = write!(note, "; {kept}: a person decides");
            }
            if to_review {
                set_hold_status(tx, hold, HoldStatus::Review, by, &note, &at)?;
                status = HoldStatus::Review;
            } else {
                add_history(tx, hold, &HistoryEntry::new(&at, status, by, note))?;
            }
            let history = hold_history(tx.conn(), hold)?;
            let h = Some(HoldBody {
                id: hold,
                status,
                history: &history,
            });
            events += queue_revision(
                tx,
                settings,
                &cx,
                EventKind::SampleFailed,
                revision,
                h,
                now_ms,
            )?;
            if to_review {
                events += queue_revision(
                    tx,
                    settings,
                    &cx,
                    EventKind::HoldReview,
                    revision,
                    h,
                    now_ms,
                )?;
            }
        }
        None if judged.verdict == Verdict::Fail && before != Verdict::Fail => {
            let preliminary = judged
                .reading
                .result_status
                .as_deref()
                .is_some_and(|st| st.eq_ignore_ascii_case("P"));
            if !preliminary {
                let (hid, entry) = open_hold(
                    tx,
                    NewHold {
                        identity: &s.identity,
                        reading: s.id,
                        market: &s.market,
                        stall: stall.as_deref(),
                        sample_ref: s.sample_ref,
                        at: &at,
                        by,
                        reason: format!("{why}: {}", judged.reason),
                        now_ms,
                    },
                )?;
                let h = Some(HoldBody {
                    id: &hid,
                    status: HoldStatus::Held,
                    history: std::slice::from_ref(&entry),
                });
                events += queue_reading_events(tx, settings, &cx, Verdict::Fail, h, now_ms)?;
            }
        }
        None => {}
    }
    // Every reading's corrected `result.recorded` for the upstreams that take them all.
    let takes_all = |r: &super::Route| r.format == Format::Events && r.send == SendMode::All;
    if settings.routes.iter().any(takes_all) {
        let h = match &s.hold {
            Some((hold, _)) => Some((
                hold.as_str(),
                hold_status(tx.conn(), hold)?,
                hold_history(tx.conn(), hold)?,
            )),
            None => None,
        };
        let h = h.as_ref().map(|(id, status, history)| HoldBody {
            id,
            status: *status,
            history,
        });
        events += queue_revision(
            tx,
            settings,
            &cx,
            EventKind::ResultRecorded,
            revision,
            h,
            now_ms,
        )?;
    }
    tracing::debug!(reading = s.id, revision, events, "stored reading corrected");
    Ok(true)
}

/// What a stall correction by hand did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StallCorrection {
    pub from: Option<String>,
    /// Readings whose stall changed (all of the sample's when it has an id).
    pub readings: usize,
}

/// Set or correct the stall of hold `hold` (`PATCH /api/v1/holds/{id}`); see the module notes.
pub fn correct_hold_stall(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    hold: &str,
    stall: &str,
    by: &str,
) -> rusqlite::Result<StallCorrection> {
    let subject = hold_subject(tx.conn(), hold)?;
    let from = subject.stall;
    let why = format!(
        "stall set to {stall:?} (was {}) by {by}",
        from.as_deref().unwrap_or("unset")
    );
    let reg = Registered {
        stall: Some(stall.to_string()),
        name: None,
        category: None,
    };
    let readings = match (subject.sample_ref, subject.sample_id) {
        (Some(sample), Some(sid)) => {
            // The sample's registration is corrected: every reading of it, and the hub.
            tx.prepare_cached(
                "UPDATE samples SET stall = ?1, registered_at = coalesce(registered_at, ?2),
                    registered_by = ?3, registration_hash = NULL, revision = revision + 1
                 WHERE id = ?4",
            )?
            .execute(params![stall, rfc3339(Utc::now()), by, sample])?;
            super::audit::audit(
                tx,
                by,
                "sample.correct",
                Some(&sid),
                &serde_json::to_value(StallAudit {
                    market: &subject.market,
                    stall,
                    hold,
                })
                .unwrap_or_default(),
            )?;
            let n = apply_to_readings(tx, settings, sample, by, &why)?;
            forward_record(tx, settings, sample)?;
            n
        }
        _ => correct_reading_stall(tx, settings, subject.reading, &reg, by, &why)?,
    };
    Ok(StallCorrection { from, readings })
}

/// Set the stall of reading `reading` alone (it has no sample id to register), and send the
/// change to the hub ([`super::queue::queue_stall`]); how many readings changed (0 or 1).
pub(super) fn correct_reading_stall(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    reading: i64,
    reg: &Registered,
    by: &str,
    why: &str,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    for s in stored_readings(tx, "r.id = ?1", reading)? {
        n += usize::from(correct_reading(tx, settings, s, reg, by, why)?);
    }
    if n > 0 {
        super::queue::queue_stall(tx, settings, reading)?;
    }
    Ok(n)
}
