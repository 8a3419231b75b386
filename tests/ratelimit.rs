//! The per-token rate limit over loopback: a burst beyond the bucket is answered 429 with
//! `Retry-After` and a JSON error, and another token is not affected.

use crate::support::{config, temp_dir};
use foodgate::auth::{self, NewToken, Role};
use foodgate::http::ratelimit::RateLimit;
use foodgate::http::AppState;
use foodgate::judge::Judge;
use foodgate::service;
use foodgate::store::{Store, StoreSettings};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` with a bearer token: (status, head, body).
async fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_bucket_gets_429_and_other_tokens_are_unaffected() {
    let dir = temp_dir("ratelimit");
    let cfg = config(&dir, &[]);
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(&cfg)).expect("open");
    crate::support::import_builtin_markets(&store);
    let busy = token(&store, "busy").await;
    let calm = token(&store, "calm").await;
    // A small bucket refilled slowly: the burst below cannot be refilled while it runs.
    let limit = RateLimit {
        per_second: 0.2,
        burst: 10.0,
    };
    let state = AppState::new(store.clone(), Judge::builtin()).with_rate_limit(limit);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::serve(listener, state, async move {
        let _ = rx.await;
    }));

    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..15 {
        let (status, head, body) = get(addr, "/api/v1/instruments", &busy).await;
        statuses.push(status);
        if status == 429 && limited.is_none() {
            limited = Some((head, body));
        }
    }
    assert_eq!(&statuses[..10], &[200; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 5], "{statuses:?}");
    let (head, body) = limited.expect("a 429");
    // One request more needs 1 / 0.2 = 5 s of refill.
    assert!(head.contains("\r\nretry-after: 5"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(v["error"], "rate_limited");
    assert!(
        v["message"].as_str().unwrap_or("").contains("\"busy\""),
        "{v}"
    );

    // Another token has its own bucket.
    let (status, _, _) = get(addr, "/api/v1/instruments", &calm).await;
    assert_eq!(status, 200);
    // A request without a valid token is answered 401 as before, not 429.
    let (status, _, _) = get(addr, "/api/v1/instruments", "nope").await;
    assert_eq!(status, 401);

    let _ = stop.send(());
    let _ = server.await;
    store.close_async().await;
}
