//! Live-link load on the real `foodgate serve`: 16 HL7 instruments on loopback TCP, each
//! sending ORU^R01 messages back to back (the next one after the previous `AA`), an upstream
//! taking every event (`send = "all"`).
//!
//! Measured per message:
//! - frame → committed: message sent → its `AA` back (the link acknowledges after COMMIT);
//! - frame → uplink: message sent → its `result.recorded` POST arrives at the upstream (the
//!   event handed to the uplink and delivered: an upper bound of the hand-off);
//! - the resident set size of `serve` (`VmRSS`, sampled every 20 ms, peak and end).
//!
//! Two phases: paced (each instrument sends every 100 ms, 50 messages: what instruments do;
//! measures the hand-off, not a queue) and saturated (back to back, `LINKS_MESSAGES=N` per
//! instrument, default 200: the uplink's delivery queue builds up, so the POST latency there
//! measures its backlog).
//!
//! Run: `cargo bench --bench links`.

use axum::body::Bytes;
use axum::extract::State;
use foodgate_parsers::hl7::{Obr, Obx, Oru};
use foodgate_parsers::Encoding;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INSTRUMENTS: usize = 16;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
    let now = Instant::now();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if v["type"] == "result.recorded" {
        if let Some(id) = v["reading"]["sample_id"].as_str() {
            arrivals.lock().unwrap().insert(id.to_string(), now);
        }
    }
    "ok"
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn sample_id(phase: &str, instrument: usize, n: usize) -> String {
    format!("{phase}{instrument:02}-{n:05}")
}

fn message(sample: String, instrument: usize, positive: bool) -> Vec<u8> {
    let ts = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let value = if positive { "0.90" } else { "0.10" };
    Oru {
        sending_application: "LOAD".into(),
        sending_facility: "LAB".into(),
        receiving_application: "FOODGATE".into(),
        receiving_facility: String::new(),
        timestamp: ts.clone(),
        control_id: sample.clone(),
        version: "2.5".into(),
        charset: None,
        source_id: "A01".into(),
        vendor: vec![],
        orders: vec![Obr {
            sample_id: sample,
            service: "CLB^克伦特罗".into(),
            observed_at: ts.clone(),
            sample_name: "猪肉".into(),
            results: vec![Obx {
                value_type: "NM".into(),
                code: "CLB".into(),
                name: "克伦特罗".into(),
                value: value.into(),
                unit: "ug/kg".into(),
                reference_range: "<0.5".into(),
                flag: if positive { "H" } else { "N" }.into(),
                status: "F".into(),
                observed_at: ts,
                equipment: format!("LOAD-{instrument:02}"),
                comments: vec![],
            }],
        }],
    }
    .to_mllp(Encoding::Utf8)
}

/// Send `count` messages, each after the previous one's answer; (sample, sent, acked).
async fn instrument(
    phase: &'static str,
    i: usize,
    addr: SocketAddr,
    count: usize,
    pause: Duration,
) -> Vec<(String, Instant, Duration)> {
    let mut sock = loop {
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    sock.set_nodelay(true).unwrap();
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0u8; 4096];
    for n in 0..count {
        if n > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let id = sample_id(phase, i, n);
        let bytes = message(id.clone(), i, n % 10 == 0);
        let sent = Instant::now();
        sock.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        while !got.windows(2).any(|w| w == [0x1C, 0x0D]) {
            let k = sock.read(&mut buf).await.unwrap();
            assert!(k > 0, "link closed");
            got.extend_from_slice(&buf[..k]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("MSA|AA|"), "not accepted: {text}");
        out.push((id, sent, sent.elapsed()));
    }
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn show(name: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    println!(
        "{name:<22} n={:<6} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        v.len(),
        pct(&v, 0.50),
        pct(&v, 0.99),
        v.last().copied().unwrap_or_default()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench ignores.
    let per: usize = std::env::var("LINKS_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("foodgate-links-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let addrs: Vec<SocketAddr> = (0..INSTRUMENTS).map(|_| free_port()).collect();
    let mut cfg = format!(
        "[server]\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n",
        dir.join("data")
    );
    for (i, a) in addrs.iter().enumerate() {
        cfg.push_str(&format!(
            "[[instrument]]\nid = \"LOAD-{i:02}\"\nmarket = \"ZB-{:04}\"\nprotocol = \"hl7\"\n\
             tcp = {{ listen = \"{a}\" }}\n",
            i + 1
        ));
    }
    cfg.push_str(&format!(
        "[[upstream]]\nname = \"hub\"\nurl = \"http://{upstream}/events\"\nsend = \"all\"\n\
         secret = \"k\"\nretry_initial_ms = 50\nretry_max_ms = 500\n"
    ));
    let cfg_path = dir.join("foodgate.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start foodgate serve");
    let pid = serve.id();
    let idle_rss = {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_kib(pid).unwrap_or(0)
    };

    let peak = Arc::new(Mutex::new(0u64));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(k) = rss_kib(pid) {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(k);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for (phase, per, pause) in [
        ("P", 50, Duration::from_millis(100)),
        ("S", per, Duration::ZERO),
    ] {
        let start = Instant::now();
        let tasks: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| tokio::spawn(instrument(phase, i, *a, per, pause)))
            .collect();
        let mut sent = Vec::new();
        for t in tasks {
            sent.extend(t.await.unwrap());
        }
        let elapsed = start.elapsed();
        let total = sent.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        let delivered = || {
            let a = arrivals.lock().unwrap();
            sent.iter().filter(|(id, _, _)| a.contains_key(id)).count()
        };
        while delivered() < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = arrivals.lock().unwrap();
        let committed: Vec<Duration> = sent.iter().map(|(_, _, d)| *d).collect();
        let uplink: Vec<Duration> = sent
            .iter()
            .filter_map(|(id, at, _)| a.get(id).map(|t| t.duration_since(*at)))
            .collect();
        println!(
            "{} phase: {INSTRUMENTS} hl7 instruments x {per} messages{}: {total} readings in {elapsed:.2?} ({:.0}/s), {} events delivered",
            if pause.is_zero() { "saturated" } else { "paced" },
            if pause.is_zero() { String::new() } else { format!(" every {pause:?}") },
            total as f64 / elapsed.as_secs_f64(),
            uplink.len()
        );
        show("frame -> committed+ack", committed);
        show("frame -> uplink POST", uplink);
    }
    sampler.abort();
    let end_rss = rss_kib(pid).unwrap_or(0);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = serve.wait();
    println!(
        "serve VmRSS: idle {:.1} MiB, peak {:.1} MiB, end {:.1} MiB",
        idle_rss as f64 / 1024.0,
        *peak.lock().unwrap() as f64 / 1024.0,
        end_rss as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
