//! Abuse limits over loopback: failed sign-ins and bad tokens per client address (the client
//! socket is bound to 127.0.0.2, 127.0.0.3 … — Linux routes all of 127/8 to `lo` — so one
//! service sees several addresses), and the header and idle timeouts of connections.

use crate::support::{import_builtin_markets, temp_dir, TestApp};
use foodgate::auth::{self, NewToken, Role};
use foodgate::config::Config;
use foodgate::store::Store;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `addr` from the local address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let ip: IpAddr = from.parse().expect("address");
    socket
        .bind(SocketAddr::new(ip, 0))
        .expect("bind the client");
    socket.connect(addr).await.expect("connect")
}

/// An answer: status, lower-cased head, body.
struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::trim)
    }
}

/// One request from `from`, with `Connection: close`; `extra` are whole header lines.
async fn send(
    from: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[String],
    body: &str,
) -> Resp {
    let mut s = connect_from(from, addr).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out))
        .await
        .expect("an answer within 60 s")
        .expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

async fn api(from: &str, addr: SocketAddr, token: Option<&str>) -> Resp {
    let auth: Vec<String> = token
        .map(|t| format!("Authorization: Bearer {t}"))
        .into_iter()
        .collect();
    send(from, addr, "GET", "/api/v1/instruments", &auth, "").await
}

/// `POST /login` with `token` (the double-submit CSRF value is the client's own choice).
async fn login(from: &str, addr: SocketAddr, token: &str) -> Resp {
    let headers = [
        "Content-Type: application/x-www-form-urlencoded".to_string(),
        "Cookie: fg_login_csrf=c5rf".to_string(),
    ];
    let body = format!("token={token}&next=%2Fdashboard&csrf=c5rf");
    send(from, addr, "POST", "/login", &headers, &body).await
}

async fn token(store: &Store, name: &str) -> String {
    let new = NewToken {
        name: name.into(),
        role: Role::Regulator,
        markets: Vec::new(),
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("create token")
}

fn config(name: &str, server: &str) -> Config {
    let dir = temp_dir(name);
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n{server}\n",
        dir.join("data")
    );
    Config::parse(&text, "test.toml").expect("test config")
}

async fn start_app(name: &str, server: &str) -> TestApp {
    TestApp::builder(config(name, server))
        .before_start(import_builtin_markets)
        .start()
        .await
}

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {}", r.head))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_bad_signin_from_one_address_gets_429_and_other_addresses_do_not() {
    let app = start_app("abuse-login", "").await;
    let addr = app.addr();
    let good = token(app.store(), "inspector").await;

    // Ten failures, of both kinds: a wrong token, a wrong one-time code.
    for i in 0..10 {
        let r = if i % 2 == 0 {
            login("127.0.0.2", addr, "fg_wrong").await
        } else {
            send("127.0.0.2", addr, "GET", "/login?code=nope", &[], "").await
        };
        assert_eq!(r.status, 401, "failure {i}: {}", r.head);
    }
    let r = login("127.0.0.2", addr, "fg_wrong").await;
    assert_eq!(r.status, 429, "{}", r.head);
    let secs = retry_after(&r);
    assert!((1..=60).contains(&secs), "{secs}");
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(r.body.contains("尝试次数过多"), "{}", r.body);
    assert!(r.body.contains("Too many attempts"), "{}", r.body);
    // Blocked means blocked: the right token is not looked at either, nor a code.
    let r = login("127.0.0.2", addr, &good).await;
    assert_eq!(r.status, 429);
    let r = send("127.0.0.2", addr, "GET", "/login?code=x", &[], "").await;
    assert_eq!(r.status, 429);
    // The form itself is still shown, and pages without a credential are answered.
    let r = send("127.0.0.2", addr, "GET", "/login", &[], "").await;
    assert_eq!(r.status, 200);

    // Another address is answered as usual, wrong and right.
    let r = login("127.0.0.1", addr, "fg_wrong").await;
    assert_eq!(r.status, 401);
    let r = login("127.0.0.1", addr, &good).await;
    assert_eq!(r.status, 303, "{}", r.head);
    assert!(r.head.contains("set-cookie: fg_session="), "{}", r.head);

    // Successful sign-ins do not count: many of them, then still nine failures are allowed.
    for _ in 0..12 {
        assert_eq!(login("127.0.0.3", addr, &good).await.status, 303);
    }
    for _ in 0..9 {
        assert_eq!(login("127.0.0.3", addr, "fg_wrong").await.status, 401);
    }
    assert_eq!(login("127.0.0.3", addr, &good).await.status, 303);
    assert_eq!(login("127.0.0.3", addr, "fg_wrong").await.status, 401);
    assert_eq!(login("127.0.0.3", addr, &good).await.status, 429);

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_tokens_from_one_address_get_429_and_other_addresses_do_not() {
    let app = start_app("abuse-api", "auth_failures_per_minute = 4").await;
    let addr = app.addr();
    let good = token(app.store(), "regulator").await;

    // No token at all guesses nothing: never limited.
    for _ in 0..8 {
        let r = api("127.0.0.4", addr, None).await;
        assert_eq!(r.status, 401);
        assert!(r.body.contains("token_missing"), "{}", r.body);
    }
    assert_eq!(api("127.0.0.4", addr, Some(&good)).await.status, 200);

    for _ in 0..4 {
        assert_eq!(api("127.0.0.2", addr, Some("fg_guess")).await.status, 401);
    }
    let r = api("127.0.0.2", addr, Some("fg_guess")).await;
    assert_eq!(r.status, 429, "{}", r.head);
    let secs = retry_after(&r);
    assert!((1..=60).contains(&secs), "{secs}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON error");
    assert_eq!(v["error"], "too_many_failures", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(api("127.0.0.2", addr, Some(&good)).await.status, 429);

    // Others are not slowed.
    assert_eq!(api("127.0.0.1", addr, Some(&good)).await.status, 200);
    assert_eq!(api("127.0.0.3", addr, Some("fg_guess")).await.status, 401);

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_can_be_turned_off_and_the_api_rate_has_keys() {
    let app = start_app(
        "abuse-off",
        "auth_failures_per_minute = 0\napi_rate_per_s = 0.01\napi_burst = 3",
    )
    .await;
    let addr = app.addr();
    for _ in 0..15 {
        assert_eq!(api("127.0.0.2", addr, Some("fg_guess")).await.status, 401);
    }
    let good = token(app.store(), "busy").await;
    let statuses = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(api("127.0.0.2", addr, Some(&good)).await.status);
        }
        v
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
    app.shutdown().await;
}

/// Read until the server closes the connection (or `limit` passes): how long it took.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server did not close the connection within {limit:?}"),
        }
    }
}

/// Read one response with a `Content-Length` body from a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("a response within 30 s")
            .expect("read");
        assert!(n > 0, "closed before the response was complete");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length: ").map(str::to_string))
                .and_then(|v| v.trim().parse().ok())
                .expect("a content-length");
            if body.len() >= len {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_idle_connections_closed() {
    let app = start_app("abuse-slow", "header_timeout_s = 1\nidle_timeout_s = 4").await;
    let addr = app.addr();
    let limit = Duration::from_secs(30);

    // Half a request line, then nothing.
    let mut slow = connect_from("127.0.0.1", addr).await;
    slow.write_all(b"GET /heal").await.expect("send");
    let took = until_closed(&mut slow, limit).await;
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");

    // Nothing at all.
    let mut mute = connect_from("127.0.0.1", addr).await;
    until_closed(&mut mute, limit).await;

    // Complete headers sent promptly are served, and the connection is kept alive.
    let mut s = connect_from("127.0.0.1", addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let first = read_response(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle for longer than the header timeout but not the idle timeout: still open.
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send again");
    let second = read_response(&mut s).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Then idle: closed after the idle timeout, not before.
    let took = until_closed(&mut s, limit).await;
    assert!(
        took >= Duration::from_millis(3900),
        "closed early: {took:?}"
    );

    app.shutdown().await;

    // A kept-alive connection that begins its next request gets the header timeout from
    // its first byte, not the idle timeout (a minute here).
    let app = start_app(
        "abuse-slow-next",
        "header_timeout_s = 1\nidle_timeout_s = 60",
    )
    .await;
    let addr = app.addr();
    let mut s = connect_from("127.0.0.1", addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    read_response(&mut s).await;
    s.write_all(b"GET /hea").await.expect("send a part");
    let took = until_closed(&mut s, limit).await;
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");

    app.shutdown().await;
}
