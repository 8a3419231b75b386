//! Traceability (`docs/trace.md`): a failure whose sample names a certificate (合格证) — or,
//! without one, a supplier — holds the other samples of that batch, in any market, until they
//! are tested. The batch is every other sample of the same certificate; without a certificate,
//! the samples of the same supplier and commodity (sample name, else category) sampled within
//! `trace_days` before the failure (or after it). A sample of the batch not tested yet, or
//! whose last pass is more than a day older than the failure, gets a hold of status `traced`
//! (of the sample: it may have no reading yet) and one upstream `sample.traced` naming the
//! failure; a sample already failed has a hold of its own, and one that passed within a day
//! of the failure was tested on these goods already.
//!
//! A passing test of a traced sample releases its traced hold (`hold.released`); a failing one
//! closes it, since the sample's own hold takes over from there.

use super::codec::rfc3339;
use super::events::{revised_event_id, EventKind};
use super::holds::{add_history, hold_history, HistoryEntry, HoldStatus};
use super::identity::hold_id;
use super::queue::queue_hold_change;
use super::{StoreSettings, Tx};
use crate::judge::Verdict;
use chrono::{DateTime, Duration, FixedOffset};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Who writes a traced hold's history.
const BY: &str = "trace";

/// A sample of a failed batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchSample {
    #[serde(skip)]
    pub id: i64,
    pub market: String,
    pub stall: Option<String>,
    pub sample_id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub vendor: Option<String>,
    pub supplier: Option<String>,
    pub certificate_no: Option<String>,
    pub sampled_at: Option<String>,
}

const SAMPLE_COLUMNS: &str = "id, market, stall, sample_id, name, category, vendor, supplier,
    certificate_no, coalesce(sampled_at, created_at)";

fn batch_sample(r: &rusqlite::Row<'_>) -> rusqlite::Result<BatchSample> {
    Ok(BatchSample {
        id: r.get(0)?,
        market: r.get(1)?,
        stall: r.get(2)?,
        sample_id: r.get(3)?,
        name: r.get(4)?,
        category: r.get(5)?,
        vendor: r.get(6)?,
        supplier: r.get(7)?,
        certificate_no: r.get(8)?,
        sampled_at: r.get(9)?,
    })
}

fn filled(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The failed reading a trace starts from.
struct TraceOrigin {
    identity: String,
    market: String,
    stall: Option<String>,
    analyte: String,
    value: Option<String>,
    /// When it was tested (measured, else received).
    at: DateTime<FixedOffset>,
}

/// Hold the rest of the batch of failed reading `failed` (sample `sample_ref`); returns the
/// events queued.
pub(crate) fn trace_failure(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    failed: i64,
    sample_ref: i64,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    // Once per stored failure: the statement stays prepared for the job.
    let Some(origin) = tx.hot(
        "SELECT id, market, stall, sample_id, name, category, vendor, supplier,
         certificate_no, coalesce(sampled_at, created_at) FROM samples WHERE id = ?1",
        |s| s.query_row([sample_ref], batch_sample).optional(),
    )?
    else {
        return Ok(0);
    };
    let (certificate, supplier) = (filled(&origin.certificate_no), filled(&origin.supplier));
    if certificate.is_none() && supplier.is_none() {
        return Ok(0);
    }
    let failure = origin_of(tx, failed)?;
    let batch: Vec<BatchSample> = match (certificate, supplier) {
        (Some(c), _) => tx
            .prepare_cached(&format!(
                "SELECT {SAMPLE_COLUMNS} FROM samples WHERE certificate_no = ?1 AND id <> ?2"
            ))?
            .query_map(params![c, sample_ref], batch_sample)?
            .collect::<rusqlite::Result<_>>()?,
        (None, Some(s)) => {
            let from =
                rfc3339((failure.at - Duration::days(i64::from(settings.trace_days))).to_utc());
            let to = rfc3339((failure.at + Duration::days(1)).to_utc());
            tx.prepare_cached(&format!(
                "SELECT {SAMPLE_COLUMNS} FROM samples WHERE supplier = ?1 AND id <> ?2
                 AND (certificate_no IS NULL OR certificate_no = '')
                 AND CASE WHEN ?3 IS NOT NULL THEN name = ?3 ELSE category = ?4 END
                 AND julianday(coalesce(sampled_at, created_at)) BETWEEN julianday(?5)
                     AND julianday(?6)"
            ))?
            .query_map(
                params![
                    s,
                    sample_ref,
                    filled(&origin.name),
                    origin.category,
                    from,
                    to
                ],
                batch_sample,
            )?
            .collect::<rusqlite::Result<_>>()?
        }
        (None, None) => Vec::new(),
    };
    let recent = failure.at - Duration::days(1);
    let mut events = 0;
    for sample in batch {
        if !needs_trace(tx, sample.id, recent)? {
            continue;
        }
        events += hold_traced(tx, settings, &sample, &origin, &failure, failed, now_ms)?;
    }
    Ok(events)
}

/// A sample registered (or corrected) with a certificate or a supplier after the fact: if it
/// failed itself, its batch is traced now; else, if its batch failed elsewhere, it is held
/// like the others. Returns the events queued.
pub(crate) fn trace_registered(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    sample: i64,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let Some(s) = tx
        .prepare_cached(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples WHERE id = ?1"
        ))?
        .query_row([sample], batch_sample)
        .optional()?
    else {
        return Ok(0);
    };
    let (certificate, supplier) = (filled(&s.certificate_no), filled(&s.supplier));
    if certificate.is_none() && supplier.is_none() {
        return Ok(0);
    }
    let own: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM readings WHERE sample_ref = ?1 AND verdict = 'fail'
             AND superseded = 0 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([sample], |r| r.get(0))
        .optional()?;
    if let Some(failed) = own {
        return trace_failure(tx, settings, failed, sample, now_ms);
    }
    // The newest failure of the batch elsewhere: of the certificate, or of the supplier's
    // commodity tested within `trace_days` after this sample was taken (or a day before).
    let at = s.sampled_at.clone().unwrap_or_default();
    let failure: Option<(i64, i64)> = match (certificate, supplier) {
        (Some(c), _) => tx
            .prepare_cached(
                "SELECT r.id, r.sample_ref FROM readings r JOIN samples o ON o.id = r.sample_ref
                 WHERE o.certificate_no = ?1 AND o.id <> ?2 AND r.verdict = 'fail'
                 AND r.superseded = 0 ORDER BY r.id DESC LIMIT 1",
            )?
            .query_row(params![c, sample], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
        (None, Some(sup)) => tx
            .prepare_cached(
                "SELECT r.id, r.sample_ref FROM readings r JOIN samples o ON o.id = r.sample_ref
                 WHERE o.supplier = ?1 AND o.id <> ?2 AND r.verdict = 'fail' AND r.superseded = 0
                 AND (o.certificate_no IS NULL OR o.certificate_no = '')
                 AND CASE WHEN ?3 IS NOT NULL THEN o.name = ?3 ELSE o.category = ?4 END
                 AND julianday(coalesce(r.measured_at, r.received_at))
                     BETWEEN julianday(?5) - 1 AND julianday(?5) + ?6
                 ORDER BY r.id DESC LIMIT 1",
            )?
            .query_row(
                params![
                    sup,
                    sample,
                    filled(&s.name),
                    s.category,
                    at,
                    settings.trace_days
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?,
        (None, None) => None,
    };
    let Some((failed, origin_ref)) = failure else {
        return Ok(0);
    };
    let origin = tx
        .prepare_cached(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples WHERE id = ?1"
        ))?
        .query_row([origin_ref], batch_sample)?;
    let failure = origin_of(tx, failed)?;
    if !needs_trace(tx, sample, failure.at - Duration::days(1))? {
        return Ok(0);
    }
    hold_traced(tx, settings, &s, &origin, &failure, failed, now_ms)
}

/// The failed reading `failed` as a trace names it.
fn origin_of(tx: &Tx<'_>, failed: i64) -> rusqlite::Result<TraceOrigin> {
    tx.query_row(
        "SELECT identity, market, stall, analyte, value_text, coalesce(measured_at, received_at)
         FROM readings WHERE id = ?1",
        [failed],
        |r| {
            let at: String = r.get(5)?;
            Ok(TraceOrigin {
                identity: r.get(0)?,
                market: r.get(1)?,
                stall: r.get(2)?,
                analyte: r.get(3)?,
                value: r.get(4)?,
                at: DateTime::parse_from_rfc3339(&at).unwrap_or_default(),
            })
        },
    )
}

/// Whether `sample` is to be held: not already held by a trace, not failed, and not passed
/// on or after `recent`.
fn needs_trace(tx: &Tx<'_>, sample: i64, recent: DateTime<FixedOffset>) -> rusqlite::Result<bool> {
    let traced: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM holds WHERE sample_ref = ?1
             AND traced_from IS NOT NULL AND status = 'traced')",
        )?
        .query_row([sample], |r| r.get(0))?;
    if traced {
        return Ok(false);
    }
    let tests: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT verdict, coalesce(measured_at, received_at) FROM readings
             WHERE sample_ref = ?1 AND superseded = 0",
        )?
        .query_map([sample], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let failed = tests.iter().any(|(v, _)| v == "fail");
    let passed_lately = tests
        .iter()
        .any(|(v, at)| v == "pass" && DateTime::parse_from_rfc3339(at).is_ok_and(|t| t >= recent));
    Ok(!failed && !passed_lately)
}

#[derive(Serialize)]
struct TracedBody<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: EventKind,
    occurred_at: &'a str,
    market: &'a str,
    stall: Option<&'a str>,
    sample: &'a BatchSample,
    hold: TracedHold<'a>,
    traced_from: TracedFrom<'a>,
}

#[derive(Serialize)]
struct TracedHold<'a> {
    id: &'a str,
    status: HoldStatus,
    history: &'a [HistoryEntry],
}

#[derive(Serialize)]
struct TracedFrom<'a> {
    /// The failed reading, by the id the results API knows it by.
    reading: &'a str,
    market: &'a str,
    stall: Option<&'a str>,
    sample_id: Option<&'a str>,
    analyte: &'a str,
    value: Option<&'a str>,
    tested_at: String,
}

fn hold_traced(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    sample: &BatchSample,
    origin: &BatchSample,
    failure: &TraceOrigin,
    failed: i64,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let key = format!("{}/traced/{}", failure.identity, sample.id);
    let id = hold_id(&key, sample.id, now_ms).to_string();
    let at = rfc3339(chrono::Utc::now());
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO holds (id, reading, market, stall, sample_ref, status,
                 created_at, updated_at, traced_from)
             VALUES (?1, NULL, ?2, ?3, ?4, 'traced', ?5, ?5, ?6)",
        )?
        .execute(params![
            id,
            sample.market,
            sample.stall,
            sample.id,
            at,
            failed
        ])?;
    if n == 0 {
        return Ok(0);
    }
    tx.traced_added();
    let by_what = match filled(&origin.certificate_no) {
        Some(c) => format!("合格证 {c} / certificate {c}"),
        None => format!(
            "供应商 {} / supplier {}",
            origin.supplier.as_deref().unwrap_or(""),
            origin.supplier.as_deref().unwrap_or("")
        ),
    };
    let reason = format!(
        "同批次（{by_what}）在 {} 检测不合格，本批货物暂停销售待检 / the same batch ({by_what}) \
         failed at {}: held until this sample is tested",
        failure.market, failure.market
    );
    let entry = HistoryEntry {
        fields: Some(serde_json::json!({ "traced_from": failure.identity })),
        ..HistoryEntry::new(&at, HoldStatus::Traced, BY, reason)
    };
    add_history(tx, &id, &entry)?;
    let event_id = revised_event_id(&key, EventKind::SampleTraced, 0);
    let body = serde_json::to_vec(&TracedBody {
        event_id: &event_id,
        kind: EventKind::SampleTraced,
        occurred_at: &at,
        market: &sample.market,
        stall: sample.stall.as_deref(),
        sample,
        hold: TracedHold {
            id: &id,
            status: HoldStatus::Traced,
            history: std::slice::from_ref(&entry),
        },
        traced_from: TracedFrom {
            reading: &failure.identity,
            market: &failure.market,
            stall: failure.stall.as_deref(),
            sample_id: origin.sample_id.as_deref(),
            analyte: &failure.analyte,
            value: failure.value.as_deref(),
            tested_at: failure.at.to_rfc3339(),
        },
    })
    .unwrap_or_default();
    let kind = EventKind::SampleTraced;
    queue_hold_change(tx, settings, failed, kind, &id, &event_id, &body, now_ms)
}

/// A test of sample `sample_ref` (reading `reading`, judged `verdict`) settles its traced
/// holds: a pass releases them (`hold.released`), a failure closes them (its own hold takes
/// over). Returns the events queued.
pub(crate) fn settle_traced(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    sample_ref: i64,
    reading: i64,
    identity: &str,
    verdict: Verdict,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let (next, reason) = match verdict {
        Verdict::Pass => (
            HoldStatus::Released,
            "本样品检测合格，恢复销售 / this sample passed its test: released",
        ),
        Verdict::Fail => (
            HoldStatus::Closed,
            "本样品检测不合格，按其自身的不合格处置 / this sample failed its own test: its own hold takes over",
        ),
        _ => return Ok(0),
    };
    if !tx.any_traced()? {
        return Ok(0);
    }
    // Once per stored reading: the statement stays prepared for the job.
    let traced: Vec<String> = tx.hot(
        "SELECT id FROM holds WHERE sample_ref = ?1 AND traced_from IS NOT NULL
         AND status = 'traced'",
        |s| s.query_map([sample_ref], |r| r.get(0))?.collect(),
    )?;
    let mut events = 0;
    for hold in traced {
        let at = rfc3339(chrono::Utc::now());
        tx.prepare_cached("UPDATE holds SET status = ?1, updated_at = ?2 WHERE id = ?3")?
            .execute(params![next, at, hold])?;
        let entry = HistoryEntry {
            fields: Some(serde_json::json!({ "reading": identity })),
            ..HistoryEntry::new(&at, next, BY, reason.to_string())
        };
        add_history(tx, &hold, &entry)?;
        if next == HoldStatus::Released {
            events += queue_released(tx, settings, &hold, reading, identity, &at, now_ms)?;
        }
    }
    Ok(events)
}

fn queue_released(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    hold: &str,
    reading: i64,
    identity: &str,
    at: &str,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let sample: BatchSample = tx.query_row(
        &format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples
             WHERE id = (SELECT sample_ref FROM holds WHERE id = ?1)"
        ),
        [hold],
        batch_sample,
    )?;
    let history = hold_history(tx.conn(), hold)?;
    let key = format!("{identity}/traced/{hold}");
    let event_id = revised_event_id(&key, EventKind::HoldReleased, 0);
    #[derive(Serialize)]
    struct ReleasedBody<'a> {
        event_id: &'a str,
        #[serde(rename = "type")]
        kind: EventKind,
        occurred_at: &'a str,
        market: &'a str,
        stall: Option<&'a str>,
        sample: &'a BatchSample,
        hold: TracedHold<'a>,
        /// The passing reading, by its results-API id.
        reading: &'a str,
    }
    let body = serde_json::to_vec(&ReleasedBody {
        event_id: &event_id,
        kind: EventKind::HoldReleased,
        occurred_at: at,
        market: &sample.market,
        stall: sample.stall.as_deref(),
        sample: &sample,
        hold: TracedHold {
            id: hold,
            status: HoldStatus::Released,
            history: &history,
        },
        reading: identity,
    })
    .unwrap_or_default();
    let kind = EventKind::HoldReleased;
    queue_hold_change(tx, settings, reading, kind, hold, &event_id, &body, now_ms)
}

/// A test of a batch's sample, for [`batch`].
#[derive(Debug, Clone, Serialize)]
pub struct BatchReading {
    /// Its results-API id.
    pub id: String,
    pub analyte: String,
    pub value: Option<String>,
    pub unit: Option<String>,
    pub verdict: String,
    pub tested_at: String,
}

/// A hold of a batch's sample, for [`batch`].
#[derive(Debug, Clone, Serialize)]
pub struct BatchHold {
    pub id: String,
    pub status: HoldStatus,
    /// The failed reading it follows from (a traced hold), else `None`.
    pub traced_from: Option<String>,
    /// The reading it is about (a failure's own hold), else `None`.
    pub reading: Option<String>,
    pub created_at: String,
}

/// One sample of a batch with its tests and holds.
#[derive(Debug, Clone, Serialize)]
pub struct BatchEntry {
    #[serde(flatten)]
    pub sample: BatchSample,
    pub readings: Vec<BatchReading>,
    pub holds: Vec<BatchHold>,
}

/// Most samples [`batch`] lists.
pub const BATCH_LIMIT: usize = 1000;

/// Every sample of certificate `certificate`, or of supplier `supplier`, in any market
/// (newest first, at most [`BATCH_LIMIT`]), each with its readings and holds.
pub fn batch(
    db: &impl super::Db,
    certificate: Option<&str>,
    supplier: Option<&str>,
) -> rusqlite::Result<Vec<BatchEntry>> {
    let conn = db.connection();
    let samples: Vec<BatchSample> = conn
        .prepare_cached(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples
             WHERE (?1 IS NOT NULL AND certificate_no = ?1) OR (?1 IS NULL AND supplier = ?2)
             ORDER BY coalesce(sampled_at, created_at) DESC, id DESC LIMIT ?3"
        ))?
        .query_map(
            params![certificate, supplier, BATCH_LIMIT as i64],
            batch_sample,
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut readings = conn.prepare_cached(
        "SELECT identity, analyte, value_text, unit, verdict, coalesce(measured_at, received_at)
         FROM readings WHERE sample_ref = ?1 AND superseded = 0 ORDER BY id",
    )?;
    let mut holds = conn.prepare_cached(
        "SELECT h.id, h.status, f.identity, r.identity, h.created_at FROM holds h
         LEFT JOIN readings f ON f.id = h.traced_from LEFT JOIN readings r ON r.id = h.reading
         WHERE h.sample_ref = ?1 ORDER BY h.created_at, h.id",
    )?;
    let mut out = Vec::with_capacity(samples.len());
    for sample in samples {
        let r = readings
            .query_map([sample.id], |r| {
                Ok(BatchReading {
                    id: r.get(0)?,
                    analyte: r.get(1)?,
                    value: r.get(2)?,
                    unit: r.get(3)?,
                    verdict: r.get(4)?,
                    tested_at: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let h = holds
            .query_map([sample.id], |r| {
                Ok(BatchHold {
                    id: r.get(0)?,
                    status: r.get(1)?,
                    traced_from: r.get(2)?,
                    reading: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        out.push(BatchEntry {
            sample,
            readings: r,
            holds: h,
        });
    }
    Ok(out)
}
