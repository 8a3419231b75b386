//! The positive workflow after a retest confirmed a failure, as a market's testing room works
//! it: stop the sale, optionally have a laboratory confirm, destroy the goods, re-sample the
//! stall, close the case. Each action is checked against where the hold is, kept in its
//! history with its fields, and sent upstream as its own event.
//!
//! | action | allowed when the hold is | hold becomes | event |
//! | --- | --- | --- | --- |
//! | `stop_sale` (operator) | confirmed | stopped | `hold.stop_sale` |
//! | `lab_sent` (lab, lab_sample_no) | stopped | lab | `hold.lab_sent` |
//! | `lab_result` positive (reference) | lab | stopped | `hold.lab_result` |
//! | `lab_result` negative (reference) | lab | released | `hold.lab_result` |
//! | `destroy` (kg, method, witness) | stopped | destroyed | `hold.destroyed` |
//! | `resample` (reading) | confirmed, stopped, lab, destroyed; no passing re-sample yet | unchanged | `hold.resampled` |
//! | `close` | destroyed with a passing re-sample, or released; review (admin, with a note) | closed | `hold.closed` |
//!
//! Every action takes an optional `note` and an optional `at` (RFC 3339, not in the future;
//! default now). A refused action changes nothing.
//!
//! The deadline: a hold on the confirmed path (confirmed, stopped, lab, destroyed) whose failed
//! test is more than `resample_days` old and that has no passing re-sample is overdue; the
//! first time it is found so, a `hold.overdue` event goes upstream
//! ([`super::hold_deadlines::queue_overdue`]).

use super::codec::{parse_verdict, rfc3339, verdict_str};
use super::events::{hold_change_body, EventKind, HoldBody, HoldChange};
use super::holds::{add_history, hold_history, HistoryEntry, HoldStatus};
use super::{StoreSettings, Tx};
use crate::judge::Verdict;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

/// The action names, as the API takes them.
pub const ACTIONS: [&str; 6] = [
    "stop_sale",
    "lab_sent",
    "lab_result",
    "destroy",
    "resample",
    "close",
];

/// Longest text a field may hold (names, methods, references, notes).
const MAX_TEXT: usize = 200;
/// More than any stall holds: a larger figure is a typing error (grams, or an extra digit).
const MAX_KG: f64 = 100_000.0;

/// A validated action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    StopSale {
        operator: String,
    },
    LabSent {
        lab: String,
        lab_sample_no: String,
    },
    LabResult {
        positive: bool,
        reference: String,
    },
    Destroy {
        kg: f64,
        method: String,
        witness: String,
    },
    /// `reading` is the re-sample's `id` as `GET /api/v1/results` gives it.
    Resample {
        reading: String,
    },
    Close,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::StopSale { .. } => "stop_sale",
            Action::LabSent { .. } => "lab_sent",
            Action::LabResult { .. } => "lab_result",
            Action::Destroy { .. } => "destroy",
            Action::Resample { .. } => "resample",
            Action::Close => "close",
        }
    }

    fn event(&self) -> EventKind {
        match self {
            Action::StopSale { .. } => EventKind::HoldStopSale,
            Action::LabSent { .. } => EventKind::HoldLabSent,
            Action::LabResult { .. } => EventKind::HoldLabResult,
            Action::Destroy { .. } => EventKind::HoldDestroyed,
            Action::Resample { .. } => EventKind::HoldResampled,
            Action::Close => EventKind::HoldClosed,
        }
    }

    /// The fields this action takes besides `action`, `note` and `at`.
    fn keys(name: &str) -> &'static [&'static str] {
        match name {
            "stop_sale" => &["operator"],
            "lab_sent" => &["lab", "lab_sample_no"],
            "lab_result" => &["result", "reference"],
            "destroy" => &["kg", "method", "witness"],
            "resample" => &["reading"],
            _ => &[],
        }
    }
}

/// An action as asked: what, when, and the note.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    pub action: Action,
    pub note: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// What is wrong with an action's fields (answered 400, naming the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidAction {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidAction {
    InvalidAction {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A text field: trimmed, not empty, at most [`MAX_TEXT`] bytes. Numbers are taken as their
/// text (a form sends everything as text, a script may send a lab number as a number).
fn text(
    obj: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<String>, InvalidAction> {
    let v = match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(invalid(key, "expected text")),
    };
    match v {
        Some(s) if s.len() > MAX_TEXT => Err(invalid(
            key,
            format!("at most {MAX_TEXT} bytes, got {}", s.len()),
        )),
        Some(s) => Ok(Some(s)),
        None if required => Err(invalid(key, "required")),
        None => Ok(None),
    }
}

/// A number field, as a JSON number or as text (a form's field).
fn number(obj: &Map<String, Value>, key: &str) -> Result<f64, InvalidAction> {
    let v = match obj.get(key) {
        None | Some(Value::Null) => return Err(invalid(key, "required")),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().parse::<f64>().ok(),
        Some(Value::String(_)) => return Err(invalid(key, "required")),
        Some(_) => None,
    };
    v.filter(|x| x.is_finite())
        .ok_or_else(|| invalid(key, "expected a number"))
}

/// Parse and check an action from its JSON object (the API's body, or a page form's fields
/// as text). Unknown keys are refused by name, so a misspelt field never goes unnoticed.
pub fn parse_action(obj: &Map<String, Value>) -> Result<ActionRequest, InvalidAction> {
    let name = match obj.get("action") {
        Some(Value::String(s)) => s.trim().to_string(),
        None | Some(Value::Null) => {
            return Err(invalid(
                "action",
                format!("required: one of {}", ACTIONS.join(", ")),
            ))
        }
        Some(_) => return Err(invalid("action", "expected text")),
    };
    if !ACTIONS.contains(&name.as_str()) {
        return Err(invalid(
            "action",
            format!(
                "unknown action {name:?}: expected one of {}",
                ACTIONS.join(", ")
            ),
        ));
    }
    let keys = Action::keys(&name);
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "action" | "note" | "at") && !keys.contains(&k.as_str()))
    {
        let takes = if keys.is_empty() {
            "note, at".to_string()
        } else {
            format!("{}, note, at", keys.join(", "))
        };
        return Err(invalid(
            k,
            format!("unknown field for {name}: it takes {takes}"),
        ));
    }
    let action = match name.as_str() {
        "stop_sale" => Action::StopSale {
            operator: text(obj, "operator", true)?.unwrap_or_default(),
        },
        "lab_sent" => Action::LabSent {
            lab: text(obj, "lab", true)?.unwrap_or_default(),
            lab_sample_no: text(obj, "lab_sample_no", true)?.unwrap_or_default(),
        },
        "lab_result" => {
            let result = text(obj, "result", true)?.unwrap_or_default();
            let positive = match result.as_str() {
                "positive" | "阳性" | "不合格" => true,
                "negative" | "阴性" | "合格" => false,
                other => {
                    return Err(invalid(
                        "result",
                        format!("expected positive or negative, got {other:?}"),
                    ))
                }
            };
            Action::LabResult {
                positive,
                reference: text(obj, "reference", true)?.unwrap_or_default(),
            }
        }
        "destroy" => {
            let kg = number(obj, "kg")?;
            if kg <= 0.0 {
                return Err(invalid("kg", format!("must be more than 0 kg, got {kg}")));
            }
            if kg > MAX_KG {
                return Err(invalid(
                    "kg",
                    format!("at most {MAX_KG} kg, got {kg}: is it grams?"),
                ));
            }
            Action::Destroy {
                kg,
                method: text(obj, "method", true)?.unwrap_or_default(),
                witness: text(obj, "witness", true)?.unwrap_or_default(),
            }
        }
        "resample" => {
            let reading = text(obj, "reading", false)?.ok_or_else(|| {
                invalid(
                    "reading",
                    "required: the `id` of the re-sample's reading in GET /api/v1/results",
                )
            })?;
            Action::Resample { reading }
        }
        _ => Action::Close,
    };
    let at = match text(obj, "at", false)? {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|_| invalid("at", format!("expected an RFC 3339 time, got {t:?}")))?
                .with_timezone(&Utc),
        ),
    };
    Ok(ActionRequest {
        action,
        note: text(obj, "note", false)?,
        at,
    })
}

/// Why an action was refused: the hold is not where the action can happen (409), or what it
/// names does not fit (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Unfit { field: String, message: String },
}

/// What an applied action did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub status: HoldStatus,
    /// The entry it added to the hold's history.
    pub entry: HistoryEntry,
    /// Events queued (one per events upstream).
    pub events: usize,
}

/// The hold as an action needs it.
pub(super) struct Subject {
    pub(super) status: HoldStatus,
    reading: i64,
    identity: String,
    market: String,
    stall: Option<String>,
    sample_id: Option<String>,
    sample_name: Option<String>,
    category: Option<String>,
    analyte: String,
    /// When the failed test was made (measured, else received).
    pub(super) tested_at: String,
    reading_json: String,
    created_at: String,
    resample_reading: Option<i64>,
    /// The failed reading's local day (`readings.local_day`).
    local_day: String,
}

pub(super) fn subject(conn: &Connection, hold: &str) -> rusqlite::Result<Option<Subject>> {
    conn.prepare_cached(
        "SELECT h.status, h.reading, r.identity, h.market, h.stall,
                coalesce(s.sample_id, r.sample_id), coalesce(s.name, r.sample_name),
                coalesce(s.category, r.category), r.analyte,
                coalesce(r.measured_at, r.received_at), r.reading_json, h.created_at,
                h.resample_reading, r.local_day
         FROM holds h JOIN readings r ON r.id = h.reading
         LEFT JOIN samples s ON s.id = h.sample_ref WHERE h.id = ?1",
    )?
    .query_row([hold], |r| {
        Ok(Subject {
            status: r.get(0)?,
            reading: r.get(1)?,
            identity: r.get(2)?,
            market: r.get(3)?,
            stall: r.get(4)?,
            sample_id: r.get(5)?,
            sample_name: r.get(6)?,
            category: r.get(7)?,
            analyte: r.get(8)?,
            tested_at: r.get(9)?,
            reading_json: r.get(10)?,
            created_at: r.get(11)?,
            resample_reading: r.get(12)?,
            local_day: r.get(13)?,
        })
    })
    .optional()
}

/// A re-sample reading as the checks need it.
struct Resample {
    id: i64,
    market: String,
    stall: Option<String>,
    sample_name: Option<String>,
    analyte: String,
    tested_at: String,
    verdict: Verdict,
    superseded: bool,
}

/// Days a re-sample is looked for after the failure's day.
const RESAMPLE_SEARCH_DAYS: u64 = 366;

/// The reading of `identity` (its `id` in the results API) among the readings of `market`
/// from the failure's local day `from` to `today`: a re-sample can only be one of those.
/// Identities are not indexed as text; one `(local_day, market)` index lookup per day finds
/// them without reading other markets' readings.
fn resample_reading(
    conn: &Connection,
    market: &str,
    from: &str,
    today: NaiveDate,
    identity: &str,
) -> rusqlite::Result<Option<Resample>> {
    let Ok(first) = NaiveDate::parse_from_str(from, "%Y-%m-%d") else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.market, r.stall, coalesce(s.name, r.sample_name), r.analyte,
                coalesce(r.measured_at, r.received_at), r.verdict, r.superseded
         FROM readings r LEFT JOIN samples s ON s.id = r.sample_ref
         WHERE r.local_day = ?1 AND r.market = ?2 AND r.identity = ?3",
    )?;
    for day in first
        .iter_days()
        .take_while(|d| *d <= today)
        .take(RESAMPLE_SEARCH_DAYS as usize)
    {
        let found = stmt
            .query_row(
                params![day.format("%Y-%m-%d").to_string(), market, identity],
                |r| {
                    Ok(Resample {
                        id: r.get(0)?,
                        market: r.get(1)?,
                        stall: r.get(2)?,
                        sample_name: r.get(3)?,
                        analyte: r.get(4)?,
                        tested_at: r.get(5)?,
                        verdict: parse_verdict(r.get_ref(6)?.as_str()?),
                        superseded: r.get::<_, i64>(7)? != 0,
                    })
                },
            )
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn time_of(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn conflict(message: impl Into<String>) -> Refused {
    Refused::Conflict(message.into())
}

fn unfit(field: &str, message: impl Into<String>) -> Refused {
    Refused::Unfit {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Where `action` takes a hold in state `status` (see the module table), or why it cannot.
fn next_status(action: &Action, s: &Subject, admin: bool) -> Result<HoldStatus, Refused> {
    use HoldStatus::*;
    let status = s.status;
    let here = format!("the hold is {} ({})", status, status.zh());
    match (action, status) {
        (_, Held) => Err(conflict(format!(
            "{here}: the failure is not confirmed yet; retest the sample first (POST /api/v1/holds/{{id}}/retest)"
        ))),
        (Action::StopSale { .. }, Confirmed) => Ok(Stopped),
        (Action::StopSale { .. }, _) => Err(conflict(format!(
            "{here}: the sale can be stopped only after a confirmed retest, once"
        ))),
        (Action::LabSent { .. }, Stopped) => Ok(Lab),
        (Action::LabSent { .. }, Confirmed) => Err(conflict(format!(
            "{here}: stop the sale before sending a sample to a laboratory"
        ))),
        (Action::LabSent { .. }, _) => Err(conflict(format!(
            "{here}: a sample goes to a laboratory only while the sale is stopped and before destruction"
        ))),
        (Action::LabResult { positive: true, .. }, Lab) => Ok(Stopped),
        (Action::LabResult { positive: false, .. }, Lab) => Ok(Released),
        (Action::LabResult { .. }, _) => Err(conflict(format!(
            "{here}: no sample is at a laboratory (lab_sent first)"
        ))),
        (Action::Destroy { .. }, Stopped) => Ok(Destroyed),
        (Action::Destroy { .. }, Confirmed) => Err(conflict(format!(
            "{here}: stop the sale (stop_sale) before destroying the goods"
        ))),
        (Action::Destroy { .. }, Lab) => Err(conflict(format!(
            "{here}: the laboratory's result is awaited; a negative one releases the goods"
        ))),
        (Action::Destroy { .. }, _) => Err(conflict(format!(
            "{here}: only goods whose sale is stopped after a confirmed retest are destroyed"
        ))),
        (Action::Resample { .. }, st) if st.is_confirmed_path() => {
            if s.resample_reading.is_some() {
                Err(conflict(format!(
                    "{here}: a passing re-sample is already recorded"
                )))
            } else {
                Ok(st)
            }
        }
        (Action::Resample { .. }, _) => Err(conflict(format!(
            "{here}: a re-sample is recorded only for a confirmed failure that is not finished"
        ))),
        (Action::Close, Destroyed) if s.resample_reading.is_some() => Ok(Closed),
        (Action::Close, Destroyed) => Err(conflict(format!(
            "{here}: no passing re-sample of the stall is recorded yet (resample first)"
        ))),
        (Action::Close, Released) => Ok(Closed),
        (Action::Close, Review) if admin => Ok(Closed),
        (Action::Close, Review) => Err(conflict(format!(
            "{here}: a hold in review is closed by an admin, with a note saying what was decided"
        ))),
        (Action::Close, _) => Err(conflict(format!(
            "{here}: a hold is closed after destruction and a passing re-sample, or after a release"
        ))),
    }
}

/// Check re-sample reading `id` against the hold: same market, stall, commodity and item,
/// tested after the failure, a current pass or fail. Returns its row and verdict.
fn check_resample(
    conn: &Connection,
    s: &Subject,
    id: &str,
    today: NaiveDate,
) -> Result<(i64, Verdict), Refused> {
    let r = resample_reading(conn, &s.market, &s.local_day, today, id)
        .map_err(|e| conflict(format!("the reading could not be read: {e}")))?
        .ok_or_else(|| {
            unfit(
                "reading",
                format!(
                    "no reading {id:?} of market {:?} tested since the failure's day",
                    s.market
                ),
            )
        })?;
    if r.id == s.reading {
        return Err(unfit("reading", "this is the failed reading itself"));
    }
    if r.market != s.market {
        return Err(unfit(
            "reading",
            format!(
                "reading {id} is of market {:?}, the hold of {:?}",
                r.market, s.market
            ),
        ));
    }
    let Some(stall) = s.stall.as_deref() else {
        return Err(conflict(
            "the hold names no stall: set it first (PATCH /api/v1/holds/{id})",
        ));
    };
    if r.stall.as_deref().map(str::trim) != Some(stall.trim()) {
        return Err(unfit(
            "reading",
            format!(
                "reading {id} is of stall {:?}, the hold of {stall:?}",
                r.stall.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    let same_commodity = match (&r.sample_name, &s.sample_name) {
        (Some(a), Some(b)) => a.trim() == b.trim(),
        _ => false,
    };
    if !same_commodity {
        return Err(unfit(
            "reading",
            format!(
                "reading {id} is of {:?}, the hold of {:?}: a re-sample is of the same commodity",
                r.sample_name.as_deref().unwrap_or("(no commodity)"),
                s.sample_name.as_deref().unwrap_or("(no commodity)")
            ),
        ));
    }
    if r.analyte != s.analyte {
        return Err(unfit(
            "reading",
            format!(
                "reading {id} tests {}, the failure was of {}: a re-sample tests the same item",
                r.analyte, s.analyte
            ),
        ));
    }
    match (time_of(&r.tested_at), time_of(&s.tested_at)) {
        (Some(a), Some(b)) if a > b => {}
        _ => {
            return Err(unfit(
                "reading",
                format!("reading {id} was tested before the failure it would re-sample"),
            ))
        }
    }
    if r.superseded {
        return Err(unfit(
            "reading",
            format!("reading {id} was superseded by a correction"),
        ));
    }
    match r.verdict {
        Verdict::Pass | Verdict::Fail => Ok((r.id, r.verdict)),
        v => Err(conflict(format!(
            "reading {id} is judged {}: only a pass or a fail decides a re-sample",
            verdict_str(v)
        ))),
    }
}

/// The action's fields as its history entry keeps them.
fn fields_of(req: &ActionRequest, at: &str, resample: Option<Verdict>) -> Value {
    let mut m = Map::new();
    m.insert("at".into(), Value::String(at.to_string()));
    match &req.action {
        Action::StopSale { operator } => {
            m.insert("operator".into(), operator.clone().into());
        }
        Action::LabSent { lab, lab_sample_no } => {
            m.insert("lab".into(), lab.clone().into());
            m.insert("lab_sample_no".into(), lab_sample_no.clone().into());
        }
        Action::LabResult {
            positive,
            reference,
        } => {
            m.insert(
                "result".into(),
                if *positive { "positive" } else { "negative" }.into(),
            );
            m.insert("reference".into(), reference.clone().into());
        }
        Action::Destroy {
            kg,
            method,
            witness,
        } => {
            m.insert("kg".into(), Value::from(*kg));
            m.insert("method".into(), method.clone().into());
            m.insert("witness".into(), witness.clone().into());
        }
        Action::Resample { reading } => {
            m.insert("reading".into(), reading.clone().into());
            if let Some(v) = resample {
                m.insert("verdict".into(), verdict_str(v).into());
            }
        }
        Action::Close => {}
    }
    if let Some(n) = &req.note {
        m.insert("note".into(), n.clone().into());
    }
    Value::Object(m)
}

/// The history sentence of an action.
fn sentence(req: &ActionRequest, next: HoldStatus, resample: Option<Verdict>) -> String {
    let mut s = match &req.action {
        Action::StopSale { operator } => {
            format!("sale stopped, goods off the stall (by {operator})")
        }
        Action::LabSent { lab, lab_sample_no } => {
            format!("sample sent to {lab} for confirmation (lab sample no. {lab_sample_no})")
        }
        Action::LabResult {
            positive: true,
            reference,
        } => format!("the laboratory confirmed the failure ({reference}): the hold stays"),
        Action::LabResult {
            positive: false,
            reference,
        } => format!(
            "the laboratory found the sample qualified ({reference}): the goods are released"
        ),
        Action::Destroy {
            kg,
            method,
            witness,
        } => format!("{kg} kg destroyed ({method}), witnessed by {witness}"),
        Action::Resample { reading } => match resample {
            Some(Verdict::Pass) => format!("re-sample {reading} of the stall passed"),
            _ => format!("re-sample {reading} of the stall failed too: a re-sample is still due"),
        },
        Action::Close => format!("closed ({})", next.zh()),
    };
    if let Some(n) = &req.note {
        s.push_str(": ");
        s.push_str(n);
    }
    s
}

/// Apply action `req` to hold `hold` for `by` (the token's name; `admin` when it is an admin
/// token): checked, recorded, queued upstream, all in this transaction; a refusal changes
/// nothing. `Ok(None)`: there is no such hold.
pub fn apply_action(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    hold: &str,
    req: &ActionRequest,
    by: &str,
    admin: bool,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<Result<Applied, Refused>>> {
    let Some(s) = subject(tx.conn(), hold)? else {
        return Ok(None);
    };
    let next = match next_status(&req.action, &s, admin) {
        Ok(n) => n,
        Err(r) => return Ok(Some(Err(r))),
    };
    if matches!(req.action, Action::Close) && s.status == HoldStatus::Review && req.note.is_none() {
        return Ok(Some(Err(unfit(
            "note",
            "closing a hold in review needs a note saying what was decided",
        ))));
    }
    let at = req.at.unwrap_or(now);
    if at > now + Duration::minutes(5) {
        return Ok(Some(Err(unfit("at", "is in the future"))));
    }
    if time_of(&s.created_at).is_some_and(|opened| at < opened - Duration::days(1)) {
        return Ok(Some(Err(unfit("at", "is before the failure was recorded"))));
    }
    let resample = match &req.action {
        Action::Resample { reading } => {
            let today = now.with_timezone(&settings.utc_offset).date_naive();
            match check_resample(tx.conn(), &s, reading, today) {
                Ok(v) => Some(v),
                Err(r) => return Ok(Some(Err(r))),
            }
        }
        _ => None,
    };
    let (resample_row, resample) = (resample.map(|r| r.0), resample.map(|r| r.1));
    let at = rfc3339(at);
    let entry = HistoryEntry {
        at: at.clone(),
        status: next,
        by: by.to_string(),
        reason: sentence(req, next, resample),
        action: Some(req.action.name().to_string()),
        fields: Some(fields_of(req, &at, resample)),
    };
    // An action repeated on one hold (a second laboratory, a failing then a passing
    // re-sample) is a new event: its id counts the earlier ones.
    let revision: u32 = tx.query_row(
        "SELECT count(*) FROM hold_history WHERE hold = ?1 AND action = ?2",
        params![hold, req.action.name()],
        |r| r.get(0),
    )?;
    let updated = rfc3339(now);
    tx.prepare_cached("UPDATE holds SET status = ?1, updated_at = ?2 WHERE id = ?3")?
        .execute(params![next, updated, hold])?;
    match &req.action {
        Action::Destroy { kg, .. } => {
            tx.prepare_cached(
                "UPDATE holds SET destroyed_kg = ?1, destroyed_at = ?2 WHERE id = ?3",
            )?
            .execute(params![kg, at, hold])?;
        }
        Action::Resample { .. } if resample == Some(Verdict::Pass) => {
            tx.prepare_cached("UPDATE holds SET resample_reading = ?1 WHERE id = ?2")?
                .execute(params![resample_row, hold])?;
        }
        _ => {}
    }
    add_history(tx, hold, &entry)?;
    let events = queue_hold_event(
        tx,
        settings,
        &s,
        hold,
        req.action.event(),
        revision,
        next,
        &at,
    )?;
    Ok(Some(Ok(Applied {
        status: next,
        entry,
        events,
    })))
}

/// Queue event `kind` of hold `hold` (now in `status`) for every events upstream.
#[allow(clippy::too_many_arguments)]
pub(super) fn queue_hold_event(
    tx: &mut Tx<'_>,
    settings: &StoreSettings,
    s: &Subject,
    hold: &str,
    kind: EventKind,
    revision: u32,
    status: HoldStatus,
    at: &str,
) -> rusqlite::Result<usize> {
    let history = hold_history(tx.conn(), hold)?;
    let (id, body) = hold_change_body(&HoldChange {
        kind,
        identity: &s.identity,
        revision,
        occurred_at: at,
        market: &s.market,
        stall: s.stall.as_deref(),
        sample: (
            s.sample_id.as_deref(),
            s.sample_name.as_deref(),
            s.category.as_deref(),
        ),
        reading_json: &s.reading_json,
        hold: HoldBody {
            id: hold,
            status,
            history: &history,
        },
    });
    super::queue::queue_hold_change(
        tx,
        settings,
        s.reading,
        kind,
        hold,
        &id,
        &body,
        Utc::now().timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ActionRequest, InvalidAction> {
        parse_action(v.as_object().expect("object"))
    }

    #[test]
    fn actions_are_parsed_from_json_and_from_form_text() {
        let a =
            parse(json!({"action": "destroy", "kg": 12.5, "method": "深埋", "witness": "王五"}))
                .expect("json");
        let b = parse(
            json!({"action": "destroy", "kg": " 12.5 ", "method": "深埋", "witness": "王五"}),
        )
        .expect("form");
        assert_eq!(a, b);
        assert_eq!(
            a.action,
            Action::Destroy {
                kg: 12.5,
                method: "深埋".into(),
                witness: "王五".into()
            }
        );
        let r = parse(json!({"action": "lab_result", "result": "阴性", "reference": "R-1"}))
            .expect("lab");
        assert_eq!(
            r.action,
            Action::LabResult {
                positive: false,
                reference: "R-1".into()
            }
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |v: Value| parse(v).expect_err("refused").field;
        assert_eq!(
            field(json!({"action": "destroy", "kg": -1, "method": "m", "witness": "w"})),
            "kg"
        );
        assert_eq!(
            field(json!({"action": "destroy", "kg": "abc", "method": "m", "witness": "w"})),
            "kg"
        );
        assert_eq!(
            field(json!({"action": "destroy", "kg": 1, "method": "m"})),
            "witness"
        );
        assert_eq!(
            field(json!({"action": "destroy", "kg": 1, "method": "m", "witness": "w", "kgs": 2})),
            "kgs"
        );
        assert_eq!(field(json!({"action": "burn"})), "action");
        assert_eq!(field(json!({})), "action");
        assert_eq!(
            field(json!({"action": "resample", "reading": [7]})),
            "reading"
        );
        assert_eq!(
            field(json!({"action": "resample", "reading": " "})),
            "reading"
        );
        assert_eq!(field(json!({"action": "resample"})), "reading");
        assert_eq!(field(json!({"action": "close", "at": "yesterday"})), "at");
        assert_eq!(
            field(json!({"action": "lab_result", "result": "maybe", "reference": "r"})),
            "result"
        );
        assert_eq!(
            field(json!({"action": "stop_sale", "operator": "x".repeat(201)})),
            "operator"
        );
    }
}
