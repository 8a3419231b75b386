//! `format = "template"`: the examples under `docs/platforms/` make, for every pass and fail
//! reading of every fixture, the very requests of the built-in adapters (method, URL,
//! content type, headers, body, byte for byte), the same login, the same refusal for a
//! missing code, and read the platforms' answers the same way; a template that does not
//! compile, or keys a template does not take, stop the configuration with file and key.

use crate::support::temp_dir;
use foodgate::config::{Config, Upstream};
use foodgate::platform::{self, PlatformOutcome};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ADAPTERS: [&str; 3] = ["jiangsu", "zhejiang", "guangdong"];

/// The capture files the `ingest` command takes, by protocol.
const PROTOCOLS: [&str; 5] = ["astm", "hl7", "enzyme-print", "gold-card", "spectro"];

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/platforms")
}

/// The example of `adapter` as a config fragment: its files under `docs/platforms/`, the
/// codes file `codes`, the platform at `url` (a login at `url/login`).
fn example(adapter: &str, codes: &Path, url: &str) -> String {
    let text = std::fs::read_to_string(docs().join(format!("{adapter}.toml"))).expect("example");
    let docs = docs().display().to_string();
    text.replace(
        "/etc/foodgate/platforms/codes.toml",
        &codes.display().to_string(),
    )
    .replace("/etc/foodgate/platforms", &docs)
    .replace(
        "http://platform.example.cn/api/login",
        &format!("{url}/login"),
    )
    .replace("http://platform.example.cn", url)
    .replace(
        &format!("name = \"{adapter}\""),
        &format!("name = \"{adapter}-t\""),
    )
    .replace("send = \"failures\"", "send = \"all\"")
}

/// The built-in adapter with the example's account.
fn builtin(adapter: &str, codes: &Path, url: &str) -> String {
    let path = match adapter {
        "jiangsu" => "/services/detection",
        "zhejiang" => "/api/farm/detect/updata",
        _ => "/api/uploadResult",
    };
    let login = if adapter == "zhejiang" {
        format!("login_url = \"{url}/login\"\n")
    } else {
        String::new()
    };
    format!(
        "[[upstream]]\nname = \"{adapter}\"\nformat = \"{adapter}\"\nurl = \"{url}{path}\"\n\
         send = \"all\"\nusername = \"market-0003\"\npassword = \"change-me\"\ncodes = {:?}\n{login}",
        codes.display()
    )
}

fn config_text(dir: &Path, codes: &Path) -> String {
    let url = "http://127.0.0.1:9";
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nutc_offset = \"+08:00\"\n",
        dir.join("data")
    );
    for a in ADAPTERS {
        text.push_str(&builtin(a, codes, url));
        text.push_str(&example(a, codes, url));
    }
    text
}

fn foodgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foodgate"))
}

/// Every fixture of `protocol`, ingested for market ZB-0003 stall A1 (a `&` in the stall so
/// that escaping shows).
fn ingest_all(cfg: &Path) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files = 0;
    for protocol in PROTOCOLS {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(protocol))
            .expect("fixtures")
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        paths.sort();
        for p in paths {
            let out = foodgate()
                .args(["ingest", "--config"])
                .arg(cfg)
                .args(["--protocol", protocol, "--market", "ZB-0003"])
                .args(["--stall", "A&1", "--instrument", "IN-7"])
                .arg(&p)
                .output()
                .expect("ingest");
            assert!(out.status.success(), "{}: {out:?}", p.display());
            files += 1;
        }
    }
    files
}

/// Codes for every value the records name, but for analyte `left_out`.
fn codes_for(bodies: &[Vec<u8>], left_out: &str) -> String {
    let mut tables: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for b in bodies {
        let v: Value = serde_json::from_slice(b).expect("body");
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let market = s(&v["market"]);
        let keys = [
            ("items", s(&v["reading"]["analyte"])),
            ("foods", s(&v["sample"]["category"])),
            ("stalls", format!("{market}/{}", s(&v["stall"]))),
            ("markets", market.clone()),
            ("devices", s(&v["reading"]["instrument"])),
        ];
        for (table, key) in keys {
            if table == "items" && key == left_out {
                continue;
            }
            let t = tables.entry(table).or_default();
            let n = t.len();
            t.entry(key).or_insert_with(|| format!("{table}-{n}<&>"));
        }
    }
    let mut text = String::new();
    for (table, t) in tables {
        text.push_str(&format!("[{table}]\n"));
        for (k, v) in t {
            text.push_str(&format!("{k:?} = {v:?}\n"));
        }
    }
    text
}

fn upstream<'a>(cfg: &'a Config, name: &str) -> &'a Upstream {
    cfg.upstreams
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("upstream {name}"))
}

fn kind(o: &PlatformOutcome) -> &'static str {
    match o {
        PlatformOutcome::Delivered(_) => "delivered",
        PlatformOutcome::Dead(_) => "dead",
        PlatformOutcome::Retry(_) => "retry",
        PlatformOutcome::Expired(_) => "expired",
    }
}

#[test]
fn each_example_template_makes_the_built_in_adapters_requests_byte_for_byte() {
    let dir = temp_dir("templates");
    let codes = dir.join("codes.toml");
    std::fs::write(&codes, "").expect("codes");
    let cfg_path = dir.join("foodgate.toml");
    std::fs::write(&cfg_path, config_text(&dir, &codes)).expect("config");
    crate::support::import_builtin_markets_with(&cfg_path);
    let files = ingest_all(&cfg_path);
    assert!(files >= 10, "{files} fixtures");

    // The records each built-in adapter's outbox holds (the template's hold the same).
    let conn = rusqlite::Connection::open(dir.join("data/foodgate.db")).expect("db");
    let bodies = |upstream: &str| -> Vec<Vec<u8>> {
        conn.prepare(
            "SELECT body FROM outbox WHERE upstream = ?1 AND type = 'platform.record' ORDER BY id",
        )
        .expect("prepare")
        .query_map([upstream], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
    };
    let all = bodies("jiangsu");
    assert!(all.len() >= 20, "{} records", all.len());
    for a in ADAPTERS {
        assert_eq!(
            bodies(a),
            bodies(&format!("{a}-t")),
            "{a}: the same records"
        );
    }
    // One analyte has no code: both refuse its records with the same message.
    let first: Value = serde_json::from_slice(&all[0]).expect("body");
    let left_out = first["reading"]["analyte"]
        .as_str()
        .expect("analyte")
        .to_string();
    std::fs::write(&codes, codes_for(&all, &left_out)).expect("codes");
    let cfg = Config::load(&cfg_path).expect("config");
    let offset = cfg.utc_offset;

    for a in ADAPTERS {
        let (b, t) = (upstream(&cfg, a), upstream(&cfg, &format!("{a}-t")));
        let (mut same, mut missing) = (0, 0);
        for body in &all {
            let want = platform::request(b, body, offset, Some("tok en/1"));
            let got = platform::request(t, body, offset, Some("tok en/1"));
            match (&want, &got) {
                (Ok(w), Ok(g)) => {
                    assert_eq!(
                        (w.method, &w.url, &w.content_type, &w.headers),
                        (g.method, &g.url, &g.content_type, &g.headers),
                        "{a}"
                    );
                    assert_eq!(
                        String::from_utf8_lossy(&w.body),
                        String::from_utf8_lossy(&g.body),
                        "{a}: the body"
                    );
                    assert_eq!(w.body, g.body, "{a}: the bytes");
                    same += 1;
                }
                (Err(w), Err(g)) => {
                    assert_eq!(w.to_string(), g.to_string(), "{a}");
                    assert!(w.to_string().contains(&left_out), "{w}");
                    missing += 1;
                }
                _ => panic!("{a}: built-in {want:?}, template {got:?}"),
            }
        }
        assert!(
            same >= 10 && missing >= 1,
            "{a}: {same} equal, {missing} refused"
        );

        // Several records per request where the platform takes them: the same batches, cut
        // by the same keys, make the same bytes (and a batch holding a refused record, the
        // same refusal).
        assert_eq!(platform::batch_size(b), platform::batch_size(t), "{a}");
        let size = platform::batch_size(b).min(7);
        let codes_now = platform::load_codes(b).expect("codes");
        let records: Vec<platform::Record> = all
            .iter()
            .map(|body| platform::Record::from_body(body).expect("record"))
            .collect();
        let mut groups: BTreeMap<Vec<String>, Vec<Vec<&platform::Record>>> = BTreeMap::new();
        for r in &records {
            let key = platform::batch_key(b, r);
            assert_eq!(key, platform::batch_key(t, r), "{a}: the same batch key");
            let chunks = groups.entry(key).or_default();
            match chunks.last_mut() {
                Some(c) if c.len() < size => c.push(r),
                _ => chunks.push(vec![r]),
            }
        }
        let (mut batches, mut several) = (0, 0);
        for chunk in groups.values().flatten() {
            let want = platform::request_many(b, &codes_now, chunk, offset, Some("t"));
            let got = platform::request_many(t, &codes_now, chunk, offset, Some("t"));
            match (&want, &got) {
                (Ok(w), Ok(g)) => {
                    assert_eq!(
                        String::from_utf8_lossy(&w.body),
                        String::from_utf8_lossy(&g.body),
                        "{a}: a batch of {}",
                        chunk.len()
                    );
                    assert_eq!(w, g, "{a}");
                    batches += 1;
                    if chunk.len() > 1 {
                        several += 1;
                    }
                }
                (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string(), "{a}"),
                _ => panic!("{a}: built-in {want:?}, template {got:?}"),
            }
        }
        if size > 1 {
            assert!(
                several >= 3,
                "{a}: {batches} batches, {several} of several records"
            );
        }

        // The same login, and every answer read the same way.
        let (lb, lt) = (platform::login_request(b), platform::login_request(t));
        match (lb, lt) {
            (None, None) => assert_ne!(a, "zhejiang"),
            (Some(Ok(w)), Some(Ok(g))) => assert_eq!(w, g, "{a}: login"),
            (w, g) => panic!("{a}: login built-in {w:?}, template {g:?}"),
        }
        let answers: Vec<(u16, String)> = [
            (200, r#"{"code":0,"msg":"ok","token":"t-1"}"#.to_string()),
            (200, r#"{"code":1,"msg":"itemcode 不存在"}"#.into()),
            (200, r#"{"code":2,"msg":"JSON 错误"}"#.into()),
            (200, r#"{"code":3}"#.into()),
            (200, r#"{"code":401}"#.into()),
            (401, "unauthorized".into()),
            (500, r#"{"code":0}"#.into()),
            (503, "busy".into()),
            (200, "<html>proxy</html>".into()),
        ]
        .into_iter()
        .chain(["0", "1", "2"].map(|r| {
            (
                200,
                format!(
                    "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>\
                     <ns2:r xmlns:ns2=\"http://service.ws.detection/\"><return>{r}</return>\
                     </ns2:r></S:Body></S:Envelope>"
                ),
            )
        }))
        .chain([(
            500,
            "<S:Envelope xmlns:S=\"x\"><S:Body><S:Fault><faultstring>db down</faultstring>\
             </S:Fault></S:Body></S:Envelope>"
                .to_string(),
        )])
        .collect();
        for (status, body) in &answers {
            let (w, g) = (
                platform::classify(b, *status, body),
                platform::classify(t, *status, body),
            );
            assert_eq!(
                kind(&w),
                kind(&g),
                "{a}: HTTP {status} {body}: {w:?} / {g:?}"
            );
            if let (PlatformOutcome::Dead(w), PlatformOutcome::Dead(g)) = (&w, &g) {
                for m in ["不存在", "错误"] {
                    assert_eq!(w.contains(m), g.contains(m), "{a}: the platform's message");
                }
            }
        }
        if a == "zhejiang" {
            let ok = r#"{"code":0,"token":"t-9"}"#;
            assert_eq!(platform::login_token(t, 200, ok), Ok("t-9".into()));
            assert_eq!(platform::login_token(b, 200, ok), Ok("t-9".into()));
            for (s, body) in [(200, r#"{"code":3,"msg":"wrong password"}"#), (500, ok)] {
                assert!(platform::login_token(t, s, body).is_err(), "{s} {body}");
            }
        }
    }
}

#[test]
fn a_template_that_does_not_compile_or_a_stray_key_stops_the_config_with_file_and_key() {
    let dir = temp_dir("template-config");
    let codes = dir.join("codes.toml");
    std::fs::write(&codes, "").expect("codes");
    let bad = dir.join("bad.xml.j2");
    std::fs::write(&bad, "<a>\n{% for x in record %}{{ x }}\n</a>").expect("template");
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        dir.join("data")
    );
    let with = |upstream: &str| Config::parse(&format!("{base}{upstream}"), "p.toml");
    let template = |extra: &str| {
        format!(
            "[[upstream]]\nname = \"p\"\nformat = \"template\"\nurl = \"http://127.0.0.1:9/x\"\n\
             codes = {:?}\ncontent_type = \"application/xml\"\n{extra}",
            codes.display()
        )
    };
    let answer = "[upstream.answer]\njson = \"/code\"\nok = [0]\n";
    let err = with(&template(&format!(
        "template = {:?}\n{answer}",
        bad.display()
    )))
    .expect_err("does not compile")
    .to_string();
    assert!(
        err.contains("p.toml")
            && err.contains("upstream[0].template")
            && err.contains(&bad.display().to_string())
            && err.contains("line"),
        "{err}"
    );
    let missing = dir.join("none.j2");
    let err = with(&template(&format!(
        "template = {:?}\n{answer}",
        missing.display()
    )))
    .expect_err("unreadable")
    .to_string();
    assert!(
        err.contains("upstream[0].template") && err.contains("cannot read"),
        "{err}"
    );
    let good = docs().join("jiangsu.xml.j2");
    let err = with(&template(&format!("template = {:?}\n", good.display())))
        .expect_err("no answer rules")
        .to_string();
    assert!(err.contains("upstream[0].answer"), "{err}");
    let err = with(&template(&format!(
        "template = {:?}\nauth = \"login\"\n{answer}",
        good.display()
    )))
    .expect_err("a login without its keys")
    .to_string();
    assert!(err.contains("upstream[0].login"), "{err}");
    let err = with(&template(&format!(
        "template = {:?}\n{answer}[upstream.headers]\n\"bad header\" = \"x\"\n",
        good.display()
    )))
    .expect_err("a bad header name")
    .to_string();
    assert!(err.contains("upstream[0].headers.bad header"), "{err}");
    // A signed-event upstream takes no template key.
    let err = with(&format!(
        "[[upstream]]\nname = \"e\"\nurl = \"http://127.0.0.1:9/e\"\nsecret = \"s\"\n\
         template = {:?}\n",
        good.display()
    ))
    .expect_err("template key on an events upstream")
    .to_string();
    assert!(
        err.contains("upstream[0].template") && err.contains("only a template"),
        "{err}"
    );
    // And the examples themselves are valid.
    for a in ADAPTERS {
        with(&example(a, &codes, "http://127.0.0.1:9")).unwrap_or_else(|e| panic!("{a}: {e}"));
    }
}
