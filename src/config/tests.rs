use super::*;

#[test]
fn embedded_default_matches_spec() {
    let c = Config::default_embedded();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.data_dir, PathBuf::from("./foodgate-data"));
    assert_eq!(c.utc_offset.local_minus_utc(), 8 * 3600);
    assert!(c.instruments.is_empty() && c.upstreams.is_empty());
    assert_eq!(c.server_limits, ServerLimits::default());
}

#[test]
fn server_limits_parse_and_bad_values_are_named() {
    let c = Config::parse(
        "[server]\nauth_failures_per_minute = 3\napi_rate_per_s = 2.5\napi_burst = 7\n\
         header_timeout_s = 1\nidle_timeout_s = 90\n",
        "t.toml",
    )
    .unwrap();
    let l = c.server_limits;
    assert_eq!(l.auth_failures_per_minute, 3);
    assert_eq!(l.api_rate_per_s, 2.5);
    assert_eq!(l.api_burst, 7);
    assert_eq!(l.header_timeout.as_secs(), 1);
    assert_eq!(l.idle_timeout.as_secs(), 90);
    let d = ServerLimits::default();
    assert_eq!(
        (d.auth_failures_per_minute, d.api_rate_per_s, d.api_burst),
        (10, 50.0, 200)
    );
    assert_eq!(
        (d.header_timeout.as_secs(), d.idle_timeout.as_secs()),
        (10, 60)
    );
    let off = Config::parse("[server]\nauth_failures_per_minute = 0\n", "t.toml").unwrap();
    assert_eq!(off.server_limits.auth_failures_per_minute, 0);

    for (text, key) in [
        ("header_timeout_s = 0", "server.header_timeout_s"),
        ("header_timeout_s = 3601", "server.header_timeout_s"),
        ("idle_timeout_s = 0", "server.idle_timeout_s"),
        ("api_rate_per_s = 0.0", "server.api_rate_per_s"),
        ("api_rate_per_s = -1.0", "server.api_rate_per_s"),
        ("api_rate_per_s = nan", "server.api_rate_per_s"),
        ("api_burst = 0", "server.api_burst"),
        (
            "auth_failures_per_minute = 20000",
            "server.auth_failures_per_minute",
        ),
    ] {
        let e = err(&format!("[server]\n{text}\n"));
        assert!(
            e.starts_with(&format!("f.toml: {key}: expected ")),
            "{text}: {e}"
        );
    }
    // A wrong type is a syntax error that names the key.
    let e = err("[server]\nheader_timeout_s = \"10s\"\n");
    assert!(
        e.starts_with("f.toml: ") && e.contains("header_timeout_s"),
        "{e}"
    );
    let e = err("[server]\nauth_failures_per_minute = -1\n");
    assert!(e.contains("auth_failures_per_minute"), "{e}");
}

#[test]
fn defaults_per_protocol_and_upstream() {
    let c = Config::parse(
        r#"
[[instrument]]
id = "A"
market = "ZB-0001"
protocol = "gold-card"
serial = { path = "/dev/ttyUSB0" }
[[instrument]]
id = "B"
market = "ZB-0001"
protocol = "hl7"
utc_offset = "-05:30"
tcp = { listen = "0.0.0.0:5001" }
[[upstream]]
name = "u"
url = "http://127.0.0.1:9000/events"
secret = "k"
"#,
        "t.toml",
    )
    .unwrap();
    let Transport::Serial(s) = &c.instruments[0].transport else {
        panic!("serial expected")
    };
    assert_eq!(s.baud, 115_200);
    assert_eq!((s.data_bits, s.parity, s.stop_bits), (8, Parity::None, 1));
    assert_eq!(
        c.instruments[1].utc_offset.local_minus_utc(),
        -(5 * 3600 + 1800)
    );
    let u = &c.upstreams[0];
    assert_eq!((u.send, u.format), (SendMode::Failures, Format::Events));
    assert_eq!(u.timeout.as_secs(), 30);
    assert_eq!(format!("{:?}", u.secret), "Secret(***)");
}

fn err(text: &str) -> String {
    Config::parse(text, "f.toml").unwrap_err().to_string()
}

#[test]
fn errors_name_file_key_and_expectation() {
    let e = err("[[instrument]]\nid=\"a\"\nmarket=\"m\"\nprotocol=\"astm\"\nserial={path=\"/dev/x\"}\n[[instrument]]\nid=\"b\"\nmarket=\"m\"\nprotocol=\"modbus\"\nserial={path=\"/dev/y\"}\n");
    assert_eq!(
        e,
        "f.toml: instrument[1].protocol: expected one of astm, hl7, enzyme-print, gold-card, spectro, lz4000t, tl310, dy723pc, got \"modbus\""
    );
    let e = err("[[instrument]]\nid=\"a\"\nmarket=\"m\"\nprotocol=\"astm\"\nserial={path=\"/dev/x\"}\n[[instrument]]\nid=\"a\"\nmarket=\"m\"\nprotocol=\"astm\"\nserial={path=\"/dev/y\"}\n");
    assert!(
        e.starts_with("f.toml: instrument[1].id: duplicate instrument id"),
        "{e}"
    );
    let e = err("[server]\nlisten = \"nowhere\"\n");
    assert!(
        e.starts_with("f.toml: server.listen: expected an address"),
        "{e}"
    );
    let e = err("[server]\nport = 1\n");
    assert!(e.starts_with("f.toml: ") && e.contains("port"), "{e}");
    let e = err("[[upstream]]\nname=\"u\"\nurl=\"http://h/e\"\nsecret=\"k\"\nsend=\"some\"\n");
    assert_eq!(
        e,
        "f.toml: upstream[0].send: expected \"failures\" or \"all\", got \"some\""
    );
    let e =
        err("[[instrument]]\nid=\"h\"\nmarket=\"m\"\nprotocol=\"hl7\"\nserial={path=\"/dev/x\"}\n");
    assert!(e.contains("instrument[0].serial: hl7 runs over TCP"), "{e}");
}

fn polled(protocol: &str, extra: &str) -> String {
    format!(
        "[[instrument]]\nid=\"p\"\nmarket=\"m\"\nprotocol=\"{protocol}\"\nserial={{path=\"/dev/x\"}}\n{extra}"
    )
}

#[test]
fn polled_instruments_take_poll_settings_and_tl310_a_crc_switch() {
    let c = Config::parse(&polled("lz4000t", ""), "f.toml").unwrap();
    let i = &c.instruments[0];
    assert_eq!(i.poll, Some(PollConfig::default()));
    assert!(i.check_crc);
    let Transport::Serial(s) = &i.transport else {
        panic!("serial")
    };
    assert_eq!(s.baud, 115_200);
    let c = Config::parse(
        &polled(
            "tl310",
            "poll = { every_s = 60, days = 7, reply_timeout_ms = 500, retries = 1, gap_ms = 0 }\ncrc = \"ignore\"\n",
        ),
        "f.toml",
    )
    .unwrap();
    let i = &c.instruments[0];
    assert_eq!(
        i.poll,
        Some(PollConfig {
            every: Duration::from_secs(60),
            days: 7,
            reply_timeout: Duration::from_millis(500),
            retries: 1,
            gap: Duration::ZERO,
        })
    );
    assert!(!i.check_crc);
    let c = Config::parse(&polled("dy723pc", ""), "f.toml").unwrap();
    let Transport::Serial(s) = &c.instruments[0].transport else {
        panic!("serial")
    };
    assert_eq!(s.baud, 9600);

    assert_eq!(
        err(&polled("lz4000t", "poll = { days = 40 }\n")),
        "f.toml: instrument[0].poll.days: expected 1 to 31, got 40"
    );
    assert!(err(&polled("lz4000t", "poll = { every = 5 }\n")).contains("every"));
    assert_eq!(
        err(&polled("lz4000t", "crc = \"ignore\"\n")),
        "f.toml: instrument[0].crc: crc = \"ignore\" is for tl310 only, not lz4000t"
    );
    assert_eq!(
        err(&polled("tl310", "crc = \"off\"\n")),
        "f.toml: instrument[0].crc: expected \"check\" or \"ignore\", got \"off\""
    );
    assert_eq!(
        err(&polled("astm", "poll = { days = 2 }\n")),
        "f.toml: instrument[0].poll: astm sends by itself: poll is for lz4000t, tl310, dy723pc"
    );
    let tcp = "[[instrument]]\nid=\"p\"\nmarket=\"m\"\nprotocol=\"tl310\"\ntcp={listen=\"127.0.0.1:0\"}\n";
    assert!(err(tcp).contains("instrument[0].tcp: tl310 is polled over its serial line"));
}

#[test]
fn platform_upstreams_need_an_account_and_a_readable_codes_file() {
    let dir = std::env::temp_dir().join(format!("foodgate-cfg-platform-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let codes = dir.join("codes.toml");
    std::fs::write(&codes, "[items]\nchlorpyrifos = \"J-1\"\n").unwrap();
    let up = |extra: &str| {
        format!("[[upstream]]\nname=\"js\"\nurl=\"http://h/ws\"\nformat=\"jiangsu\"\n{extra}")
    };
    let ok = format!("username=\"u\"\npassword=\"p\"\ncodes={codes:?}\n");
    let c = Config::parse(&up(&ok), "f.toml").unwrap();
    let u = &c.upstreams[0];
    assert_eq!(u.format, Format::Platform(Adapter::Jiangsu));
    let p = u.platform.as_ref().unwrap();
    assert_eq!(
        (p.username.as_str(), p.codes.as_path()),
        ("u", codes.as_path())
    );
    assert_eq!(format!("{:?}", p.password), "Secret(***)");

    let e = err(&up("username=\"u\"\npassword=\"p\"\n"));
    assert!(e.starts_with("f.toml: upstream[0].codes: required"), "{e}");
    let e = err(&up(&format!("password=\"p\"\ncodes={codes:?}\n")));
    assert!(
        e.starts_with("f.toml: upstream[0].username: required"),
        "{e}"
    );
    let e = err(&up(&format!("{ok}secret=\"k\"\n")));
    assert!(
        e.starts_with("f.toml: upstream[0].secret: a jiangsu upstream is not signed"),
        "{e}"
    );
    let missing = dir.join("nope.toml");
    let e = err(&up(&format!(
        "username=\"u\"\npassword=\"p\"\ncodes={missing:?}\n"
    )));
    assert!(
        e.starts_with("f.toml: upstream[0].codes: ") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::write(&codes, "[itemz]\n").unwrap();
    let e = err(&up(&ok));
    assert!(
        e.contains("upstream[0].codes") && e.contains("itemz"),
        "{e}"
    );
    std::fs::write(&codes, "[items]\nchlorpyrifos = \"J-1\"\n").unwrap();
    let zj = |extra: &str| {
        format!("[[upstream]]\nname=\"zj\"\nurl=\"http://h/up\"\nformat=\"zhejiang\"\n{ok}{extra}")
    };
    let c = Config::parse(&zj("login_url=\"http://h/login\"\n"), "f.toml").unwrap();
    let p = c.upstreams[0].platform.as_ref().unwrap();
    assert_eq!(p.login_url.as_deref(), Some("http://h/login"));
    let e = err(&zj(""));
    assert!(
        e.contains("upstream[0].login_url: required for a zhejiang upstream"),
        "{e}"
    );
    let e = err(&zj("login_url=\"ftp://h\"\n"));
    assert!(
        e.contains("upstream[0].login_url: expected a full http:// URL"),
        "{e}"
    );
    let e = err(&up(&format!("{ok}login_url=\"http://h/login\"\n")));
    assert!(e.contains("a jiangsu upstream has no login"), "{e}");
    let e = err(&up(&format!("{ok}status_url=\"http://h/status\"\n")));
    assert!(
        e.contains("upstream[0].status_url: a jiangsu upstream has no device heartbeat"),
        "{e}"
    );
    let gd = |extra: &str| {
        format!("[[upstream]]\nname=\"gd\"\nurl=\"http://h/u\"\nformat=\"guangdong\"\n{ok}{extra}")
    };
    let c = Config::parse(&gd("status_url=\"http://h/status\"\n"), "f.toml").unwrap();
    let beat = c.upstreams[0].platform.as_ref().unwrap().heartbeat.clone();
    assert_eq!(
        beat,
        Some((
            "http://h/status".into(),
            std::time::Duration::from_secs(1800)
        ))
    );
    let e = err(&gd("heartbeat_s=60\n"));
    assert!(
        e.contains("upstream[0].status_url: required with heartbeat_s"),
        "{e}"
    );
    let e = err(&gd("status_url=\"http://h/s\"\nheartbeat_s=0\n"));
    assert!(
        e.contains("upstream[0].heartbeat_s: expected seconds"),
        "{e}"
    );
    let e = err("[[upstream]]\nname=\"x\"\nurl=\"http://h/e\"\nformat=\"anhui\"\n");
    assert!(
        e.contains("upstream[0].format: expected \"events\", \"results\" or a platform (\"jiangsu\", \"zhejiang\", \"guangdong\", \"template\"), got \"anhui\""),
        "{e}"
    );
    let e = err("[[upstream]]\nname=\"x\"\nurl=\"http://h/e\"\nsecret=\"k\"\nusername=\"u\"\n");
    assert!(
        e.contains("upstream[0].username: only a platform upstream takes it"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
