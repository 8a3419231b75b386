//! Shared test parts: a fresh data directory, readings, and a real HTTP receiver.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use foodgate::config::Config;
use foodgate::store::{Store, StoreSettings};
use foodgate_parsers::{Protocol, Reading, Verdict};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "foodgate-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub const SECRET: &str = "s3cret";

/// A config with one upstream at `url` and short retries.
pub fn config(dir: &std::path::Path, upstreams: &[(&str, &str, &str)]) -> Config {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n",
        dir.join("data")
    );
    for (name, url, send) in upstreams {
        text.push_str(&format!(
            "[[upstream]]\nname = {name:?}\nurl = {url:?}\nsend = {send:?}\nsecret = {SECRET:?}\n\
             token = \"tok\"\ntimeout_s = 1\nretry_initial_ms = 50\nretry_max_ms = 200\n"
        ));
    }
    Config::parse(&text, "test.toml").expect("test config")
}

pub fn open(config: &Config) -> Store {
    let store = Store::open(&config.database_path(), StoreSettings::from_config(config))
        .expect("open store");
    import_builtin_markets(&store);
    store
}

/// Load the built-in registry (ZB-0001 … ZB-0484) into `store`: a new database has no
/// markets. From a thread of its own, so async tests may call it too.
pub fn import_builtin_markets(store: &Store) {
    let store = store.clone();
    std::thread::spawn(move || store.write(|tx| foodgate::markets::import_builtin(tx, "test")))
        .join()
        .expect("import thread")
        .expect("import the built-in markets");
}

/// A judged reading of sample `sample` with `verdict`.
pub fn reading(sample: &str, value: &str, verdict: Verdict) -> Reading {
    let mut r = Reading::new(Protocol::Astm, "chlorpyrifos");
    r.instrument = Some("IN-1".into());
    r.sample_id = Some(sample.into());
    r.sample_name = Some("菠菜".into());
    r.category = Some("leafy_vegetable".into());
    r.analyte_code = Some("CPF".into());
    r.value_text = Some(value.into());
    r.value = value.parse().ok();
    r.unit = Some("mg/kg".into());
    r.measured_at = chrono::DateTime::parse_from_rfc3339("2025-03-04T09:30:00+08:00").ok();
    r.verdict = verdict;
    r.reason = "test verdict".into();
    r
}

pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Status(u16),
    /// Never answer.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: String,
    pub idempotency_key: Option<String>,
    pub kind: String,
    pub body: Vec<u8>,
    pub signature_ok: bool,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub answered: Action,
}

type Decide = dyn Fn(&Received, usize) -> Action + Send + Sync;

struct Inner {
    decide: Box<Decide>,
    log: Mutex<Vec<Received>>,
}

/// A real HTTP receiver on 127.0.0.1:0 that verifies signatures and answers as told:
/// `decide(request, n)` with `n` = how many times this event id came before.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start(
        decide: impl Fn(&Received, usize) -> Action + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Inner {
            decide: Box::new(decide),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/events", axum::routing::post(handle))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    pub fn log(&self) -> Vec<Received> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Event ids answered 2xx, in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.log()
            .into_iter()
            .filter(|r| matches!(r.answered, Action::Status(200..=299)))
            .collect()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let expected = foodgate::uplink::sign(SECRET.as_bytes(), &body);
    let mut rec = Received {
        event_id: json["event_id"].as_str().unwrap_or_default().to_string(),
        idempotency_key: h("idempotency-key"),
        kind: json["type"].as_str().unwrap_or_default().to_string(),
        signature_ok: h("x-foodgate-signature").as_deref() == Some(expected.as_str()),
        content_length: h("content-length").and_then(|v| v.parse().ok()),
        chunked: h("transfer-encoding").is_some(),
        content_type: h("content-type"),
        authorization: h("authorization"),
        body: body.to_vec(),
        answered: Action::Status(0),
    };
    let action = {
        let log = inner.log.lock().unwrap();
        let seen = log.iter().filter(|r| r.event_id == rec.event_id).count();
        (inner.decide)(&rec, seen)
    };
    rec.answered = action;
    inner.log.lock().unwrap().push(rec);
    match action {
        Action::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            (status, format!("answer {code}")).into_response()
        }
        Action::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}

/// The API of `state` on a real socket at 127.0.0.1:0; it stops when the sender is dropped.
pub async fn serve_api(
    state: foodgate::api::AppState,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(foodgate::api::serve(listener, state, async move {
        let _ = rx.await;
    }));
    (addr, stop)
}

/// The same for a test that runs the binary: `foodgate markets import --builtin` with the
/// configuration file `config`.
pub fn import_builtin_markets_with(config: &std::path::Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(["markets", "import", "--builtin", "--config"])
        .arg(config)
        .output()
        .expect("run foodgate markets import --builtin");
    assert!(
        out.status.success(),
        "markets import --builtin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
