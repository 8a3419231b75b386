//! Storing a batch: each reading with its raw bytes, its sample, and, for a failure, its hold
//! and outbox events, all in the caller's transaction.

use super::codec::{device_verdict_str, measured_str, qualifier_str, to_json};
use super::events::{EventCx, EventKind, HoldBody};
use super::holds::{open_hold, open_hold_of, set_hold_status, HoldStatus, NewHold};
use super::identity::{reading_identity, Origin};
use super::queue::{queue_for_routes, queue_reading_events, queue_result_rows};
use super::trace;
use super::{StoreSettings, Tx};
use crate::judge::{JudgedReading, Verdict};
use chrono::{DateTime, Utc};
use foodgate_parsers::Reading;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

// Code above the store still names the column codecs here; their home is `codec`.
pub use super::codec::{local_day, parse_verdict, rfc3339, verdict_str};

/// Bytes a reading came from, or a frame that gave none (`error` says why).
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// The stream: an instrument id, or `ingest:<file>`.
    pub source: String,
    /// Absolute offset of `bytes` in that stream.
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// The decode error for a rejected frame.
    pub error: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// A judged reading to store.
#[derive(Debug, Clone)]
pub struct NewReading {
    pub reading: JudgedReading,
    pub market: String,
    /// Stall code; `None` takes the reading's `source`.
    pub stall: Option<String>,
    pub origin: Origin,
    pub received_at: DateTime<Utc>,
    /// Index into [`Batch::frames`] of the bytes this reading came from.
    pub frame: Option<usize>,
}

/// What one call to the writer stores, atomically.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub frames: Vec<RawFrame>,
    pub readings: Vec<NewReading>,
}

/// What became of one reading of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stored {
        id: i64,
        identity: String,
        verdict: Verdict,
        /// The hold a failure opened.
        hold: Option<String>,
        /// Outbox rows queued (one per event and upstream).
        events: usize,
    },
    /// Seen before: nothing stored, no event; the original verdict.
    Duplicate {
        id: i64,
        identity: String,
        verdict: Verdict,
    },
    /// Not stored (e.g. unknown market); the rest of the batch is unaffected.
    Rejected { reason: String },
}

/// Committed result of a [`Batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    pub outcomes: Vec<Outcome>,
    /// Raw frames newly stored (frames already stored are not stored again).
    pub frames_stored: usize,
}

impl Committed {
    pub fn stored(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Stored { .. }))
            .count()
    }
    pub fn duplicates(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Duplicate { .. }))
            .count()
    }
}

fn store_frame(tx: &Tx<'_>, f: &RawFrame) -> rusqlite::Result<(i64, bool)> {
    let hash = hex::encode(Sha256::digest(&f.bytes));
    let offset = i64::try_from(f.offset).unwrap_or(i64::MAX);
    // No RETURNING: it makes SQLite treat the INSERT as a multi-row write and copy every page
    // it touches into a statement journal. The writer thread is the only writer, so
    // `last_insert_rowid` is this row's.
    let added = tx.hot(
        "INSERT INTO raw_frames (source, stream_offset, hash, bytes, error, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (source, stream_offset, hash) DO NOTHING",
        |s| {
            s.execute(params![
                f.source,
                offset,
                hash,
                f.bytes,
                f.error,
                rfc3339(f.received_at)
            ])
        },
    )?;
    if added == 1 {
        return Ok((tx.last_insert_rowid(), true));
    }
    tx.prepare_cached(
        "SELECT id FROM raw_frames WHERE source = ?1 AND stream_offset = ?2 AND hash = ?3",
    )?
    .query_row(params![f.source, offset, hash], |r| r.get(0))
    .map(|id| (id, false))
}

pub(crate) fn sample_key(
    market: &str,
    stall: Option<&str>,
    r: &Reading,
    received_at: DateTime<Utc>,
) -> String {
    match r.sample_id.as_deref() {
        Some(id) => super::samples::id_key(market, id),
        None => {
            let at = r
                .measured_at
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(received_at);
            format!(
                "{market}\u{1f}stall\u{1f}{}\u{1f}{}\u{1f}{}",
                stall.unwrap_or(""),
                r.sample_name.as_deref().unwrap_or(""),
                at.format("%Y-%m-%dT%H")
            )
        }
    }
}

/// Store every reading of `batch` (see [`super::Store::submit`]).
pub fn insert_batch(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    batch: Batch,
) -> rusqlite::Result<super::Committed> {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let mut committed = Committed {
        outcomes: Vec::with_capacity(batch.readings.len()),
        frames_stored: 0,
    };
    // A frame some reading points at is stored with the first of its readings that is new:
    // sending a capture again (chunked otherwise, so framed otherwise) adds no raw bytes.
    // Frames no reading points at (rejected bytes) are always kept.
    let mut referenced = vec![false; batch.frames.len()];
    for i in batch.readings.iter().filter_map(|r| r.frame) {
        if let Some(slot) = referenced.get_mut(i) {
            *slot = true;
        }
    }
    let mut frames = FrameSlots {
        frames: &batch.frames,
        ids: vec![None; batch.frames.len()],
        stored: 0,
    };
    for (i, used) in referenced.iter().enumerate() {
        if !used {
            frames.id(tx, i)?;
        }
    }
    // Markets seen in this batch (a batch names one or a few).
    let mut markets: Vec<String> = Vec::new();
    for item in batch.readings {
        let outcome = insert_reading(tx, settings, item, &mut frames, now_ms, &mut markets)?;
        committed.outcomes.push(outcome);
    }
    committed.frames_stored = frames.stored;
    Ok(committed)
}

/// The raw frames of a batch, stored when first needed.
struct FrameSlots<'a> {
    frames: &'a [RawFrame],
    ids: Vec<Option<i64>>,
    stored: usize,
}

impl FrameSlots<'_> {
    fn id(&mut self, tx: &Tx<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
        let (Some(slot), Some(frame)) = (self.ids.get_mut(i), self.frames.get(i)) else {
            return Ok(None);
        };
        if slot.is_none() {
            let (id, new) = store_frame(tx, frame)?;
            self.stored += usize::from(new);
            *slot = Some(id);
        }
        Ok(*slot)
    }
}

fn insert_reading(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    item: NewReading,
    frames: &mut FrameSlots<'_>,
    now_ms: i64,
    markets: &mut Vec<String>,
) -> rusqlite::Result<Outcome> {
    let mut item = item;
    let identity = reading_identity(&item.origin, &item.reading.reading);
    let identity_key = super::identity::reading_key(&item.reading.reading, &identity);
    let stored_under = |key: i64| -> rusqlite::Result<Option<(i64, String)>> {
        tx.hot(
            "SELECT id, verdict FROM readings WHERE identity_key = ?1 AND identity = ?2",
            |s| {
                s.query_row(params![key, identity], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            },
        )
    };
    let mut seen = stored_under(identity_key)?;
    if seen.is_none() && settings.legacy_identity_keys {
        // A reading stored before migration 0013 has the key of its identity alone.
        seen = stored_under(super::identity::hex_key(&identity))?;
    }
    if let Some((id, verdict)) = seen {
        return Ok(Outcome::Duplicate {
            id,
            identity,
            verdict: parse_verdict(&verdict),
        });
    }
    let market_known = if markets.contains(&item.market) {
        true
    } else {
        let known = tx
            .prepare_cached("SELECT 1 FROM markets WHERE code = ?1")?
            .exists([&item.market])?;
        if known {
            markets.push(item.market.clone());
        }
        known
    };
    if !market_known {
        return Ok(Outcome::Rejected {
            reason: format!("unknown market {:?}", item.market),
        });
    }
    // A registered sample gives its stall, name and category; the category decides the
    // limit, so the reading is judged again with it.
    // The sample row of a sample id is looked up once, for this and for `upsert_sample`.
    let mut by_id = None;
    if let Some(sid) = item.reading.reading.sample_id.as_deref() {
        let row = sample_by_key(tx, &super::samples::id_key(&item.market, sid))?;
        if let Some(reg) = row.as_ref().and_then(SampleRow::registration) {
            settings.judge.take_registered(&mut item.reading, &reg);
            if reg.stall.is_some() {
                item.stall = reg.stall;
            }
        }
        by_id = Some(row);
    }
    let judged = &item.reading;
    let r = &judged.reading;
    let stall: Option<&str> = item.stall.as_deref().or(r.source.as_deref());
    let received = rfc3339(item.received_at);
    let key = sample_key(&item.market, stall, r, item.received_at);
    let sample_ref = upsert_sample(tx, &key, by_id, &item, stall, &received)?;
    let frame = match item.frame {
        Some(i) => frames.id(tx, i)?,
        None => None,
    };
    let json = to_json(judged);
    let measured = r.measured_at.map(measured_str);
    let qualifier = r.qualifier.map(qualifier_str);
    let device_verdict = r.device_verdict.map(device_verdict_str);
    let day = local_day(r, item.received_at, settings.utc_offset);
    let instrument = item
        .origin
        .instrument()
        .map(str::to_string)
        .or_else(|| r.instrument.as_deref().map(str::to_string));
    tx.hot(
        "INSERT INTO readings (identity, market, stall, sample_ref, instrument, uploader,
                protocol, sample_id, sample_name, analyte, analyte_code, method, value, value_text,
                unit, qualifier, device_verdict, measured_at, received_at, local_day, category,
                verdict, reason, limit_value, limit_unit, limit_source, result_status,
                t_line, c_line, cutoff, assay_format, delta_a0, delta_at, recomputed_rate,
                raw_frame, reading_json, identity_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33,
                ?34, ?35, ?36, ?37)",
        |s| {
            s.execute(params![
                identity,
                item.market,
                stall,
                sample_ref,
                instrument,
                item.origin.uploader(),
                r.protocol.as_str(),
                r.sample_id.as_deref(),
                r.sample_name.as_deref(),
                r.analyte.as_str(),
                r.analyte_code.as_deref(),
                r.method.as_deref(),
                r.value,
                r.value_text.as_deref(),
                r.unit.as_deref(),
                qualifier,
                device_verdict,
                measured,
                received,
                day,
                r.category.as_deref(),
                verdict_str(judged.verdict),
                judged.reason.as_str(),
                judged.limit.as_ref().map(|l| l.value),
                judged.limit.as_ref().map(|l| l.unit.as_str()),
                judged.limit.as_ref().map(|l| l.source.as_str()),
                r.result_status.as_deref(),
                r.t_line,
                r.c_line,
                r.cutoff,
                r.assay_format.as_deref(),
                r.delta_a0,
                r.delta_at,
                r.recomputed_rate,
                frame,
                json,
                identity_key
            ])
        },
    )?;
    let id = tx.last_insert_rowid();
    tx.coverage().add(
        &item.market,
        &day,
        Some(sample_ref),
        judged.verdict,
        &received,
    );
    tx.coverage().stored(judged.verdict);

    let status = r.result_status.as_deref().unwrap_or("F");
    let preliminary = status.eq_ignore_ascii_case("P");
    let cx = EventCx {
        reading_id: id,
        identity: &identity,
        occurred_at: &received,
        market: &item.market,
        stall,
        reading: r,
        reading_json: &json,
        fresh: true,
    };
    let mut events = 0;
    let mut hold = None;

    // A correction supersedes the earlier reading of the same sample and analyte from the
    // same instrument; a failure it turns into a pass goes to a person (hold.review).
    let mut superseded_hold: Option<String> = None;
    if status.eq_ignore_ascii_case("C") {
        if let (Some(inst), Some(sid)) = (instrument.as_deref(), r.sample_id.as_deref()) {
            let earlier: Vec<Superseded> = tx
                .prepare_cached(
                    "SELECT id, local_day, verdict FROM readings WHERE sample_ref = ?5
                     AND instrument = ?1 AND sample_id = ?2 AND analyte = ?3 AND id <> ?4
                     AND superseded = 0",
                )?
                .query_map(
                    params![inst, sid, r.analyte.as_str(), id, sample_ref],
                    |row| {
                        Ok(Superseded {
                            id: row.get(0)?,
                            local_day: row.get(1)?,
                            verdict: parse_verdict(row.get_ref(2)?.as_str()?),
                        })
                    },
                )?
                .collect::<rusqlite::Result<_>>()?;
            for old in earlier {
                // The correction is the test now: the earlier reading leaves coverage.
                tx.coverage()
                    .remove(&item.market, &old.local_day, Some(sample_ref), old.verdict);
                tx.prepare_cached(
                    "UPDATE readings SET superseded = 1, superseded_by = ?1 WHERE id = ?2",
                )?
                .execute(params![id, old.id])?;
                if let Some(h) = open_hold_of(tx, old.id)? {
                    superseded_hold = Some(h);
                }
            }
        }
    }
    if let Some(h) = &superseded_hold {
        if judged.verdict != Verdict::Fail {
            let history = set_hold_status(
                tx,
                h,
                HoldStatus::Review,
                item.origin.name(),
                "a correction no longer fails: a person decides",
                &received,
            )?;
            let hold = HoldBody {
                id: h,
                status: HoldStatus::Review,
                history: &history,
            };
            events +=
                queue_for_routes(tx, settings, &cx, EventKind::HoldReview, Some(hold), now_ms)?;
        }
    }

    let failed = judged.verdict == Verdict::Fail && !preliminary;
    if failed && superseded_hold.is_none() {
        hold = Some(open_hold(
            tx,
            NewHold {
                identity: &identity,
                reading: id,
                market: &item.market,
                stall,
                sample_ref: Some(sample_ref),
                at: &received,
                by: item.origin.name(),
                reason: judged.reason.to_string(),
                now_ms,
            },
        )?);
    }
    if !preliminary {
        let h = hold.as_ref().map(|(id, entry)| HoldBody {
            id,
            status: HoldStatus::Held,
            history: std::slice::from_ref(entry),
        });
        events += queue_reading_events(tx, settings, &cx, judged.verdict, h, now_ms)?;
        // The batch beyond this sample: a test settles its traced holds, a failure traces.
        events += trace::settle_traced(
            tx,
            settings,
            sample_ref,
            id,
            &identity,
            judged.verdict,
            now_ms,
        )?;
        if hold.is_some() {
            events += trace::trace_failure(tx, settings, id, sample_ref, now_ms)?;
        }
    } else {
        events += queue_result_rows(tx, settings, &cx, false, now_ms)?;
    }
    Ok(Outcome::Stored {
        id,
        identity: identity.clone(),
        verdict: judged.verdict,
        hold: hold.map(|(h, _)| h),
        events,
    })
}

/// An earlier reading a correction supersedes.
struct Superseded {
    id: i64,
    local_day: String,
    verdict: Verdict,
}

/// A `samples` row as the writer reads it for each reading.
struct SampleRow {
    id: i64,
    stall: Option<String>,
    name: Option<String>,
    category: Option<String>,
    registered: bool,
}

impl SampleRow {
    /// What a registered sample gives its readings.
    fn registration(&self) -> Option<crate::judge::Registered> {
        self.registered.then(|| crate::judge::Registered {
            stall: self.stall.clone(),
            name: self.name.clone(),
            category: self.category.clone(),
        })
    }
}

fn sample_by_key(tx: &Tx<'_>, key: &str) -> rusqlite::Result<Option<SampleRow>> {
    tx.hot(
        "SELECT id, stall, name, category, registered_at IS NOT NULL FROM samples WHERE key = ?1",
        |s| {
            s.query_row([key], |row| {
                Ok(SampleRow {
                    id: row.get(0)?,
                    stall: row.get(1)?,
                    name: row.get(2)?,
                    category: row.get(3)?,
                    registered: row.get(4)?,
                })
            })
            .optional()
        },
    )
}

/// The sample `key` names, created or completed (a later reading may name what an earlier
/// one left out). Read first, then write only what changes: an UPSERT with RETURNING would
/// cost a statement journal per reading.
/// `known`: the row of `key` when the caller has looked it up already.
fn upsert_sample(
    tx: &Tx<'_>,
    key: &str,
    known: Option<Option<SampleRow>>,
    item: &NewReading,
    stall: Option<&str>,
    received: &str,
) -> rusqlite::Result<i64> {
    let r = &item.reading;
    let known = match known {
        Some(row) => row,
        None => sample_by_key(tx, key)?,
    };
    match known {
        Some(row) => {
            let id = row.id;
            let fills = (row.stall.is_none() && stall.is_some())
                || (row.name.is_none() && r.reading.sample_name.is_some())
                || (row.category.is_none() && r.reading.category.is_some());
            if fills {
                tx.prepare_cached(
                    "UPDATE samples SET stall = coalesce(stall, ?1), name = coalesce(name, ?2),
                        category = coalesce(category, ?3) WHERE id = ?4",
                )?
                .execute(params![
                    stall,
                    r.reading.sample_name.as_deref(),
                    r.reading.category.as_deref(),
                    id
                ])?;
            }
            Ok(id)
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO samples (key, market, stall, sample_id, name, category, vendor, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                key,
                item.market,
                stall,
                r.reading.sample_id.as_deref(),
                r.reading.sample_name.as_deref(),
                r.reading.category.as_deref(),
                r.reading.vendor.as_deref(),
                received
            ])?;
            Ok(tx.last_insert_rowid())
        }
    }
}
