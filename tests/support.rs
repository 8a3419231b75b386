//! Shared test parts: a fresh data directory, readings, a real HTTP receiver, the service
//! in-process ([`TestApp`]) and `foodgate serve` as a child process ([`ServeProcess`], for the
//! tests that must signal or kill a real process, or read its log).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use foodgate::config::Config;
use foodgate::judge::{JudgedReading, Judgement, Verdict};
use foodgate::store::{Store, StoreSettings};
use foodgate_parsers::{Protocol, Reading};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
pub fn reading(sample: &str, value: &str, verdict: Verdict) -> JudgedReading {
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
    JudgedReading::new(
        r,
        Judgement {
            verdict,
            reason: "test verdict".into(),
            limit: None,
        },
    )
}

/// How long a test waits for the service to do something before calling it stuck. Generous:
/// a busy 2-core machine is slow, not broken; a passing test never waits this long.
pub const PATIENT: Duration = Duration::from_secs(120);

/// How much work is left, and when it last went down.
struct Progress {
    last: u64,
    moved: Instant,
}

impl Progress {
    fn new() -> Self {
        Progress {
            last: u64::MAX,
            moved: Instant::now(),
        }
    }

    /// `true` when nothing is left; panics when `n` has not gone down for `stall`.
    fn done(&mut self, what: &str, stall: Duration, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        if n < self.last {
            self.last = n;
            self.moved = Instant::now();
        }
        assert!(
            self.moved.elapsed() < stall,
            "{what}: {n} left, none done for {stall:?}"
        );
        false
    }
}

/// Wait until `left()` is 0, failing only when it has not gone down for `stall`: the work is
/// still moving however slowly a loaded machine does it. `left` says what is not done yet.
pub async fn wait_progress(what: &str, stall: Duration, mut left: impl FnMut() -> u64) {
    let mut p = Progress::new();
    while !p.done(what, stall, left()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_progress`] for a test on a plain thread.
pub fn wait_progress_blocking(what: &str, stall: Duration, mut left: impl FnMut() -> u64) {
    let mut p = Progress::new();
    while !p.done(what, stall, left()) {
        std::thread::sleep(Duration::from_millis(50));
    }
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
    state: foodgate::http::AppState,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(foodgate::service::serve(listener, state, async move {
        let _ = rx.await;
    }));
    (addr, stop)
}

/// Something to do with the store before the service starts on it.
type BeforeStart = Box<dyn FnOnce(&Store) + Send>;

/// How a [`TestApp`] starts: its config and what to do to its store first.
pub struct TestAppBuilder {
    config: Config,
    before: Vec<BeforeStart>,
}

// Not every test takes every option yet.
#[allow(dead_code)]
impl TestAppBuilder {
    /// Import the built-in market registry (the `ZB-` markets) before the service starts.
    pub fn builtin_markets(self) -> Self {
        self.before_start(import_builtin_markets)
    }

    /// Run `f` on the store (opened with the config's settings, closed again) before the
    /// service starts on it.
    pub fn before_start(mut self, f: impl FnOnce(&Store) + Send + 'static) -> Self {
        self.before.push(Box::new(f));
        self
    }

    pub async fn start(self) -> TestApp {
        if !self.before.is_empty() {
            let store = open(&self.config);
            for f in self.before {
                f(&store);
            }
            store.close_async().await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the API");
        let running = foodgate::service::start(self.config, listener)
            .await
            .unwrap_or_else(|e| panic!("the service does not start: {e:?}"));
        TestApp {
            addr: running.addr(),
            running: Some(running),
        }
    }
}

/// The whole service (store, links, uplink, API and pages) in this test's runtime, on
/// 127.0.0.1:0; stopped by [`TestApp::shutdown`] (graceful: the store is closed when it
/// returns) or, less politely, when dropped.
pub struct TestApp {
    addr: SocketAddr,
    running: Option<foodgate::service::Running>,
}

// Not every test takes every helper yet.
#[allow(dead_code)]
impl TestApp {
    pub fn builder(config: Config) -> TestAppBuilder {
        TestAppBuilder {
            config,
            before: Vec::new(),
        }
    }

    pub async fn start(config: Config) -> TestApp {
        TestApp::builder(config).start().await
    }

    /// The service of a TOML configuration.
    pub async fn from_toml(text: &str) -> TestApp {
        TestApp::start(Config::parse(text, "test.toml").expect("test config")).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The service's store (its writer is the service's).
    pub fn store(&self) -> &Store {
        self.running.as_ref().expect("running").store()
    }

    /// Where each TCP instrument link listens.
    pub fn instruments(&self) -> &[(String, SocketAddr)] {
        &self.running.as_ref().expect("running").ready().instruments
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http(self.addr, "GET", path, token, None, b"").await
    }

    /// `POST path` with a body of `content_type`: the status and the body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String) {
        http(self.addr, "POST", path, token, Some(content_type), body).await
    }

    /// Stop gracefully; returns once the store is closed.
    pub async fn shutdown(mut self) -> foodgate::service::Stopped {
        let running = self.running.take().expect("running");
        running.shutdown().await.expect("the service stops")
    }
}

/// One HTTP/1.1 request on its own connection: the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    if let Some(c) = content_type {
        headers.push(("Content-Type", c));
    }
    let (status, _, body) = request(addr, method, path, &headers, body).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One HTTP/1.1 request on a fresh connection, `headers` added to it: the status, the
/// response headers and the body (de-chunked).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    // The server may answer (413) before reading a big body: a failed write is fine.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// `foodgate serve --config <config>` as a child process, its stderr in a log file; killed
/// when dropped.
pub struct ServeProcess {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl ServeProcess {
    /// Start it and wait until its API listens.
    pub async fn start(config: &Path, log: PathBuf) -> ServeProcess {
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_foodgate"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start foodgate serve");
        let mut serve = ServeProcess {
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let start = Instant::now();
        serve.addr = loop {
            let text = serve.log();
            if let Some(a) = text
                .lines()
                .find_map(|l| l.strip_prefix("foodgate: API on http://"))
                .and_then(|a| a.trim().parse().ok())
            {
                break a;
            }
            assert!(start.elapsed() < PATIENT, "serve did not start:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        serve
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (up to 10 s) until the log holds `what`.
    pub async fn wait_log(&self, what: &str) {
        let start = Instant::now();
        while !self.log().contains(what) {
            assert!(
                start.elapsed() < PATIENT,
                "no {what:?} in the log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < PATIENT,
                "serve did not stop on SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: it goes down without a word.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

/// A token of `role` for `markets` (none: every market), made in `store`.
pub async fn new_token(
    store: &Store,
    name: &str,
    role: foodgate::auth::Role,
    markets: &[&str],
) -> String {
    let new = foodgate::auth::NewToken {
        name: name.into(),
        role,
        markets: markets.iter().map(|m| m.to_string()).collect(),
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token")
}

/// `t` in RFC 3339 at +08:00, as the markets' clocks write it.
pub fn local8(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"))
        .to_rfc3339()
}
