//! What goes upstream: the kinds of outbox events and their bodies, serialized once from
//! typed structs. The bytes are signed and retried as they are, so field order is part of
//! each body's shape.

use super::codec::measured_str;
use super::hold_status::{HistoryEntry, HoldStatus};
use super::identity::event_id;
use foodgate_parsers::{DeviceVerdict, Qualifier, Reading};
use rusqlite::types::Type;
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The `type` of an outbox event, as stored in `outbox.type` and sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A reading failed and its sample is held.
    #[serde(rename = "sample.failed")]
    SampleFailed,
    /// Any reading (upstreams with `send = "all"`).
    #[serde(rename = "result.recorded")]
    ResultRecorded,
    /// An upload row for a `format = "results"` upstream.
    #[serde(rename = "result.row")]
    ResultRow,
    /// A sample registration for a `format = "results"` upstream.
    #[serde(rename = "sample.record")]
    SampleRecord,
    /// A stall set by hand on a reading without a sample id, for a `format = "results"`
    /// upstream (posted to the hub's `/api/v1/results/stalls`).
    #[serde(rename = "result.stall")]
    ResultStall,
    #[serde(rename = "hold.confirmed")]
    HoldConfirmed,
    #[serde(rename = "hold.released")]
    HoldReleased,
    #[serde(rename = "hold.review")]
    HoldReview,
    /// The actions after a confirmed retest, each its own event (see [`super::hold_actions`]).
    #[serde(rename = "hold.stop_sale")]
    HoldStopSale,
    #[serde(rename = "hold.lab_sent")]
    HoldLabSent,
    #[serde(rename = "hold.lab_result")]
    HoldLabResult,
    #[serde(rename = "hold.destroyed")]
    HoldDestroyed,
    #[serde(rename = "hold.resampled")]
    HoldResampled,
    #[serde(rename = "hold.closed")]
    HoldClosed,
    /// No passing re-sample within the deadline: sent once per hold.
    #[serde(rename = "hold.overdue")]
    HoldOverdue,
    /// A hold's state and history after a retest or an action, for a `format = "results"`
    /// upstream (posted to the hub's `/api/v1/results/holds`, see [`super::hold_mirror`]).
    #[serde(rename = "hold.state")]
    HoldState,
    /// A pass or fail reading for a platform upstream (`format = "jiangsu"`, …): the
    /// `result.recorded` shape, made into the platform's request when sent (`crate::platform`).
    #[serde(rename = "platform.record")]
    PlatformRecord,
    /// Another sample of a failed batch (its certificate, or its supplier and commodity) is
    /// held until tested (see [`super::trace`]).
    #[serde(rename = "sample.traced")]
    SampleTraced,
}

impl EventKind {
    pub const ALL: [EventKind; 18] = [
        EventKind::SampleFailed,
        EventKind::ResultRecorded,
        EventKind::ResultRow,
        EventKind::SampleRecord,
        EventKind::ResultStall,
        EventKind::HoldConfirmed,
        EventKind::HoldReleased,
        EventKind::HoldReview,
        EventKind::HoldStopSale,
        EventKind::HoldLabSent,
        EventKind::HoldLabResult,
        EventKind::HoldDestroyed,
        EventKind::HoldResampled,
        EventKind::HoldClosed,
        EventKind::HoldOverdue,
        EventKind::HoldState,
        EventKind::PlatformRecord,
        EventKind::SampleTraced,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::SampleFailed => "sample.failed",
            EventKind::ResultRecorded => "result.recorded",
            EventKind::ResultRow => "result.row",
            EventKind::SampleRecord => "sample.record",
            EventKind::ResultStall => "result.stall",
            EventKind::HoldConfirmed => "hold.confirmed",
            EventKind::HoldReleased => "hold.released",
            EventKind::HoldReview => "hold.review",
            EventKind::HoldStopSale => "hold.stop_sale",
            EventKind::HoldLabSent => "hold.lab_sent",
            EventKind::HoldLabResult => "hold.lab_result",
            EventKind::HoldDestroyed => "hold.destroyed",
            EventKind::HoldResampled => "hold.resampled",
            EventKind::HoldClosed => "hold.closed",
            EventKind::HoldOverdue => "hold.overdue",
            EventKind::HoldState => "hold.state",
            EventKind::PlatformRecord => "platform.record",
            EventKind::SampleTraced => "sample.traced",
        }
    }

    /// The event a retest moving a hold to `status` sends; none for `held` (the
    /// `sample.failed` that opened it says so) and for the states only actions reach (each
    /// action sends its own).
    pub fn of_hold(status: HoldStatus) -> Option<EventKind> {
        match status {
            HoldStatus::Confirmed => Some(EventKind::HoldConfirmed),
            HoldStatus::Released => Some(EventKind::HoldReleased),
            HoldStatus::Review => Some(EventKind::HoldReview),
            HoldStatus::Held
            | HoldStatus::Stopped
            | HoldStatus::Lab
            | HoldStatus::Destroyed
            | HoldStatus::Closed
            | HoldStatus::Traced => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_string()))
    }
}

/// The id of event `kind` of a reading; a corrected event (`revision` > 0) gets a new one, so
/// a receiver that drops event ids it has seen still takes the correction.
pub fn revised_event_id(identity: &str, kind: EventKind, revision: u32) -> String {
    if revision == 0 {
        event_id(identity, kind.as_str()).to_string()
    } else {
        event_id(identity, &format!("{kind}#{revision}")).to_string()
    }
}

#[derive(Serialize)]
pub(crate) struct SampleBody<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub category: Option<&'a str>,
}

/// A hold as its events carry it.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct HoldBody<'a> {
    pub id: &'a str,
    pub status: HoldStatus,
    pub history: &'a [HistoryEntry],
}

/// The event body's keys before `reading` (see [`event_body`]).
#[derive(Serialize)]
pub(crate) struct EventHead<'a> {
    pub event_id: &'a str,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub occurred_at: &'a str,
    pub market: &'a str,
    pub stall: Option<&'a str>,
    pub sample: SampleBody<'a>,
    /// Only on a corrected event (stall, name or category corrected after it was first sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

/// An upload row (the `POST /api/v1/results` format) for `format = "results"` upstreams.
#[derive(Serialize)]
struct UploadRowBody<'a> {
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
    qualifier: Option<Qualifier>,
    device_verdict: Option<DeviceVerdict>,
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
    /// Extensions of the upload format: judged on the hub as at the station, and counted on
    /// the day the station received it.
    protocol: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_status: Option<&'a str>,
    received_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    standard: Option<&'a str>,
}

/// Everything an event body about a stored reading is made of.
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

/// Serialize one event body, once: every retry sends these exact bytes.
pub(crate) fn event_body(
    cx: &EventCx<'_>,
    kind: EventKind,
    revision: u32,
    hold: Option<HoldBody<'_>>,
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
fn spliced_body(head: &EventHead<'_>, reading_json: &str, hold: Option<HoldBody<'_>>) -> Vec<u8> {
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
pub(crate) fn built_when_sent(kind: EventKind, revision: u32, hold: Option<HoldBody<'_>>) -> bool {
    kind == EventKind::ResultRecorded && revision == 0 && hold.is_none()
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
        kind: EventKind::ResultRecorded,
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
/// to a batch of them as one JSON array.
pub(crate) fn result_row_body(cx: &EventCx<'_>) -> (String, Vec<u8>) {
    let id = event_id(cx.identity, EventKind::ResultRow.as_str()).to_string();
    let r = cx.reading;
    let row = UploadRowBody {
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
        measured_at: r.measured_at.map(measured_str),
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
        channel: r.channel,
        standard: r.standard.as_deref(),
    };
    let bytes = serde_json::to_vec(&row).unwrap_or_default();
    (id, bytes)
}

/// The body of a `result.stall` event: the row id the hub knows the reading by, and its stall.
#[derive(Serialize)]
pub(crate) struct StallBody<'a> {
    pub id: &'a str,
    pub market: &'a str,
    pub stall: Option<&'a str>,
}

/// The body of a `hold.state` event: the row id the hub knows the failed reading by, and what
/// the station's hold is now. `history` leaves out the entry that opened the hold (the hub's
/// own hold has one).
#[derive(Serialize)]
pub(crate) struct HoldStateBody<'a> {
    pub id: &'a str,
    pub market: &'a str,
    pub status: HoldStatus,
    pub destroyed_kg: Option<f64>,
    pub destroyed_at: Option<&'a str>,
    /// The passing re-sample's row id (its identity at the station).
    pub resample: Option<&'a str>,
    pub overdue_at: Option<&'a str>,
    pub history: &'a [HistoryEntry],
}

/// The sample part of a hold change's body, keys in sorted order.
#[derive(Serialize)]
struct SortedSample<'a> {
    category: Option<&'a str>,
    id: Option<&'a str>,
    name: Option<&'a str>,
}

/// One history entry of a hold change's body, keys in sorted order.
#[derive(Serialize)]
struct SortedEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    at: &'a str,
    by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<SortedJson<'a>>,
    reason: &'a str,
    status: HoldStatus,
}

/// The hold of a hold change's body, keys in sorted order.
#[derive(Serialize)]
struct SortedHold<'a> {
    #[serde(serialize_with = "sorted_history")]
    history: &'a [HistoryEntry],
    id: &'a str,
    status: HoldStatus,
}

fn sorted_history<S: Serializer>(h: &&[HistoryEntry], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.iter().map(|e| SortedEntry {
        action: e.action.as_deref(),
        at: &e.at,
        by: &e.by,
        fields: e.fields.as_ref().map(SortedJson),
        reason: &e.reason,
        status: e.status,
    }))
}

/// A JSON value written with every object's keys in sorted order, whatever order the value
/// keeps them in.
struct SortedJson<'a>(&'a serde_json::Value);

impl Serialize for SortedJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Object(m) => {
                let mut entries: Vec<_> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                s.collect_map(entries.into_iter().map(|(k, v)| (k, SortedJson(v))))
            }
            Value::Array(a) => s.collect_seq(a.iter().map(SortedJson)),
            other => other.serialize(s),
        }
    }
}

/// The body of a hold change a retest made (`hold.confirmed`, `hold.released`,
/// `hold.review`): about the retest reading, every object's keys in sorted order (these
/// bodies were first written that way, and receivers have verified them so).
#[derive(Serialize)]
struct HoldChangeBody<'a> {
    event_id: &'a str,
    hold: SortedHold<'a>,
    market: &'a str,
    occurred_at: &'a str,
    reading: SortedJson<'a>,
    sample: SortedSample<'a>,
    stall: Option<&'a str>,
    #[serde(rename = "type")]
    kind: EventKind,
}

/// What a hold change's body is made of.
pub(crate) struct HoldChange<'a> {
    pub kind: EventKind,
    /// Identity of the reading that changed the hold (the retest), or of the hold's own
    /// reading for an action.
    pub identity: &'a str,
    /// How many earlier events of this kind the hold sent (a repeated action).
    pub revision: u32,
    pub occurred_at: &'a str,
    pub market: &'a str,
    pub stall: Option<&'a str>,
    pub sample: (Option<&'a str>, Option<&'a str>, Option<&'a str>),
    /// The retest reading's `reading_json`.
    pub reading_json: &'a str,
    pub hold: HoldBody<'a>,
}

/// The event id and body of a hold change.
pub(crate) fn hold_change_body(c: &HoldChange<'_>) -> (String, Vec<u8>) {
    let id = revised_event_id(c.identity, c.kind, c.revision);
    let reading: serde_json::Value = serde_json::from_str(c.reading_json).unwrap_or_default();
    let body = HoldChangeBody {
        event_id: &id,
        hold: SortedHold {
            history: c.hold.history,
            id: c.hold.id,
            status: c.hold.status,
        },
        market: c.market,
        occurred_at: c.occurred_at,
        reading: SortedJson(&reading),
        sample: SortedSample {
            category: c.sample.2,
            id: c.sample.0,
            name: c.sample.1,
        },
        stall: c.stall,
        kind: c.kind,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (id, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use foodgate_parsers::Protocol;
    use rusqlite::params;

    #[derive(Serialize)]
    struct WholeBody<'a> {
        event_id: &'a str,
        #[serde(rename = "type")]
        kind: EventKind,
        occurred_at: &'a str,
        market: &'a str,
        stall: Option<&'a str>,
        sample: SampleBody<'a>,
        reading: &'a Reading,
        hold: Option<HoldBody<'a>>,
    }

    fn reading() -> Reading {
        let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
        r.sample_id = Some("S\"1".into());
        r.sample_name = Some("菠菜".into());
        r.value = Some(0.25);
        r
    }

    fn history() -> Vec<HistoryEntry> {
        vec![HistoryEntry::new(
            "2025-03-04T01:30:00.000Z",
            HoldStatus::Held,
            "IN-1",
            "over the limit",
        )]
    }

    #[test]
    fn event_kinds_read_back_and_serialize_as_their_text() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert!("hold.held".parse::<EventKind>().is_err());
    }

    #[test]
    fn a_body_built_when_sent_is_the_bytes_of_the_body_stored_otherwise() {
        let r = reading();
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
            let (id, stored) = event_body(&cx, EventKind::ResultRecorded, 0, None);
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
        let r = reading();
        let json = serde_json::to_string(&r).unwrap();
        let history = history();
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
        let held = HoldBody {
            id: "h1",
            status: HoldStatus::Held,
            history: &history,
        };
        for hold in [None, Some(held)] {
            let (id, bytes) = event_body(&cx, EventKind::SampleFailed, 0, hold);
            let whole = WholeBody {
                event_id: &id,
                kind: EventKind::SampleFailed,
                occurred_at: cx.occurred_at,
                market: cx.market,
                stall: None,
                sample: SampleBody {
                    id: r.sample_id.as_deref(),
                    name: r.sample_name.as_deref(),
                    category: None,
                },
                reading: &r,
                hold,
            };
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                serde_json::to_string(&whole).unwrap()
            );
        }
    }

    #[test]
    fn a_hold_change_body_is_the_bytes_of_the_json_value_it_replaced() {
        // Any stored reading: nested objects, keys out of order, text needing escapes.
        let json = r#"{"verdict":"fail","limit":{"value":0.5,"unit":"mg/kg","source":"GB \"2763\""},"analyte":"菠菜","b":[{"d":1,"c":2.25}]}"#;
        let mut history = history();
        history.push(HistoryEntry::new(
            "2025-03-05T01:30:00.000Z",
            HoldStatus::Confirmed,
            "st1",
            "the retest failed too",
        ));
        for (stall, sample) in [
            (None, (None, None, None)),
            (
                Some("A12"),
                (Some("S1"), Some("菠菜"), Some("leafy_vegetables")),
            ),
        ] {
            let change = HoldChange {
                kind: EventKind::HoldConfirmed,
                identity: "abc",
                revision: 0,
                occurred_at: "2025-03-05T01:30:00.000Z",
                market: "ZB-0001",
                stall,
                sample,
                reading_json: json,
                hold: HoldBody {
                    id: "h1",
                    status: HoldStatus::Confirmed,
                    history: &history,
                },
            };
            let (id, bytes) = hold_change_body(&change);
            // How these bodies were built before they had a type of their own.
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            let old = serde_json::json!({
                "event_id": id,
                "type": "hold.confirmed",
                "occurred_at": change.occurred_at,
                "market": change.market,
                "stall": stall,
                "sample": {"id": sample.0, "name": sample.1, "category": sample.2},
                "reading": value,
                "hold": {"id": "h1", "status": "confirmed", "history": history},
            });
            let mut sorted = Vec::new();
            SortedJson(&old)
                .serialize(&mut serde_json::Serializer::new(&mut sorted))
                .unwrap();
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                String::from_utf8(sorted).unwrap()
            );
        }
    }
}
