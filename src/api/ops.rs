//! Instruments, health, metrics and the OpenAPI document.

use super::schemas::{ErrorBody, HealthDoc};
use crate::auth::Role;
use crate::http::{ApiError, AppState};
use crate::store::stats::{self, InstrumentRow, StoreFigures};
use crate::uplink::UplinkStats;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// `GET /api/v1/instruments`, by id.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = InstrumentsPage)]
pub struct InstrumentsPageDoc {
    pub instruments: Vec<InstrumentView>,
}

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct InstrumentView {
    pub id: String,
    pub market: String,
    pub protocol: String,
    pub online: bool,
    #[schema(format = DateTime)]
    pub last_seen: Option<String>,
    pub serial_number: Option<String>,
    pub firmware: Option<String>,
    pub readings: u64,
    pub duplicates: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// A polled instrument (`lz4000t`, `tl310`, `dy723pc`): how its polls went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollView>,
}

/// The polling of a polled instrument, as `GET /api/v1/instruments` shows it.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct PollView {
    /// When the last poll that reached the device ended.
    #[schema(format = DateTime)]
    pub last_poll_at: Option<String>,
    /// The last local day whose records were all read and stored (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub last_complete_day: Option<String>,
    /// At the last poll: records read, of them new, of them stored before.
    pub records: u64,
    pub new: u64,
    pub duplicates: u64,
    /// Requests whose reply was missing or broken, since the service started.
    pub protocol_errors: u64,
}

/// `GET /api/v1/instruments`: configured and recorded instruments, with live link status.
#[utoipa::path(get, path = "/api/v1/instruments", operation_id = "list_instruments",
    summary = "Instruments and their links (scoped)",
    responses((status = 200, description = "the instruments, by id", body = InstrumentsPageDoc)))]
pub async fn instruments(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = state.authorize(&headers, &Role::ALL).await?;
    let list: Vec<_> = instrument_views(&state)
        .await?
        .into_iter()
        .filter(|i| who.covers(&i.market))
        .collect();
    Ok(Json(serde_json::json!({ "instruments": list })))
}

/// Every instrument the store recorded or the config names, with its live link status,
/// ordered by id (the API and the dashboard show the same list).
pub async fn instrument_views(state: &AppState) -> Result<Vec<InstrumentView>, ApiError> {
    let recorded = state
        .read(|conn| Ok(stats::recorded_instruments(conn)?))
        .await?;
    let mut all: BTreeMap<String, InstrumentView> = BTreeMap::new();
    for i in recorded {
        all.insert(i.id.clone(), i.into());
    }
    for c in state.instruments() {
        let e = all.entry(c.id.clone()).or_default();
        e.id = c.id.clone();
        e.market = c.market.clone();
        e.protocol = c.protocol.clone();
    }
    for s in state.instrument_status() {
        // A live link whose instrument is neither configured nor recorded has no market:
        // it cannot be scoped, so it is not shown.
        let Some(e) = all.get_mut(&s.id) else {
            continue;
        };
        e.online = s.online;
        if let Some(t) = s.last_seen() {
            e.last_seen = Some(crate::store::insert::rfc3339(t));
        }
        e.serial_number = s.serial_number.clone().or(e.serial_number.take());
        e.firmware = s.firmware.clone().or(e.firmware.take());
        // The counters stay the stored totals over every run (written every few seconds):
        // the live ones count this run only.
        if s.last_error.is_some() {
            e.last_error = s.last_error.clone();
        }
        if s.protocol
            .parse::<foodgate_parsers::Protocol>()
            .is_ok_and(|p| p.is_polled())
        {
            e.poll = Some(PollView {
                last_poll_at: s.last_poll_at.map(crate::store::insert::rfc3339),
                last_complete_day: s
                    .last_complete_day
                    .map(|d| d.format("%Y-%m-%d").to_string()),
                records: s.last_poll_records,
                new: s.last_poll_new,
                duplicates: s.last_poll_duplicates,
                protocol_errors: s.protocol_errors,
            });
        }
    }
    Ok(all.into_values().collect())
}

impl From<InstrumentRow> for InstrumentView {
    fn from(r: InstrumentRow) -> Self {
        InstrumentView {
            id: r.id,
            market: r.market,
            protocol: r.protocol,
            online: r.online,
            last_seen: r.last_seen,
            serial_number: r.serial_number,
            firmware: r.firmware,
            readings: r.readings,
            duplicates: r.duplicates,
            decode_errors: r.decode_errors,
            reconnects: r.reconnects,
            last_error: r.last_error,
            poll: None,
        }
    }
}

/// `GET /healthz`: 200 when a write transaction commits within 5 s, else 503.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", security(()),
    summary = "200 when the database is writable",
    responses(
        (status = 200, description = "ok", body = HealthDoc),
        (status = 503, description = "no write committed within 5 s", body = ErrorBody),
    ))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let probe = state.store().write_async(|tx| stats::health_probe(tx));
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(markets)) => {
            Json(serde_json::json!({"status": "ok", "markets": markets})).into_response()
        }
        Ok(Err(e)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", e.to_string())
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "the database did not commit a write within 5 s",
        )
        .into_response(),
    }
}

/// One scrape's figures, encoded by prometheus-client on a registry made for the scrape.
#[derive(Debug)]
struct Scrape {
    store: StoreFigures,
    live: Vec<UplinkStats>,
    now_ms: i64,
    online: usize,
    offline: usize,
    requests: Vec<((String, u16), u64)>,
    /// Holds overdue now (no passing re-sample within `server.resample_days`).
    overdue: i64,
}

/// Longest `error` label of `foodgate_upstream_last_error`, in characters.
const ERROR_LABEL_CHARS: usize = 200;

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        {
            let mut m = enc.encode_descriptor(
                "foodgate_readings",
                "Readings stored, by verdict.",
                None,
                MetricType::Gauge,
            )?;
            for (v, n) in &self.store.readings_by_verdict {
                ConstGauge::new(*n).encode(m.encode_family(&[("verdict", *v)])?)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "foodgate_outbox_events",
                "Outbox events by upstream and status.",
                None,
                MetricType::Gauge,
            )?;
            for c in &self.store.outbox {
                for (status, n) in [
                    ("pending", c.pending),
                    ("dead", c.dead),
                    ("delivered", c.delivered),
                ] {
                    let labels = [("upstream", c.upstream.as_str()), ("status", status)];
                    ConstGauge::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        // Without a running uplink these say nothing (no upstream is up or down).
        if !self.live.is_empty() {
            {
                let mut m = enc.encode_descriptor(
                    "foodgate_upstream_up",
                    "1 while an upstream delivers, 0 from its first failed attempt until it delivers again.",
                    None,
                    MetricType::Gauge,
                )?;
                for u in &self.live {
                    let up = u.health.is_none_or(|h| !h.failing);
                    ConstGauge::new(u64::from(up))
                        .encode(m.encode_family(&[("upstream", u.upstream.as_str())])?)?;
                }
            }
            {
                let mut m = enc.encode_descriptor(
                    "foodgate_upstream_failing_seconds",
                    "How long an upstream has been failing (0 when up).",
                    None,
                    MetricType::Gauge,
                )?;
                for u in &self.live {
                    let since = u.health.and_then(|h| h.failing_since_ms);
                    let secs = since.map_or(0, |t| (self.now_ms - t).max(0) / 1000);
                    ConstGauge::new(secs)
                        .encode(m.encode_family(&[("upstream", u.upstream.as_str())])?)?;
                }
            }
            {
                let mut m = enc.encode_descriptor(
                    "foodgate_outbox_oldest_pending_seconds",
                    "Age of the oldest event waiting, per upstream.",
                    None,
                    MetricType::Gauge,
                )?;
                for u in &self.live {
                    ConstGauge::new(u.oldest_pending_age_s.unwrap_or(0))
                        .encode(m.encode_family(&[("upstream", u.upstream.as_str())])?)?;
                }
            }
            {
                let mut m = enc.encode_descriptor(
                    "foodgate_upstream_last_error",
                    "The last answer of a failed attempt, per upstream.",
                    None,
                    MetricType::Gauge,
                )?;
                for u in &self.live {
                    if let Some(e) = &u.last_error {
                        let e: String = e.chars().take(ERROR_LABEL_CHARS).collect();
                        let labels = [("upstream", u.upstream.as_str()), ("error", e.as_str())];
                        ConstGauge::new(1u64).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "foodgate_instruments",
                "Instruments with a live link, and how many are online.",
                None,
                MetricType::Gauge,
            )?;
            for (state, n) in [("online", self.online), ("offline", self.offline)] {
                ConstGauge::new(n).encode(m.encode_family(&[("state", state)])?)?;
            }
        }
        {
            let m = enc.encode_descriptor(
                "foodgate_holds_overdue",
                "Confirmed holds with no passing re-sample within server.resample_days of the failed test.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(self.overdue).encode(m)?;
        }
        {
            // A counter's name is given without `_total`: the encoder adds it.
            let mut m = enc.encode_descriptor(
                "foodgate_http_requests",
                "HTTP requests by route and status.",
                None,
                MetricType::Counter,
            )?;
            for ((route, code), n) in &self.requests {
                let code = code.to_string();
                let labels = [("route", route.as_str()), ("status", code.as_str())];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// `GET /metrics`: Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", security(()),
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format, version 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let uplink = state.uplink();
    let settings = state.store().settings().clone();
    let (store, live, overdue) = state
        .read(move |conn| {
            let live = match uplink {
                Some(u) => u.stats(conn)?,
                None => Vec::new(),
            };
            let overdue = crate::store::hold_deadlines::count_overdue(
                conn,
                &settings,
                None,
                chrono::Utc::now(),
            )?;
            Ok((stats::store_figures(conn)?, live, overdue))
        })
        .await?;
    let status = state.instrument_status();
    let online = status.iter().filter(|i| i.online).count();
    let scrape = Scrape {
        store,
        live,
        now_ms: crate::uplink::now_ms(),
        online,
        offline: status.len() - online,
        requests: state.request_counts(),
        overdue,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).map_err(ApiError::internal)?;
    let mut r = Response::new(axum::body::Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::OutboxCounts;

    /// The text a scrape answers, line for line as the hand-written encoder wrote it.
    #[test]
    fn a_scrape_keeps_the_prometheus_text_of_before() {
        let scrape = Scrape {
            store: StoreFigures {
                readings_by_verdict: vec![("pass", 3), ("fail", 1), ("invalid", 0), ("unknown", 0)],
                outbox: vec![OutboxCounts {
                    upstream: "hub".into(),
                    pending: 2,
                    delivered: 5,
                    dead: 1,
                    ..OutboxCounts::default()
                }],
            },
            live: vec![UplinkStats {
                upstream: "hub".into(),
                oldest_pending_age_s: Some(7),
                last_error: Some("HTTP 401 \"no\"\nsecret".into()),
                ..UplinkStats::default()
            }],
            now_ms: 0,
            online: 1,
            offline: 2,
            requests: vec![(("/metrics".into(), 200), 4)],
            overdue: 2,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).expect("encodes");
        let want = "\
# HELP foodgate_readings Readings stored, by verdict.
# TYPE foodgate_readings gauge
foodgate_readings{verdict=\"pass\"} 3
foodgate_readings{verdict=\"fail\"} 1
foodgate_readings{verdict=\"invalid\"} 0
foodgate_readings{verdict=\"unknown\"} 0
# HELP foodgate_outbox_events Outbox events by upstream and status.
# TYPE foodgate_outbox_events gauge
foodgate_outbox_events{upstream=\"hub\",status=\"pending\"} 2
foodgate_outbox_events{upstream=\"hub\",status=\"dead\"} 1
foodgate_outbox_events{upstream=\"hub\",status=\"delivered\"} 5
# HELP foodgate_upstream_up 1 while an upstream delivers, 0 from its first failed attempt until it delivers again.
# TYPE foodgate_upstream_up gauge
foodgate_upstream_up{upstream=\"hub\"} 1
# HELP foodgate_upstream_failing_seconds How long an upstream has been failing (0 when up).
# TYPE foodgate_upstream_failing_seconds gauge
foodgate_upstream_failing_seconds{upstream=\"hub\"} 0
# HELP foodgate_outbox_oldest_pending_seconds Age of the oldest event waiting, per upstream.
# TYPE foodgate_outbox_oldest_pending_seconds gauge
foodgate_outbox_oldest_pending_seconds{upstream=\"hub\"} 7
# HELP foodgate_upstream_last_error The last answer of a failed attempt, per upstream.
# TYPE foodgate_upstream_last_error gauge
foodgate_upstream_last_error{upstream=\"hub\",error=\"HTTP 401 \\\"no\\\"\\nsecret\"} 1
# HELP foodgate_instruments Instruments with a live link, and how many are online.
# TYPE foodgate_instruments gauge
foodgate_instruments{state=\"online\"} 1
foodgate_instruments{state=\"offline\"} 2
# HELP foodgate_holds_overdue Confirmed holds with no passing re-sample within server.resample_days of the failed test.
# TYPE foodgate_holds_overdue gauge
foodgate_holds_overdue 2
# HELP foodgate_http_requests_total HTTP requests by route and status.
# TYPE foodgate_http_requests_total counter
foodgate_http_requests_total{route=\"/metrics\",status=\"200\"} 4
";
        assert_eq!(text, want);
    }
}
