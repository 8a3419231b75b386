//! The service `foodgate serve` runs, as a library: the router (API and pages), and the
//! startup around it (store, instrument links, uplink workers, retention, HTTP).
//!
//! [`start`] opens the store of a [`Config`] and starts everything on a listener the caller
//! bound (port 0 picks a free one), so tests run the whole service in-process;
//! [`Running::shutdown`] stops it gracefully: links stop taking data, the writer commits what
//! it already has, the store closes. [`run`] is the same body for a caller that opened the
//! store itself (the demo) and decides when it stops.

use crate::api;
use crate::config::Config;
use crate::http::abuse::{AuthFailed, FailureLimit};
use crate::http::conn::Timeouts;
use crate::http::ratelimit::RateLimit;
use crate::http::{ApiError, AppState, ConfiguredInstrument};
use crate::judge::{Judge, Reference, ReferenceError};
use crate::links;
use crate::store::{self, Store, StoreError, StoreSettings};
use crate::uplink;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How often the instruments' status is written to the store (and at shutdown).
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The API's routes and the pages, with JSON errors, request metrics and the body limit.
pub fn router(state: AppState) -> Router {
    use crate::api::{
        coverage, exposure, hold_states, holds, ops, outbox, plan, reports, results, risk, samples,
        stalls, trace,
    };
    Router::new()
        .route("/api/v1/results", post(results::upload).get(results::list))
        .route("/api/v1/results/stalls", post(stalls::correct))
        .route("/api/v1/results/holds", post(hold_states::mirror))
        .route("/api/v1/samples", post(samples::upload))
        .route("/api/v1/coverage", get(coverage::coverage))
        .route("/api/v1/reports/monthly", get(reports::monthly))
        .route("/api/v1/trace", get(trace::trace))
        .route("/api/v1/risk", get(risk::risk))
        .route("/api/v1/plan", get(plan::plan))
        .route("/api/v1/exposure", get(exposure::exposure))
        .route("/api/v1/holds", get(holds::list))
        .route("/api/v1/holds/{id}", patch(holds::patch_hold))
        .route("/api/v1/holds/{id}/retest", post(holds::retest))
        .route("/api/v1/holds/{id}/actions", post(holds::act))
        .route("/api/v1/instruments", get(ops::instruments))
        .route("/api/v1/outbox", get(outbox::list))
        .route("/api/v1/outbox/{id}/retry", post(outbox::retry))
        .route("/api/v1/openapi.json", get(api::openapi::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::web::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_failures,
        ))
        // After routing, so the matched route names the metric (not the raw path); outside
        // the failure limit, so its 429s are counted too.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// axum's own rejections (405, 413, 415, bad query strings) are plain text: make them JSON.
/// The pages' own error pages (`text/html`, see [`crate::web`]) stay as they are.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let keep = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if status.as_u16() < 400 || keep {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response();
    for (k, v) in parts.headers.iter() {
        if k == header::ALLOW {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state.count_request(route, resp.status().as_u16());
    resp
}

/// Does this request present a credential to check (a token, a sign-in code)?
fn presents_credential(req: &Request) -> bool {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return true;
    }
    req.uri().path() == "/login"
        && (req.method() == Method::POST
            || req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("code="))))
}

/// Failed sign-ins and bad tokens per client address: an address over its limit is answered
/// 429 on any request that presents a credential, before the credential is looked at.
async fn limit_failures(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Without a peer address (a router called in-process) there is nobody to limit.
    let Some(ip) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    let limiter = state.failures();
    if presents_credential(&req) {
        if let Err(wait) = limiter.check(ip, Instant::now()) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let FailureLimit { failures, window } = limiter.limit();
            tracing::debug!(%ip, "client address over its failure limit: refused for {secs} s");
            if req.uri().path() == "/login" {
                return crate::web::signin::too_many_failures(failures, window.as_secs(), secs);
            }
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!(
                    "{failures} failed sign-ins or bad tokens from this address within {} s: retry in {secs} s",
                    window.as_secs()
                ),
            )
            .retry_after(secs)
            .into_response();
        }
    }
    let resp = next.run(req).await;
    if resp.extensions().get::<AuthFailed>().is_some() && limiter.record(ip, Instant::now()) {
        let FailureLimit { failures, window } = limiter.limit();
        tracing::warn!(
            %ip,
            "{failures} failed sign-ins or bad tokens from one address within {} s: its credentials are refused (429) until the window passes",
            window.as_secs()
        );
    }
    resp
}

/// Serve the API and pages of `state` on `listener` until `shutdown` completes, with the
/// default [`Timeouts`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Timeouts::default(), shutdown).await
}

/// [`serve`] with these connection timeouts.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http::conn::serve(listener, router(state), timeouts, shutdown).await
}

/// Why the service did not start (or a part of it failed).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("cannot open the store {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// An instrument link could not start (a TCP address that cannot be bound).
    #[error("{0:#}")]
    Links(anyhow::Error),
    /// The service ended before it was ready.
    #[error("the service stopped while starting")]
    Ended,
}

/// Where everything listens once started: the API, and each TCP instrument link (port 0
/// in the config picks a free port).
#[derive(Debug, Clone)]
pub struct Ready {
    pub api: SocketAddr,
    /// `(instrument id, address bound)` of every TCP link.
    pub instruments: Vec<(String, SocketAddr)>,
}

/// How a started service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop, and it did.
    Clean,
    /// A part stopped by itself (the API server, an uplink worker): why.
    Failed(String),
}

/// The reference data `config` names (`limits`), or the built-in one.
pub fn reference(config: &Config) -> Result<Arc<Reference>, ReferenceError> {
    match config.limits.as_ref() {
        None => Ok(Reference::builtin()),
        Some(path) => Ok(Arc::new(Reference::load(path)?)),
    }
}

/// Open the store of `config`, judging with `reference`.
pub fn open_store(config: &Config, reference: &Arc<Reference>) -> Result<Store, ServiceError> {
    let path = config.database_path();
    let settings = StoreSettings::from_config(config).with_judge(Judge::new(reference.clone()));
    Store::open(&path, settings).map_err(|source| ServiceError::Store { path, source })
}

/// A service started by [`start`].
#[derive(Debug)]
pub struct Running {
    ready: Ready,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<Stopped, ServiceError>>>,
}

impl Running {
    /// The address of the API and pages.
    pub fn addr(&self) -> SocketAddr {
        self.ready.api
    }

    /// Where everything listens.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The service's store (for tests that look at it while the service runs).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Run until `signal` completes or a part stops by itself, then stop gracefully.
    pub async fn run_until(
        mut self,
        signal: impl Future<Output = ()>,
    ) -> Result<Stopped, ServiceError> {
        let Some(mut task) = self.task.take() else {
            return Ok(Stopped::Clean);
        };
        tokio::pin!(signal);
        tokio::select! {
            () = &mut signal => {}
            done = &mut task => return joined(done),
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        joined(task.await)
    }

    /// Stop gracefully: links and workers stop, the writer commits what it has, the store
    /// closes; returns once it has.
    pub async fn shutdown(self) -> Result<Stopped, ServiceError> {
        self.run_until(std::future::ready(())).await
    }
}

impl Drop for Running {
    /// Dropped without [`Running::shutdown`]: still ask it to stop (it goes on stopping as
    /// long as the runtime runs).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn joined(
    done: Result<Result<Stopped, ServiceError>, tokio::task::JoinError>,
) -> Result<Stopped, ServiceError> {
    match done {
        Ok(r) => r,
        Err(e) => Ok(Stopped::Failed(format!("the service panicked: {e}"))),
    }
}

/// Open the store of `config` and start the service on `listener`; returns once everything
/// listens.
pub async fn start(config: Config, listener: TcpListener) -> Result<Running, ServiceError> {
    let reference = reference(&config)?;
    let store = open_store(&config, &reference)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let task = tokio::spawn(run(
        config,
        store.clone(),
        reference,
        listener,
        async move {
            let _ = stopped.await;
        },
        move |ready| {
            let _ = ready_tx.send(ready);
        },
    ));
    match ready_rx.await {
        Ok(ready) => Ok(Running {
            ready,
            store,
            stop: Some(stop),
            task: Some(task),
        }),
        // Not ready: `run` returned before (its error is the reason).
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            _ => Err(ServiceError::Ended),
        },
    }
}

/// The service around `store` (opened with the config's settings): links, uplink workers,
/// retention and the API on `listener`, until `shutdown` completes or a part fails; closes
/// the store. `on_ready` is called once everything listens.
pub async fn run(
    config: Config,
    store: Store,
    reference: Arc<Reference>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(Ready),
) -> Result<Stopped, ServiceError> {
    warn_unknown_markets(&config, &store);
    crate::markets::warn_if_registry_empty(&store);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut links = match links::start(&config, &store, reference.clone(), stop_rx.clone()).await {
        Ok(l) => l,
        Err(e) => {
            let _ = stop_tx.send(true);
            store.close_async().await;
            return Err(ServiceError::Links(e));
        }
    };
    if let Err(e) = links.persist(&store).await {
        tracing::warn!("cannot write the instruments' status: {e}");
    }
    let (uplink_handle, mut workers) =
        uplink::spawn(store.clone(), config.upstreams.clone(), stop_rx.clone());
    let pruner = store::retention::spawn(
        store.clone(),
        config
            .raw_retention_days
            .unwrap_or(store::retention::DEFAULT_DAYS),
        Some(config.data_dir.join("raw")),
        stop_rx.clone(),
    );
    let deadlines = store::hold_deadlines::spawn_deadlines(store.clone(), stop_rx);

    let limits = config.server_limits;
    let api_state = AppState::new(store.clone(), Judge::new(reference))
        .with_instruments(
            config
                .instruments
                .iter()
                .map(|i| ConfiguredInstrument {
                    id: i.id.clone(),
                    market: i.market.clone(),
                    protocol: i.protocol.as_str().to_string(),
                })
                .collect(),
        )
        .with_rate_limit(RateLimit {
            per_second: limits.api_rate_per_s,
            burst: f64::from(limits.api_burst),
        })
        .with_failure_limit(FailureLimit::per_minute(limits.auth_failures_per_minute));
    let timeouts = Timeouts {
        header: limits.header_timeout,
        idle: limits.idle_timeout,
    };
    api_state.set_uplink(uplink_handle);
    api_state.set_instrument_status(links.links.iter().map(|l| l.status.clone()).collect());
    let bound = listener.local_addr().unwrap_or(config.listen);
    let mut api_stop = stop_tx.subscribe();
    let mut api_task = tokio::spawn(serve_with(listener, api_state, timeouts, async move {
        let _ = api_stop.wait_for(|s| *s).await;
    }));
    on_ready(Ready {
        api: bound,
        instruments: links
            .links
            .iter()
            .filter_map(|l| l.bound.map(|a| (l.id.clone(), a)))
            .collect(),
    });
    let watcher = {
        let links = &links;
        let store = store.clone();
        let rx = stop_tx.subscribe();
        async move { links.watch(&store, STATUS_EVERY, rx).await }
    };
    let mut failed = None;
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {}
        done = &mut api_task => {
            failed = Some(match done {
                Ok(Ok(())) => "the API server stopped".to_string(),
                Ok(Err(e)) => format!("the API server failed: {e}"),
                Err(e) => format!("the API server panicked: {e}"),
            });
        }
        () = watcher => {}
        Some(done) = workers.join_next(), if !workers.is_empty() => {
            failed = Some(match done {
                Ok(Ok(())) => "an uplink worker stopped".to_string(),
                Ok(Err(e)) => format!("an uplink worker failed: {e}"),
                Err(e) => format!("an uplink worker panicked: {e}"),
            });
        }
    }
    // Stop taking new work, then let the writer commit what it already has.
    let _ = stop_tx.send(true);
    links.join().await;
    let _ = pruner.await;
    let _ = deadlines.await;
    while workers.join_next().await.is_some() {}
    if !api_task.is_finished() {
        let _ = api_task.await;
    }
    if let Err(e) = links.persist(&store).await {
        tracing::warn!("cannot write the instruments' status: {e}");
    }
    store.close_async().await;
    Ok(failed.map_or(Stopped::Clean, Stopped::Failed))
}

/// An instrument of an unknown market cannot store anything: say so at start.
fn warn_unknown_markets(config: &Config, store: &Store) {
    let Ok(conn) = store.reader() else { return };
    for i in &config.instruments {
        let known = crate::store::markets::exists(&conn, &i.market).unwrap_or(true);
        if !known {
            tracing::warn!(
                instrument = %i.id,
                "market {:?} is not in the registry: its readings are refused until it is",
                i.market
            );
        }
    }
}
