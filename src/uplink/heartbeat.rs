//! `guangdong`'s device heartbeat (`docs/platforms.md`): every `heartbeat_s`, each instrument
//! the codes file names a device number for goes to the platform's `status_url` as on (`1`),
//! running (`2`: read within the last interval, at least the last [`RUNNING_MIN`]) or off (`0`). A heartbeat is a status, not a
//! record: one that fails is logged and superseded by the next, never queued.

use super::http::{self, Answer};
use crate::config::Upstream;
use crate::platform::{guangdong, Codes, PlatformOutcome};
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::watch;

/// A device read this recently is running, however short the interval.
const RUNNING_MIN: std::time::Duration = std::time::Duration::from_secs(600);

/// Send heartbeats for `up` until `shutdown`, the first at once.
pub(super) async fn run(store: Store, up: Arc<Upstream>, mut shutdown: watch::Receiver<bool>) {
    let Some((status_url, every)) = up.platform.as_ref().and_then(|p| p.heartbeat.clone()) else {
        return;
    };
    let client = http::client();
    loop {
        beat(&store, &up, &client, &status_url, every).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One round: every coded instrument's status. Returns how many the platform took.
async fn beat(
    store: &Store,
    up: &Upstream,
    client: &http::Client,
    status_url: &str,
    every: std::time::Duration,
) -> usize {
    let Some(cfg) = &up.platform else { return 0 };
    let codes = match Codes::load(&cfg.codes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(upstream = %up.name, "heartbeat: {e}");
            return 0;
        }
    };
    let instruments = match store
        .reader()
        .and_then(|r| Ok(crate::store::stats::recorded_instruments(&r)?))
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(upstream = %up.name, "heartbeat: instruments unreadable: {e}");
            return 0;
        }
    };
    let window = every.max(RUNNING_MIN);
    let recent = chrono::Utc::now()
        - chrono::Duration::from_std(window).unwrap_or_else(|_| chrono::Duration::hours(1));
    let mut taken = 0;
    for i in instruments {
        let Ok(device) = codes.code("devices", &i.id) else {
            continue;
        };
        let running = i
            .last_seen
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t >= recent);
        let status = guangdong::device_status(i.online, running);
        let req = guangdong::heartbeat_request(status_url, cfg, device, status);
        match http::send(client, up, req).await {
            Answer::Http { status: s, body } => match guangdong::classify(s, &body) {
                PlatformOutcome::Delivered(_) => taken += 1,
                other => {
                    tracing::warn!(upstream = %up.name, instrument = %i.id, "heartbeat refused: {other:?}")
                }
            },
            Answer::Transport(e) => {
                tracing::warn!(upstream = %up.name, instrument = %i.id, "heartbeat: {e}")
            }
        }
    }
    taken
}
