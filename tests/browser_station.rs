//! A tester at the testing room's page on a phone: headless Chromium 390 px wide, driven over
//! the DevTools protocol (a WebSocket), signs in at `/login` with a station token, registers a
//! sample with the form, and stops the sale of a confirmed hold with its button and form. The
//! API then says what the clicks did. Skipped, with a note, when Chromium is not installed.

use crate::browser::{chromium, shots_dir};
use crate::support::{temp_dir, TestApp};
use crate::web::row;
use base64::Engine;
use chrono::{Duration, FixedOffset, Utc};
use foodgate::auth::{NewToken, Role};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

/// How long the page may make no progress before the test gives up: a stall limit, not a
/// budget (a busy 2-core machine is slow, not stuck).
const STALL: StdDuration = StdDuration::from_secs(90);
const WIDTH: u32 = 390;

/// Chromium with its DevTools endpoint; killed when dropped.
struct Browser {
    child: Child,
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on the DevTools HTTP endpoint: the JSON it answers.
fn devtools_json(port: u16, path: &str) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(StdDuration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // Chromium keeps the connection open: read the header, then Content-Length bytes.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())?;
        if buf.len() >= end + 4 + len {
            return serde_json::from_slice(&buf[end + 4..end + 4 + len]).ok();
        }
    }
}

impl Browser {
    fn start(chromium: &Path, profile: &Path) -> Browser {
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--remote-debugging-port=0",
                &format!("--window-size={WIDTH},844"),
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it listens on into the profile.
        let port_file = profile.join("DevToolsActivePort");
        let start = Instant::now();
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse().ok())
            {
                break p;
            }
            assert!(
                start.elapsed() < STALL,
                "chromium wrote no DevToolsActivePort"
            );
            std::thread::sleep(StdDuration::from_millis(50));
        };
        let page_ws = loop {
            let found = devtools_json(port, "/json/list").and_then(|v| {
                v.as_array()?
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            });
            if let Some(u) = found {
                break u;
            }
            assert!(start.elapsed() < STALL, "chromium shows no page target");
            std::thread::sleep(StdDuration::from_millis(50));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("devtools socket");
        stream.set_read_timeout(Some(STALL)).expect("read timeout");
        let (ws, _) = tungstenite::client::client(page_ws.as_str(), stream).expect("websocket");
        let mut b = Browser {
            child,
            ws,
            next_id: 0,
        };
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
        );
        b
    }

    /// One DevTools command; its `result` (events that arrive meanwhile are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(tungstenite::Message::text(msg))
            .expect("send to chromium");
        loop {
            let m = self.ws.read().expect("read from chromium");
            let Ok(text) = m.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of JavaScript `expr` in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Wait until the page at a path starting with `path` has loaded.
    fn wait_for(&mut self, path: &str) {
        let start = Instant::now();
        loop {
            let v = self.eval("document.readyState + ' ' + location.pathname + location.search");
            let s = v.as_str().unwrap_or_default().to_string();
            if let Some(at) = s.strip_prefix("complete ") {
                if at.starts_with(path) {
                    return;
                }
            }
            assert!(start.elapsed() < STALL, "never reached {path}: at {s}");
            std::thread::sleep(StdDuration::from_millis(50));
        }
    }

    /// The page is no wider than the screen: nothing to scroll sideways.
    fn fits(&mut self, what: &str) {
        let w = self.eval("document.documentElement.scrollWidth");
        assert!(
            w.as_u64().is_some_and(|w| w <= u64::from(WIDTH)),
            "{what}: {w} px wide on a {WIDTH} px screen"
        );
    }

    fn screenshot(&mut self, file: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .expect("png");
        std::fs::write(file, png).expect("write screenshot");
    }
}

/// JavaScript text for `s` (a JSON string is a JavaScript string).
fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tester_signs_in_registers_a_sample_and_stops_a_sale_on_a_phone() {
    let Some(chromium) = chromium() else {
        println!("skipping: chromium is not installed (set FOODGATE_CHROMIUM or install it)");
        return;
    };
    let dir = temp_dir("browser-station");
    let cfg = crate::support::config(&dir, &[]);
    let app = TestApp::builder(cfg).builtin_markets().start().await;
    let new = NewToken {
        name: "检测员-李娜".into(),
        role: Role::Station,
        markets: vec!["ZB-0001".into()],
        expires_days: None,
    };
    let token = app
        .store()
        .write_async(move |tx| Ok(foodgate::auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token");
    // A failure this morning, confirmed by a retest: its hold waits for the sale to stop.
    let tz = FixedOffset::east_opt(8 * 3600).expect("tz");
    let at = (Utc::now() - Duration::minutes(40)).with_timezone(&tz);
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(&token),
            "application/json",
            json!([row("b1", "ZB-0001", "0.5", &at.to_rfc3339())])
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let v: Value = serde_json::from_str(&v).expect("json");
    let hold = v["results"][0]["hold"].as_str().expect("hold").to_string();
    let retest = json!({"id": "b1-rt", "analyte": "毒死蜱", "category": "leafy_vegetable",
        "method": "spectrophotometric", "instrument": "IN-1", "value": "0.7", "unit": "mg/kg",
        "measured_at": (at + Duration::minutes(10)).to_rfc3339()});
    let (s, v) = app
        .post(
            &format!("/api/v1/holds/{hold}/retest"),
            Some(&token),
            "application/json",
            retest.to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let base = format!("http://{}", app.addr());
    let profile = dir.join("chromium");
    let shots = shots_dir();
    let tok = token.clone();
    tokio::task::spawn_blocking(move || {
        let mut b = Browser::start(&chromium, &profile);
        // Sign in at /login: a tester lands on the testing room.
        b.call("Page.navigate", json!({"url": format!("{base}/login")}));
        b.wait_for("/login");
        b.fits("/login");
        b.eval(&format!(
            "document.querySelector('input[name=token]').value = {}; \
             document.querySelector('form').requestSubmit(); true",
            js(&tok)
        ));
        b.wait_for("/station");
        b.fits("/station");
        let text = b.eval("document.body.innerText");
        let text = text.as_str().unwrap_or_default();
        assert!(text.contains("检测室 Testing room"), "{text}");
        assert!(text.contains("待处理 Open holds (1)"), "{text}");
        assert!(
            text.contains("复检阳性") || text.contains("confirmed"),
            "{text}"
        );
        b.screenshot(&shots.join("station.png"));

        // Register a sample with the form.
        b.eval("document.getElementById('register').click(); true");
        b.wait_for("/station/samples/new");
        b.fits("the sample form");
        b.eval(
            "const f = document.getElementById('sample-form'); \
             f.sample_id.value = 'S-PHONE-1'; f.stall.value = 'A12'; \
             f.sample_name.value = '小白菜'; f.category.value = 'leafy_vegetable'; \
             f.vendor.value = '王记蔬菜'; f.supplier.value = '寿光蔬菜批发市场'; \
             f.certificate_no.value = 'HGZ-2026-0042'; f.requestSubmit(); true",
        );
        b.wait_for("/station?");
        let done = b.eval("(document.getElementById('done') || {}).innerText || ''");
        assert!(
            done.as_str().unwrap_or_default().contains("S-PHONE-1"),
            "registered: {done}"
        );

        // Stop the sale: the hold's button, then its form.
        b.eval("document.querySelector('a.button[href*=\"action=stop_sale\"]').click(); true");
        b.wait_for("/station/holds/");
        b.fits("the hold's form");
        b.eval(
            "const f = document.getElementById('form-stop_sale'); \
             f.operator.value = '李娜'; f.note.value = '已下架封存'; f.requestSubmit(); true",
        );
        b.wait_for("/station?");
        b.fits("/station after the step");
        let text = b.eval("document.body.innerText");
        assert!(
            text.as_str().unwrap_or_default().contains("已停售"),
            "the hold now says the sale stopped: {text}"
        );
        b.screenshot(&shots.join("station-after.png"));
    })
    .await
    .expect("the browser session");

    // What the clicks did, as the API sees it.
    let conn = app.store().inspect().expect("inspect");
    let (vendor, cert): (String, String) = conn
        .query_row(
            "SELECT vendor, certificate_no FROM samples WHERE sample_id = 'S-PHONE-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the registered sample");
    assert_eq!(
        (vendor.as_str(), cert.as_str()),
        ("王记蔬菜", "HGZ-2026-0042")
    );
    drop(conn);
    let (_, text) = app.get("/api/v1/holds", Some(&token)).await;
    let holds: Value = serde_json::from_str(&text).expect("json");
    let h = &holds["holds"][0];
    assert_eq!(h["status"], "stopped", "{h}");
    let last = h["history"]
        .as_array()
        .and_then(|a| a.last())
        .expect("history");
    assert_eq!(last["action"], "stop_sale");
    assert_eq!(last["by"], "检测员-李娜");
    assert_eq!(last["fields"]["operator"], "李娜");
    assert_eq!(last["fields"]["note"], "已下架封存");
    assert!(
        std::fs::metadata(shots_dir().join("station.png")).map_or(0, |m| m.len()) > 5_000,
        "a screenshot of the page"
    );
    app.shutdown().await;
}
