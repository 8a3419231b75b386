//! Queueing outbox events for the routes (one `[[upstream]]` each) that take them: events
//! upstreams get event bodies, results upstreams (a hub) get upload rows and sample records.

use super::events::{
    built_when_sent, event_body, result_row_body, revised_event_id, EventCx, EventKind, HoldBody,
    StallBody,
};
use super::identity::event_id;
use super::outbox;
use super::{Route, StoreSettings, Tx};
use crate::config::{Format, SendMode};
use crate::judge::Verdict;

/// Queue one event for one route; `fresh`: its reading was first stored in this transaction,
/// so the event cannot be queued already.
#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_event(
    tx: &Tx<'_>,
    reading: Option<i64>,
    route: &Route,
    kind: EventKind,
    hold: Option<&str>,
    id: &str,
    body: &[u8],
    now_ms: i64,
    fresh: bool,
) -> rusqlite::Result<usize> {
    let up = &route.upstream;
    let kind = kind.as_str();
    if fresh {
        outbox::enqueue_new(tx, reading, id, up, kind, hold, body, now_ms)
    } else {
        outbox::enqueue(tx, reading, id, up, kind, hold, body, now_ms)
    }
}

/// Queue `kind` for every route that takes it. Hold events go to `events` upstreams only;
/// `results` upstreams get one row per reading instead (see [`queue_reading_events`]).
pub(crate) fn queue_for_routes(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    kind: EventKind,
    hold: Option<HoldBody<'_>>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    queue_revision(tx, settings, cx, kind, 0, hold, now_ms)
}

/// [`queue_for_routes`] for revision `revision` of the event (0: the first).
pub(crate) fn queue_revision(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    kind: EventKind,
    revision: u32,
    hold: Option<HoldBody<'_>>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let takes = |r: &Route| {
        r.format == Format::Events && (kind != EventKind::ResultRecorded || r.send == SendMode::All)
    };
    if !settings.routes.iter().any(takes) {
        return Ok(0);
    }
    let (id, body) = if built_when_sent(kind, revision, hold) {
        let id = revised_event_id(cx.identity, kind, revision);
        (id, outbox::LAZY_BODY.to_vec())
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
            hold.map(|h| h.id),
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
    verdict: Verdict,
    hold: Option<HoldBody<'_>>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let failed = verdict == Verdict::Fail;
    let mut n = 0;
    if failed {
        n += queue_for_routes(tx, settings, cx, EventKind::SampleFailed, hold, now_ms)?;
    }
    n += queue_for_routes(tx, settings, cx, EventKind::ResultRecorded, hold, now_ms)?;
    n += queue_result_rows(tx, settings, cx, failed, now_ms)?;
    n += queue_platform_record(tx, settings, cx, verdict, hold, now_ms)?;
    Ok(n)
}

/// The reading's record for every platform upstream that takes it: a failure for all of
/// them, a pass for `send = "all"` ones; never an invalid or unknown reading (a platform has
/// no value for it). One record per reading: its body is the `result.recorded` shape, the
/// platform's request is made from it when it is sent.
pub(crate) fn queue_platform_record(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    verdict: Verdict,
    hold: Option<HoldBody<'_>>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let takes = |r: &&Route| {
        matches!(r.format, Format::Platform(_))
            && match verdict {
                Verdict::Fail => true,
                Verdict::Pass => r.send == SendMode::All,
                Verdict::Invalid | Verdict::Unknown => false,
            }
    };
    if !settings.routes.iter().any(|r| takes(&r)) {
        return Ok(0);
    }
    let (id, body) = event_body(cx, EventKind::PlatformRecord, 0, hold);
    let mut n = 0;
    for route in settings.routes.iter().filter(takes) {
        n += queue_event(
            tx,
            Some(cx.reading_id),
            route,
            EventKind::PlatformRecord,
            None,
            &id,
            &body,
            now_ms,
            cx.fresh,
        )?;
    }
    tx.events_added(n);
    Ok(n)
}

/// The reading's upload row for every results upstream (a hub) that takes it: failures for
/// all of them, every reading for `send = "all"`. A preliminary reading makes no event, but
/// its row still goes to a hub that takes them all: the hub stores what the station stored.
pub(crate) fn queue_result_rows(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    cx: &EventCx<'_>,
    failed: bool,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    let rows = |r: &&Route| r.format == Format::Results && (failed || r.send == SendMode::All);
    if settings.routes.iter().any(|r| rows(&r)) {
        let (id, body) = result_row_body(cx);
        let mut m = 0;
        for route in settings.routes.iter().filter(rows) {
            m += queue_event(
                tx,
                Some(cx.reading_id),
                route,
                EventKind::ResultRow,
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

/// Queue revision `revision` of the record of sample `key` (its serialized `body`) for every
/// results upstream (its hub).
pub(crate) fn queue_sample_record(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    key: &str,
    revision: u32,
    body: &[u8],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let kind = EventKind::SampleRecord;
    let id = event_id(key, &format!("{kind}#{revision}")).to_string();
    let mut n = 0;
    for route in settings
        .routes
        .iter()
        .filter(|r| r.format == Format::Results)
    {
        n += queue_event(tx, None, route, kind, None, &id, body, now_ms, false)?;
    }
    tx.events_added(n);
    Ok(n)
}

/// Queue a hold change (event `id` of `kind`, about reading `reading`) for every events
/// upstream.
#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_hold_change(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    reading: i64,
    kind: EventKind,
    hold: &str,
    id: &str,
    body: &[u8],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut n = 0;
    for route in settings
        .routes
        .iter()
        .filter(|r| r.format == Format::Events)
    {
        n += queue_event(
            tx,
            Some(reading),
            route,
            kind,
            Some(hold),
            id,
            body,
            now_ms,
            false,
        )?;
    }
    tx.events_added(n);
    Ok(n)
}

/// What a forwarded stall needs of the reading.
struct StallSubject {
    identity: String,
    market: String,
    stall: Option<String>,
    revision: u32,
    failed: bool,
}

/// Queue the stall of reading `reading` (as it is now) for every results upstream that took
/// the reading's row: all of them for a failure, `send = "all"` ones for any reading.
pub(crate) fn queue_stall(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    reading: i64,
) -> rusqlite::Result<usize> {
    if !settings.routes.iter().any(|r| r.format == Format::Results) {
        return Ok(0);
    }
    let s = tx.query_row(
        "SELECT identity, market, stall, revision, verdict FROM readings WHERE id = ?1",
        [reading],
        |r| {
            Ok(StallSubject {
                identity: r.get("identity")?,
                market: r.get("market")?,
                stall: r.get("stall")?,
                revision: r.get("revision")?,
                failed: r.get_ref("verdict")?.as_str()? == "fail",
            })
        },
    )?;
    let body = serde_json::to_vec(&StallBody {
        id: &s.identity,
        market: &s.market,
        stall: s.stall.as_deref(),
    })
    .unwrap_or_default();
    let id = revised_event_id(&s.identity, EventKind::ResultStall, s.revision);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut n = 0;
    let took_row =
        |r: &&Route| r.format == Format::Results && (s.failed || r.send == SendMode::All);
    for route in settings.routes.iter().filter(took_row) {
        n += queue_event(
            tx,
            Some(reading),
            route,
            EventKind::ResultStall,
            None,
            &id,
            &body,
            now_ms,
            false,
        )?;
    }
    tx.events_added(n);
    Ok(n)
}
