//! Registered samples (SPEC `POST /api/v1/samples`) and stall corrections.
//!
//! A registration is the sampling record a person makes: which stall a sample came from,
//! what it is and its category. It lives in the sample's own `samples` row (keyed by market
//! and sample id), marked `registered_at`. Its rules:
//!
//! - A reading stored later whose sample id matches takes the registered stall, name and
//!   category (a field the registration leaves out keeps the reading's), and is judged with
//!   that category ([`take_registered`], called by [`super::insert`]).
//! - Registering the same content again is a no-op (`duplicate`); other content is a
//!   correction (`updated`): given fields replace the registered ones, left-out fields keep
//!   what is known, the revision goes up, the old values go to the audit log.
//! - A registration or correction that comes after readings of the sample were stored is
//!   applied to them ([`apply_to_readings`]): their stall, name and category, and the stall of
//!   their holds, are filled in or corrected, noted in the hold history, and the corrected
//!   events go upstream (a new revision: see [`super::insert::revised_event_id`]).
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
//! and its reading's corrected.

use super::identity::hold_id;
use super::insert::{
    add_history, hold_history, queue_event, queue_reading_events, queue_revision, rfc3339,
    set_hold_status, verdict_str, EventCx, HistoryEntry,
};
use super::{StoreSettings, Tx};
use crate::config::{Format, Send as SendMode};
use crate::judge::Judge;
use chrono::Utc;
use foodgate_parsers::{Reading, Verdict};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The `samples.key` of sample `sample_id` of `market`.
pub fn id_key(market: &str, sample_id: &str) -> String {
    format!("{market}\u{1f}id\u{1f}{sample_id}")
}

/// What a registered sample gives the readings of its sample id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub stall: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

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

/// Give `reading` the registered stall, name and category; judge it again when its category
/// changes. Returns whether anything changed.
pub fn take_registered(judge: &Judge, reading: &mut Reading, reg: &Registered) -> bool {
    let mut changed = false;
    if let Some(stall) = &reg.stall {
        if reading.source.as_deref() != Some(stall.as_str()) {
            reading.source = Some(stall.as_str().into());
            changed = true;
        }
    }
    if let Some(name) = &reg.name {
        if reading.sample_name.as_deref() != Some(name.as_str()) {
            reading.sample_name = Some(name.as_str().into());
            changed = true;
        }
    }
    if let Some(category) = &reg.category {
        if reading.category.as_deref() != Some(category.as_str()) {
            reading.category = Some(category.as_str().into());
            judge.judge(reading);
            changed = true;
        }
    }
    changed
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
}

type SampleRow = (
    i64,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Register (or correct) a sample; readings already stored are completed or corrected, and
/// results upstreams get the record. The market must exist (the caller checked the scope).
pub fn register(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    rec: &SampleRecord,
    by: &str,
) -> rusqlite::Result<Registration> {
    let key = id_key(&rec.market, &rec.sample_id);
    let hash = rec.content_hash();
    let now = rfc3339(Utc::now());
    let known: Option<SampleRow> = tx
        .prepare_cached(
            "SELECT id, registered_at IS NOT NULL, registration_hash, stall, name, category
             FROM samples WHERE key = ?1",
        )?
        .query_row([&key], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    let (id, was_registered) = match &known {
        Some((_, true, Some(h), ..)) if *h == hash => return Ok(Registration::Duplicate),
        Some((id, registered, ..)) => {
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
                id
            ])?;
            (*id, *registered)
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
        &serde_json::json!({
            "market": rec.market,
            "record": rec,
            "before": known.as_ref().map(|k| serde_json::json!({"stall": k.3, "name": k.4, "category": k.5})),
        }),
    )?;
    let why = format!("sample {:?} registered by {by}", rec.sample_id);
    let readings = apply_to_readings(tx, settings, id, by, &why)?;
    forward_record(tx, settings, id)?;
    Ok(if was_registered {
        Registration::Updated { readings }
    } else {
        Registration::Stored { readings }
    })
}

/// Queue the sample's current record for every results upstream (its hub).
fn forward_record(tx: &mut Tx<'_>, settings: &StoreSettings, sample: i64) -> rusqlite::Result<()> {
    if !settings.routes.iter().any(|r| r.format == Format::Results) {
        return Ok(());
    }
    let (key, revision, rec): (String, u32, SampleRecord) = tx.query_row(
        "SELECT key, revision, sample_id, market, stall, name, category, vendor, supplier,
                certificate_no, sampled_at FROM samples WHERE id = ?1",
        [sample],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                SampleRecord {
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
            ))
        },
    )?;
    let id = super::identity::event_id(&key, &format!("sample.record#{revision}")).to_string();
    let body = serde_json::to_vec(&rec).unwrap_or_default();
    let now_ms = Utc::now().timestamp_millis();
    let mut n = 0;
    for route in settings
        .routes
        .iter()
        .filter(|r| r.format == Format::Results)
    {
        n += queue_event(
            tx,
            None,
            route,
            "sample.record",
            None,
            &id,
            &body,
            now_ms,
            false,
        )?;
    }
    tx.events_added(n);
    Ok(())
}

/// One stored reading as a correction needs it.
struct Stored {
    id: i64,
    identity: String,
    market: String,
    stall: Option<String>,
    reading: Reading,
    revision: u32,
    received_at: String,
    hold: Option<(String, String)>,
}

fn stored_readings(tx: &Tx<'_>, sql_where: &str, arg: i64) -> rusqlite::Result<Vec<Stored>> {
    let sql = format!(
        "SELECT r.id, r.identity, r.market, r.stall, r.reading_json, r.revision, r.received_at,
                h.id, h.status
         FROM readings r LEFT JOIN holds h ON h.reading = r.id
         WHERE {sql_where} AND r.superseded = 0 ORDER BY r.id"
    );
    tx.prepare_cached(&sql)?
        .query_map([arg], |r| {
            let json: String = r.get(4)?;
            let hold: Option<String> = r.get(7)?;
            let status: Option<String> = r.get(8)?;
            Ok(Stored {
                id: r.get(0)?,
                identity: r.get(1)?,
                market: r.get(2)?,
                stall: r.get(3)?,
                reading: serde_json::from_str(&json).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        4,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
                revision: r.get(5)?,
                received_at: r.get(6)?,
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
    judged.source = s.stall.as_deref().map(Into::into);
    let stall_changed = reg.stall.is_some() && reg.stall != s.stall;
    let changed = take_registered(&settings.judge, &mut judged, reg);
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
            judged.category.as_deref().unwrap_or(""),
            verdict_str(judged.verdict),
            judged.reason
        ));
        judged.verdict = s.reading.verdict;
        judged.reason = s.reading.reason.clone();
        judged.limit = s.reading.limit.clone();
        judged.category = s.reading.category.clone();
    }
    if judged.verdict != before {
        // The coverage aggregate counts failures and pass/fail samples: move this reading.
        let (day, sample_ref): (String, Option<i64>) = tx
            .prepare_cached("SELECT local_day, sample_ref FROM readings WHERE id = ?1")?
            .query_row([s.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let cov = tx.coverage();
        cov.remove(&s.market, &day, sample_ref, before);
        cov.add(&s.market, &day, sample_ref, judged.verdict, &s.received_at);
        cov.verdict_changed(before, judged.verdict);
    }
    let revision = s.revision + 1;
    let json = serde_json::to_string(&judged).unwrap_or_default();
    super::outbox::freeze_bodies(tx, s.id)?;
    tx.prepare_cached(
        "UPDATE readings SET stall = ?1, sample_name = ?2, category = ?3, verdict = ?4,
            reason = ?5, limit_value = ?6, limit_unit = ?7, limit_source = ?8,
            reading_json = ?9, revision = ?10
         WHERE id = ?11",
    )?
    .execute(params![
        stall,
        judged.sample_name.as_deref(),
        judged.category.as_deref(),
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
        reading: &judged,
        reading_json: &json,
        fresh: false,
    };
    let mut events = 0;
    match &s.hold {
        Some((hold, status)) => {
            let mut note = format!(
                "{why}: stall {}, sample {:?}, category {:?}",
                stall.as_deref().unwrap_or("unset"),
                judged.sample_name.as_deref().unwrap_or(""),
                judged.category.as_deref().unwrap_or("")
            );
            tx.prepare_cached("UPDATE holds SET stall = ?1, updated_at = ?2 WHERE id = ?3")?
                .execute(params![stall, at, hold])?;
            let mut status = status.clone();
            // Only an open hold goes to a person; one already in review, or released by a
            // retest, gets the note.
            let to_review = kept_note.is_some() && matches!(status.as_str(), "held" | "confirmed");
            if let Some(kept) = &kept_note {
                let _ = write!(note, "; {kept}: a person decides");
            }
            if to_review {
                set_hold_status(tx, hold, "review", by, &note, &at)?;
                status = "review".into();
            } else {
                add_history(
                    tx,
                    hold,
                    &HistoryEntry {
                        at: at.clone(),
                        status: status.clone(),
                        by: by.to_string(),
                        reason: note,
                    },
                )?;
            }
            let history = hold_history(tx, hold)?;
            let h = Some((hold.as_str(), status.as_str(), history.as_slice()));
            events += queue_revision(tx, settings, &cx, "sample.failed", revision, h, now_ms)?;
            if to_review {
                events += queue_revision(tx, settings, &cx, "hold.review", revision, h, now_ms)?;
            }
        }
        None if judged.verdict == Verdict::Fail && before != Verdict::Fail => {
            let preliminary = judged
                .result_status
                .as_deref()
                .is_some_and(|st| st.eq_ignore_ascii_case("P"));
            if !preliminary {
                let hid = hold_id(&s.identity, s.id, now_ms).to_string();
                let sample_ref: Option<i64> = tx.query_row(
                    "SELECT sample_ref FROM readings WHERE id = ?1",
                    [s.id],
                    |r| r.get(0),
                )?;
                tx.prepare_cached(
                    "INSERT INTO holds (id, reading, market, stall, sample_ref, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'held', ?6, ?6)",
                )?
                .execute(params![hid, s.id, s.market, stall, sample_ref, at])?;
                let entry = HistoryEntry {
                    at: at.clone(),
                    status: "held".into(),
                    by: by.to_string(),
                    reason: format!("{why}: {}", judged.reason),
                };
                add_history(tx, &hid, &entry)?;
                let h = Some((hid.as_str(), "held", std::slice::from_ref(&entry)));
                events += queue_reading_events(tx, settings, &cx, true, h, now_ms)?;
            }
        }
        None => {}
    }
    // Every reading's corrected `result.recorded` for the upstreams that take them all.
    let takes_all = |r: &super::Route| r.format == Format::Events && r.send == SendMode::All;
    if settings.routes.iter().any(takes_all) {
        let h = match &s.hold {
            Some((hold, _)) => {
                let history = hold_history(tx, hold)?;
                let status: String =
                    tx.query_row("SELECT status FROM holds WHERE id = ?1", [hold], |r| {
                        r.get(0)
                    })?;
                Some((hold.clone(), status, history))
            }
            None => None,
        };
        let h = h
            .as_ref()
            .map(|(id, st, hist)| (id.as_str(), st.as_str(), hist.as_slice()));
        events += queue_revision(tx, settings, &cx, "result.recorded", revision, h, now_ms)?;
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
    let (from, reading, sample_ref, sample_id, market): (
        Option<String>,
        i64,
        Option<i64>,
        Option<String>,
        String,
    ) = tx.query_row(
        "SELECT h.stall, h.reading, h.sample_ref, r.sample_id, h.market
         FROM holds h JOIN readings r ON r.id = h.reading WHERE h.id = ?1",
        [hold],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let why = format!(
        "stall set to {stall:?} (was {}) by {by}",
        from.as_deref().unwrap_or("unset")
    );
    let reg = Registered {
        stall: Some(stall.to_string()),
        name: None,
        category: None,
    };
    let readings = match (sample_ref, sample_id) {
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
                &serde_json::json!({"market": market, "stall": stall, "hold": hold}),
            )?;
            let n = apply_to_readings(tx, settings, sample, by, &why)?;
            forward_record(tx, settings, sample)?;
            n
        }
        _ => {
            let mut n = 0;
            for s in stored_readings(tx, "r.id = ?1", reading)? {
                n += usize::from(correct_reading(tx, settings, s, &reg, by, &why)?);
            }
            n
        }
    };
    Ok(StallCorrection { from, readings })
}
