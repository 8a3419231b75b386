//! The demo's upstream: what a city's blocking system would be. It checks each event's
//! signature, logs the event on stderr in one line, and answers 200 (401 to a bad
//! signature, which the uplink records as a dead event: a wrong secret must show).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Path the receiver takes events on.
pub const PATH: &str = "/events";

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Clone)]
struct Shared {
    secret: Arc<str>,
    counts: Arc<Counts>,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
}

impl Receiver {
    /// Listen on 127.0.0.1 (a free port); serve until `shutdown` completes.
    pub async fn start(
        secret: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            secret: secret.into(),
            counts: Arc::default(),
        };
        let app = Router::new()
            .route(PATH, post(event))
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!("the demo receiver stopped: {e}");
            }
        });
        Ok(Receiver { addr, shared })
    }

    /// The URL to configure as the upstream's `url`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Events answered 200 so far.
    pub fn accepted(&self) -> u64 {
        self.shared.counts.accepted.load(Ordering::Relaxed)
    }

    /// Events refused for a bad signature so far.
    pub fn refused(&self) -> u64 {
        self.shared.counts.refused.load(Ordering::Relaxed)
    }
}

async fn event(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let expected = crate::uplink::sign(shared.secret.as_bytes(), &body);
    let sent = headers
        .get("x-foodgate-signature")
        .and_then(|v| v.to_str().ok());
    if sent != Some(expected.as_str()) {
        shared.counts.refused.fetch_add(1, Ordering::Relaxed);
        eprintln!("upstream: refused an event: bad or missing X-Foodgate-Signature");
        return (StatusCode::UNAUTHORIZED, "bad signature");
    }
    shared.counts.accepted.fetch_add(1, Ordering::Relaxed);
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => eprintln!("upstream: {}", describe(&v)),
        Err(_) => eprintln!("upstream: an event that is not JSON ({} bytes)", body.len()),
    }
    (StatusCode::OK, "ok")
}

/// `sample.failed ZB-0007 stall A12 菠菜 op_carbamate 74.5 % hold held`.
pub fn describe(e: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let r = &e["reading"];
    let value = match (&r["value"], &r["qualifier"]) {
        (Value::Number(n), _) => n.to_string(),
        (_, Value::String(q)) => q.clone(),
        _ => s(&r["device_verdict"]),
    };
    let unit = r["unit"]
        .as_str()
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    format!(
        "{} {} stall {} {} {} {value}{unit} hold {}",
        s(&e["type"]),
        s(&e["market"]),
        s(&e["stall"]),
        s(&e["sample"]["name"]),
        s(&r["analyte"]),
        s(&e["hold"]["status"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_an_event_in_one_line() {
        let e: Value = serde_json::from_str(
            r#"{"type":"sample.failed","market":"ZB-0007","stall":"A12",
                "sample":{"id":"S1","name":"菠菜","category":"leafy_vegetable"},
                "reading":{"analyte":"op_carbamate","value":74.5,"unit":"%","qualifier":null},
                "hold":{"id":"h","status":"held"}}"#,
        )
        .expect("json");
        assert_eq!(
            describe(&e),
            "sample.failed ZB-0007 stall A12 菠菜 op_carbamate 74.5 % hold held"
        );
        let e: Value = serde_json::from_str(
            r#"{"type":"sample.failed","market":"ZB-0003","stall":null,
                "sample":{"name":"牛肉"},"reading":{"analyte":"clenbuterol","value":null,
                "qualifier":null,"device_verdict":"positive","unit":null},"hold":null}"#,
        )
        .expect("json");
        assert_eq!(
            describe(&e),
            "sample.failed ZB-0003 stall - 牛肉 clenbuterol positive hold -"
        );
    }
}
