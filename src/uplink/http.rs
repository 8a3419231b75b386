//! One signed POST of an event body.

use crate::config::Upstream;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use std::time::Duration;

pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// Connecting may take this long; the whole request `timeout_s`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Of an answer, this much is kept as `last_answer`.
const ANSWER_KEEP: usize = 2048;
/// Of an answer, at most this much is read: a hub answers a batch of 1,000 rows with one
/// entry each (about 300 bytes), an events endpoint with little.
const ANSWER_READ: usize = 8 * 1024 * 1024;

/// The first [`ANSWER_KEEP`] bytes of an answer (cut at a character boundary), to store.
pub fn keep(text: &str) -> &str {
    if text.len() <= ANSWER_KEEP {
        return text;
    }
    let mut end = ANSWER_KEEP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

pub(crate) fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// `sha256=<lowercase hex HMAC-SHA256 of body>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// What came back from one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Http {
        status: u16,
        /// The whole answer (up to [`ANSWER_READ`]); [`keep`] what is stored.
        body: String,
    },
    /// Refused, reset, timed out, unreadable: no HTTP answer.
    Transport(String),
}

/// POST `body` to `url` (the upstream's own, or its hub's samples endpoint) with the
/// upstream's signature, token and timeout.
pub(crate) async fn post(
    client: &Client,
    up: &Upstream,
    url: &str,
    event_id: &str,
    body: Vec<u8>,
) -> Answer {
    let signature = sign(up.secret.expose().as_bytes(), &body);
    let len = body.len();
    let mut req = Request::post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, len)
        .header("Idempotency-Key", event_id)
        .header("X-Foodgate-Signature", signature);
    if let Some(token) = &up.token {
        match HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            Ok(v) => req = req.header(AUTHORIZATION, v),
            Err(_) => return Answer::Transport("token is not a valid header value".into()),
        }
    }
    let req = match req.body(Full::new(Bytes::from(body))) {
        Ok(r) => r,
        Err(e) => return Answer::Transport(format!("bad request: {e}")),
    };
    exchange(client, up, req).await
}

/// A platform's request as its adapter made it (not signed).
pub(crate) async fn send(
    client: &Client,
    up: &Upstream,
    req: crate::platform::PlatformRequest,
) -> Answer {
    let mut r = Request::builder()
        .method(req.method)
        .uri(&req.url)
        .header(CONTENT_TYPE, req.content_type.as_str())
        .header(CONTENT_LENGTH, req.body.len());
    for (name, value) in &req.headers {
        match HeaderValue::from_str(value) {
            Ok(v) => r = r.header(name.as_str(), v),
            Err(_) => return Answer::Transport(format!("header {name} is not a valid value")),
        }
    }
    let r = match r.body(Full::new(Bytes::from(req.body))) {
        Ok(r) => r,
        Err(e) => return Answer::Transport(format!("bad request: {e}")),
    };
    exchange(client, up, r).await
}

/// Send `req` and read the answer, within the upstream's timeout.
async fn exchange(client: &Client, up: &Upstream, req: Request<Full<Bytes>>) -> Answer {
    let exchange = async {
        let resp = client.request(req).await.map_err(describe)?;
        let status = resp.status().as_u16();
        let text = match Limited::new(resp.into_body(), ANSWER_READ).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(e) => format!("(answer unreadable: {e})"),
        };
        Ok::<_, String>(Answer::Http { status, body: text })
    };
    match tokio::time::timeout(up.timeout, exchange).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => Answer::Transport(e),
        Err(_) => Answer::Transport(format!("timeout after {} s", up.timeout.as_secs())),
    }
}

fn describe(e: hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
