//! Storing a batch: each reading with its raw bytes, its sample, and, for a failure, its hold
//! and outbox events, all in the caller's transaction.

use super::identity::{event_id, hold_id, reading_identity, Origin};
use super::{Route, StoreSettings, Tx};
use crate::config::{Format, Send as SendMode};
use chrono::{DateTime, SecondsFormat, Utc};
use foodgate_parsers::{Reading, Verdict};
use rusqlite::{params, types::Type, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

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
    pub reading: Reading,
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

pub fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Invalid => "invalid",
        Verdict::Unknown => "unknown",
    }
}

pub fn parse_verdict(s: &str) -> Verdict {
    match s {
        "pass" => Verdict::Pass,
        "fail" => Verdict::Fail,
        "invalid" => Verdict::Invalid,
        _ => Verdict::Unknown,
    }
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The local day a reading counts in (SPEC "Coverage"): of `measured_at`, or of
/// `received_at` when the instrument clock is missing or more than 24 h off.
pub fn local_day(r: &Reading, received_at: DateTime<Utc>, offset: chrono::FixedOffset) -> String {
    // The whole difference, not whole seconds of it: 24 h and 0.5 s is "more than 24 h".
    let at = match r.measured_at {
        Some(m) if (m.with_timezone(&Utc) - received_at).abs() <= chrono::TimeDelta::hours(24) => {
            m.with_timezone(&Utc)
        }
        _ => received_at,
    };
    at.with_timezone(&offset).format("%Y-%m-%d").to_string()
}

#[derive(Serialize)]
struct SampleBody<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    category: Option<&'a str>,
}

/// One entry of a hold's history.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct HistoryEntry {
    pub at: String,
    pub status: String,
    pub by: String,
    pub reason: String,
}

#[derive(Serialize)]
struct HoldBody<'a> {
    id: &'a str,
    status: &'a str,
    history: &'a [HistoryEntry],
}

/// The event body's keys before `reading` (see [`event_body`]).
#[derive(Serialize)]
struct EventHead<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    occurred_at: &'a str,
    market: &'a str,
    stall: Option<&'a str>,
    sample: SampleBody<'a>,
    /// Only on a corrected event (stall, name or category corrected after it was first sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u32>,
}

/// An upload row (the `POST /api/v1/results` format) for `format = "results"` upstreams.
#[derive(Serialize)]
struct ResultRow<'a> {
    id: &'a str,
    market: &'a str,
    stall: Option<&'a str>,
    sample_id: Option<&'a str>,
    sample_name: Option<&'a str>,
    category: Option<&'a str>,
    analyte: &'a str,
    method: Option<&'a str>,
    value: Option<f64>,
    unit: Option<&'a str>,
    qualifier: Option<foodgate_parsers::Qualifier>,
    device_verdict: Option<foodgate_parsers::DeviceVerdict>,
    measured_at: Option<String>,
    instrument: Option<&'a str>,
    tester: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    c_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cutoff: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assay_format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_a0: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recomputed_rate: Option<f64>,
    /// Extensions of the upload format (see `api::rows`): judged on the hub as at the
    /// station, and counted on the day the station received it.
    protocol: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_status: Option<&'a str>,
    received_at: &'a str,
}

/// Everything an event body is made of.
pub(crate) struct EventCx<'a> {
    /// The stored reading (its `readings.id`).
    pub reading_id: i64,
    pub identity: &'a str,
    pub occurred_at: &'a str,
    pub market: &'a str,
    pub stall: Option<&'a str>,
    pub reading: &'a Reading,
    /// `reading` as JSON, serialized once for `reading_json` and reused in every body.
    pub reading_json: &'a str,
    /// The reading was first stored in this transaction, so none of its events is queued
    /// yet and they are queued without looking for them first.
    pub fresh: bool,
}

/// The id of event `kind` of a reading; a corrected event (`revision` > 0) gets a new one, so
/// a receiver that drops event ids it has seen still takes the correction.
pub fn revised_event_id(identity: &str, kind: &str, revision: u32) -> String {
    if revision == 0 {
        event_id(identity, kind).to_string()
    } else {
        event_id(identity, &format!("{kind}#{revision}")).to_string()
    }
}

/// Serialize one event body, once: every retry sends these exact bytes.
fn event_body(
    cx: &EventCx<'_>,
    kind: &str,
    revision: u32,
    hold: Option<(&str, &str, &[HistoryEntry])>,
) -> (String, Vec<u8>) {
    let id = revised_event_id(cx.identity, kind, revision);
    let head = EventHead {
        event_id: &id,
        kind,
        occurred_at: cx.occurred_at,
        market: cx.market,
        stall: cx.stall,
        sample: SampleBody {
            id: cx.reading.sample_id.as_deref(),
            name: cx.reading.sample_name.as_deref(),
            category: cx.reading.category.as_deref(),
        },
        revision: (revision > 0).then_some(revision),
    };
    let bytes = spliced_body(&head, cx.reading_json, hold);
    (id, bytes)
}

/// `{head…,"reading":<reading_json>,"hold":…}`: the bytes serde would write for the whole
/// struct (a test holds them equal), without serializing the reading a second time.
fn spliced_body(
    head: &EventHead<'_>,
    reading_json: &str,
    hold: Option<(&str, &str, &[HistoryEntry])>,
) -> Vec<u8> {
    let hold = hold.map(|(id, status, history)| HoldBody {
        id,
        status,
        history,
    });
    let mut bytes = Vec::with_capacity(reading_json.len() + 512);
    if serde_json::to_writer(&mut bytes, head).is_ok() && bytes.pop() == Some(b'}') {
        bytes.extend_from_slice(b",\"reading\":");
        bytes.extend_from_slice(reading_json.as_bytes());
        bytes.extend_from_slice(b",\"hold\":");
        if serde_json::to_writer(&mut bytes, &hold).is_ok() {
            bytes.push(b'}');
            return bytes;
        }
    }
    Vec::new()
}

/// Whether event `kind` of revision `revision` with `hold` is queued with an empty body and
/// built from its reading when sent ([`super::outbox::LAZY_BODY`]): the `result.recorded`
/// of a reading that opened no hold, whose body depends on nothing but the reading's row.
/// With `send = "all"` that is most events, and their bodies (a copy of `reading_json` and
/// more) were the largest part of what an ingest wrote.
fn built_when_sent(kind: &str, revision: u32, hold: Option<(&str, &str, &[HistoryEntry])>) -> bool {
    kind == "result.recorded" && revision == 0 && hold.is_none()
}

/// The body of `result.recorded` event `event_id` from its reading's `received_at, market,
/// stall, sample_id, sample_name, category, reading_json`, in columns `at..at + 7` of `row`:
/// the bytes [`event_body`] makes for the same reading (see [`built_when_sent`]).
pub(crate) fn lazy_body(
    event_id: &str,
    row: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<Vec<u8>> {
    // Borrowed from the row: no copy of the reading before it is spliced in.
    let text = |i: usize| -> rusqlite::Result<Option<&str>> {
        row.get_ref(at + i)?
            .as_str_or_null()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(at + i, Type::Text, e.into()))
    };
    let head = EventHead {
        event_id,
        kind: "result.recorded",
        occurred_at: text(0)?.unwrap_or_default(),
        market: text(1)?.unwrap_or_default(),
        stall: text(2)?,
        sample: SampleBody {
            id: text(3)?,
            name: text(4)?,
            category: text(5)?,
        },
        revision: None,
    };
    Ok(spliced_body(&head, text(6)?.unwrap_or_default(), None))
}

/// The row a `format = "results"` upstream receives: one JSON object; the uplink sends up
/// to a batch of them as one JSON array (see [`crate::uplink`]).
pub(crate) fn result_row_body(cx: &EventCx<'_>) -> (String, Vec<u8>) {
    let id = event_id(cx.identity, "result.row").to_string();
    let r = cx.reading;
    let row = ResultRow {
        id: cx.identity,
        market: cx.market,
        stall: cx.stall,
        sample_id: r.sample_id.as_deref(),
        sample_name: r.sample_name.as_deref(),
        category: r.category.as_deref(),
        analyte: &r.analyte,
        method: r.method.as_deref(),
        value: r.value,
        unit: r.unit.as_deref(),
        qualifier: r.qualifier,
        device_verdict: r.device_verdict,
        measured_at: r
            .measured_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
        instrument: r.instrument.as_deref(),
        tester: r.tester.as_deref(),
        t_line: r.t_line,
        c_line: r.c_line,
        cutoff: r.cutoff,
        assay_format: r.assay_format.as_deref(),
        delta_a0: r.delta_a0,
        delta_at: r.delta_at,
        recomputed_rate: r.recomputed_rate,
        protocol: r.protocol.as_str(),
        result_status: r.result_status.as_deref(),
        received_at: cx.occurred_at,
    };
    let bytes = serde_json::to_vec(&row).unwrap_or_default();
    (id, bytes)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_event(
    tx: &Tx<'_>,
    reading: Option<i64>,
    route: &Route,
    kind: &str,
    hold: Option<&str>,
    id: &str,
    body: &[u8],
    now_ms: i64,
    fresh: bool,
) -> rusqlite::Result<usize> {
    let up = &route.upstream;
    if fresh {
        super::outbox::enqueue_new(tx, reading, id, up, kind, hold, body, now_ms)
    } else {
        super::outbox::enqueue(tx, reading, id, up, kind, hold, body, now_ms)
    }
}

/// Queue `kind` for every route that takes it. Hold events go to `events` upstreams only;
/// `results` upstreams get one row per reading instead (see [`queue_reading_events`]).
fn queue_for_routes(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    kind: &str,
    hold: Option<(&str, &str, &[HistoryEntry])>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    queue_revision(tx, settings, cx, kind, 0, hold, now_ms)
}

/// [`queue_for_routes`] for revision `revision` of the event (0: the first).
pub(crate) fn queue_revision(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    kind: &str,
    revision: u32,
    hold: Option<(&str, &str, &[HistoryEntry])>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let takes = |r: &Route| {
        r.format == Format::Events && (kind != "result.recorded" || r.send == SendMode::All)
    };
    if !settings.routes.iter().any(takes) {
        return Ok(0);
    }
    let (id, body) = if built_when_sent(kind, revision, hold) {
        let id = revised_event_id(cx.identity, kind, revision);
        (id, super::outbox::LAZY_BODY.to_vec())
    } else {
        event_body(cx, kind, revision, hold)
    };
    let mut n = 0;
    for route in settings.routes.iter().filter(|r| takes(r)) {
        n += queue_event(
            tx,
            Some(cx.reading_id),
            route,
            kind,
            hold.map(|h| h.0),
            &id,
            &body,
            now_ms,
            cx.fresh,
        )?;
    }
    tx.events_added(n);
    Ok(n)
}

/// `sample.failed` / `result.recorded` to events upstreams, rows to results upstreams.
pub(crate) fn queue_reading_events(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    failed: bool,
    hold: Option<(&str, &str, &[HistoryEntry])>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    if failed {
        n += queue_for_routes(tx, settings, cx, "sample.failed", hold, now_ms)?;
    }
    n += queue_for_routes(tx, settings, cx, "result.recorded", hold, now_ms)?;
    let rows = |r: &&Route| r.format == Format::Results && (failed || r.send == SendMode::All);
    if settings.routes.iter().any(|r| rows(&r)) {
        let (id, body) = result_row_body(cx);
        let mut m = 0;
        for route in settings.routes.iter().filter(rows) {
            m += queue_event(
                tx,
                Some(cx.reading_id),
                route,
                "result.row",
                None,
                &id,
                &body,
                now_ms,
                cx.fresh,
            )?;
        }
        tx.events_added(m);
        n += m;
    }
    Ok(n)
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
    let identity = reading_identity(&item.origin, &item.reading);
    let identity_key = super::identity::reading_key(&item.reading, &identity);
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
    if let Some(sid) = item.reading.sample_id.as_deref() {
        let row = sample_by_key(tx, &super::samples::id_key(&item.market, sid))?;
        if let Some(reg) = row.as_ref().and_then(SampleRow::registration) {
            super::samples::take_registered(&settings.judge, &mut item.reading, &reg);
            if reg.stall.is_some() {
                item.stall = reg.stall;
            }
        }
        by_id = Some(row);
    }
    let r = &item.reading;
    let stall: Option<&str> = item.stall.as_deref().or(r.source.as_deref());
    let received = rfc3339(item.received_at);
    let key = sample_key(&item.market, stall, r, item.received_at);
    let sample_ref = upsert_sample(tx, &key, by_id, &item, stall, &received)?;
    let frame = match item.frame {
        Some(i) => frames.id(tx, i)?,
        None => None,
    };
    let json = serde_json::to_string(r).unwrap_or_default();
    let measured = r
        .measured_at
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
    let qualifier = r.qualifier.map(|q| match q {
        foodgate_parsers::Qualifier::Below => "<",
        foodgate_parsers::Qualifier::Above => ">",
        foodgate_parsers::Qualifier::NotDetected => "ND",
    });
    let device_verdict = r.device_verdict.map(|d| match d {
        foodgate_parsers::DeviceVerdict::Positive => "positive",
        foodgate_parsers::DeviceVerdict::Negative => "negative",
        foodgate_parsers::DeviceVerdict::Invalid => "invalid",
    });
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
                verdict_str(r.verdict),
                r.reason.as_str(),
                r.limit.as_ref().map(|l| l.value),
                r.limit.as_ref().map(|l| l.unit.as_str()),
                r.limit.as_ref().map(|l| l.source.as_str()),
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
    tx.coverage()
        .add(&item.market, &day, Some(sample_ref), r.verdict, &received);
    tx.coverage().stored(r.verdict);

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
            let earlier: Vec<(i64, String, String)> = tx
                .prepare_cached(
                    "SELECT id, local_day, verdict FROM readings WHERE sample_ref = ?5
                     AND instrument = ?1 AND sample_id = ?2 AND analyte = ?3 AND id <> ?4
                     AND superseded = 0",
                )?
                .query_map(
                    params![inst, sid, r.analyte.as_str(), id, sample_ref],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            for (old, old_day, old_verdict) in earlier {
                // The correction is the test now: the earlier reading leaves coverage.
                tx.coverage().remove(
                    &item.market,
                    &old_day,
                    Some(sample_ref),
                    parse_verdict(&old_verdict),
                );
                tx.prepare_cached(
                    "UPDATE readings SET superseded = 1, superseded_by = ?1 WHERE id = ?2",
                )?
                .execute(params![id, old])?;
                let open: Option<String> = tx
                    .prepare_cached(
                        "SELECT id FROM holds WHERE reading = ?1 AND status IN ('held', 'confirmed')",
                    )?
                    .query_row([old], |row| row.get(0))
                    .optional()?;
                if let Some(h) = open {
                    superseded_hold = Some(h);
                }
            }
        }
    }
    if let Some(h) = &superseded_hold {
        if r.verdict != Verdict::Fail {
            let history = set_hold_status(
                tx,
                h,
                "review",
                item.origin.name(),
                "a correction no longer fails: a person decides",
                &received,
            )?;
            events += queue_for_routes(
                tx,
                settings,
                &cx,
                "hold.review",
                Some((h, "review", &history)),
                now_ms,
            )?;
        }
    }

    let failed = r.verdict == Verdict::Fail && !preliminary;
    if failed && superseded_hold.is_none() {
        let hid = hold_id(&identity, id, now_ms).to_string();
        tx.prepare_cached(
            "INSERT INTO holds (id, reading, market, stall, sample_ref, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'held', ?6, ?6)",
        )?
        .execute(params![hid, id, item.market, stall, sample_ref, received])?;
        let entry = HistoryEntry {
            at: received.clone(),
            status: "held".into(),
            by: item.origin.name().to_string(),
            reason: r.reason.to_string(),
        };
        add_history(tx, &hid, &entry)?;
        hold = Some((hid, vec![entry]));
    }
    if !preliminary {
        let h = hold
            .as_ref()
            .map(|(id, hist)| (id.as_str(), "held", hist.as_slice()));
        events += queue_reading_events(tx, settings, &cx, failed, h, now_ms)?;
    }
    Ok(Outcome::Stored {
        id,
        identity: identity.clone(),
        verdict: r.verdict,
        hold: hold.map(|(h, _)| h),
        events,
    })
}

/// The sample `key` names, created or completed (a later reading may name what an earlier
/// one left out). Read first, then write only what changes: an UPSERT with RETURNING would
/// cost a statement journal per reading.
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
    fn registration(&self) -> Option<super::samples::Registered> {
        self.registered.then(|| super::samples::Registered {
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
                || (row.name.is_none() && r.sample_name.is_some())
                || (row.category.is_none() && r.category.is_some());
            if fills {
                tx.prepare_cached(
                    "UPDATE samples SET stall = coalesce(stall, ?1), name = coalesce(name, ?2),
                        category = coalesce(category, ?3) WHERE id = ?4",
                )?
                .execute(params![
                    stall,
                    r.sample_name.as_deref(),
                    r.category.as_deref(),
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
                r.sample_id.as_deref(),
                r.sample_name.as_deref(),
                r.category.as_deref(),
                r.vendor.as_deref(),
                received
            ])?;
            Ok(tx.last_insert_rowid())
        }
    }
}

pub(crate) fn add_history(tx: &Tx<'_>, hold: &str, e: &HistoryEntry) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO hold_history (hold, at, status, by, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![hold, e.at, e.status, e.by, e.reason])?;
    Ok(())
}

/// Move a hold to `status`, record it in its history, return the whole history.
pub fn set_hold_status(
    tx: &Tx<'_>,
    hold: &str,
    status: &str,
    by: &str,
    reason: &str,
    at: &str,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    tx.prepare_cached("UPDATE holds SET status = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![status, at, hold])?;
    add_history(
        tx,
        hold,
        &HistoryEntry {
            at: at.to_string(),
            status: status.to_string(),
            by: by.to_string(),
            reason: reason.to_string(),
        },
    )?;
    hold_history(tx.conn(), hold)
}

pub fn hold_history(
    conn: &rusqlite::Connection,
    hold: &str,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    conn.prepare_cached(
        "SELECT at, status, by, reason FROM hold_history WHERE hold = ?1 ORDER BY id",
    )?
    .query_map([hold], |row| {
        Ok(HistoryEntry {
            at: row.get(0)?,
            status: row.get(1)?,
            by: row.get(2)?,
            reason: row.get(3)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use foodgate_parsers::Protocol;

    #[derive(Serialize)]
    struct WholeBody<'a> {
        event_id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        occurred_at: &'a str,
        market: &'a str,
        stall: Option<&'a str>,
        sample: SampleBody<'a>,
        reading: &'a Reading,
        hold: Option<HoldBody<'a>>,
    }

    #[test]
    fn the_local_day_takes_received_at_when_measured_at_is_more_than_24_h_away() {
        let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let received = DateTime::parse_from_rfc3339("2025-03-05T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap());
        // Exactly 24 h before: still the instrument's clock (local 2025-03-04).
        r.measured_at = at("2025-03-04T01:00:00Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-04");
        // Half a second more is "more than 24 h away": the day it was received (local 03-05).
        r.measured_at = at("2025-03-04T00:59:59.500Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
        r.measured_at = at("2025-03-06T01:00:00.001Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
        r.measured_at = None;
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
        // The local day, not the UTC one: 16:30 UTC is 00:30 the next day at +08:00.
        r.measured_at = at("2025-03-04T16:30:00Z");
        assert_eq!(local_day(&r, received, offset), "2025-03-05");
    }

    #[test]
    fn a_body_built_when_sent_is_the_bytes_of_the_body_stored_otherwise() {
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        r.sample_id = Some("S\"1".into());
        r.sample_name = Some("菠菜".into());
        r.value = Some(0.25);
        let json = serde_json::to_string(&r).unwrap();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for stall in [None, Some("A-12")] {
            let cx = EventCx {
                reading_id: 1,
                identity: "abc",
                occurred_at: "2025-03-04T01:30:00.000Z",
                market: "ZB-0003",
                stall,
                reading: &r,
                reading_json: &json,
                fresh: true,
            };
            let (id, stored) = event_body(&cx, "result.recorded", 0, None);
            let built = conn
                .query_row(
                    "SELECT 'x', ?1, ?2, ?3, ?4, ?5, ?6, ?7",
                    params![
                        cx.occurred_at,
                        cx.market,
                        stall,
                        r.sample_id.as_deref(),
                        r.sample_name.as_deref(),
                        r.category.as_deref(),
                        json
                    ],
                    |row| lazy_body(&id, row, 1),
                )
                .unwrap();
            assert_eq!(
                String::from_utf8(built).unwrap(),
                String::from_utf8(stored).unwrap()
            );
        }
    }

    #[test]
    fn a_spliced_event_body_is_the_bytes_of_the_whole_struct() {
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        r.sample_id = Some("S\"1".into());
        r.sample_name = Some("菠菜".into());
        r.value = Some(0.25);
        let json = serde_json::to_string(&r).unwrap();
        let history = vec![HistoryEntry {
            at: "2025-03-04T01:30:00.000Z".into(),
            status: "held".into(),
            by: "IN-1".into(),
            reason: "over the limit".into(),
        }];
        let cx = EventCx {
            reading_id: 1,
            identity: "abc",
            occurred_at: "2025-03-04T01:30:00.000Z",
            market: "ZB-0003",
            stall: None,
            reading: &r,
            reading_json: &json,
            fresh: false,
        };
        for hold in [None, Some(("h1", "held", history.as_slice()))] {
            let (id, bytes) = event_body(&cx, "sample.failed", 0, hold);
            let whole = WholeBody {
                event_id: &id,
                kind: "sample.failed",
                occurred_at: cx.occurred_at,
                market: cx.market,
                stall: None,
                sample: SampleBody {
                    id: r.sample_id.as_deref(),
                    name: r.sample_name.as_deref(),
                    category: None,
                },
                reading: &r,
                hold: hold.map(|(id, status, history)| HoldBody {
                    id,
                    status,
                    history,
                }),
            };
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                serde_json::to_string(&whole).unwrap()
            );
        }
    }
}
