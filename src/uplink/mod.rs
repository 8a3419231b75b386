//! The uplink: delivers the outbox to every `[[upstream]]` (SPEC.md, "Upstream events").
//!
//! One task per upstream keeps up to [`IN_FLIGHT`] events on the wire at once, each on its
//! own schedule, so one event that fails or hangs never holds back the others; only the
//! events of one hold wait for each other (the query in [`crate::store::outbox::due`]).
//! Every result is committed through the store's writer before the event can be picked
//! again, so delivery state (attempts, next attempt, last answer) survives restarts.
//! The worker sleeps until the next retry is due or the store commits new events.

mod health;
mod http;

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
    pub fn stats(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Vec<UplinkStats>> {
        let now = now_ms();
        let counts = outbox::counts(conn)?;
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
        tasks.spawn(run_upstream(store.clone(), up, state, shutdown.clone()));
    }
    (
        UplinkHandle {
            states: Arc::new(states),
        },
        tasks,
    )
}

async fn run_upstream(
    store: Store,
    up: Upstream,
    state: Arc<UpstreamState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let up = Arc::new(up);
    let client = http::client();
    let reader = Arc::new(Mutex::new(store.reader()?));
    let mut wake = store.wake();
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut tasks: JoinSet<i64> = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        while let Some(done) = tasks.try_join_next() {
            if let Ok(id) = done {
                in_flight.remove(&id);
            }
        }
        // Mark the wake-up seen before reading, so a commit after the read wakes us again.
        wake.borrow_and_update();
        let room = IN_FLIGHT.saturating_sub(in_flight.len());
        let now = now_ms();
        let (due, next) = {
            let reader = reader.clone();
            let name = up.name.clone();
            let limit = room + in_flight.len();
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
        let fresh: Vec<DueEvent> = due
            .into_iter()
            .filter(|e| !in_flight.contains(&e.id))
            .take(room)
            .collect();
        for ev in fresh {
            in_flight.insert(ev.id);
            tasks.spawn(deliver(
                store.clone(),
                up.clone(),
                client.clone(),
                state.clone(),
                ev,
            ));
        }
        // Never sleep long: another process (`foodgate ingest`, `outbox retry`) may have
        // queued events this process's store did not signal.
        let sleep = next
            .map(|t| Duration::from_millis((t - now_ms()).clamp(0, IDLE_POLL_MS) as u64))
            .unwrap_or(Duration::from_millis(IDLE_POLL_MS as u64));
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
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

/// One attempt at one event, its result committed; returns the event's row id.
async fn deliver(
    store: Store,
    up: Arc<Upstream>,
    client: http::Client,
    state: Arc<UpstreamState>,
    ev: DueEvent,
) -> i64 {
    use std::sync::atomic::Ordering::Relaxed;
    state.attempts.fetch_add(1, Relaxed);
    let started = std::time::Instant::now();
    let answer = http::post(&client, &up, &ev.event_id, ev.body.clone()).await;
    let at = now_ms();
    let attempt = classify(&up, &ev, &answer, at);
    match &attempt {
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
    let id = ev.id;
    // If the store is gone (shutdown), the event stays pending and goes again: same id.
    let _ = store
        .write_async(move |tx| outbox::record(tx, id, at, &attempt))
        .await;
    id
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
            let text = format!("HTTP {status}: {body}");
            match *status {
                200..=299 => {
                    if up.format == Format::Results {
                        return results_row_outcome(body, text, retry);
                    }
                    Attempt::Delivered { answer: text }
                }
                408 | 429 | 500..=599 => retry(text),
                400..=499 => Attempt::Dead { answer: text },
                // Redirects and the like: not what an endpoint should say; keep trying
                // (visible in metrics) rather than dropping a failure.
                _ => retry(text),
            }
        }
    }
}

/// A hub answers `{"results":[{"status":…}]}` for the one row sent.
fn results_row_outcome(body: &str, text: String, retry: impl Fn(String) -> Attempt) -> Attempt {
    let status = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("results")?
                .get(0)?
                .get("status")?
                .as_str()
                .map(str::to_string)
        });
    match status.as_deref() {
        Some("stored" | "duplicate") => Attempt::Delivered { answer: text },
        Some("rejected") => Attempt::Dead { answer: text },
        _ => retry(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
