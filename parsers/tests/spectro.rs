//! Protocol `spectro` (`docs/protocols.md`): one test per rule, the fixtures, proptests.

use crate::harness::{
    assert_chunking_invariant, check_generated_fixtures, codes, decode, decode_chunked, readings,
};
use foodgate_parsers::spectro::{checksum, encode_fsh, encode_fsi, encode_sentence, Fsa};
use foodgate_parsers::{DecoderConfig, Encoding, Event, Protocol};
use proptest::prelude::*;
use serde_json::{json, Value};

const P: Protocol = Protocol::Spectro;

fn fsa(seq: u32, item: &str, value: &str, unit: &str) -> Fsa {
    Fsa {
        seq: seq.to_string(),
        time: "20261128093215".into(),
        item: item.into(),
        sample_id: "S-001".into(),
        sample_name: "草鱼".into(),
        category: "13".into(),
        absorbance: "0.412".into(),
        value: value.into(),
        unit: unit.into(),
        dilution: "1".into(),
        verdict: "P".into(),
    }
}

fn gbk(f: &Fsa) -> Vec<u8> {
    f.encode(Encoding::Gbk)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn run(bytes: &[u8]) -> Vec<Event> {
    let config = DecoderConfig::default();
    assert_chunking_invariant(P, &config, bytes, "inline");
    decode(P, &config, bytes)
}

fn diag_offsets(events: &[Event]) -> Vec<(&'static str, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Diagnostic(d) => Some((d.error, d.offset)),
            _ => None,
        })
        .collect()
}

/// A sentence with its body's checksum written in lowercase.
fn lowercase_cs(body: &[u8]) -> Vec<u8> {
    let mut s = vec![b'$'];
    s.extend_from_slice(body);
    s.extend_from_slice(format!("*{:02x}\r\n", checksum(body)).as_bytes());
    s
}

#[test]
fn fsa_fields() {
    let events = run(&gbk(&fsa(42, "HCHO", "12.5", "mg/kg")));
    let r = readings(&events);
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(r["protocol"], "spectro");
    assert_eq!(r["analyte"], "formaldehyde");
    assert_eq!(r["analyte_code"], "HCHO");
    assert_eq!(r["method"], "spectrophotometric");
    assert_eq!(r["sequence"], 42);
    assert_eq!(r["measured_at"], "2026-11-28T09:32:15+08:00");
    assert_eq!(r["sample_id"], "S-001");
    assert_eq!(r["sample_name"], "草鱼");
    assert_eq!(r["category_code"], "13");
    assert_eq!(r["category"], "aquatic_product");
    assert_eq!(r["absorbance"], json!(0.412));
    assert_eq!(r["value"], json!(12.5));
    assert_eq!(r["value_text"], "12.5");
    assert_eq!(r["qualifier"], Value::Null);
    assert_eq!(r["unit"], "mg/kg");
    assert_eq!(r["dilution"], json!(1.0));
    assert_eq!(r["device_verdict"], "negative");
    assert_eq!(r["instrument"], Value::Null);
    assert_eq!(r["offset"], 0);
    for judged in ["verdict", "reason", "limit"] {
        assert!(r.get(judged).is_none(), "decoders never judge: {judged}");
    }
    assert!(codes(&events).is_empty());
}

#[test]
fn items_and_methods() {
    let items = [
        ("HCHO", "formaldehyde", "spectrophotometric"),
        ("SO2", "sulfur_dioxide", "spectrophotometric"),
        ("NO2", "nitrite", "spectrophotometric"),
        ("BORAX", "borax", "spectrophotometric"),
        ("DBK", "rongalite", "spectrophotometric"),
        ("H2O2", "hydrogen_peroxide", "spectrophotometric"),
        ("OPI", "op_carbamate", "enzyme_inhibition"),
        ("XYZ", "unknown:XYZ", "spectrophotometric"),
    ];
    let bytes: Vec<u8> = items
        .iter()
        .enumerate()
        .flat_map(|(k, (code, _, _))| gbk(&fsa(k as u32, code, "1.0", "mg/kg")))
        .collect();
    let r = readings(&run(&bytes));
    for ((code, analyte, method), r) in items.iter().zip(&r) {
        assert_eq!(r["analyte"], *analyte, "{code}");
        assert_eq!(r["method"], *method, "{code}");
    }
    assert_eq!(r.len(), items.len());
}

#[test]
fn value_forms() {
    let forms: [(&str, Value, Value); 5] = [
        ("0.35", json!(0.35), Value::Null),
        ("<0.5", json!(0.5), json!("<")),
        ("ND", Value::Null, json!("ND")),
        ("", Value::Null, Value::Null),
        ("62.4", json!(62.4), Value::Null),
    ];
    for (k, (text, value, qualifier)) in forms.iter().enumerate() {
        let mut s = fsa(k as u32, "SO2", text, "g/kg");
        if text.is_empty() {
            s.verdict = "F".into();
        }
        let events = run(&gbk(&s));
        let r = readings(&events);
        assert_eq!(r[0]["value"], *value, "{text:?}");
        assert_eq!(r[0]["qualifier"], *qualifier, "{text:?}");
        assert!(codes(&events).is_empty(), "{text:?}");
    }
    // An empty value keeps the device verdict for the record (the judge makes it invalid).
    let mut failed = fsa(1, "SO2", "", "g/kg");
    failed.verdict = "F".into();
    let r = readings(&run(&gbk(&failed)));
    assert_eq!(r[0]["device_verdict"], "positive");
    assert_eq!(r[0]["value_text"], Value::Null);
}

#[test]
fn device_verdicts() {
    let mut bytes = Vec::new();
    for (k, v) in ["P", "F", "-", "Q"].iter().enumerate() {
        let mut s = fsa(k as u32, "NO2", "3", "mg/kg");
        s.verdict = (*v).into();
        bytes.extend(gbk(&s));
    }
    let events = run(&bytes);
    let r = readings(&events);
    let got: Vec<&Value> = r.iter().map(|r| &r["device_verdict"]).collect();
    assert_eq!(
        got,
        vec![
            &json!("negative"),
            &json!("positive"),
            &Value::Null,
            &Value::Null
        ]
    );
    assert_eq!(codes(&events), vec!["unknown_verdict"]);
}

#[test]
fn units_are_kept_as_sent() {
    let mut bytes = Vec::new();
    for (k, u) in ["mg/kg", "g/kg", "mg/L", "ug/kg", "μg/kg", "%"]
        .iter()
        .enumerate()
    {
        bytes.extend(gbk(&fsa(k as u32, "OPI", "1", u)));
    }
    let r = readings(&run(&bytes));
    let got: Vec<&Value> = r.iter().map(|r| &r["unit"]).collect();
    assert_eq!(got, vec!["mg/kg", "g/kg", "mg/L", "ug/kg", "μg/kg", "%"]);
}

#[test]
fn category_codes() {
    let mut bytes = Vec::new();
    for (k, c) in ["1", "01", "20", "99", ""].iter().enumerate() {
        let mut s = fsa(k as u32, "NO2", "3", "mg/kg");
        s.category = (*c).into();
        bytes.extend(gbk(&s));
    }
    let r = readings(&run(&bytes));
    let got: Vec<(&Value, &Value)> = r
        .iter()
        .map(|r| (&r["category"], &r["category_code"]))
        .collect();
    assert_eq!(
        got,
        vec![
            (&json!("leafy_vegetable"), &json!("1")),
            (&json!("leafy_vegetable"), &json!("01")),
            (&json!("cured_meat"), &json!("20")),
            (&Value::Null, &json!("99")),
            (&Value::Null, &Value::Null),
        ]
    );
}

#[test]
fn empty_sample_id_and_name() {
    let mut s = fsa(1, "HCHO", "1", "mg/kg");
    s.sample_id.clear();
    s.sample_name.clear();
    let r = readings(&run(&gbk(&s)));
    assert_eq!(r[0]["sample_id"], Value::Null);
    assert_eq!(r[0]["sample_name"], Value::Null);
}

#[test]
fn device_info_and_heartbeat() {
    let config = DecoderConfig {
        instrument: Some("CFG-ID".into()),
        ..DecoderConfig::default()
    };
    let a = gbk(&fsa(1, "HCHO", "1", "mg/kg"));
    let fsi = encode_fsi("SP-88012", "FS-3000", "V2.3");
    let bytes = cat(&[
        &a,
        &fsi,
        &encode_fsh(7200),
        &gbk(&fsa(2, "HCHO", "2", "mg/kg")),
    ]);
    let events = decode(P, &config, &bytes);
    let r = readings(&events);
    assert_eq!(r[0]["instrument"], "CFG-ID");
    assert_eq!(r[1]["instrument"], "SP-88012");
    let dev = events
        .iter()
        .find_map(|e| match e {
            Event::Device(d) => Some(d.clone()),
            _ => None,
        })
        .expect("device event");
    assert_eq!(dev.offset, a.len() as u64);
    assert_eq!(dev.serial_number.as_deref(), Some("SP-88012"));
    assert_eq!(dev.model.as_deref(), Some("FS-3000"));
    assert_eq!(dev.firmware.as_deref(), Some("V2.3"));
    let beat = events
        .iter()
        .find_map(|e| match e {
            Event::Heartbeat(h) => Some(h.uptime_s),
            _ => None,
        })
        .expect("heartbeat");
    assert_eq!(beat, Some(7200));
    assert!(codes(&events).is_empty());
}

#[test]
fn checksum_rules() {
    let good = gbk(&fsa(1, "HCHO", "1", "mg/kg"));
    let mut wrong = good.clone();
    let star = wrong.iter().position(|&b| b == b'*').unwrap();
    wrong[star + 1] = if wrong[star + 1] == b'0' { b'1' } else { b'0' };
    let no_star = b"$FSH,10\r\n".to_vec();
    let not_hex = b"$FSH,10*G1\r\n".to_vec();
    let lower = lowercase_cs(b"FSH,12345");
    let bytes = cat(&[&wrong, &no_star, &not_hex, &lower, &good]);
    let events = run(&bytes);
    let w = wrong.len() as u64;
    let n = no_star.len() as u64;
    assert_eq!(
        diag_offsets(&events),
        vec![
            ("bad_checksum", 0),
            ("missing_checksum", w),
            ("missing_checksum", w + n),
            ("noise", w + n + 8),
        ]
    );
    assert_eq!(readings(&events).len(), 1);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Heartbeat(h) if h.uptime_s == Some(12345))));
}

#[test]
fn lowercase_checksum_digits_are_accepted() {
    // Pick a body whose checksum has a letter digit, so case matters.
    let mut s = fsa(0, "HCHO", "1", "mg/kg");
    let body = (0..200)
        .find_map(|k| {
            s.seq = k.to_string();
            let b = s.body(Encoding::Gbk);
            format!("{:02x}", checksum(&b))
                .bytes()
                .any(|c| c.is_ascii_lowercase())
                .then_some(b)
        })
        .expect("some checksum has a hex letter");
    let events = run(&lowercase_cs(&body));
    assert_eq!(readings(&events).len(), 1);
    assert!(codes(&events).is_empty());
}

#[test]
fn length_bound_is_512_bytes_through_the_checksum() {
    // `$` + body + `*` + 2 digits: body of 508 bytes is exactly 512.
    let body_of = |n: usize| {
        let mut b = b"FSH,1".to_vec();
        b.resize(n, b' ');
        b
    };
    let ok = encode_sentence(&body_of(508));
    let over = encode_sentence(&body_of(509));
    let runaway = [b"$FSA,".as_slice(), &[b'9'; 2000], b"\r\n"].concat();
    let bytes = cat(&[&ok, &over, &runaway, &encode_fsh(5)]);
    let events = run(&bytes);
    let o = ok.len() as u64;
    assert_eq!(
        diag_offsets(&events),
        vec![
            ("sentence_too_long", o),
            ("sentence_too_long", o + over.len() as u64),
        ]
    );
    // The remains of the over-long sentences are not noise, and what follows is read.
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Heartbeat(h) if h.uptime_s == Some(1))));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Heartbeat(h) if h.uptime_s == Some(5))));
}

#[test]
fn dollar_inside_a_sentence_starts_a_new_one() {
    let good = gbk(&fsa(3, "NO2", "4", "mg/kg"));
    let bytes = cat(&[b"$FSA,1,2026", &good]);
    let events = run(&bytes);
    assert_eq!(diag_offsets(&events), vec![("truncated_sentence", 0)]);
    assert_eq!(readings(&events)[0]["offset"], 11);
}

#[test]
fn noise_between_sentences() {
    let a = gbk(&fsa(1, "NO2", "4", "mg/kg"));
    let bytes = cat(&[b"\r\nAT+OK\r\nxx", &a, b"\r\n\r\n", &a, b"garbage"]);
    let events = run(&bytes);
    let notes: Vec<(&str, u64, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Diagnostic(d) => Some((d.error, d.offset, d.message.clone())),
            _ => None,
        })
        .collect();
    let tail = (11 + 2 * a.len() + 4) as u64;
    assert_eq!(
        notes,
        vec![
            (
                "noise",
                2,
                "skipped 7 byte(s) outside any sentence".to_string()
            ),
            (
                "noise",
                tail,
                "skipped 7 byte(s) outside any sentence".to_string()
            ),
        ]
    );
    assert_eq!(readings(&events).len(), 2);
}

#[test]
fn field_errors_drop_the_sentence() {
    let mut bad_seq = fsa(1, "NO2", "4", "mg/kg");
    bad_seq.seq = "1a".into();
    let mut bad_abs = fsa(2, "NO2", "4", "mg/kg");
    bad_abs.absorbance = "0,4".into(); // also one field too many
    let mut bad_dil = fsa(3, "NO2", "4", "mg/kg");
    bad_dil.dilution = "x2".into();
    let mut bad_val = fsa(4, "NO2", "POS", "mg/kg");
    bad_val.value = "POS".into();
    let bytes = cat(&[
        &gbk(&bad_seq),
        &gbk(&bad_abs),
        &gbk(&bad_dil),
        &gbk(&bad_val),
        &encode_sentence(b"FSA,1,2,3"),
        &encode_sentence(b"FSI,a,b"),
        &encode_sentence(b"FSH,12x"),
        &encode_sentence(b"FSX,1"),
    ]);
    let events = run(&bytes);
    assert!(readings(&events).is_empty());
    assert_eq!(
        codes(&events),
        vec![
            "bad_number",
            "field_count",
            "bad_number",
            "bad_number",
            "field_count",
            "field_count",
            "bad_number",
            "unknown_sentence"
        ]
    );
}

#[test]
fn bad_time_keeps_the_reading_without_a_time() {
    let mut s = fsa(1, "NO2", "4", "mg/kg");
    s.time = "20261332093215".into();
    let events = run(&gbk(&s));
    assert_eq!(readings(&events)[0]["measured_at"], Value::Null);
    assert_eq!(codes(&events), vec!["bad_time"]);
}

#[test]
fn configured_offset_and_encoding() {
    let config = DecoderConfig {
        encoding: Some(Encoding::Utf8),
        utc_offset: chrono::FixedOffset::east_opt(0).unwrap(),
        ..DecoderConfig::default()
    };
    let bytes = fsa(1, "HCHO", "1", "mg/kg").encode(Encoding::Utf8);
    let r = readings(&decode(P, &config, &bytes));
    assert_eq!(r[0]["sample_name"], "草鱼");
    assert_eq!(r[0]["measured_at"], "2026-11-28T09:32:15Z");
}

#[test]
fn truncated_at_end_of_input() {
    let a = gbk(&fsa(1, "NO2", "4", "mg/kg"));
    let events = run(&cat(&[&a, b"$FSA,2,2026", b"", &a[..0]]));
    assert_eq!(
        diag_offsets(&events),
        vec![("truncated_sentence", a.len() as u64)]
    );
    let events = run(b"$FSH,1*4");
    assert_eq!(codes(&events), vec!["missing_checksum"]);
}

/// The fixture inputs, built with the encoders (reproducible; see `fixtures`).
fn fixture_inputs() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let mut nd = fsa(3, "BORAX", "ND", "g/kg");
    nd.sample_name = "面条".into();
    nd.category = "26".into();
    let mut below = fsa(4, "SO2", "<0.01", "g/kg");
    below.sample_name = "黄花菜".into();
    below.category = "23".into();
    below.dilution = "2".into();
    let mut failed = fsa(5, "NO2", "", "mg/kg");
    failed.sample_name = "腊肉".into();
    failed.category = "20".into();
    failed.absorbance = String::new();
    failed.verdict = "-".into();
    let mut opi = fsa(6, "OPI", "62.4", "%");
    opi.sample_name = "菠菜".into();
    opi.category = "1".into();
    opi.verdict = "F".into();
    let mut opi01 = fsa(7, "OPI", "12.0", "%");
    opi01.sample_name = "小白菜".into();
    opi01.category = "01".into();
    let mut ug = fsa(8, "DBK", "35", "μg/kg");
    ug.sample_id = String::new();
    ug.category = "99".into();
    ug.verdict = "F".into();
    let mut h2o2 = fsa(9, "H2O2", "0.8", "mg/L");
    h2o2.category = String::new();
    h2o2.sample_name = "豆腐皮".into();

    let mut wrong = gbk(&fsa(10, "HCHO", "1", "mg/kg"));
    let star = wrong.iter().position(|&b| b == b'*').unwrap_or(0);
    wrong[star + 2] = if wrong[star + 2] == b'0' { b'1' } else { b'0' };
    let mut long_body = b"FSH,1".to_vec();
    long_body.resize(509, b' ');
    let mut bad_seq = fsa(11, "HCHO", "1", "mg/kg");
    bad_seq.seq = "eleven".into();

    let mut utf8 = fsa(1, "HCHO", "8.2", "mg/kg");
    utf8.sample_name = "鱿鱼".into();

    vec![
        (
            "session",
            cat(&[
                &encode_fsi("SP-88012", "FS-3000", "V2.3"),
                &encode_fsh(3600),
                &gbk(&fsa(1, "HCHO", "12.5", "mg/kg")),
                &gbk(&fsa(2, "SO2", "0.35", "g/kg")),
                &gbk(&nd),
                &gbk(&below),
                &gbk(&failed),
                &gbk(&opi),
                &lowercase_cs(&opi01.body(Encoding::Gbk)),
                &gbk(&ug),
                &gbk(&h2o2),
            ]),
            None,
        ),
        (
            "damaged",
            cat(&[
                b"ATZ\r\n\x00\x01",
                &wrong,
                b"$FSH,99\r\n",
                b"$FSA,12,20261128",
                &gbk(&fsa(13, "NO2", "4", "mg/kg")),
                &encode_sentence(&long_body),
                &[b"$FSA,".as_slice(), &[b'7'; 700], b"*00\r\n"].concat(),
                &gbk(&bad_seq),
                &encode_sentence(b"FSA,14,20261128093215,HCHO"),
                &encode_sentence(b"GPGGA,1"),
                b"--",
                &gbk(&fsa(15, "HCHO", "3", "mg/kg")),
                b"$FSH,1*",
            ]),
            None,
        ),
        ("utf8_name", utf8.encode(Encoding::Utf8), Some("utf-8")),
    ]
}

#[test]
fn fixtures() {
    check_generated_fixtures(P, fixture_inputs());
}

fn arb_fsa() -> impl Strategy<Value = Fsa> {
    let value = prop_oneof![
        "[0-9]{1,4}(\\.[0-9]{1,3})?",
        "<[0-9]{1,2}\\.[0-9]{1,2}",
        Just("ND".to_string()),
        Just(String::new()),
    ];
    (
        0u32..1_000_000,
        prop_oneof![
            Just("HCHO"),
            Just("SO2"),
            Just("NO2"),
            Just("BORAX"),
            Just("DBK"),
            Just("H2O2"),
            Just("OPI")
        ],
        "[A-Z0-9-]{0,12}",
        "[菠菜草鱼腊肉面条a-z ]{0,10}",
        prop_oneof![Just(String::new()), "[0-9]{1,2}"],
        value,
        prop_oneof![Just("mg/kg"), Just("g/kg"), Just("μg/kg"), Just("%")],
        prop_oneof![Just("P"), Just("F"), Just("-")],
    )
        .prop_map(
            |(seq, item, sample_id, sample_name, category, value, unit, verdict)| Fsa {
                seq: seq.to_string(),
                time: "20261128093215".into(),
                item: item.into(),
                sample_id,
                sample_name,
                category,
                absorbance: "0.5".into(),
                value,
                unit: unit.into(),
                dilution: "1".into(),
                verdict: verdict.into(),
            },
        )
}

proptest! {
    #[test]
    fn random_bytes_never_panic_and_ignore_chunking(
        bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b'$'), Just(b'*'), Just(b','), Just(b'\r')], 0..800),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let config = DecoderConfig::default();
        let whole = decode(P, &config, &bytes);
        prop_assert_eq!(decode_chunked(P, &config, &bytes, &sizes), whole);
    }

    #[test]
    fn encoded_sentences_round_trip(
        sentences in proptest::collection::vec(arb_fsa(), 1..5),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let bytes: Vec<u8> = sentences.iter().flat_map(gbk).collect();
        let config = DecoderConfig::default();
        let events = decode(P, &config, &bytes);
        prop_assert!(codes(&events).is_empty(), "{:?}", codes(&events));
        let got = readings(&events);
        prop_assert_eq!(got.len(), sentences.len());
        for (r, s) in got.iter().zip(&sentences) {
            prop_assert_eq!(&r["sequence"], &json!(s.seq.parse::<u64>().unwrap()));
            prop_assert_eq!(&r["analyte_code"], &json!(s.item));
            let text = |t: &str| if t.trim().is_empty() { Value::Null } else { json!(t.trim()) };
            prop_assert_eq!(&r["sample_name"], &text(&s.sample_name));
            prop_assert_eq!(&r["sample_id"], &text(&s.sample_id));
            prop_assert_eq!(&r["category_code"], &text(&s.category));
            prop_assert_eq!(&r["value_text"], &text(&s.value));
            prop_assert_eq!(&r["unit"], &json!(s.unit));
        }
        prop_assert_eq!(decode_chunked(P, &config, &bytes, &sizes), events);
    }
}
