//! The outbox as the uplink and the operators see it.

use super::Db;
use super::{Reader, Tx};
use rusqlite::{params, Connection, OptionalExtension};

/// An event due for an attempt.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub body: Vec<u8>,
    pub attempts: u32,
}

/// The body stored for an event built from its reading when it is sent (see
/// `store::events::built_when_sent`): the reading's row is all it is made of, and a change
/// to that row first stores the bodies built from it as they were ([`freeze_bodies`]; the
/// trigger of migration 0013 refuses the change otherwise), so every attempt sends the same
/// bytes.
pub const LAZY_BODY: &[u8] = b"";

/// The integer `event_key` of an event id (migration 0012): see
/// [`super::identity::hex_key`].
pub fn event_key(event_id: &str) -> i64 {
    super::identity::hex_key(event_id)
}

/// Queue event `event_id` for `upstream` unless it is already queued there (exactly once, also
/// when the same reading or hold change is stored again). `reading` is the reading the event
/// is about (none for a sample record). Returns the rows added (0 or 1).
#[allow(clippy::too_many_arguments)]
pub fn enqueue(
    tx: &Tx<'_>,
    reading: Option<i64>,
    event_id: &str,
    upstream: &str,
    kind: &str,
    hold: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let key = event_key(event_id);
    let mut queued = tx.prepare_cached(
        "SELECT 1 FROM outbox WHERE reading IS ?1 AND event_key = ?2 AND event_id = ?3
         AND upstream = ?4",
    )?;
    // Rows from before migration 0012 have no reading: an event queued then is found there.
    if queued.exists(params![reading, key, event_id, upstream])?
        || (reading.is_some() && queued.exists(params![None::<i64>, key, event_id, upstream])?)
    {
        return Ok(0);
    }
    enqueue_new(tx, reading, event_id, upstream, kind, hold, body, now_ms)
}

/// [`enqueue`] without looking for the event first: for the events of a reading stored in
/// the caller's transaction, of which no row can exist yet (a reading stored again is a
/// duplicate and makes no event; readings are never deleted).
#[allow(clippy::too_many_arguments)]
pub fn enqueue_new(
    tx: &Tx<'_>,
    reading: Option<i64>,
    event_id: &str,
    upstream: &str,
    kind: &str,
    hold: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let key = event_key(event_id);
    let n = tx.hot(
        "INSERT INTO outbox (event_id, upstream, type, hold, body, created_ms, next_attempt_ms,
            event_key, reading) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)",
        |s| {
            s.execute(params![
                event_id, upstream, kind, hold, body, now_ms, key, reading
            ])
        },
    )?;
    tx.outbox_moved(upstream, None, Some("pending"), n as i64, None);
    Ok(n)
}

/// Events of `upstream` due at `now_ms`, oldest first, at most `limit`.
///
/// An event of a hold waits while an earlier event of the same hold is still pending for
/// this upstream (`sample.failed` before its `hold.*`); nothing else waits for anything.
pub fn due(
    reader: &Reader,
    upstream: &str,
    now_ms: i64,
    limit: usize,
) -> rusqlite::Result<Vec<DueEvent>> {
    let conn = reader.connection();
    conn.prepare_cached(
        // INDEXED BY: left to itself SQLite takes `outbox_due` and sorts every due row by id.
        // The join brings the reading of an event whose body is built when sent.
        "SELECT o.id, o.event_id, o.type, o.body, o.attempts,
                r.received_at, r.market, r.stall, r.sample_id, r.sample_name, r.category,
                r.reading_json
         FROM outbox o INDEXED BY outbox_pending
         LEFT JOIN readings r ON r.id = o.reading AND length(o.body) = 0
         WHERE o.status = 'pending' AND o.upstream = ?1 AND o.next_attempt_ms <= ?2
           AND (o.hold IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox p WHERE p.hold = o.hold AND p.upstream = o.upstream
                AND p.status = 'pending' AND p.id < o.id))
         ORDER BY o.id LIMIT ?3",
    )?
    .query_map(
        params![upstream, now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            let event_id: String = r.get(1)?;
            let mut body: Vec<u8> = r.get(3)?;
            if body == LAZY_BODY && r.get_ref(11)? != rusqlite::types::ValueRef::Null {
                body = super::events::lazy_body(&event_id, r, 5)?;
            }
            Ok(DueEvent {
                id: r.get(0)?,
                event_id,
                kind: r.get(2)?,
                body,
                attempts: r.get(4)?,
            })
        },
    )?
    .collect()
}

/// The body of lazy event `event_id` about `reading`, built from the reading's row.
fn built_body(conn: &Connection, reading: i64, event_id: &str) -> rusqlite::Result<Vec<u8>> {
    conn.prepare_cached(
        "SELECT received_at, market, stall, sample_id, sample_name, category, reading_json
         FROM readings WHERE id = ?1",
    )?
    .query_row([reading], |row| super::events::lazy_body(event_id, row, 0))
}

/// Store the bodies of the events built from `reading`'s row, as that row is now: called
/// before the row changes (a late sample registration), so an event already sent once is
/// sent again with the same bytes. Returns the bodies stored.
pub fn freeze_bodies(tx: &Tx<'_>, reading: i64) -> rusqlite::Result<usize> {
    let lazy: Vec<(i64, String)> = tx
        .prepare_cached("SELECT id, event_id FROM outbox WHERE reading = ?1 AND body = ?2")?
        .query_map(params![reading, LAZY_BODY], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, event_id) in &lazy {
        let body = built_body(tx.conn(), reading, event_id)?;
        tx.prepare_cached("UPDATE outbox SET body = ?1 WHERE id = ?2")?
            .execute(params![body, id])?;
    }
    Ok(lazy.len())
}

/// The earliest retry time after `now_ms` of a pending event of `upstream`.
pub fn next_due_after(
    reader: &Reader,
    upstream: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let conn = reader.connection();
    conn.prepare_cached(
        "SELECT min(next_attempt_ms) FROM outbox
         WHERE status = 'pending' AND upstream = ?1 AND next_attempt_ms > ?2",
    )?
    .query_row(params![upstream, now_ms], |r| r.get(0))
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        answer: String,
    },
    Retry {
        answer: String,
        next_attempt_ms: i64,
    },
    Dead {
        answer: String,
    },
}

/// Record an attempt's result for event `event_id`, row `id`, of `upstream` (the writer's
/// transaction). The row must still hold that event: a hold folded into another deletes its
/// events, and SQLite gives the next row the largest id again, so an attempt in flight for
/// a deleted event would otherwise be recorded for the one queued after it.
pub fn record(
    tx: &Tx<'_>,
    upstream: &str,
    id: i64,
    event_id: &str,
    at_ms: i64,
    attempt: &Attempt,
) -> rusqlite::Result<()> {
    let (status, answer, next, delivered) = match attempt {
        Attempt::Delivered { answer } => ("delivered", answer, None, Some(at_ms)),
        Attempt::Retry {
            answer,
            next_attempt_ms,
        } => ("pending", answer, Some(*next_attempt_ms), None),
        Attempt::Dead { answer } => ("dead", answer, None, None),
    };
    let mut update = tx.prepare_cached(
        "UPDATE outbox SET status = ?1, attempts = attempts + 1, last_attempt_ms = ?2,
            last_answer = ?3, next_attempt_ms = coalesce(?4, next_attempt_ms),
            delivered_ms = ?5
         WHERE id = ?6 AND event_id = ?7 AND status = 'pending'",
    )?;
    let n = update.execute(params![
        status, at_ms, answer, next, delivered, id, event_id
    ])?;
    let failed =
        (!matches!(attempt, Attempt::Delivered { .. })).then_some((answer.as_str(), at_ms));
    tx.outbox_moved(upstream, Some("pending"), Some(status), n as i64, failed);
    Ok(())
}

/// Put dead events back in the queue (after fixing a secret, say): one by id, or all of
/// them with `None`. Returns how many.
pub fn retry_dead(tx: &mut Tx<'_>, id: Option<i64>, now_ms: i64) -> rusqlite::Result<usize> {
    let dead: Vec<(String, i64)> = tx
        .prepare_cached(
            "SELECT upstream, count(*) FROM outbox WHERE status = 'dead' AND (?1 IS NULL OR id = ?1)
             GROUP BY upstream",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (upstream, n) in &dead {
        tx.outbox_moved(upstream, Some("dead"), Some("pending"), *n, None);
    }
    let n = tx
        .prepare_cached(
            "UPDATE outbox SET status = 'pending', next_attempt_ms = ?1
             WHERE status = 'dead' AND (?2 IS NULL OR id = ?2)",
        )?
        .execute(params![now_ms, id])?;
    tx.events_added(n);
    Ok(n)
}

/// Requeue one event if it is dead; returns the status it had (`None`: no such event).
/// The check and the requeue share the caller's transaction, so nothing changes between them.
pub fn retry_if_dead(tx: &mut Tx<'_>, id: i64, now_ms: i64) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    let status: Option<String> = tx
        .query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    if status.as_deref() == Some("dead") {
        retry_dead(tx, Some(id), now_ms)?;
    }
    Ok(status)
}

/// Drop the events of hold `hold` (a retest's own hold merged into the one it retests).
pub fn delete_hold_events(tx: &Tx<'_>, hold: &str) -> rusqlite::Result<usize> {
    let gone: Vec<(String, String, i64)> = tx
        .prepare_cached(
            "SELECT upstream, status, count(*) FROM outbox WHERE hold = ?1 GROUP BY upstream, status",
        )?
        .query_map([hold], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (upstream, status, n) in &gone {
        tx.outbox_moved(upstream, Some(status), None, *n, None);
    }
    tx.execute("DELETE FROM outbox WHERE hold = ?1", [hold])
}

/// Counts per upstream, for `/metrics` and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub upstream: String,
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    /// Creation time of the oldest pending event.
    pub oldest_pending_ms: Option<i64>,
    /// Last answer of the most recent failed attempt, if any event is waiting on one.
    pub last_error: Option<String>,
}

/// Read from `outbox_upstreams` and the first pending event of each upstream: a scrape
/// costs the same at a year of events as on the first day.
pub fn counts(reader: &Reader) -> rusqlite::Result<Vec<OutboxCounts>> {
    let conn = reader.connection();
    let mut out: Vec<OutboxCounts> = conn
        .prepare_cached(
            "SELECT upstream, pending, delivered, dead, last_error FROM outbox_upstreams
             WHERE pending <> 0 OR delivered <> 0 OR dead <> 0 ORDER BY upstream",
        )?
        .query_map([], |r| {
            Ok(OutboxCounts {
                upstream: r.get(0)?,
                pending: r.get::<_, i64>(1)?.max(0) as u64,
                delivered: r.get::<_, i64>(2)?.max(0) as u64,
                dead: r.get::<_, i64>(3)?.max(0) as u64,
                oldest_pending_ms: None,
                last_error: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for c in &mut out {
        // Ids grow with creation: the first pending event is the oldest.
        c.oldest_pending_ms = conn
            .prepare_cached(
                "SELECT created_ms FROM outbox INDEXED BY outbox_pending
                 WHERE status = 'pending' AND upstream = ?1 ORDER BY id LIMIT 1",
            )?
            .query_row([&c.upstream], |r| r.get(0))
            .optional()?;
    }
    Ok(out)
}

/// One outbox row as `foodgate outbox list` and `GET /api/v1/outbox` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: String,
    pub upstream: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub attempts: u32,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub last_answer: Option<String>,
}

const ROW_COLUMNS: &str =
    "id, event_id, upstream, type, status, attempts, created_ms, next_attempt_ms, last_answer";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        upstream: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        created_ms: r.get(6)?,
        next_attempt_ms: r.get(7)?,
        last_answer: r.get(8)?,
    })
}

/// Outbox rows, oldest first, optionally of one status.
pub fn list(
    reader: &Reader,
    status: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<OutboxRow>> {
    let conn = reader.connection();
    conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id LIMIT ?2"
    ))?
    .query_map(
        params![status, i64::try_from(limit).unwrap_or(i64::MAX)],
        row,
    )?
    .collect()
}

/// The body of the newest event of type `kind` for `upstream` (`foodgate upstream check`).
pub fn last_body(
    reader: &Reader,
    upstream: &str,
    kind: &str,
) -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
    use rusqlite::OptionalExtension;
    reader
        .connection()
        .prepare_cached(
            "SELECT id, body FROM outbox WHERE upstream = ?1 AND type = ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![upstream, kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// One outbox row by id.
pub fn get(reader: &Reader, id: i64) -> rusqlite::Result<Option<OutboxRow>> {
    let conn = reader.connection();
    use rusqlite::OptionalExtension;
    conn.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?1"))?
        .query_row([id], row)
        .optional()
}
