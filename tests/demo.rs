//! `foodgate demo`, the real binary: its three lines, live readings of all eight protocols and
//! of the contractor reaching the API, failures reaching the built-in receiver, a month of
//! history in the coverage, and a clean stop on SIGTERM that removes its data directory.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The demo process; killed if the test fails before stopping it.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// How long the demo may show no progress at all before the test gives up.
const STALL: Duration = Duration::from_secs(90);

/// Bytes in the data directory the demo names on stderr (0 before it does).
fn data_bytes(stderr: &str) -> u64 {
    let Some(dir) = stderr
        .lines()
        .find_map(|l| l.strip_prefix("foodgate: demo data in "))
    else {
        return 0;
    };
    let data = std::path::Path::new(dir).join("data");
    std::fs::read_dir(data)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Collect a pipe's lines on a thread.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(l) => out.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
    lines
}

/// A blocking request line with extra header lines: (lowercased head, body as text).
fn raw(addr: SocketAddr, request: &str, headers: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the demo API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{request} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

/// A blocking `GET path` with a bearer token: (status, body).
fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the demo API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().expect("status");
    let mut body = buf[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut b = body.as_slice();
        while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16)
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
            b = &b[eol + 4 + n..];
        }
        body = out;
    }
    (status, body)
}

fn get_json(addr: SocketAddr, path: &str, token: &str) -> Value {
    let (status, body) = get(addr, path, token);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("JSON")
}

/// What the demo has shown so far, or `None` while something is missing.
#[derive(Debug, Default)]
struct Live {
    protocols: BTreeSet<String>,
    contractor_rows: usize,
    failures_received: usize,
    /// Failures of an analyzer that sends no stall, received again naming the stall the
    /// inspector gave them.
    stalls_named: usize,
    instruments_online: usize,
}

impl Live {
    fn complete(&self) -> bool {
        self.protocols.len() == 8
            && self.contractor_rows > 0
            && self.failures_received > 0
            && self.stalls_named > 0
            && self.instruments_online == 8
    }
}

#[test]
fn demo_runs_the_whole_system_and_stops_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(["demo", "--listen", "127.0.0.1:0", "--minutes", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start foodgate demo");
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let mut demo = Demo(child);
    let stderr = || err.lock().unwrap().join("\n");

    // The three lines, each on its own, in order (history is stored before they come, so
    // the wait fails only when the data directory has stopped growing for a long time).
    let mut progress = (0, 0);
    let mut moved = Instant::now();
    let lines = loop {
        let l = out.lock().unwrap().clone();
        if l.len() >= 3 {
            break l;
        }
        assert!(
            demo.0.try_wait().unwrap().is_none(),
            "the demo exited early:\n{}",
            stderr()
        );
        let now = (l.len(), data_bytes(&stderr()));
        if now != progress {
            progress = now;
            moved = Instant::now();
        }
        assert!(
            moved.elapsed() < STALL,
            "no three lines and no data stored for {STALL:?}; stdout {l:?}; stderr:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let dashboard = lines[0]
        .strip_prefix("dashboard: ")
        .expect("dashboard line");
    let board = lines[1].strip_prefix("board: ").expect("board line");
    let token = lines[2].strip_prefix("token: ").expect("token line");
    let (api, signin) = dashboard
        .strip_prefix("http://")
        .and_then(|s| s.split_once('/'))
        .expect("http://ADDR/login?code=…&next=/dashboard");
    let api: SocketAddr = api.parse().expect("an address");
    assert_ne!(api.port(), 0);
    assert!(
        signin.starts_with("login?code=") && signin.ends_with("&next=/dashboard"),
        "{dashboard}"
    );
    assert!(!dashboard.contains(token), "never a token in a URL");
    // The link signs in once and lands on the dashboard of all 484 markets.
    let (head, _) = raw(api, &format!("GET /{signin}"), "");
    assert!(head.starts_with("http/1.1 303"), "{head}");
    assert!(head.contains("location: /dashboard"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (head, page) = raw(api, "GET /dashboard", &format!("Cookie: {cookie}\r\n"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(page.contains("484"), "the dashboard names all markets");
    let (again, _) = raw(api, &format!("GET /{signin}"), "");
    assert!(
        again.starts_with("http/1.1 401"),
        "a code is single use: {again}"
    );
    assert_eq!(board, format!("http://{api}/markets/ZB-0003/board"));
    assert!(token.starts_with("fg_") && token.len() > 40, "{token}");
    let data_dir = stderr()
        .lines()
        .find_map(|l| {
            l.strip_prefix("foodgate: demo data in ")
                .map(str::to_string)
        })
        .expect("the data directory on stderr");
    assert!(std::path::Path::new(&data_dir)
        .join("data/foodgate.db")
        .exists());

    // The regulator token reads; it is not an admin's.
    assert_eq!(get(api, "/api/v1/outbox", token).0, 403);

    // Live data of every protocol, the contractor's rows, failures at the receiver.
    let mut live = Live::default();
    let polling = Instant::now();
    while !live.complete() {
        assert!(
            polling.elapsed() < crate::support::PATIENT,
            "not everything arrived within {:?}: {live:?}\n{}",
            crate::support::PATIENT,
            stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
        let results = get_json(api, "/api/v1/results?limit=1000", token);
        for r in results["results"].as_array().expect("results") {
            if let Some(p) = r["protocol"].as_str() {
                live.protocols.insert(p.to_string());
            }
            if r["uploader"] == "demo-contractor" {
                assert!(
                    ["ZB-0040", "ZB-0041", "ZB-0042", "ZB-0043", "ZB-0044", "ZB-0045"]
                        .contains(&r["market"].as_str().unwrap_or_default()),
                    "{r}"
                );
                live.contractor_rows += 1;
            }
        }
        live.failures_received = err
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("upstream: sample.failed ZB-") && l.contains(" hold held"))
            .count();
        live.stalls_named = err
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                ["ZB-0003", "ZB-0007", "ZB-0012"]
                    .iter()
                    .any(|m| l.starts_with(&format!("upstream: sample.failed {m} stall ")))
                    && !l.contains(" stall - ")
            })
            .count();
        let instruments = get_json(api, "/api/v1/instruments", token);
        live.instruments_online = instruments["instruments"]
            .as_array()
            .expect("instruments")
            .iter()
            .filter(|i| i["online"] == true && i["readings"].as_i64().unwrap_or(0) > 0)
            .count();
    }
    assert_eq!(
        live.protocols,
        [
            "astm",
            "dy723pc",
            "enzyme-print",
            "gold-card",
            "hl7",
            "lz4000t",
            "spectro",
            "tl310"
        ]
        .into_iter()
        .map(String::from)
        .collect::<BTreeSet<_>>()
    );
    assert!(
        !stderr().contains("upstream: refused"),
        "every event was signed with the receiver's secret"
    );

    // History: yesterday most markets tested, not all met their quota, some never test.
    let yesterday = (chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();
    let coverage = get_json(api, &format!("/api/v1/coverage?date={yesterday}"), token);
    let s = &coverage["summary"];
    assert_eq!(s["markets"], 484, "{s}");
    let tested = s["markets_tested"].as_i64().unwrap();
    let met = s["markets_met_quota"].as_i64().unwrap();
    assert!((400..=456).contains(&tested), "{s}");
    assert!(met > 300 && met < tested, "{s}");
    assert!(s["tests"].as_i64().unwrap() > 3000, "{s}");
    let never = coverage["markets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["market"] == "ZB-0017")
        .expect("ZB-0017 listed");
    assert_eq!(never["tests"], 0, "ZB-0017 never tests: {never}");

    // Delivered, as /metrics counts it.
    let (status, metrics) = get(api, "/metrics", token);
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    let delivered: i64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "foodgate_outbox_events{upstream=\"demo-receiver\",status=\"delivered\"} ",
            )
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("delivered count of the demo receiver");
    assert!(delivered > 0, "{metrics}");

    // SIGTERM: a clean stop, exit 0, its temporary data removed.
    let pid = demo.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "the demo did not stop on SIGTERM:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit {status}:\n{}", stderr());
    // The pipes close at exit; give the reader thread a moment for the last lines.
    std::thread::sleep(Duration::from_millis(200));
    assert!(stderr().contains("foodgate: stopped"), "{}", stderr());
    assert!(
        !std::path::Path::new(&data_dir).exists(),
        "{data_dir} removed at exit"
    );
}

#[test]
fn demo_on_a_taken_address_says_so_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_foodgate"))
        .args(["demo", "--listen", &addr.to_string()])
        .output()
        .expect("run foodgate demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("foodgate: cannot listen on {addr}: "))
            && stderr.contains("(choose another with --listen)"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no URLs printed for a demo that did not start"
    );
    let dir = stderr
        .lines()
        .find_map(|l| l.strip_prefix("foodgate: demo data in "))
        .expect("data directory named");
    assert!(!std::path::Path::new(dir).exists(), "{dir} removed");
}
