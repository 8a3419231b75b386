//! The state every handler shares: the store and its pooled readers, the judge, the
//! configured instruments and their live status, the uplink, the per-token rate limit and
//! the per-address failure limit.

use super::ApiError;
use super::{abuse, ratelimit};
use crate::auth::{self, Principal, Role};
use crate::judge::Judge;
use crate::store::{Reader, Store};
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{FixedOffset, Utc};
use foodgate_devices::status::StatusHandle;
use foodgate_parsers::AliasTable;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// `last_used_at` of a token is written at most this often (not on every request).
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// An instrument the configuration names (its market decides who sees it).
#[derive(Debug, Clone)]
pub struct ConfiguredInstrument {
    pub id: String,
    pub market: String,
    pub protocol: String,
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    judge: Judge,
    aliases: AliasTable,
    utc_offset: FixedOffset,
    readers: Mutex<Vec<Reader>>,
    instruments: Vec<ConfiguredInstrument>,
    status: RwLock<Vec<StatusHandle>>,
    uplink: RwLock<Option<crate::uplink::UplinkHandle>>,
    last_used: Mutex<HashMap<String, Instant>>,
    requests: Mutex<HashMap<(String, u16), u64>>,
    buckets: ratelimit::Buckets,
    failures: abuse::FailureLimiter,
}

impl AppState {
    pub fn new(store: Store, judge: Judge) -> AppState {
        let aliases = judge.reference().alias_table();
        let utc_offset = store.settings().utc_offset;
        AppState {
            inner: Arc::new(Inner {
                store,
                judge,
                aliases,
                utc_offset,
                readers: Mutex::new(Vec::new()),
                instruments: Vec::new(),
                status: RwLock::new(Vec::new()),
                uplink: RwLock::new(None),
                last_used: Mutex::new(HashMap::new()),
                requests: Mutex::new(HashMap::new()),
                buckets: ratelimit::Buckets::new(ratelimit::RateLimit::default()),
                failures: abuse::FailureLimiter::new(abuse::FailureLimit::default()),
            }),
        }
    }

    /// The per-token rate limit (before the state is shared); the default is
    /// [`ratelimit::RateLimit::default`].
    pub fn with_rate_limit(self, limit: ratelimit::RateLimit) -> AppState {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.buckets = ratelimit::Buckets::new(limit);
                AppState {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => AppState { inner },
        }
    }

    /// The limit on failed sign-ins and bad-token requests per client address (before the
    /// state is shared); the default is [`abuse::FailureLimit::default`].
    pub fn with_failure_limit(self, limit: abuse::FailureLimit) -> AppState {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.failures = abuse::FailureLimiter::new(limit);
                AppState {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => AppState { inner },
        }
    }

    pub(crate) fn failures(&self) -> &abuse::FailureLimiter {
        &self.inner.failures
    }

    /// The configured instruments (before the state is shared).
    pub fn with_instruments(self, instruments: Vec<ConfiguredInstrument>) -> AppState {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.instruments = instruments;
                AppState {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => AppState { inner },
        }
    }

    /// Live link status of the instruments (`serve` sets it when it starts the links).
    pub fn set_instrument_status(&self, handles: Vec<StatusHandle>) {
        if let Ok(mut s) = self.inner.status.write() {
            *s = handles;
        }
    }

    /// The running uplink (`serve` sets it), for its live figures in `/metrics`.
    pub fn set_uplink(&self, handle: crate::uplink::UplinkHandle) {
        if let Ok(mut u) = self.inner.uplink.write() {
            *u = Some(handle);
        }
    }

    pub(crate) fn uplink(&self) -> Option<crate::uplink::UplinkHandle> {
        self.inner.uplink.read().ok().and_then(|u| u.clone())
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn judge(&self) -> &Judge {
        &self.inner.judge
    }

    pub fn aliases(&self) -> &AliasTable {
        &self.inner.aliases
    }

    pub fn utc_offset(&self) -> FixedOffset {
        self.inner.utc_offset
    }

    /// Run `f` on a pooled store reader in a blocking task.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = state.inner.readers.lock().ok().and_then(|mut p| p.pop());
            let reader = match pooled {
                Some(r) => r,
                None => state.inner.store.reader().map_err(ApiError::internal)?,
            };
            let out = f(&reader);
            if let Ok(mut p) = state.inner.readers.lock() {
                if p.len() < 8 {
                    p.push(reader);
                }
            }
            out
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Authenticate the request and check its role; 401 or 403 otherwise.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        roles: &[Role],
    ) -> Result<Principal, ApiError> {
        let header = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default());
        let principal = self
            .read(move |reader| {
                auth::authenticate(reader, header.as_deref(), Utc::now()).map_err(ApiError::from)
            })
            .await?;
        if let Err(wait) = self.inner.buckets.take(&principal.name, Instant::now()) {
            let limit = self.inner.buckets.limit();
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "token {:?} made more than {} requests per second (bursts of {}): retry in {secs} s",
                    principal.name, limit.per_second, limit.burst
                ),
            )
            .retry_after(secs));
        }
        if !roles.contains(&principal.role) {
            return Err(ApiError::forbidden(format!(
                "a {} token may not do this (allowed: {})",
                principal.role,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.touch(&principal.name).await;
        Ok(principal)
    }

    async fn touch(&self, name: &str) {
        let due = match self.inner.last_used.lock() {
            Ok(mut m) => {
                let now = Instant::now();
                match m.get(name) {
                    Some(t) if now.duration_since(*t) < LAST_USED_EVERY => false,
                    _ => {
                        m.insert(name.to_string(), now);
                        true
                    }
                }
            }
            Err(_) => false,
        };
        if due {
            let name = name.to_string();
            let at = crate::store::insert::rfc3339(Utc::now());
            // Best effort: a failure to note the time of use must not fail the request.
            let _ = self
                .inner
                .store
                .write_async(move |tx| crate::store::tokens::touch(tx, &name, &at))
                .await;
        }
    }

    pub(crate) fn count_request(&self, route: String, status: u16) {
        if let Ok(mut m) = self.inner.requests.lock() {
            *m.entry((route, status)).or_insert(0) += 1;
        }
    }

    pub(crate) fn request_counts(&self) -> Vec<((String, u16), u64)> {
        let mut v: Vec<_> = match self.inner.requests.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    pub(crate) fn instruments(&self) -> &[ConfiguredInstrument] {
        &self.inner.instruments
    }

    pub(crate) fn instrument_status(&self) -> Vec<foodgate_devices::status::InstrumentStatus> {
        match self.inner.status.read() {
            Ok(s) => s.iter().map(StatusHandle::snapshot).collect(),
            Err(_) => Vec::new(),
        }
    }
}
