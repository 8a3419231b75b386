//! The web pages over loopback: sign-in (token, one-time code, CSRF, `next`), sessions
//! (logout, revocation), the dashboard against the API's coverage, and the public board.
//! A real server on 127.0.0.1:0, a fresh database, and a minimal HTTP/1.1 client that shows
//! exactly what goes over the wire (cookies are sent by hand, as a browser would).

use crate::support::{config, temp_dir};
use chrono::{Duration, FixedOffset, Utc};
use foodgate::auth::{self, NewToken, Role};
use foodgate::http::AppState;
use foodgate::judge::Judge;
use foodgate::store::Db;
use foodgate::store::Store;
use foodgate::store::StoreSettings;
use foodgate::web::issue_signin_code;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::sync::oneshot;

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `Set-Cookie` header that sets `name`, whole.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }
    /// The value a `Set-Cookie` gives cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let v = self.set_cookie(name)?;
        let v = v[name.len() + 1..].split(';').next()?.to_string();
        Some(v)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let (status, headers, body) = crate::support::request(addr, method, path, headers, body).await;
    Resp {
        status,
        headers,
        body,
    }
}

/// Sign in through the form as a browser does: GET the form, POST it back with the
/// double-submit cookie. Returns the POST's answer.
pub async fn login(addr: SocketAddr, token: &str, next: &str) -> Resp {
    let page = request(addr, "GET", "/login", &[], b"").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = page.cookie("fg_login_csrf").expect("login csrf cookie");
    assert!(
        page.text()
            .contains(&format!("name=\"csrf\" value=\"{csrf}\"")),
        "the form carries the cookie's value"
    );
    let cookie = format!("fg_login_csrf={csrf}");
    request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", FORM), ("Cookie", &cookie)],
        &form(&[("token", token), ("next", next), ("csrf", &csrf)]),
    )
    .await
}

/// A session id of `token`, signed in through the form.
pub async fn session(addr: SocketAddr, token: &str) -> String {
    let r = login(addr, token, "/dashboard").await;
    assert_eq!(r.status, 303, "{}", r.text());
    r.cookie("fg_session").expect("session cookie")
}

/// `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let enc = |s: &str| {
        let mut o = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                o.push(char::from(b));
            } else {
                o.push_str(&format!("%{b:02X}"));
            }
        }
        o
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

struct App {
    addr: SocketAddr,
    store: Store,
    tokens: HashMap<&'static str, String>,
    _stop: oneshot::Sender<()>,
}

async fn token(store: &Store, name: &str, role: Role, markets: &[&str]) -> String {
    let new = NewToken {
        name: name.into(),
        role,
        markets: markets.iter().map(|m| m.to_string()).collect(),
        expires_days: None,
    };
    store
        .write_async(move |tx| Ok(auth::create(tx, &new, "test")))
        .await
        .expect("write")
        .expect("create token")
}

/// The app with tokens: regulator `reg`, admin `adm`, station `st1` (ZB-0001), contractor
/// `承包商-王五` (ZB-0001 … ZB-0020: its name is the uploader the board must never show).
async fn start(name: &str) -> App {
    let dir = temp_dir(name);
    let cfg = config(&dir, &[]);
    let store = Store::open(&cfg.database_path(), StoreSettings::from_config(&cfg)).expect("open");
    crate::support::import_builtin_markets(&store);
    let mut tokens = HashMap::new();
    tokens.insert(
        "regulator",
        token(&store, "reg", Role::Regulator, &[]).await,
    );
    tokens.insert("admin", token(&store, "adm", Role::Admin, &[]).await);
    tokens.insert(
        "station",
        token(&store, "st1", Role::Station, &["ZB-0001"]).await,
    );
    let markets: Vec<String> = (1..=20).map(|i| format!("ZB-{i:04}")).collect();
    let refs: Vec<&str> = markets.iter().map(String::as_str).collect();
    tokens.insert(
        "contractor",
        token(&store, "承包商-王五", Role::Contractor, &refs).await,
    );
    let state = AppState::new(store.clone(), Judge::builtin());
    let (addr, stop) = crate::support::serve_api(state).await;
    App {
        addr,
        store,
        tokens,
        _stop: stop,
    }
}

impl App {
    async fn get(&self, path: &str, session: Option<&str>) -> Resp {
        let cookie = session.map(|s| format!("fg_session={s}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        request(self.addr, "GET", path, &headers, b"").await
    }

    async fn login(&self, token: &str, next: &str) -> Resp {
        login(self.addr, token, next).await
    }

    /// A session id for `who` (a key of `tokens`).
    async fn session(&self, who: &str) -> String {
        session(self.addr, &self.tokens[who]).await
    }

    async fn upload(&self, who: &str, rows: &Value) -> Value {
        let auth = format!("Bearer {}", self.tokens[who]);
        let r = request(
            self.addr,
            "POST",
            "/api/v1/results",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            rows.to_string().as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    async fn code(&self, token_name: &str, at: chrono::DateTime<Utc>) -> String {
        let name = token_name.to_string();
        self.store
            .write_async(move |tx| issue_signin_code(tx, &name, at))
            .await
            .expect("issue code")
    }
}

/// An upload row: `value` 0.5 fails (chlorpyrifos on spinach), 0.01 passes.
pub fn row(id: &str, market: &str, value: &str, measured_at: &str) -> Value {
    json!({"id": id, "market": market, "stall": "A12", "sample_id": format!("S-{id}"),
           "sample_name": "菠菜", "category": "leafy_vegetable", "analyte": "毒死蜱",
           "method": "spectrophotometric", "value": value, "unit": "mg/kg",
           "measured_at": measured_at, "instrument": "IN-1", "tester": "张三丰"})
}

fn html_type(r: &Resp) -> bool {
    r.header("content-type")
        .is_some_and(|v| v.starts_with("text/html"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_out_dashboard_redirects_to_login_with_next() {
    let app = start("web-redirect").await;
    let r = app.get("/dashboard?date=2025-03-04&sort=tests", None).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/login?next=/dashboard%3Fdate%3D2025-03-04%26sort%3Dtests")
    );
    // An unknown session id is the same as none.
    let r = app.get("/dashboard", Some("not-a-session")).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=/dashboard"));
    // The form keeps `next` (escaped) and sets the double-submit cookie.
    let r = app
        .get("/login?next=/dashboard%3Fdate%3D2025-03-04", None)
        .await;
    assert_eq!(r.status, 200);
    assert!(html_type(&r));
    assert!(r
        .text()
        .contains("name=\"next\" value=\"/dashboard?date=2025-03-04\""));
    let c = r.set_cookie("fg_login_csrf").expect("csrf cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_token_sets_a_strict_session_cookie() {
    let app = start("web-login").await;
    let r = app
        .login(&app.tokens["regulator"], "/dashboard?date=2025-03-04")
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/dashboard?date=2025-03-04"));
    let c = r.set_cookie("fg_session").expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    let sid = r.cookie("fg_session").expect("sid");
    assert_eq!(sid.len(), 64);
    // Only a hash of it is stored.
    let db = app.store.inspect().expect("reader");
    let stored: Vec<String> = db
        .prepare("SELECT hash FROM web_sessions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored, vec![auth::hash_token(&sid)]);
    let d = app.get("/dashboard?date=2025-03-04", Some(&sid)).await;
    assert_eq!(d.status, 200, "{}", d.text());
    assert!(html_type(&d));
    assert!(d.text().contains("Signed in as <strong>reg</strong>"));

    // A wrong token, an unknown one or a revoked one: the form again, 401, one message.
    app.store
        .write_async(|tx| Ok(auth::revoke(tx, "adm", "test")))
        .await
        .unwrap()
        .unwrap();
    let mut pages = Vec::new();
    for bad in [
        "fg_0000000000000000000000000000000000000000000000000000000000000000",
        "nonsense",
        app.tokens["admin"].as_str(),
    ] {
        let r = app.login(bad, "/dashboard").await;
        assert_eq!(r.status, 401, "{bad}");
        assert!(html_type(&r));
        assert!(r.set_cookie("fg_session").is_none());
        let t = r.text();
        assert!(t.contains("That token was not accepted."), "{t}");
        assert!(t.contains("<form method=\"post\" action=\"/login\">"));
        // The page differs only by its fresh CSRF value.
        let csrf = r.cookie("fg_login_csrf").expect("new csrf");
        pages.push(t.replace(&csrf, "CSRF"));
    }
    assert!(
        pages.iter().all(|p| p == &pages[0]),
        "no hint which token exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_must_be_a_local_path() {
    let app = start("web-next").await;
    for (next, to) in [
        ("//evil.com", "/dashboard"),
        ("http://evil.com/x", "/dashboard"),
        ("https://evil.com", "/dashboard"),
        ("/\\evil.com", "/dashboard"),
        ("evil.com", "/dashboard"),
        ("/markets/ZB-0001/board", "/markets/ZB-0001/board"),
    ] {
        let r = app.login(&app.tokens["regulator"], next).await;
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some(to), "{next}");
    }
    // The one-time code link follows the same rule.
    let code = app.code("reg", Utc::now()).await;
    let r = app
        .get(&format!("/login?code={code}&next=//evil.com"), None)
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/dashboard"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_csrf_value_are_refused() {
    let app = start("web-csrf").await;
    let token = app.tokens["regulator"].clone();
    // No double-submit cookie, no field.
    let r = request(
        app.addr,
        "POST",
        "/login",
        &[("Content-Type", FORM)],
        &form(&[("token", &token), ("next", "/dashboard")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(html_type(&r));
    assert!(r.set_cookie("fg_session").is_none());
    // Field present but not the cookie's value (a cross-site form cannot read the cookie).
    let r = request(
        app.addr,
        "POST",
        "/login",
        &[("Content-Type", FORM), ("Cookie", "fg_login_csrf=aaaa")],
        &form(&[("token", &token), ("csrf", "bbbb")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("fg_session").is_none());
    // Logout without the session's CSRF value: refused, and the session lives on.
    let sid = app.session("regulator").await;
    let cookie = format!("fg_session={sid}");
    let r = request(
        app.addr,
        "POST",
        "/logout",
        &[("Content-Type", FORM), ("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        app.addr,
        "POST",
        "/logout",
        &[("Content-Type", FORM), ("Cookie", &cookie)],
        &form(&[("csrf", "0123")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.get("/dashboard", Some(&sid)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session() {
    let app = start("web-logout").await;
    let sid = app.session("admin").await;
    let page = app.get("/dashboard", Some(&sid)).await;
    assert_eq!(page.status, 200);
    // The page's logout form carries the CSRF value; post it back.
    let text = page.text();
    let at = text
        .find("action=\"/logout\"")
        .expect("logout form on the page");
    let tail = &text[at..];
    let v = tail
        .find("name=\"csrf\" value=\"")
        .map(|i| &tail[i + 19..])
        .expect("csrf field");
    let csrf = &v[..v.find('"').expect("end of value")];
    let cookie = format!("fg_session={sid}");
    let r = request(
        app.addr,
        "POST",
        "/logout",
        &[("Content-Type", FORM), ("Cookie", &cookie)],
        &form(&[("csrf", csrf)]),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));
    assert!(r
        .set_cookie("fg_session")
        .is_some_and(|c| c.starts_with("fg_session=;") && c.contains("Max-Age=0")));
    let r = app.get("/dashboard", Some(&sid)).await;
    assert_eq!(r.status, 303, "the old cookie signs no one in");
    let n: i64 = app
        .store
        .inspect()
        .unwrap()
        .query_row("SELECT count(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_token_ends_its_session_at_once() {
    let app = start("web-revoke").await;
    let sid = app.session("regulator").await;
    assert_eq!(app.get("/dashboard", Some(&sid)).await.status, 200);
    app.store
        .write_async(|tx| Ok(auth::revoke(tx, "reg", "test")))
        .await
        .unwrap()
        .unwrap();
    let r = app.get("/dashboard", Some(&sid)).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=/dashboard"));
    // An expired token's session ends too.
    let sid = app.session("admin").await;
    app.store
        .write_async(|tx| {
            tx.connection().execute(
                "UPDATE tokens SET expires_at = '2020-01-01T00:00:00.000Z' WHERE name = 'adm'",
                [],
            )
        })
        .await
        .unwrap();
    assert_eq!(app.get("/dashboard", Some(&sid)).await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn station_and_contractor_tokens_get_a_403_page() {
    let app = start("web-roles").await;
    for who in ["station", "contractor"] {
        let sid = app.session(who).await;
        let r = app.get("/dashboard", Some(&sid)).await;
        assert_eq!(r.status, 403, "{who}");
        assert!(html_type(&r), "{who}: an HTML page, not JSON");
        assert!(r.text().contains("regulator and admin tokens only"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_codes_sign_in_once_within_ten_minutes() {
    let app = start("web-code").await;
    let code = app.code("reg", Utc::now()).await;
    assert_eq!(code.len(), 64);
    let path = format!("/login?code={code}&next=/dashboard%3Fdate%3D2025-03-04");
    let r = app.get(&path, None).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/dashboard?date=2025-03-04"));
    let sid = r.cookie("fg_session").expect("session");
    assert_eq!(app.get("/dashboard", Some(&sid)).await.status, 200);
    // Second use.
    let r = app.get(&path, None).await;
    assert_eq!(r.status, 401);
    assert!(html_type(&r));
    assert!(r.set_cookie("fg_session").is_none());
    assert!(r.text().contains("used already or has expired"));
    // Issued 11 minutes ago: expired; 9 minutes ago: still good.
    let old = app.code("reg", Utc::now() - Duration::minutes(11)).await;
    let r = app.get(&format!("/login?code={old}"), None).await;
    assert_eq!(r.status, 401);
    let recent = app.code("reg", Utc::now() - Duration::minutes(9)).await;
    assert_eq!(
        app.get(&format!("/login?code={recent}"), None).await.status,
        303
    );
    // Only hashes are stored.
    let db = app.store.inspect().unwrap();
    let plain: i64 = db
        .query_row(
            "SELECT count(*) FROM signin_codes WHERE hash IN (?1, ?2, ?3)",
            [&code, &old, &recent],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plain, 0);
    // A code for a token revoked after it was issued signs no one in.
    let late = app.code("adm", Utc::now()).await;
    app.store
        .write_async(|tx| Ok(auth::revoke(tx, "adm", "test")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        app.get(&format!("/login?code={late}"), None).await.status,
        401
    );
    // No such token: no code.
    let r = app
        .store
        .write_async(|tx| issue_signin_code(tx, "nobody", Utc::now()))
        .await;
    assert!(r.is_err());
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

/// The number in the summary card `id`.
fn card(html: &str, id: &str) -> u64 {
    let at = html
        .find(&format!("id=\"{id}\"><span class=\"n\">"))
        .unwrap_or_else(|| panic!("card {id} missing"));
    let rest = &html[at..];
    let start = rest.find("\"n\">").unwrap() + 4;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_summary_equals_the_api_coverage() {
    let app = start("web-summary").await;
    // Readings count on the day they were received when the instrument's clock is more than
    // 24 h away: the data is of today and yesterday, as a live service's would be.
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let date = today.format("%Y-%m-%d").to_string();
    let yesterday = (today - Duration::days(1)).format("%Y-%m-%d").to_string();
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut rows = Vec::new();
    for i in 0..400 {
        let market = format!("ZB-{:04}", 1 + rng.below(20));
        let value = if rng.below(10) == 0 { "0.5" } else { "0.01" };
        let day = if rng.below(5) == 0 { &yesterday } else { &date };
        let hour = rng.below(24);
        let mut r = row(
            &format!("g{i}"),
            &market,
            value,
            &format!("{day}T{hour:02}:15:00+08:00"),
        );
        // Repeat tests of one sample now and then: samples < tests.
        if rng.below(4) == 0 {
            r["sample_id"] = json!(format!("S-g{}", i.max(1) - 1));
        }
        rows.push(r);
    }
    let answer = app.upload("contractor", &Value::Array(rows)).await;
    assert!(answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "stored"));
    let auth = format!("Bearer {}", app.tokens["regulator"]);
    let api = request(
        app.addr,
        "GET",
        &format!("/api/v1/coverage?date={date}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await
    .json();
    let s = &api["summary"];
    assert!(s["failures"].as_u64().unwrap() > 0, "{s}");
    let sid = app.session("regulator").await;
    let page = app
        .get(&format!("/dashboard?date={date}"), Some(&sid))
        .await;
    assert_eq!(page.status, 200);
    let html = page.text();
    for (card_id, key) in [
        ("markets-tested", "markets_tested"),
        ("markets-met-quota", "markets_met_quota"),
        ("samples", "samples"),
        ("tests", "tests"),
        ("failures", "failures"),
    ] {
        assert_eq!(
            card(&html, card_id),
            s[key].as_u64().unwrap(),
            "{card_id} vs {key}"
        );
    }
    assert!(html.contains("markets tested of 484"));
    // Every market has its row; the chart is there, with 30 days.
    let table = &html[html.find("id=\"coverage\"").unwrap()..];
    assert_eq!(table.matches("<tr").count(), 1 + 484);
    assert!(html.contains("<svg"));
    assert_eq!(html.matches("<g class=\"day\">").count(), 30);
    let first_day = (today - Duration::days(29)).format("%Y-%m-%d").to_string();
    assert!(html.contains(&format!("{date}: ")) && html.contains(&format!("{first_day}: ")));
    // Open holds: one per failure, all days.
    let fails: i64 = app
        .store
        .inspect()
        .unwrap()
        .query_row(
            "SELECT count(*) FROM readings WHERE verdict = 'fail'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(card(&html, "open-holds"), fails as u64);

    // Sorted by failures, most first: the first row is a market with the most failures.
    let most = api["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["failures"].as_u64().unwrap())
        .max()
        .unwrap();
    let page = app
        .get(
            &format!("/dashboard?date={date}&sort=failures&dir=desc"),
            Some(&sid),
        )
        .await
        .text();
    let table = &page[page.find("id=\"coverage\"").unwrap()..];
    let first = &table[table.find("<tbody>").unwrap()..];
    let cells: Vec<&str> = first
        .split("<td")
        .skip(1)
        .take(7)
        .map(|c| &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()])
        .collect();
    assert_eq!(cells[6], most.to_string(), "{cells:?}");
    // The column link flips the direction.
    assert!(table.contains("sort=failures&amp;dir=asc\">Failures</a> ▼"));
    // A bad date: a 400 page, HTML.
    let r = app.get("/dashboard?date=2025-13-01", Some(&sid)).await;
    assert_eq!(r.status, 400);
    assert!(html_type(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_shows_failures_first_in_red_and_nothing_personal() {
    let app = start("web-board").await;
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let now = Utc::now().with_timezone(&tz);
    // Earlier today (or just now, shortly after midnight), so both count as today.
    let at = |min: i64| {
        let t = now - Duration::minutes(min);
        let t = if t.date_naive() == now.date_naive() {
            t
        } else {
            now
        };
        t.to_rfc3339()
    };
    let rows = json!([
        row("b1", "ZB-0003", "0.01", &at(30)),
        row("b2", "ZB-0003", "0.5", &at(50)),
        row("b3", "ZB-0003", "0.01", &at(10)),
        row("b4", "ZB-0004", "0.5", &at(5)),
    ]);
    let answer = app.upload("contractor", &rows).await;
    assert_eq!(answer["results"][1]["verdict"], "fail", "{answer}");
    // A vendor and a stall holder's name in the store, for this very sample and stall.
    app.store
        .write_async(|tx| {
            tx.connection().execute(
                "UPDATE samples SET vendor = '李四商行', supplier = '赵六批发' WHERE market = 'ZB-0003'",
                [],
            )?;
            tx.connection().execute(
                "INSERT INTO stalls (market, code, vendor) VALUES ('ZB-0003', 'A12', '李四商行')",
                [],
            )
        })
        .await
        .unwrap();
    let r = app.get("/markets/ZB-0003/board", None).await;
    assert_eq!(r.status, 200);
    assert!(html_type(&r));
    let html = r.text();
    assert!(html.contains("<html lang=\"zh-CN\">"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
    // Rows: the failure first, then the passes, newest first.
    let body = &html[html.find("<tbody>").expect("a table")..];
    let classes: Vec<&str> = body
        .match_indices("<tr class=\"")
        .map(|(i, _)| {
            let rest = &body[i + 11..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(classes, ["fail", "pass", "pass"]);
    // Red: the stylesheet colours failed rows, and the verdict is in words.
    assert!(html.contains("tr.fail td{color:#ff6b5e}"));
    let first = &body[..body.find("</tr>").unwrap()];
    assert!(first.contains("不合格"), "{first}");
    assert!(first.contains("菠菜") && first.contains("A12") && first.contains("毒死蜱"));
    assert!(
        first.contains("已暂停销售"),
        "the hold in plain words: {first}"
    );
    assert!(html.contains("今日检测 <strong>3</strong> 项，不合格 <strong>1</strong> 项"));
    // Nothing personal: not the tester, the vendor, the supplier, the uploader, a token.
    for secret in [
        "张三丰",
        "李四商行",
        "赵六批发",
        "承包商-王五",
        "IN-1",
        "S-b2",
        app.tokens["contractor"].as_str(),
    ] {
        assert!(!html.contains(secret), "{secret} is on the public board");
    }
    // Another market's results are not on this board.
    assert!(!html.contains("ZB-0004"));
    // Unknown market: a 404 page in HTML.
    let r = app.get("/markets/ZB-9999/board", None).await;
    assert_eq!(r.status, 404);
    assert!(html_type(&r));
    assert!(r.text().contains("No such market"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_escaped() {
    let app = start("web-escape").await;
    let now = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let mut r = row("x1", "ZB-0005", "0.5", &now);
    r["sample_name"] = json!("<script>alert('x')</script>");
    r["stall"] = json!("\"><img src=x onerror=alert(1)>");
    app.upload("contractor", &json!([r])).await;
    let board = app.get("/markets/ZB-0005/board", None).await.text();
    let sid = app.session("regulator").await;
    let dash = app.get("/dashboard", Some(&sid)).await.text();
    for (page, html) in [("board", &board), ("dashboard", &dash)] {
        assert!(!html.contains("<script"), "{page}: raw <script>");
        assert!(!html.contains("<img"), "{page}: raw <img>");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{page}: the escaped name is shown"
        );
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    }
    // A hostile market code in the path is escaped on the 404 page too.
    let r = app.get("/markets/%3Cb%3Ex%3C%2Fb%3E/board", None).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("&lt;b&gt;x&lt;/b&gt;") && !r.text().contains("<b>x"));
}
