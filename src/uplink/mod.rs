//! The uplink: delivers the outbox to every `[[upstream]]` (`docs/reference.md`, "Upstream events").
//!
//! One task per upstream keeps up to [`IN_FLIGHT`] events on the wire at once, each on its
//! own schedule, so one event that fails or hangs never holds back the others; only the
//! events of one hold wait for each other (the query in [`crate::store::outbox::due`]).
//! Every result is committed through the store's writer before the event can be picked
//! again, so delivery state (attempts, next attempt, last answer) survives restarts.
//! The worker sleeps until the next retry is due or the store commits new events.
//!
//! A `format = "results"` upstream (a city hub) gets the same outbox as upload rows, up to
//! [`BATCH_ROWS`] per POST and [`BATCHES_IN_FLIGHT`] POSTs at once, oldest first; sample
//! records go to the hub's `/api/v1/samples`, stall corrections to its
//! `/api/v1/results/stalls` and hold states to its `/api/v1/results/holds`, each before the
//! rows queued after them. Each row
//! of a batch gets its own result from the hub's per-row answer ([`classify_batch`]). When a
//! whole request fails (hub down), the upstream rests until that batch's retry is due, so
//! a station that was offline for days catches up by itself, oldest first.

mod health;
mod heartbeat;
mod http;
mod platforms;

pub use platforms::login as platform_login;

pub use health::{Health, HealthSnapshot};

pub use http::{sign, Answer};

use crate::config::{Format, Upstream};
use crate::store::outbox::{self, Attempt, DueEvent};
use crate::store::{Store, StoreError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Events on the wire at once, per upstream.
pub const IN_FLIGHT: usize = 32;

/// The longest a worker sleeps before looking at the outbox again.
const IDLE_POLL_MS: i64 = 2_000;

/// Live figures of one upstream's worker (the database holds the rest, see
/// [`crate::store::outbox::counts`]).
#[derive(Debug, Default)]
pub struct UpstreamState {
    pub attempts: std::sync::atomic::AtomicU64,
    pub delivered: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub health: Health,
    /// A platform's kept login.
    pub platform: platforms::PlatformSession,
}

/// What `/metrics` and the API render about the uplink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkStats {
    pub upstream: String,
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    /// Age of the oldest pending event, in seconds.
    pub oldest_pending_age_s: Option<u64>,
    pub last_error: Option<String>,
    pub health: Option<HealthSnapshot>,
}

/// A handle on the running uplink: its figures, per upstream.
#[derive(Debug, Clone, Default)]
pub struct UplinkHandle {
    states: Arc<Vec<(String, Arc<UpstreamState>)>>,
}

impl UplinkHandle {
    /// Counts from the store, last errors from the workers.
    pub fn stats(&self, reader: &crate::store::Reader) -> rusqlite::Result<Vec<UplinkStats>> {
        let now = now_ms();
        let counts = outbox::counts(reader)?;
        let mut out = Vec::new();
        for (name, state) in self.states.iter() {
            let c = counts.iter().find(|c| &c.upstream == name);
            let live = state.last_error.lock().ok().and_then(|e| e.clone());
            out.push(UplinkStats {
                upstream: name.clone(),
                pending: c.map_or(0, |c| c.pending),
                delivered: c.map_or(0, |c| c.delivered),
                dead: c.map_or(0, |c| c.dead),
                oldest_pending_age_s: c
                    .and_then(|c| c.oldest_pending_ms)
                    .map(|t| ((now - t).max(0) / 1000) as u64),
                last_error: live.or_else(|| c.and_then(|c| c.last_error.clone())),
                health: Some(state.health.snapshot()),
            });
        }
        Ok(out)
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The delay before attempt `attempts + 1` after `attempts` failed ones: `initial` doubling
/// up to `max`, less up to a quarter at random so that many events failing together do not
/// come back together.
pub fn backoff(up: &Upstream, attempts: u32, jitter_seed: u64) -> Duration {
    let initial = up.retry_initial.as_millis() as u64;
    let max = up.retry_max.as_millis() as u64;
    let exp = attempts.saturating_sub(1).min(40);
    let d = initial.saturating_mul(1u64 << exp).min(max);
    let spread = d / 4;
    let cut = if spread == 0 {
        0
    } else {
        splitmix(jitter_seed) % (spread + 1)
    };
    Duration::from_millis(d - cut)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Start one delivery task per upstream; they stop when `shutdown` turns true (in-flight
/// requests are dropped: their events stay pending and go again, same id, same bytes).
pub fn spawn(
    store: Store,
    upstreams: Vec<Upstream>,
    shutdown: watch::Receiver<bool>,
) -> (UplinkHandle, JoinSet<Result<(), StoreError>>) {
    let mut tasks = JoinSet::new();
    let mut states = Vec::new();
    for up in upstreams {
        let state = Arc::new(UpstreamState::default());
        states.push((up.name.clone(), state.clone()));
        if up.platform.as_ref().is_some_and(|p| p.heartbeat.is_some()) {
            let beat = heartbeat::run(store.clone(), Arc::new(up.clone()), shutdown.clone());
            tasks.spawn(async move {
                beat.await;
                Ok(())
            });
        }
        tasks.spawn(run_upstream(store.clone(), up, state, shutdown.clone()));
    }
    (
        UplinkHandle {
            states: Arc::new(states),
        },
        tasks,
    )
}

/// Work for one task: one event (events format) or one batch of rows (results format).
type Job = Vec<DueEvent>;

/// What a finished task reports: the outbox rows it had, and, when the whole request failed
/// (hub down, overloaded), when to try this upstream again.
type Done = (Vec<i64>, Option<i64>);

async fn run_upstream(
    store: Store,
    up: Upstream,
    state: Arc<UpstreamState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let up = Arc::new(up);
    let platform_batch = crate::platform::batch_size(&up);
    let client = http::client();
    let reader = Arc::new(Mutex::new(store.reader()?));
    let mut wake = store.wake();
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut tasks: JoinSet<Done> = JoinSet::new();
    // A hub that failed a whole request is left alone until its retry is due: the rows of
    // that batch go first then (oldest first), and the rest have not used up attempts.
    let mut paused_until: Option<i64> = None;
    // Sample records on the wire: rows queued after them wait until they are answered.
    let mut records_out: HashSet<i64> = HashSet::new();
    let settle = |done: Result<Done, tokio::task::JoinError>,
                  in_flight: &mut HashSet<i64>,
                  records_out: &mut HashSet<i64>,
                  paused_until: &mut Option<i64>| {
        if let Ok((ids, pause)) = done {
            for id in ids {
                in_flight.remove(&id);
                records_out.remove(&id);
            }
            if let Some(p) = pause {
                *paused_until = Some(paused_until.map_or(p, |q| q.max(p)));
            }
        }
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        while let Some(done) = tasks.try_join_next() {
            settle(done, &mut in_flight, &mut records_out, &mut paused_until);
        }
        // Mark the wake-up seen before reading, so a commit after the read wakes us again.
        wake.borrow_and_update();
        let now = now_ms();
        if paused_until.is_some_and(|p| p <= now) {
            paused_until = None;
        }
        let (room, limit) = match up.format {
            Format::Platform(_) if platform_batch > 1 => {
                let room = BATCHES_IN_FLIGHT.saturating_sub(tasks.len());
                (room, room * platform_batch + in_flight.len())
            }
            Format::Events | Format::Platform(_) => {
                let room = IN_FLIGHT.saturating_sub(in_flight.len());
                (room, room + in_flight.len())
            }
            Format::Results => {
                let room = BATCHES_IN_FLIGHT.saturating_sub(tasks.len());
                (room, room * BATCH_ROWS + in_flight.len())
            }
        };
        let room = if paused_until.is_some() || !records_out.is_empty() {
            0
        } else {
            room
        };
        let (due, next) = {
            let reader = reader.clone();
            let name = up.name.clone();
            tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
                let conn = reader.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
                let due = if room > 0 {
                    outbox::due(&conn, &name, now, limit)?
                } else {
                    Vec::new()
                };
                let next = outbox::next_due_after(&conn, &name, now)?;
                Ok((due, next))
            })
            .await
            .map_err(|_| StoreError::Closed)??
        };
        let fresh = due.into_iter().filter(|e| !in_flight.contains(&e.id));
        let jobs: Vec<Job> = match up.format {
            Format::Platform(_) => platforms::jobs(&up, fresh, room, platform_batch),
            Format::Events => fresh.take(room).map(|e| vec![e]).collect(),
            Format::Results => batches(fresh, room, in_flight.is_empty()),
        };
        for job in jobs {
            in_flight.extend(job.iter().map(|e| e.id));
            if job.first().is_some_and(|e| in_order(&e.kind)) {
                records_out.extend(job.iter().map(|e| e.id));
            }
            let (store, up, client, state) =
                (store.clone(), up.clone(), client.clone(), state.clone());
            match up.format {
                Format::Events => tasks.spawn(async move {
                    let mut job = job;
                    match job.pop() {
                        Some(ev) => (vec![deliver(store, up, client, state, ev).await], None),
                        None => (Vec::new(), None),
                    }
                }),
                Format::Results => tasks.spawn(deliver_batch(store, up, client, state, job)),
                Format::Platform(_) => tasks.spawn(deliver_platform(store, up, client, state, job)),
            };
        }
        let wake_at = match (next, paused_until) {
            (Some(n), Some(p)) => Some(n.max(p)),
            (n, p) => p.or(n),
        };
        // Never sleep long: another process (`foodgate ingest`, `outbox retry`) may have
        // queued events this process's store did not signal.
        let sleep = wake_at
            .map(|t| Duration::from_millis((t - now_ms()).clamp(0, IDLE_POLL_MS) as u64))
            .unwrap_or(Duration::from_millis(IDLE_POLL_MS as u64));
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                settle(done, &mut in_flight, &mut records_out, &mut paused_until);
            }
            r = wake.changed() => {
                if r.is_err() {
                    break; // the store closed
                }
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => {}
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// Rows in one POST to a hub, at most.
pub const BATCH_ROWS: usize = 1000;
/// Batches on the wire at once per results upstream: a station catching up after days
/// offline keeps its hub busy without flooding it.
pub const BATCHES_IN_FLIGHT: usize = 2;
/// The outbox type of a sample record (posted to the hub's `/api/v1/samples`).
pub const SAMPLE_RECORD: &str = crate::store::EventKind::SampleRecord.as_str();
/// The outbox type of an upload row (posted to the hub's `/api/v1/results`).
pub const RESULT_ROW: &str = crate::store::EventKind::ResultRow.as_str();
/// The outbox type of a stall correction (posted to the hub's `/api/v1/results/stalls`).
pub const RESULT_STALL: &str = crate::store::EventKind::ResultStall.as_str();

/// The outbox type of a hold's state (posted to the hub's `/api/v1/results/holds`).
pub const HOLD_STATE: &str = crate::store::EventKind::HoldState.as_str();

/// Kinds that change what the hub has already (a registration, a stall correction, a hold's
/// state): each goes when everything queued before it is answered, and what comes after
/// waits for it.
fn in_order(kind: &str) -> bool {
    kind == SAMPLE_RECORD || kind == RESULT_STALL || kind == HOLD_STATE
}

/// A row with result status `C`: it supersedes a reading sent before it (the body is this
/// crate's own serialization of the row, so the key and value are written exactly so).
fn is_correction(ev: &DueEvent) -> bool {
    const KEYS: [&[u8]; 2] = [b"\"result_status\":\"C\"", b"\"result_status\":\"c\""];
    ev.kind == RESULT_ROW
        && KEYS
            .iter()
            .any(|k| ev.body.windows(k.len()).any(|w| w == *k))
}

/// Cut due rows (oldest first) into at most `room` batches of one kind. Where rows and
/// sample records meet, the later kind waits for the earlier one to be answered: a sample
/// record goes out when nothing queued before it is still on the wire (`idle`), and the
/// rows queued after it wait for it (see [`run_upstream`]). So the hub sees both in the order
/// the station stored them, and a reading finds the registration that came before it.
fn batches(fresh: impl Iterator<Item = DueEvent>, room: usize, idle: bool) -> Vec<Job> {
    let mut out: Vec<Job> = Vec::new();
    let mut current: Job = Vec::new();
    for ev in fresh {
        let record = in_order(&ev.kind);
        let correction = is_correction(&ev);
        match current.first() {
            None if (record || correction) && !(idle && out.is_empty()) => break,
            Some(f) if f.kind != ev.kind => break,
            // A correction must reach the hub after the reading it supersedes: it opens a
            // batch of its own once everything before it is answered.
            Some(_) if correction => break,
            Some(f) if current.len() >= BATCH_ROWS => {
                // One batch of records at a time: two revisions of a sample stay in order.
                let records = in_order(&f.kind);
                out.push(std::mem::take(&mut current));
                if records || out.len() >= room {
                    return out;
                }
            }
            _ => {}
        }
        current.push(ev);
    }
    if !current.is_empty() && out.len() < room {
        out.push(current);
    }
    out
}

/// The hub's samples endpoint, beside its results endpoint (`…/results` → `…/samples`).
pub fn samples_url(results_url: &str) -> String {
    match results_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/samples"),
        None => format!("{results_url}/samples"),
    }
}

/// The hub's stall corrections endpoint, under its results endpoint.
pub fn stalls_url(results_url: &str) -> String {
    format!("{}/stalls", results_url.trim_end_matches('/'))
}

/// The hub's hold states endpoint, under its results endpoint.
pub fn holds_url(results_url: &str) -> String {
    format!("{}/holds", results_url.trim_end_matches('/'))
}

/// One JSON array of the rows' bodies (a body stored as a one-row array by an older
/// version is unwrapped).
fn batch_body(job: &[DueEvent]) -> Vec<u8> {
    let mut body = Vec::with_capacity(job.iter().map(|e| e.body.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, ev) in job.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let b = ev.body.as_slice();
        let inner = match (b.first(), b.last()) {
            (Some(b'['), Some(b']')) => &b[1..b.len() - 1],
            _ => b,
        };
        body.extend_from_slice(inner);
    }
    body.push(b']');
    body
}

/// One POST of a batch to the hub, each row's result committed; see [`classify_batch`].
async fn deliver_batch(
    store: Store,
    up: Arc<Upstream>,
    client: http::Client,
    state: Arc<UpstreamState>,
    job: Job,
) -> Done {
    use std::sync::atomic::Ordering::Relaxed;
    let ids: Vec<i64> = job.iter().map(|e| e.id).collect();
    let Some(first) = job.first() else {
        return (ids, None);
    };
    let url = match first.kind.as_str() {
        SAMPLE_RECORD => samples_url(&up.url),
        RESULT_STALL => stalls_url(&up.url),
        HOLD_STATE => holds_url(&up.url),
        _ => up.url.clone(),
    };
    // One key per batch content: the same rows sent again carry the same key.
    let key = format!("{}+{}", first.event_id, job.len());
    state.attempts.fetch_add(1, Relaxed);
    let started = std::time::Instant::now();
    let answer = http::post(&client, &up, &url, &key, batch_body(&job)).await;
    let at = now_ms();
    let (attempts, pause) = classify_batch(&up, &job, &answer, at);
    let delivered = attempts
        .iter()
        .filter(|(_, a)| matches!(a, Attempt::Delivered { .. }))
        .count();
    state.delivered.fetch_add(delivered as u64, Relaxed);
    // A hub that answers is up, even when it rejects some rows (those are the rows' fault).
    if delivered > 0 {
        state.health.delivered(&up.name, started, at);
    }
    if delivered < attempts.len() {
        state.failures.fetch_add(1, Relaxed);
        let failed = attempts.iter().find_map(|(_, a)| match a {
            Attempt::Retry { answer, .. } | Attempt::Dead { answer } => Some(answer.clone()),
            Attempt::Delivered { .. } => None,
        });
        if delivered == 0 {
            if let Some(text) = &failed {
                state.health.failed(&up.name, started, at, text);
            }
        }
        if let (Ok(mut e), Some(text)) = (state.last_error.lock(), failed) {
            *e = Some(text);
        }
    }
    // If the store is gone (shutdown), the rows stay pending and go again.
    let name = up.name.clone();
    let event_ids: std::collections::HashMap<i64, String> =
        job.into_iter().map(|e| (e.id, e.event_id)).collect();
    let _ = store
        .write_async(move |tx| {
            for (id, attempt) in &attempts {
                if let Some(event_id) = event_ids.get(id) {
                    outbox::record(tx, &name, *id, event_id, at, attempt)?;
                }
            }
            Ok(())
        })
        .await;
    (ids, pause)
}

/// Each row's result from the hub's answer to its batch, and when to try the upstream again
/// if the whole request failed.
///
/// A 2xx answer is read row by row (`results[i]` answers row `i`): `stored`, `duplicate` and
/// `updated` deliver, `rejected` is dead with the row's own answer (its errors) kept, a row
/// the answer does not account for is retried. 408, 429, 5xx and transport failures retry the
/// whole batch with backoff; any other 4xx (401, 403: a wrong or revoked token) makes every
/// row of the batch dead with the answer kept.
fn classify_batch(
    up: &Upstream,
    job: &[DueEvent],
    answer: &Answer,
    at: i64,
) -> (Vec<(i64, Attempt)>, Option<i64>) {
    let attempts = job.iter().map(|e| e.attempts).max().unwrap_or(0);
    let seed = job.first().map_or(0, |e| e.id as u64) ^ at as u64;
    let next = at + backoff(up, attempts + 1, seed).as_millis() as i64;
    let all = |a: Attempt| job.iter().map(|e| (e.id, a.clone())).collect::<Vec<_>>();
    let retry_all = |text: String| {
        (
            all(Attempt::Retry {
                answer: text,
                next_attempt_ms: next,
            }),
            Some(next),
        )
    };
    let (status, body) = match answer {
        Answer::Transport(e) => return retry_all(e.clone()),
        Answer::Http { status, body } => (*status, body),
    };
    let text = format!("HTTP {status}: {}", http::keep(body));
    match status {
        200..=299 => {}
        408 | 429 | 500..=599 => return retry_all(text),
        400..=499 => return (all(Attempt::Dead { answer: text }), None),
        _ => return retry_all(text),
    }
    let parsed: Option<Vec<serde_json::Value>> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("results")?.as_array().cloned());
    let Some(results) = parsed else {
        return retry_all(format!("{text} (not an upload answer)"));
    };
    let mut out = Vec::with_capacity(job.len());
    for (i, ev) in job.iter().enumerate() {
        let entry = results
            .iter()
            .find(|r| r.get("index").and_then(|x| x.as_u64()) == Some(i as u64))
            .or_else(|| results.get(i));
        let status = entry.and_then(|r| r.get("status")?.as_str());
        let own = entry.map(|r| r.to_string()).unwrap_or_default();
        let attempt = match status {
            Some("stored" | "duplicate" | "updated") => Attempt::Delivered {
                answer: format!("HTTP 200: {}", status.unwrap_or_default()),
            },
            Some("rejected") => Attempt::Dead {
                answer: format!("HTTP 200: rejected: {}", http::keep(&own)),
            },
            _ => Attempt::Retry {
                answer: format!("HTTP 200 without an answer for row {i}"),
                next_attempt_ms: next,
            },
        };
        out.push((ev.id, attempt));
    }
    (out, None)
}

/// One attempt at one event, its result committed; returns the event's row id.
async fn deliver(
    store: Store,
    up: Arc<Upstream>,
    client: http::Client,
    state: Arc<UpstreamState>,
    ev: DueEvent,
) -> i64 {
    let id = ev.id;
    let started = std::time::Instant::now();
    let answer = http::post(&client, &up, &up.url, &ev.event_id, ev.body.clone()).await;
    let attempt = classify(&up, &ev, &answer, now_ms());
    settle_attempts(&store, &up, &state, started, vec![(ev, attempt)]).await;
    id
}

/// One platform job (one request, or a few when a refused one is halved), every result
/// committed; see [`platforms`].
async fn deliver_platform(
    store: Store,
    up: Arc<Upstream>,
    client: http::Client,
    state: Arc<UpstreamState>,
    job: Job,
) -> Done {
    let ids = job.iter().map(|e| e.id).collect();
    let started = std::time::Instant::now();
    let offset = store.settings().utc_offset;
    let retry_at = |attempts: u32, seed: u64| {
        let at = now_ms();
        at + backoff(&up, attempts, seed ^ at as u64).as_millis() as i64
    };
    let attempts = platforms::attempts(&client, &up, &state.platform, &job, offset, retry_at).await;
    settle_attempts(
        &store,
        &up,
        &state,
        started,
        job.into_iter().zip(attempts).collect(),
    )
    .await;
    (ids, None)
}

/// Count and commit the attempts of one task (events on their own or a platform's job).
async fn settle_attempts(
    store: &Store,
    up: &Upstream,
    state: &UpstreamState,
    started: std::time::Instant,
    attempts: Vec<(DueEvent, Attempt)>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let at = now_ms();
    for (_, attempt) in &attempts {
        state.attempts.fetch_add(1, Relaxed);
        match attempt {
            Attempt::Delivered { .. } => {
                state.delivered.fetch_add(1, Relaxed);
                state.health.delivered(&up.name, started, at);
            }
            Attempt::Retry { answer, .. } | Attempt::Dead { answer } => {
                state.failures.fetch_add(1, Relaxed);
                state.health.failed(&up.name, started, at, answer);
                if let Ok(mut e) = state.last_error.lock() {
                    *e = Some(answer.clone());
                }
            }
        }
    }
    // If the store is gone (shutdown), the events stay pending and go again: same ids.
    let name = up.name.clone();
    let _ = store
        .write_async(move |tx| {
            for (ev, attempt) in &attempts {
                outbox::record(tx, &name, ev.id, &ev.event_id, at, attempt)?;
            }
            Ok(())
        })
        .await;
}

/// 2xx delivers; 408, 429, 5xx and transport failures retry; other 4xx are dead.
fn classify(up: &Upstream, ev: &DueEvent, answer: &Answer, at: i64) -> Attempt {
    let retry = |text: String| Attempt::Retry {
        answer: text,
        next_attempt_ms: at
            + backoff(up, ev.attempts + 1, ev.id as u64 ^ at as u64).as_millis() as i64,
    };
    match answer {
        Answer::Transport(e) => retry(e.clone()),
        Answer::Http { status, body } => {
            let text = format!("HTTP {status}: {}", http::keep(body));
            match *status {
                200..=299 => Attempt::Delivered { answer: text },
                408 | 429 | 500..=599 => retry(text),
                400..=499 => Attempt::Dead { answer: text },
                // Redirects and the like: not what an endpoint should say; keep trying
                // (visible in metrics) rather than dropping a failure.
                _ => retry(text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn ev(id: i64, kind: &str) -> DueEvent {
        DueEvent {
            id,
            event_id: id.to_string(),
            kind: kind.into(),
            body: b"{}".to_vec(),
            attempts: 0,
        }
    }

    fn cut(kinds: &[(i64, &str)], room: usize, idle: bool) -> Vec<Vec<i64>> {
        let due = kinds.iter().map(|(i, k)| ev(*i, k));
        batches(due, room, idle)
            .into_iter()
            .map(|b| b.into_iter().map(|e| e.id).collect())
            .collect()
    }

    #[test]
    fn batches_keep_rows_and_sample_records_in_the_order_they_were_stored() {
        let row = crate::store::EventKind::ResultRow.as_str();
        let rec = SAMPLE_RECORD;
        // Rows up to the first record; the record waits for them.
        assert_eq!(
            cut(&[(1, row), (2, row), (3, rec), (4, row)], 2, true),
            [vec![1, 2]]
        );
        // A record first goes alone when nothing is on the wire, and the rows after it wait.
        assert_eq!(cut(&[(3, rec), (5, rec), (6, row)], 2, true), [vec![3, 5]]);
        assert!(cut(&[(3, rec), (6, row)], 2, false).is_empty());
        // Rows in batches of BATCH_ROWS, at most `room` of them.
        let many: Vec<(i64, &str)> = (0..2500).map(|i| (i, row)).collect();
        let b = cut(&many, 2, true);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [1000, 1000]);
        assert_eq!((b[1][0], b[1][999]), (1000, 1999));
    }

    #[test]
    fn a_correction_or_a_stall_waits_until_everything_before_it_is_answered() {
        let row = |id: i64, status: &str| DueEvent {
            body: format!(r#"{{"id":"{id}","result_status":"{status}"}}"#).into_bytes(),
            ..ev(id, RESULT_ROW)
        };
        let due = |rows: Vec<DueEvent>, idle| -> Vec<Vec<i64>> {
            batches(rows.into_iter(), 2, idle)
                .into_iter()
                .map(|b| b.into_iter().map(|e| e.id).collect())
                .collect()
        };
        // The rows before a correction go; the correction waits for their answer.
        assert_eq!(
            due(
                vec![row(1, "F"), row(2, "P"), row(3, "C"), row(4, "F")],
                true
            ),
            [vec![1, 2]]
        );
        // Nothing on the wire: the correction leads its batch, the rows after it come along.
        assert_eq!(due(vec![row(3, "c"), row(4, "F")], true), [vec![3, 4]]);
        assert!(due(vec![row(3, "C"), row(4, "F")], false).is_empty());
        // A stall correction goes alone, to its own endpoint.
        assert_eq!(
            cut(
                &[(1, RESULT_ROW), (2, RESULT_STALL), (3, RESULT_ROW)],
                2,
                true
            ),
            [vec![1]]
        );
        assert_eq!(
            cut(&[(2, RESULT_STALL), (3, RESULT_ROW)], 2, true),
            [vec![2]]
        );
        assert_eq!(
            stalls_url("http://hub:8080/api/v1/results"),
            "http://hub:8080/api/v1/results/stalls"
        );
    }

    #[test]
    fn a_batch_body_is_one_array_of_the_rows() {
        let mut a = ev(1, crate::store::EventKind::ResultRow.as_str());
        a.body = br#"{"id":"a"}"#.to_vec();
        let mut b = ev(2, crate::store::EventKind::ResultRow.as_str());
        b.body = br#"[{"id":"b"}]"#.to_vec(); // stored by an older version
        assert_eq!(batch_body(&[a, b]), br#"[{"id":"a"},{"id":"b"}]"#);
        assert_eq!(
            samples_url("http://hub:8080/api/v1/results"),
            "http://hub:8080/api/v1/samples"
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let c = Config::parse(
            "[[upstream]]\nname=\"u\"\nurl=\"http://h/e\"\nsecret=\"k\"\n",
            "t",
        )
        .unwrap();
        let up = &c.upstreams[0];
        for seed in 0..200u64 {
            let d1 = backoff(up, 1, seed).as_millis();
            assert!((750..=1000).contains(&d1), "{d1}");
            let d4 = backoff(up, 4, seed).as_millis();
            assert!((6000..=8000).contains(&d4), "{d4}");
            let d30 = backoff(up, 30, seed).as_millis();
            assert!((225_000..=300_000).contains(&d30), "{d30}");
        }
    }
}
