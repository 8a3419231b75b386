//! The rules of `astm` (`docs/protocols.md`), one test each, on the fixtures of `fixtures/astm/`
//! (inputs written by `fixtures/astm/make_fixtures.py`) and on generated transfers.

use crate::harness::{
    assert_same_events, check_fixtures, codes, decode, decode_chunked, fixtures_dir, readings,
};
use foodgate_parsers::astm::{encode_frame, encode_transfer, escape, Frame};
use foodgate_parsers::event::{FrameOutcome, LinkEvent};
use foodgate_parsers::{DecoderConfig, Encoding, Event, Protocol};
use proptest::prelude::*;
use serde_json::Value;

fn fixture(name: &str) -> Vec<Event> {
    let dir = fixtures_dir(Protocol::Astm);
    let bytes = std::fs::read(dir.join(format!("{name}.bin"))).expect("fixture");
    let mut config = DecoderConfig::default();
    if let Ok(enc) = std::fs::read_to_string(dir.join(format!("{name}.encoding"))) {
        config.encoding = Some(enc.trim().parse().expect("encoding"));
    }
    decode(Protocol::Astm, &config, &bytes)
}

fn field<'a>(rs: &'a [Value], key: &str) -> Vec<&'a Value> {
    rs.iter().map(|r| &r[key]).collect()
}

#[test]
fn every_fixture_matches_its_expected_files() {
    assert!(check_fixtures(Protocol::Astm) >= 20);
}

#[test]
fn document_example_in_gbk() {
    let rs = readings(&fixture("food_screening"));
    assert_eq!(rs.len(), 3);
    let r = &rs[0];
    assert_eq!(r["analyte"], "op_carbamate");
    assert_eq!(r["value"], 74.5);
    assert_eq!(r["unit"], "%");
    assert_eq!(r["device_verdict"], "positive");
    assert_eq!(r["sample_id"], "S20261128-0001");
    assert_eq!(r["sample_name"], "菠菜");
    assert_eq!(r["source"], "ZB-0003-A12");
    assert_eq!(r["instrument"], "SN20230457");
    assert_eq!(r["measured_at"], "2026-11-28T09:32:15+08:00");
    for judged in ["verdict", "reason", "limit"] {
        assert!(r.get(judged).is_none(), "decoders never judge: {judged}");
    }
    // A Chinese alias (农残) maps to the canonical id; 阳性 is qualitative.
    assert_eq!(rs[1]["analyte"], "op_carbamate");
    assert_eq!(rs[2]["analyte"], "clenbuterol");
    assert_eq!(rs[2]["value"], Value::Null);
    assert_eq!(rs[2]["device_verdict"], "positive");
}

#[test]
fn frame_numbers_wrap_from_7_to_0() {
    let events = fixture("fn_wrap");
    let numbers: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Link(LinkEvent::Frame {
                number,
                outcome: FrameOutcome::Accepted,
                ..
            }) => Some(*number),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]);
    assert!(codes(&events).is_empty(), "{:?}", codes(&events));
    assert_eq!(readings(&events).len(), 7);
}

#[test]
fn etb_frames_are_joined_and_checked() {
    let events = fixture("etb_chain");
    let rs = readings(&events);
    assert_eq!(field(&rs, "analyte"), ["op_carbamate", "clenbuterol"]);
    assert_eq!(rs[0]["sample_name"], "spinach");
    assert!(codes(&events).is_empty());
    // A bad checksum on an ETB frame is caught too.
    let msg = b"H|\\^&\rP|1\rO|1|S1\rR|1|^^^OPI|10|%\rL|1|N\r";
    let mut bytes = encode_transfer(&[msg.to_vec()], 10);
    let second_etb = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == 0x17)
        .nth(1)
        .expect("etb")
        .0;
    bytes[second_etb + 1] ^= 0x01; // corrupt a checksum digit
    let events = decode(Protocol::Astm, &DecoderConfig::default(), &bytes);
    assert!(readings(&events).is_empty());
    assert!(codes(&events).contains(&"bad_checksum"));
    assert!(codes(&events).contains(&"message_discarded"));
}

#[test]
fn bad_checksum_then_retransmission_keeps_the_message() {
    let events = fixture("bad_checksum_retransmitted");
    assert_eq!(codes(&events), ["bad_checksum"]);
    assert_eq!(readings(&events).len(), 1);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Link(LinkEvent::Frame {
            number: 4,
            outcome: FrameOutcome::Rejected,
            ..
        })
    )));
}

#[test]
fn bad_frame_not_retransmitted_discards_the_message() {
    let events = fixture("bad_checksum_lost");
    assert_eq!(codes(&events), ["bad_checksum", "message_discarded"]);
    let rs = readings(&events);
    // Only the second transfer's reading: nothing of the damaged message survives.
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["analyte"], "clenbuterol");
}

#[test]
fn retransmitted_frames_are_taken_once() {
    let events = fixture("retransmission");
    assert_eq!(codes(&events), ["retransmission", "retransmission"]);
    let rs = readings(&events);
    assert_eq!(field(&rs, "analyte"), ["op_carbamate", "clenbuterol"]);
    let retrans = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Link(LinkEvent::Frame {
                    outcome: FrameOutcome::Retransmission,
                    ..
                })
            )
        })
        .count();
    assert_eq!(retrans, 2);
}

#[test]
fn retransmission_rule_does_not_cross_eot() {
    // The same frame after EOT + ENQ is a new message, not a repeat.
    let one = {
        let mut v = Vec::new();
        encode_frame(
            Frame {
                number: 1,
                text: b"H|\\^&\rO|1|S1\rR|1|^^^OPI|10|%\rL|1|N\r",
                last: true,
            },
            &mut v,
        );
        v
    };
    let bytes = [&b"\x05"[..], &one, b"\x04\x05", &one, b"\x04"].concat();
    let events = decode(Protocol::Astm, &DecoderConfig::default(), &bytes);
    assert_eq!(readings(&events).len(), 2);
    assert!(codes(&events).is_empty());
}

#[test]
fn lost_frame_in_an_etb_chain_discards_the_message() {
    let events = fixture("lost_frame_in_chain");
    assert_eq!(codes(&events), ["message_discarded"]);
    let rs = readings(&events);
    assert_eq!(field(&rs, "analyte"), ["clenbuterol"]);
}

#[test]
fn numbering_restart_after_etx_is_accepted_with_a_warning() {
    let events = fixture("fn_restart_after_etx");
    assert_eq!(
        codes(&events),
        ["unexpected_frame_number", "unexpected_frame_number"]
    );
    assert_eq!(readings(&events).len(), 3);
}

#[test]
fn message_cut_by_eot_or_end_is_discarded_whole() {
    let events = fixture("cut_by_eot");
    assert_eq!(codes(&events), ["message_discarded"]);
    assert_eq!(field(&readings(&events), "analyte"), ["clenbuterol"]);

    let events = fixture("cut_by_end");
    assert_eq!(codes(&events), ["truncated_frame", "message_discarded"]);
    assert_eq!(readings(&events).len(), 1);
}

#[test]
fn long_frames_up_to_64k_and_no_further() {
    let events = fixture("long_frames");
    assert_eq!(codes(&events), ["frame_too_long"]);
    let rs = readings(&events);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0]["comments"][0].as_str().map(str::len), Some(20000));
    assert_eq!(rs[1]["analyte"], "clenbuterol");
}

#[test]
fn never_ending_frame_is_bounded() {
    let mut bytes = b"\x05\x021H|".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 3 * 64 * 1024));
    let events = decode_chunked(Protocol::Astm, &DecoderConfig::default(), &bytes, &[4096]);
    assert_eq!(codes(&events), ["frame_too_long"]);
}

#[test]
fn checksum_case_and_trailers_are_all_accepted() {
    let events = fixture("trailers");
    assert!(codes(&events).is_empty(), "{:?}", codes(&events));
    assert_eq!(readings(&events).len(), 1);
}

#[test]
fn noise_between_frames_is_skipped_and_counted() {
    let events = fixture("noise");
    assert_eq!(codes(&events), ["noise"; 4]);
    assert_eq!(readings(&events).len(), 1);
    let first = events.iter().find_map(|e| match e {
        Event::Diagnostic(d) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(
        first.map(|d| d.message),
        Some("skipped 10 byte(s) outside any frame".into())
    );
}

#[test]
fn malformed_frames_are_dropped_and_reading_resumes() {
    let events = fixture("malformed_frames");
    assert_eq!(
        codes(&events),
        [
            "truncated_frame",
            "malformed_frame",
            "malformed_frame",
            "noise"
        ]
    );
    assert_eq!(
        field(&readings(&events), "analyte"),
        ["op_carbamate", "clenbuterol"]
    );
}

#[test]
fn bare_records_form() {
    let events = fixture("bare_records");
    assert!(codes(&events).is_empty());
    let rs = readings(&events);
    assert_eq!(field(&rs, "analyte"), ["op_carbamate", "clenbuterol"]);
    assert_eq!(rs[1]["comments"][0], "checked twice");
}

#[test]
fn header_delimiters_and_escapes() {
    let rs = readings(&fixture("delimiters_escapes"));
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["sample_id"], "S!9");
    // &S& &R& &E& with this header's own delimiters; an unknown escape is kept literally.
    assert_eq!(rs[0]["sample_name"], "spring ~ onion @ mix % co %X% ok");
    assert_eq!(rs[0]["instrument"], "SN-ESC");
    assert_eq!(rs[0]["value"], 33.0);
}

#[test]
fn value_forms_qualifiers_flags_and_statuses() {
    let rs = readings(&fixture("value_forms"));
    let by_code = |c: &str| {
        rs.iter()
            .find(|r| r["analyte_code"] == c)
            .unwrap_or_else(|| panic!("{c}"))
    };
    let clb = by_code("CLB");
    assert_eq!(
        (&clb["value"], &clb["qualifier"], &clb["device_verdict"]),
        (
            &Value::from(0.05),
            &Value::from("<"),
            &Value::from("negative")
        )
    );
    let no2 = by_code("NO2");
    assert_eq!(
        (&no2["value"], &no2["qualifier"], &no2["device_verdict"]),
        (
            &Value::from(100.0),
            &Value::from(">"),
            &Value::from("positive")
        )
    );
    let rac = by_code("RAC");
    assert_eq!(
        (&rac["value"], &rac["qualifier"], &rac["device_verdict"]),
        (&Value::Null, &Value::from("ND"), &Value::from("negative"))
    );
    for (code, dv) in [
        ("SAL", "positive"),
        ("CAP", "negative"),
        ("MG", "positive"),
        ("AOZ", "negative"),
    ] {
        let r = by_code(code);
        assert_eq!(
            (&r["value"], &r["qualifier"], &r["device_verdict"]),
            (&Value::Null, &Value::Null, &Value::from(dv)),
            "{code}"
        );
    }
    let opi: Vec<&Value> = rs
        .iter()
        .filter(|r| r["analyte_code"] == "OPI")
        .map(|r| &r["result_status"])
        .collect();
    assert_eq!(opi, ["P", "C"]);
    let hcho = by_code("HCHO");
    assert_eq!(
        (&hcho["value"], &hcho["device_verdict"], &hcho["value_text"]),
        (&Value::Null, &Value::from("invalid"), &Value::from("-----"))
    );
    assert_eq!(by_code("SO2")["analyte"], "sulfur_dioxide"); // code in the 5th component
    assert_eq!(by_code("SO2")["device_verdict"], "negative"); // LL
    assert_eq!(by_code("BORAX")["value"], 0.0); // R.3 without components, value in a component
    assert_eq!(by_code("XYZ")["analyte"], "unknown:XYZ");
    assert_eq!(by_code("ENR")["device_verdict"], Value::Null); // no flag
}

#[test]
fn date_time_and_instrument_fallbacks() {
    let events = fixture("fallbacks");
    assert_eq!(codes(&events), ["bad_datetime"]);
    let rs = readings(&events);
    assert_eq!(
        field(&rs, "measured_at"),
        [
            "2026-11-28T08:15:00+08:00",
            "2026-11-28T07:55:00+08:00",
            "2026-11-28T08:00:00+08:00",
            "2026-11-28T08:00:00+08:00"
        ]
    );
    assert_eq!(
        field(&rs, "instrument"),
        ["SN-RESULT", "SN-HEADER", "SN-HEADER", "SN-HEADER"]
    );
    // The configured instrument id is the last fallback; the configured offset applies.
    let config = DecoderConfig {
        instrument: Some("ZB-0001-OP1".into()),
        utc_offset: chrono::FixedOffset::east_opt(0).expect("offset"),
        ..DecoderConfig::default()
    };
    let bytes = b"H|\\^&\rO|1|S1||^^^OPI|R||202611280755\rR|1|^^^OPI|20|%\rL|1|N\r";
    let rs = readings(&decode(Protocol::Astm, &config, bytes));
    assert_eq!(rs[0]["instrument"], "ZB-0001-OP1");
    assert_eq!(rs[0]["measured_at"], "2026-11-28T07:55:00Z");
}

#[test]
fn record_order_rules() {
    let events = fixture("record_order");
    assert_eq!(
        codes(&events),
        [
            "orphan_records",
            "message_discarded",
            "skipped_record",
            "skipped_record",
            "unknown_record"
        ]
    );
    assert_eq!(field(&readings(&events), "analyte"), ["clenbuterol"]);
}

#[test]
fn gbk_trail_bytes_equal_to_delimiters_do_not_split_fields() {
    let rs = readings(&fixture("gbk_delimiter_bytes"));
    assert_eq!(rs[0]["sample_name"], "東山乗菜");
    assert_eq!(rs[0]["vendor"], "區某");
    assert_eq!(rs[0]["analyte"], "op_carbamate"); // 有机磷
}

#[test]
fn encodings_are_chosen_by_configuration() {
    assert_eq!(readings(&fixture("utf8_text"))[0]["sample_name"], "鱿鱼");
    assert_eq!(readings(&fixture("latin1_text"))[0]["sample_name"], "purée");
    // The same GBK bytes read as Latin-1 are not Chinese: the encoding matters.
    let bytes =
        std::fs::read(fixtures_dir(Protocol::Astm).join("food_screening.bin")).expect("fixture");
    let latin = readings(&decode(Protocol::Astm, &DecoderConfig::default(), &bytes));
    assert_ne!(latin[0]["sample_name"], "菠菜");
}

#[test]
fn per_instrument_aliases_override() {
    let mut aliases = foodgate_parsers::AliasTable::builtin().clone();
    aliases.insert("PEST", "op_carbamate");
    let config = DecoderConfig {
        aliases: std::sync::Arc::new(aliases),
        ..DecoderConfig::default()
    };
    let bytes = b"H|\\^&\rR|1|^^^pest|10|%\rL|1|N\r";
    assert_eq!(
        readings(&decode(Protocol::Astm, &config, bytes))[0]["analyte"],
        "op_carbamate"
    );
    assert_eq!(
        readings(&decode(Protocol::Astm, &DecoderConfig::default(), bytes))[0]["analyte"],
        "unknown:pest"
    );
}

#[test]
fn readings_come_before_the_link_event_of_their_frame() {
    let events = fixture("food_screening");
    let pos_reading = events
        .iter()
        .position(|e| matches!(e, Event::Reading(_)))
        .expect("reading");
    let pos_frame = events
        .iter()
        .position(|e| matches!(e, Event::Link(LinkEvent::Frame { .. })))
        .expect("frame");
    let pos_end = events
        .iter()
        .position(|e| matches!(e, Event::Link(LinkEvent::MessageEnd { .. })))
        .expect("end");
    assert!(pos_reading < pos_end && pos_end < pos_frame);
}

// ---- generated input ----

#[derive(Debug, Clone)]
struct GenResult {
    code: String,
    value: String,
    unit: String,
}

fn text_strategy() -> impl Strategy<Value = String> {
    // Printable text including the delimiter characters, which must round-trip escaped.
    proptest::string::string_regex("[A-Za-z0-9 .|^&\\\\<>%-]{0,12}").expect("regex")
}

fn result_strategy() -> impl Strategy<Value = GenResult> {
    (
        prop_oneof![
            Just("OPI".to_string()),
            Just("CLB".to_string()),
            Just("HCHO".to_string()),
            "[A-Z]{2,5}"
        ],
        prop_oneof![
            (0u32..100000).prop_map(|v| format!("{}.{}", v / 10, v % 10)),
            Just("ND".to_string()),
            Just("POS".to_string()),
            (0u32..1000).prop_map(|v| format!("<{v}")),
        ],
        prop_oneof![
            Just("%".to_string()),
            Just("mg/kg".to_string()),
            Just("ug/kg".to_string())
        ],
    )
        .prop_map(|(code, value, unit)| GenResult { code, value, unit })
}

fn message(sample: &str, results: &[GenResult]) -> Vec<u8> {
    let mut m = format!("H|\\^&|||GEN^1^SN-GEN|||||||P|E1394-97|20261128093215\rP|1|ZB-0001-A01\rO|1|{}||^^^ALL|R||20261128090000||||||||{}\r", escape(sample), escape(sample));
    for (i, r) in results.iter().enumerate() {
        m.push_str(&format!(
            "R|{}|^^^{}|{}|{}||||F||||20261128093215\r",
            i + 1,
            r.code,
            r.value,
            r.unit
        ));
    }
    m.push_str("L|1|N\r");
    m.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_chunking_does_not_matter(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let config = DecoderConfig::default();
        let whole = decode(Protocol::Astm, &config, &bytes);
        assert_same_events(&decode_chunked(Protocol::Astm, &config, &bytes, &sizes), &whole, "random bytes");
    }

    #[test]
    fn random_bytes_inside_frames_never_panic(
        pieces in proptest::collection::vec(prop_oneof![
            Just(vec![0x02u8]), Just(vec![0x03u8]), Just(vec![0x17u8]), Just(vec![0x04u8]), Just(vec![0x05u8]),
            Just(b"\r".to_vec()), Just(b"H|\\^&".to_vec()), Just(b"L|1|N".to_vec()), Just(b"R|1|^^^OPI|1|%".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ], 0..64),
        sizes in proptest::collection::vec(1usize..32, 1..6),
        gbk in any::<bool>(),
    ) {
        let bytes = pieces.concat();
        let config = DecoderConfig { encoding: gbk.then_some(Encoding::Gbk), ..DecoderConfig::default() };
        let whole = decode(Protocol::Astm, &config, &bytes);
        assert_same_events(&decode_chunked(Protocol::Astm, &config, &bytes, &sizes), &whole, "framed noise");
    }

    #[test]
    fn encoded_transfers_decode_to_what_was_sent(
        messages in proptest::collection::vec((text_strategy(), proptest::collection::vec(result_strategy(), 1..6)), 1..4),
        frame_size in 1usize..300,
        sizes in proptest::collection::vec(1usize..500, 1..6),
    ) {
        let texts: Vec<Vec<u8>> = messages.iter().map(|(s, rs)| message(s, rs)).collect();
        let bytes = encode_transfer(&texts, frame_size);
        let events = decode_chunked(Protocol::Astm, &DecoderConfig::default(), &bytes, &sizes);
        prop_assert!(codes(&events).iter().all(|c| *c == "retransmission"), "{:?}", codes(&events));
        let rs = readings(&events);
        let sent: Vec<(&String, &GenResult)> = messages.iter().flat_map(|(s, rs)| rs.iter().map(move |r| (s, r))).collect();
        prop_assert_eq!(rs.len(), sent.len());
        for (got, (sample, r)) in rs.iter().zip(sent) {
            let trimmed = sample.trim();
            let want = if trimmed.is_empty() { Value::Null } else { Value::from(trimmed) };
            prop_assert_eq!(&got["sample_name"], &want);
            prop_assert_eq!(&got["analyte_code"], &Value::from(r.code.as_str()));
            prop_assert_eq!(&got["value_text"], &Value::from(r.value.as_str()));
            prop_assert_eq!(&got["unit"], &Value::from(r.unit.as_str()));
        }
    }
}
