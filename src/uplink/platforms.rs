//! Delivery to a regulator platform (`docs/platforms.md`): the records of one job go in as
//! few requests as the platform takes (zhejiang up to 100, guangdong by item and device, a
//! template by its `batch` and `batch_by`; jiangsu one per call). Each request is made when
//! it is sent, with the codes file as it is then; a record that cannot be made is dead at
//! once and never holds up the others. A platform with a login gets the kept token, or a new
//! one, and when an answer says the token expired it logs in once more and sends again. A
//! data error refuses a whole request: its records are sent again in halves until the
//! refused one stands alone, so one bad record never blocks the rest.

use super::http::{self, Answer};
use crate::config::Upstream;
use crate::platform::{self, PlatformOutcome, PlatformRequest, Record, Unsendable};
use crate::store::outbox::{Attempt, DueEvent};
use std::collections::HashMap;
use std::sync::Mutex;

/// A platform's login as the events on the wire share it.
#[derive(Debug, Default)]
pub struct PlatformSession {
    /// The token, kept until an answer says it expired.
    token: Mutex<Option<String>>,
    /// Held while logging in, so the requests on the wire log in once, not once each.
    login: tokio::sync::Mutex<()>,
}

/// Cut due records (oldest first) into at most `room` jobs of up to `size` records that may
/// share a request. A body that is not a record goes alone (it is dead at once).
pub(super) fn jobs(
    up: &Upstream,
    fresh: impl Iterator<Item = DueEvent>,
    room: usize,
    size: usize,
) -> Vec<Vec<DueEvent>> {
    let mut out: Vec<Vec<DueEvent>> = Vec::new();
    let mut open: HashMap<Vec<String>, usize> = HashMap::new();
    for ev in fresh {
        let key = Record::from_body(&ev.body).map(|r| platform::batch_key(up, &r));
        let Ok(key) = key else {
            if out.len() >= room {
                break;
            }
            out.push(vec![ev]);
            continue;
        };
        match open.get(&key) {
            Some(&i) if out[i].len() < size => out[i].push(ev),
            _ => {
                if out.len() >= room {
                    break;
                }
                open.insert(key, out.len());
                out.push(vec![ev]);
            }
        }
    }
    out
}

/// How one request went.
enum Sent {
    Delivered(String),
    Dead(String),
    Retry(String),
    /// The request (or its login) could not be made.
    Unsendable(String),
}

/// The attempt for each event of `job`, in order; `retry_at(attempts, seed)` is when a
/// retried one goes again.
pub(super) async fn attempts(
    client: &http::Client,
    up: &Upstream,
    session: &PlatformSession,
    job: &[DueEvent],
    offset: chrono::FixedOffset,
    retry_at: impl Fn(u32, u64) -> i64,
) -> Vec<Attempt> {
    // The records of a request retried together come back together: one time for all.
    let retry_at = |group: &[(usize, Record)]| {
        let first = group.first().map(|(i, _)| &job[*i]);
        let attempts = group
            .iter()
            .map(|(i, _)| job[*i].attempts)
            .max()
            .unwrap_or(0);
        retry_at(attempts + 1, first.map_or(0, |e| e.id as u64))
    };
    let dead = |text: &str| Attempt::Dead {
        answer: text.to_string(),
    };
    let codes = match platform::load_codes(up) {
        Ok(c) => c,
        Err(e) => return job.iter().map(|_| dead(&e.to_string())).collect(),
    };
    let mut out: Vec<Option<Attempt>> = vec![None; job.len()];
    let mut ready: Vec<(usize, Record)> = Vec::with_capacity(job.len());
    for (i, ev) in job.iter().enumerate() {
        // Each record alone first: a missing code is this record's fault, not the request's.
        let made = Record::from_body(&ev.body)
            .map_err(Unsendable::from)
            .and_then(|r| platform::request_many(up, &codes, &[&r], offset, Some("")).map(|_| r));
        match made {
            Ok(r) => ready.push((i, r)),
            Err(e) => out[i] = Some(dead(&e.to_string())),
        }
    }
    let mut groups = vec![ready];
    while let Some(mut group) = groups.pop() {
        if group.is_empty() {
            continue;
        }
        let records: Vec<&Record> = group.iter().map(|(_, r)| r).collect();
        let sent = exchange(client, up, session, |token| {
            platform::request_many(up, &codes, &records, offset, token)
        })
        .await;
        match sent {
            Sent::Delivered(t) => group
                .iter()
                .for_each(|(i, _)| out[*i] = Some(Attempt::Delivered { answer: t.clone() })),
            Sent::Retry(t) => {
                let next = retry_at(&group);
                for (i, _) in &group {
                    out[*i] = Some(Attempt::Retry {
                        answer: t.clone(),
                        next_attempt_ms: next,
                    });
                }
            }
            Sent::Dead(t) | Sent::Unsendable(t) if group.len() == 1 => {
                out[group[0].0] = Some(dead(&t))
            }
            Sent::Dead(_) => {
                let second = group.split_off(group.len() / 2);
                groups.push(second);
                groups.push(group);
            }
            Sent::Unsendable(t) => group.iter().for_each(|(i, _)| out[*i] = Some(dead(&t))),
        }
    }
    out.into_iter()
        .map(|a| a.unwrap_or_else(|| dead("not attempted")))
        .collect()
}

/// Send the request `make` builds for the token, logging in first where the platform needs
/// it and once more when the answer says the token expired.
async fn exchange(
    client: &http::Client,
    up: &Upstream,
    state: &PlatformSession,
    make: impl Fn(Option<&str>) -> Result<PlatformRequest, Unsendable>,
) -> Sent {
    let login = platform::login_request(up);
    let kept = |state: &PlatformSession| state.token.lock().ok().and_then(|t| t.clone());
    let keep = |state: &PlatformSession, t: Option<String>| {
        if let Ok(mut k) = state.token.lock() {
            *k = t;
        }
    };
    // Forget `used` only if it is still the kept one: one expiry, one new login.
    let forget = |state: &PlatformSession, used: Option<&str>| {
        if let Ok(mut k) = state.token.lock() {
            if k.as_deref() == used {
                *k = None;
            }
        }
    };
    let mut last = String::new();
    for round in 0..2 {
        let mut token = kept(state);
        let login_guard = match (&login, &token) {
            (Some(_), None) => Some(state.login.lock().await),
            _ => None,
        };
        if token.is_none() {
            // Another request may have logged in while this one waited.
            token = kept(state);
        }
        if let (Some(req), None) = (&login, &token) {
            let req = match req {
                Ok(r) => r.clone(),
                Err(e) => return Sent::Unsendable(format!("login: {e}")),
            };
            let got = match http::send(client, up, req).await {
                Answer::Transport(e) => Err(format!("login: {e}")),
                Answer::Http { status, body } => platform::login_token(up, status, &body),
            };
            match got {
                Ok(t) => {
                    keep(state, Some(t.clone()));
                    token = Some(t);
                }
                Err(e) => return Sent::Retry(e),
            }
        }
        drop(login_guard);
        let req = match make(token.as_deref()) {
            Ok(r) => r,
            Err(e) => return Sent::Unsendable(e.to_string()),
        };
        match http::send(client, up, req).await {
            Answer::Transport(e) => return Sent::Retry(e),
            Answer::Http { status, body } => match platform::classify(up, status, &body) {
                PlatformOutcome::Delivered(t) => return Sent::Delivered(t),
                PlatformOutcome::Dead(t) => return Sent::Dead(t),
                PlatformOutcome::Retry(t) => return Sent::Retry(t),
                PlatformOutcome::Expired(t) => {
                    forget(state, token.as_deref());
                    last = format!("token expired (round {}): {t}", round + 1);
                }
            },
        }
    }
    Sent::Retry(last)
}

/// Log in to platform upstream `up` now (for `foodgate upstream check`): the token, or why
/// there is none; `Ok(None)` for a platform without a login.
pub async fn login(up: &Upstream) -> Result<Option<String>, String> {
    let Some(req) = platform::login_request(up) else {
        return Ok(None);
    };
    let req = req.map_err(|e| format!("login: {e}"))?;
    match http::send(&http::client(), up, req).await {
        Answer::Transport(e) => Err(format!("login: {e}")),
        Answer::Http { status, body } => platform::login_token(up, status, &body).map(Some),
    }
}
