//! What a person sees: the service (in-process, as `foodgate serve` runs it) with generated
//! data, looked at by a real headless Chromium (`--dump-dom` for what it rendered,
//! `--screenshot` for the record, saved under `target/screenshots/`). Skipped, with a note,
//! when Chromium is not installed.

use crate::support::{reading, temp_dir, TestApp};
use crate::web::{request, row, Resp};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use foodgate::auth::{self, NewToken, Role};
use foodgate::judge::Verdict;
use foodgate::store::Db;
use foodgate::store::{Batch, NewReading, Origin, Store, StoreSettings};
use foodgate::web::issue_signin_code;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

/// Chromium, if installed (`FOODGATE_CHROMIUM` overrides the search).
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FOODGATE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Run Chromium headless on `url` with `extra` flags and a fresh profile; its stdout.
fn browse(chromium: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if start.elapsed() > StdDuration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
    reader.join().unwrap_or_default()
}

/// The number in the summary card `id` of a rendered dashboard.
fn card(dom: &str, id: &str) -> u64 {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("card {id} missing from the page"));
    let rest = &dom[at..];
    let start = rest.find("class=\"n\">").expect("number") + 10;
    let end = rest[start..].find('<').expect("end") + start;
    rest[start..end].parse().expect("a number")
}

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 29 days of history, as instruments would have left it: most markets test every day,
/// some meet their quota of 10 samples, about 3% of tests fail.
async fn seed_history(store: &Store, tz: FixedOffset) {
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let mut n = 0u64;
    for back in 1..=29i64 {
        let day = today - Duration::days(back);
        let mut batch = Batch::default();
        // Coverage climbs over the month (a programme being rolled out).
        let active = 150 + (29 - back as u64) * 9 + rng.below(30);
        for m in 1..=484u64 {
            if rng.below(484) >= active {
                continue;
            }
            let tests = 2 + rng.below(12);
            for t in 0..tests {
                n += 1;
                let fail = rng.below(33) == 0;
                let mut r = reading(
                    &format!("H{n}"),
                    if fail { "0.5" } else { "0.01" },
                    if fail { Verdict::Fail } else { Verdict::Pass },
                );
                let at = format!("{day}T{:02}:{:02}:00+08:00", 7 + t % 10, rng.below(60));
                r.reading.measured_at = DateTime::parse_from_rfc3339(&at).ok();
                let received = r
                    .reading
                    .measured_at
                    .map(|t| t.with_timezone(&Utc) + Duration::minutes(2))
                    .unwrap_or_else(Utc::now);
                batch.readings.push(NewReading {
                    reading: r,
                    market: format!("ZB-{m:04}"),
                    stall: Some(format!("A{:02}", 1 + rng.below(40))),
                    origin: Origin::Instrument(format!("ZB-{m:04}-OP1")),
                    received_at: received,
                    frame: None,
                });
            }
        }
        store.submit_async(batch).await.expect("seed history");
    }
    // Instruments as `serve` records them: most online, a few not.
    store
        .write_async(|tx| {
            for i in 1..=12i64 {
                tx.connection().execute(
                    "INSERT INTO instruments (id, market, protocol, serial_number, last_seen, online, readings)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![
                        format!("ZB-{i:04}-OP1"),
                        format!("ZB-{i:04}"),
                        ["enzyme-print", "gold-card", "spectro", "astm"][(i % 4) as usize],
                        format!("SN{i:05}"),
                        foodgate_now(),
                        i % 5 != 0,
                        100 + i * 7
                    ],
                )?;
            }
            Ok(())
        })
        .await
        .expect("instruments");
}

fn foodgate_now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn create_token(store: &Store, name: &str, role: Role, markets: Vec<String>) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets,
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("token")
}

pub fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_the_dashboard_and_the_board_in_chromium() {
    let Some(chromium) = chromium() else {
        println!("skipping: chromium is not installed (set FOODGATE_CHROMIUM or install it)");
        return;
    };
    let dir = temp_dir("browser");
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let cfg_path = dir.join("foodgate.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n",
            dir.join("data")
        ),
    )
    .expect("config");
    let cfg = foodgate::config::Config::load_or_default(Some(&cfg_path)).expect("config");
    // Before `serve` starts: tokens, history, and two one-time codes (valid 10 minutes).
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(&cfg)).expect("open");
    crate::support::import_builtin_markets(&store);
    let scope: Vec<String> = (1..=484).map(|i| format!("ZB-{i:04}")).collect();
    let contractor = create_token(&store, "承包商-王五", Role::Contractor, scope).await;
    let regulator = create_token(&store, "reg", Role::Regulator, vec![]).await;
    seed_history(&store, tz).await;
    let mut codes = Vec::new();
    for _ in 0..2 {
        codes.push(
            store
                .write_async(|tx| issue_signin_code(tx, "reg", Utc::now()))
                .await
                .expect("code"),
        );
    }
    store.close_async().await;

    let app = TestApp::start(cfg.clone()).await;
    let addr = app.addr();
    // Today's results, uploaded by the contractor: every 2nd market, ZB-0001 with a failure.
    let now = Utc::now().with_timezone(&tz);
    let mut rng = Rng(42);
    let mut rows = Vec::new();
    for m in (1..=484).step_by(2) {
        for t in 0..(3 + rng.below(10)) {
            let fail = (m == 1 && t == 1) || rng.below(30) == 0;
            let at = now - Duration::minutes(i64::try_from(rng.below(240)).unwrap_or(0));
            let at = if at.date_naive() == now.date_naive() {
                at
            } else {
                now
            };
            rows.push(row(
                &format!("d{m}-{t}"),
                &format!("ZB-{m:04}"),
                if fail { "0.5" } else { "0.01" },
                &at.to_rfc3339(),
            ));
        }
    }
    let auth = format!("Bearer {contractor}");
    let r: Resp = request(
        addr,
        "POST",
        "/api/v1/results",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Value::Array(rows).to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let auth = format!("Bearer {regulator}");
    let date = now.format("%Y-%m-%d").to_string();
    let cov = request(
        addr,
        "GET",
        &format!("/api/v1/coverage?date={date}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await
    .json();
    let summary = cov["summary"].clone();
    assert_eq!(summary["markets_tested"], json!(242), "{summary}");

    let shots = shots_dir();
    let base = format!("http://{addr}");
    let c = chromium.clone();
    let profile = dir.join("chromium-1");
    let url = format!("{base}/login?code={}&next=/dashboard", codes[0]);
    let dom = tokio::task::spawn_blocking(move || {
        browse(&c, &profile, &["--dump-dom".to_string()], &url)
    })
    .await
    .expect("chromium");
    assert!(
        dom.contains("market testing dashboard"),
        "signed in by the code link and shown the dashboard:\n{}",
        &dom[..dom.len().min(2000)]
    );
    for (id, key) in [
        ("markets-tested", "markets_tested"),
        ("markets-met-quota", "markets_met_quota"),
        ("samples", "samples"),
        ("tests", "tests"),
        ("failures", "failures"),
    ] {
        assert_eq!(
            card(&dom, id),
            summary[key].as_u64().expect("number"),
            "{id}"
        );
    }
    assert!(dom.contains("<svg"), "the trend chart is rendered");
    assert_eq!(dom.matches("<g class=\"day\">").count(), 30);
    assert!(dom.contains("Instruments: 10 online, 2 offline"));

    // Screenshots: the dashboard (with the second code), the board on a screen and a phone.
    let c = chromium.clone();
    let profile = dir.join("chromium-2");
    let url = format!("{base}/login?code={}&next=/dashboard", codes[1]);
    let shot = shots.join("dashboard.png");
    let arg = format!("--screenshot={}", shot.display());
    let _ = std::fs::remove_file(&shot);
    tokio::task::spawn_blocking(move || {
        browse(&c, &profile, &[arg, "--window-size=1280,2000".into()], &url)
    })
    .await
    .expect("chromium");
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "a screenshot of the dashboard at {}",
        shot.display()
    );

    let board = format!("{base}/markets/ZB-0001/board");
    let c = chromium.clone();
    let profile = dir.join("chromium-3");
    let url = board.clone();
    let dom = tokio::task::spawn_blocking(move || {
        browse(&c, &profile, &["--dump-dom".to_string()], &url)
    })
    .await
    .expect("chromium");
    let body = &dom[dom.find("<tbody>").expect("a results table")..];
    assert!(
        body.starts_with("<tbody><tr class=\"fail\">"),
        "a failure first: {}",
        &body[..body.len().min(600)]
    );
    let first = &body[..body.find("</tr>").expect("row")];
    assert!(
        first.contains("不合格") && first.contains("菠菜"),
        "{first}"
    );
    for secret in ["张三丰", "承包商-王五", "IN-1", contractor.as_str()] {
        assert!(!dom.contains(secret), "{secret} is on the public board");
    }
    for (name, size) in [("board.png", "1280,900"), ("board-phone.png", "390,844")] {
        let c = chromium.clone();
        let profile = dir.join(format!("chromium-{name}"));
        let shot = shots.join(name);
        let _ = std::fs::remove_file(&shot);
        let args = vec![
            format!("--screenshot={}", shot.display()),
            format!("--window-size={size}"),
        ];
        let url = board.clone();
        tokio::task::spawn_blocking(move || browse(&c, &profile, &args, &url))
            .await
            .expect("chromium");
        assert!(
            std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 5_000,
            "{name}"
        );
    }
}
