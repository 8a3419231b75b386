//! The testing room's page and forms over HTTP: who may, what it shows, and that a form is
//! checked as the API checks it (CSRF, scope, the hold's state), changing nothing when refused.

use crate::support::{temp_dir, TestApp};
use crate::web::{form, login, request, row, Resp};
use chrono::{Duration, FixedOffset, Utc};
use foodgate::auth::{NewToken, Role};
use foodgate::store::Store;
use serde_json::{json, Value};

const FORM: &str = "application/x-www-form-urlencoded";

async fn token(store: &Store, name: &str, role: Role, markets: &[&str]) -> String {
    let new = NewToken {
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

/// A failure of `market` (row `id`), confirmed by a retest: its hold id.
async fn confirmed_hold(app: &TestApp, token: &str, id: &str, market: &str) -> String {
    let tz = FixedOffset::east_opt(8 * 3600).expect("tz");
    let at = (Utc::now() - Duration::minutes(30)).with_timezone(&tz);
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(token),
            "application/json",
            json!([row(id, market, "0.5", &at.to_rfc3339())])
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let v: Value = serde_json::from_str(&v).expect("json");
    let hold = v["results"][0]["hold"].as_str().expect("hold").to_string();
    let rt = json!({"id": format!("{id}-rt"), "analyte": "毒死蜱", "category": "leafy_vegetable",
        "method": "spectrophotometric", "instrument": "IN-1", "value": "0.7", "unit": "mg/kg",
        "measured_at": (at + Duration::minutes(5)).to_rfc3339()});
    let (s, v) = app
        .post(
            &format!("/api/v1/holds/{hold}/retest"),
            Some(token),
            "application/json",
            rt.to_string().as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    hold
}

async fn hold_json(app: &TestApp, token: &str, id: &str) -> Value {
    let (_, text) = app.get("/api/v1/holds", Some(token)).await;
    let v: Value = serde_json::from_str(&text).expect("json");
    v["holds"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// The CSRF token of the page at `path` for session `sid`.
async fn csrf_of(app: &TestApp, sid: &str, path: &str) -> (Resp, String) {
    let cookie = format!("fg_session={sid}");
    let page = request(app.addr(), "GET", path, &[("Cookie", &cookie)], b"").await;
    let text = page.text();
    let csrf = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    (page, csrf)
}

async fn post_form(app: &TestApp, sid: &str, path: &str, fields: &[(&str, &str)]) -> Resp {
    let cookie = format!("fg_session={sid}");
    request(
        app.addr(),
        "POST",
        path,
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &form(fields),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_testing_room_shows_its_market_and_checks_every_form() {
    let dir = temp_dir("station-page");
    let app = TestApp::builder(crate::support::config(&dir, &[]))
        .builtin_markets()
        .start()
        .await;
    let st1 = token(app.store(), "st1", Role::Station, &["ZB-0001"]).await;
    let st2 = token(app.store(), "st2", Role::Station, &["ZB-0002"]).await;
    let reg = token(app.store(), "reg", Role::Regulator, &[]).await;
    let mine = confirmed_hold(&app, &st1, "f1", "ZB-0001").await;
    let theirs = confirmed_hold(&app, &st2, "f2", "ZB-0002").await;

    // Signed out: to the sign-in form; a tester signing in lands here; a regulator is refused.
    let r = request(app.addr(), "GET", "/station", &[], b"").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=/station"));
    let r = login(app.addr(), &st1, "/dashboard").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/station"));
    let sid = r.cookie("fg_session").expect("session");
    let reg_sid = crate::web::session(app.addr(), &reg).await;
    let cookie = format!("fg_session={reg_sid}");
    let r = request(app.addr(), "GET", "/station", &[("Cookie", &cookie)], b"").await;
    assert_eq!(r.status, 403);

    // The page: its market's hold with the steps it allows, today's readings; not the other's.
    let (page, _) = csrf_of(&app, &sid, "/station").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains(&format!("id=\"hold-{mine}\"")), "{html}");
    assert!(!html.contains(&theirs));
    assert!(html.contains("action=stop_sale") && html.contains("停售下架 Stop sale"));
    assert!(
        !html.contains("action=destroy"),
        "not before the sale stopped"
    );
    assert!(
        html.contains("今日检测 Today&#39;s tests: 2")
            || html.contains("今日检测 Today's tests: 2"),
        "{html}"
    );
    assert!(html.contains("http-equiv=\"refresh\""));

    // Another market's hold: not shown, not acted on.
    let (r, _) = csrf_of(&app, &sid, &format!("/station/holds/{theirs}")).await;
    assert_eq!(r.status, 404);
    let (hold_page, csrf) = csrf_of(
        &app,
        &sid,
        &format!("/station/holds/{mine}?action=stop_sale"),
    )
    .await;
    assert_eq!(hold_page.status, 200);
    assert!(hold_page.text().contains("id=\"form-stop_sale\""));
    let r = post_form(
        &app,
        &sid,
        &format!("/station/holds/{theirs}/actions"),
        &[("csrf", &csrf), ("action", "stop_sale"), ("operator", "x")],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(hold_json(&app, &st2, &theirs).await["status"], "confirmed");

    // No CSRF token, or a wrong one: refused, nothing changed.
    let before = hold_json(&app, &st1, &mine).await;
    for bad in ["", "0000"] {
        let r = post_form(
            &app,
            &sid,
            &format!("/station/holds/{mine}/actions"),
            &[("csrf", bad), ("action", "stop_sale"), ("operator", "x")],
        )
        .await;
        assert_eq!(r.status, 403, "csrf {bad:?}");
    }
    assert_eq!(hold_json(&app, &st1, &mine).await, before);

    // Out of order: refused with the reason, nothing changed.
    let r = post_form(
        &app,
        &sid,
        &format!("/station/holds/{mine}/actions"),
        &[("csrf", &csrf), ("action", "close")],
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(r.text().contains("id=\"error\""), "{}", r.text());
    let r = post_form(
        &app,
        &sid,
        &format!("/station/holds/{mine}/actions"),
        &[("csrf", &csrf), ("action", "stop_sale"), ("operator", "")],
    )
    .await;
    assert_eq!(r.status, 400, "operator is required");
    assert!(r.text().contains("(operator)"));
    assert_eq!(hold_json(&app, &st1, &mine).await, before);

    // The step, through the form.
    let r = post_form(
        &app,
        &sid,
        &format!("/station/holds/{mine}/actions"),
        &[
            ("csrf", &csrf),
            ("action", "stop_sale"),
            ("operator", "李四"),
            ("note", ""),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(r
        .header("location")
        .is_some_and(|l| l.contains("done=stop_sale")));
    let h = hold_json(&app, &st1, &mine).await;
    assert_eq!(h["status"], "stopped");
    let last = h["history"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("entry");
    assert_eq!(
        (last["by"].as_str(), last["fields"]["operator"].as_str()),
        (Some("st1"), Some("李四"))
    );
    assert!(
        last["fields"].get("note").is_none(),
        "an empty field is not sent"
    );

    // The rest of the path, each step through its form: laboratory, its positive result,
    // destruction, the re-sample picked from the stall's readings, close.
    let step = |fields: Vec<(&'static str, String)>| {
        let (app, sid, mine) = (&app, &sid, &mine);
        async move {
            let action = fields[0].1.clone();
            let (page, csrf) =
                csrf_of(app, sid, &format!("/station/holds/{mine}?action={action}")).await;
            assert!(
                page.text().contains(&format!("id=\"form-{action}\"")),
                "{action}"
            );
            let mut all: Vec<(&str, String)> = vec![("csrf", csrf)];
            all.extend(fields);
            let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = post_form(app, sid, &format!("/station/holds/{mine}/actions"), &pairs).await;
            assert_eq!(r.status, 303, "{action}: {}", r.text());
        }
    };
    step(vec![
        ("action", "lab_sent".into()),
        ("lab", "市食检所".into()),
        ("lab_sample_no", "L-7".into()),
    ])
    .await;
    step(vec![
        ("action", "lab_result".into()),
        ("result", "positive".into()),
        ("reference", "R-7".into()),
    ])
    .await;
    step(vec![
        ("action", "destroy".into()),
        ("kg", "12.5".into()),
        ("method", "深埋 Deep burial".into()),
        ("witness", "王五".into()),
    ])
    .await;
    let tz = FixedOffset::east_opt(8 * 3600).expect("tz");
    let now = Utc::now().with_timezone(&tz).to_rfc3339();
    let (s, v) = app
        .post(
            "/api/v1/results",
            Some(&st1),
            "application/json",
            json!([row("f1-re", "ZB-0001", "0.01", &now)])
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (page, _) = csrf_of(
        &app,
        &sid,
        &format!("/station/holds/{mine}?action=resample"),
    )
    .await;
    let text = page.text();
    let option = text
        .split("<select name=\"reading\"><option value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no re-sample to pick: {text}"))
        .to_string();
    step(vec![("action", "resample".into()), ("reading", option)]).await;
    step(vec![("action", "close".into()), ("note", "结案".into())]).await;
    let h = hold_json(&app, &st1, &mine).await;
    assert_eq!(
        (h["status"].as_str(), h["destroyed_kg"].as_f64()),
        (Some("closed"), Some(12.5)),
        "{h}"
    );
    let actions: Vec<&str> = h["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "stop_sale",
            "lab_sent",
            "lab_result",
            "destroy",
            "resample",
            "close"
        ]
    );

    // A sample: registered through the form; a bad one comes back with the error and the input.
    let (form_page, csrf) = csrf_of(&app, &sid, "/station/samples/new").await;
    assert_eq!(form_page.status, 200);
    let r = post_form(
        &app,
        &sid,
        "/station/samples",
        &[
            ("csrf", &csrf),
            ("market", "ZB-0001"),
            ("sample_id", "S-F-1"),
            ("stall", "B3"),
            ("sample_name", "韭菜"),
            ("category", "no-such-category"),
            ("vendor", "赵六"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    let text = r.text();
    assert!(
        text.contains("unknown category") && text.contains("value=\"赵六\""),
        "{text}"
    );
    let r = post_form(
        &app,
        &sid,
        "/station/samples",
        &[
            ("csrf", &csrf),
            ("market", "ZB-0001"),
            ("sample_id", "S-F-1"),
            ("stall", "B3"),
            ("sample_name", "韭菜"),
            ("category", "leafy_vegetable"),
            ("vendor", "赵六"),
            ("supplier", "寿光"),
            ("certificate_no", "HGZ-1"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(r
        .header("location")
        .is_some_and(|l| l.contains("done=sample&id=S-F-1")));
    let conn = app.store().inspect().expect("inspect");
    let got: (String, String) = conn
        .query_row(
            "SELECT vendor, certificate_no FROM samples WHERE sample_id = 'S-F-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("registered");
    assert_eq!(got, ("赵六".to_string(), "HGZ-1".to_string()));
    drop(conn);
    // Not for another market.
    let r = post_form(
        &app,
        &sid,
        "/station/samples",
        &[
            ("csrf", &csrf),
            ("market", "ZB-0002"),
            ("sample_id", "S-F-2"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("outside this token"), "{}", r.text());
    app.shutdown().await;
}
