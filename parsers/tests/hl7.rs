//! The `hl7` decoder: MLLP and bare framing, message rules, readings, encoders.

use crate::harness::{
    assert_chunking_invariant, check_fixtures, codes, decode, decode_chunked, fixtures_dir,
};
use foodgate_parsers::event::LinkEvent;
use foodgate_parsers::hl7::{ack, escape, mllp_wrap, AckCode, AckHeader, Obr, Obx, Oru};
use foodgate_parsers::{
    DecoderConfig, DeviceVerdict, Encoding, Event, Level, Protocol, Qualifier, Reading,
};
use proptest::prelude::*;

fn dec(bytes: &[u8]) -> Vec<Event> {
    decode(Protocol::Hl7, &DecoderConfig::default(), bytes)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir(Protocol::Hl7).join(format!("{name}.bin"))).expect("fixture")
}

fn reads(events: &[Event]) -> Vec<&Reading> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reading(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct End {
    offset: u64,
    control_id: Option<String>,
    app: Option<String>,
    facility: Option<String>,
    readings: usize,
    rejected: Option<String>,
}

fn ends(events: &[Event]) -> Vec<End> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Link(LinkEvent::MessageEnd {
                offset,
                control_id,
                sending_application,
                sending_facility,
                readings,
                rejected,
            }) => Some(End {
                offset: *offset,
                control_id: control_id.as_deref().map(String::from),
                app: sending_application.as_deref().map(String::from),
                facility: sending_facility.as_deref().map(String::from),
                readings: *readings,
                rejected: rejected.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn ids(events: &[Event]) -> Vec<Option<String>> {
    ends(events).into_iter().map(|e| e.control_id).collect()
}

fn rfc(r: &Reading) -> String {
    r.measured_at.map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// A small valid ORU text (CR segments) with control id `cid`.
fn oru(cid: &str) -> String {
    format!(
        "MSH|^~\\&|APP^X|FAC|FG|M|20261128093000||ORU^R01|{cid}|P|2.5\r\
         PID|1||S1||V\r\
         OBR|1||ID-{cid}|F|||20261128091500||||||||菠菜\r\
         OBX|1|NM|OPI||12.5|%||N|||F\r"
    )
}

#[test]
fn fixtures() {
    assert!(check_fixtures(Protocol::Hl7) >= 13);
}

#[test]
fn normal_oru_fields() {
    let ev = dec(&fixture("oru_utf8"));
    assert_eq!(codes(&ev), Vec::<&str>::new());
    let r = reads(&ev);
    assert_eq!(r.len(), 2);
    let a = r[0];
    assert_eq!(a.protocol, Protocol::Hl7);
    assert_eq!(a.analyte, "op_carbamate");
    assert_eq!(a.analyte_code.as_deref(), Some("OPI"));
    assert_eq!(a.value, Some(38.5));
    assert_eq!(a.value_text.as_deref(), Some("38.5"));
    assert_eq!(a.unit.as_deref(), Some("%"));
    assert_eq!(a.reference_range.as_deref(), Some("0-50"));
    assert_eq!(a.abnormal_flag.as_deref(), Some("N"));
    assert_eq!(a.device_verdict, Some(DeviceVerdict::Negative));
    assert_eq!(a.result_status.as_deref(), Some("F"));
    assert_eq!(a.sample_id.as_deref(), Some("S20261128-001"));
    assert_eq!(a.sample_name.as_deref(), Some("菠菜"));
    assert_eq!(a.source.as_deref(), Some("A-017"));
    assert_eq!(a.vendor.as_deref(), Some("李 秀英"));
    assert_eq!(a.instrument.as_deref(), Some("RZ-5000-01"));
    assert_eq!(a.message_id.as_deref(), Some("MSG0001"));
    assert_eq!(rfc(a), "2026-11-28T09:20:00+08:00");
    assert_eq!(a.method, None);
    let b = r[1];
    assert_eq!(b.analyte, "clenbuterol");
    assert_eq!(b.sample_name.as_deref(), Some("猪肉"));
    assert_eq!(b.value, Some(3.2));
    assert_eq!(b.device_verdict, Some(DeviceVerdict::Positive));
    // OBX-18 empty: MSH-3's first component.
    assert_eq!(b.instrument.as_deref(), Some("QUICKLAB"));
    // Readings come before the MessageEnd that closes them.
    assert!(matches!(
        ev.last(),
        Some(Event::Link(LinkEvent::MessageEnd { .. }))
    ));
    assert_eq!(
        ends(&ev),
        vec![End {
            offset: 1,
            control_id: Some("MSG0001".into()),
            app: Some("QUICKLAB^LAB01^L".into()),
            facility: Some("东门市场检测站".into()),
            readings: 2,
            rejected: None,
        }]
    );
}

#[test]
fn obr_groups_and_fallbacks() {
    let ev = dec(&fixture("multi_obr"));
    let r = reads(&ev);
    let got: Vec<(&str, &str, String, &str)> = r
        .iter()
        .map(|r| {
            (
                r.sample_id.as_deref().unwrap_or(""),
                r.sample_name.as_deref().unwrap_or(""),
                rfc(r),
                r.instrument.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "S-101",
                "韭菜",
                "2026-11-28T09:45:00+08:00".into(),
                "GOLD-7"
            ),
            (
                "S-101",
                "韭菜",
                "2026-11-28T09:40:00+08:00".into(),
                "QUICKLAB"
            ),
            (
                "S-102",
                "芹菜",
                "2026-11-28T10:00:00+08:00".into(),
                "QUICKLAB"
            ),
            (
                "S-102",
                "芹菜",
                "2026-11-28T10:00:00+08:00".into(),
                "QUICKLAB"
            ),
            (
                "S-103",
                "鲫鱼",
                "2026-11-28T09:55:00+00:00".into(),
                "QUICKLAB"
            ),
        ]
    );
    assert_eq!(r[4].analyte, "malachite_green");
    assert_eq!(r[4].device_verdict, Some(DeviceVerdict::Negative));
    assert_eq!(r[3].source.as_deref(), Some("B-203"));
    assert_eq!(codes(&ev), vec!["bad_datetime"]);
    assert_eq!(ends(&ev)[0].readings, 5);
}

#[test]
fn configured_instrument_is_last_fallback() {
    let text = "MSH|^~\\&|||||||ORU^R01|C1|P|2.5\rOBX|1|NM|OPI||1|%\r";
    let config = DecoderConfig {
        instrument: Some("CFG-9".into()),
        ..DecoderConfig::default()
    };
    let ev = decode(Protocol::Hl7, &config, &mllp_wrap(text.as_bytes()));
    let r = reads(&ev);
    assert_eq!(r[0].instrument.as_deref(), Some("CFG-9"));
    assert_eq!(r[0].measured_at, None);
    assert_eq!(r[0].sample_id, None);
}

#[test]
fn no_offset_takes_configured_offset() {
    let config = DecoderConfig {
        utc_offset: chrono::FixedOffset::east_opt(-5 * 3600).unwrap(),
        ..DecoderConfig::default()
    };
    let ev = decode(Protocol::Hl7, &config, &mllp_wrap(oru("T1").as_bytes()));
    assert_eq!(rfc(reads(&ev)[0]), "2026-11-28T09:15:00-05:00");
}

#[test]
fn gb18030_trail_bytes_do_not_split() {
    let ev = dec(&fixture("gb18030_trail_bytes"));
    assert_eq!(codes(&ev), Vec::<&str>::new());
    let r = reads(&ev);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].sample_name.as_deref(), Some("蟶子"));
    assert_eq!(r[0].vendor.as_deref(), Some("陈 誠"));
    assert_eq!(r[0].source.as_deref(), Some("C-88"));
    assert_eq!(r[0].analyte, "op_carbamate");
    assert_eq!(r[0].value, Some(22.0));
    assert_eq!(r[0].comments, vec!["复检：蕓薹，誠实".to_string()]);
    assert_eq!(r[1].sample_name.as_deref(), Some("蕓薹"));
    assert_eq!(r[1].value_text.as_deref(), Some("阴性"));
    assert_eq!(r[1].device_verdict, Some(DeviceVerdict::Negative));
    assert_eq!(ends(&ev)[0].facility.as_deref(), Some("蟶子批发"));
    assert_eq!(ends(&ev)[0].control_id.as_deref(), Some("GB0001"));
}

#[test]
fn configured_gbk_and_unknown_charset() {
    let bytes = fixture("gbk_configured");
    let config = DecoderConfig {
        encoding: Some(Encoding::Gbk),
        ..DecoderConfig::default()
    };
    let ev = decode(Protocol::Hl7, &config, &bytes);
    let r = reads(&ev);
    assert_eq!(r[0].vendor.as_deref(), Some("陈 誠"));
    assert_eq!(r[0].sample_name.as_deref(), Some("蟶子"));
    assert_eq!(r[1].sample_name.as_deref(), Some("蕓薹"));
    assert_eq!(codes(&ev), vec!["unknown_charset"]);
    // The same bytes under the default UTF-8 are not text: both rejected.
    let ev = dec(&bytes);
    assert_eq!(codes(&ev), vec!["undecodable", "undecodable"]);
    assert!(reads(&ev).is_empty());
}

#[test]
fn msh18_utf8_overrides_configured_gbk() {
    let text = oru("U1").replace("|P|2.5\r", "|P|2.5||||||UTF-8\r");
    let config = DecoderConfig {
        encoding: Some(Encoding::Gbk),
        ..DecoderConfig::default()
    };
    let ev = decode(Protocol::Hl7, &config, &mllp_wrap(text.as_bytes()));
    assert_eq!(reads(&ev)[0].sample_name.as_deref(), Some("菠菜"));
    assert_eq!(codes(&ev), Vec::<&str>::new());
}

#[test]
fn every_escape() {
    let ev = dec(&fixture("escapes"));
    assert_eq!(codes(&ev), Vec::<&str>::new());
    let r = reads(&ev);
    assert_eq!(r[0].message_id.as_deref(), Some("ESC|01"));
    assert_eq!(r[0].source.as_deref(), Some("D&1"));
    // Components are split before unescaping: \S\ stays inside the family name.
    assert_eq!(r[0].vendor.as_deref(), Some("Smith^Jr Tom"));
    assert_eq!(r[0].sample_id.as_deref(), Some("S~301"));
    assert_eq!(r[0].sample_name.as_deref(), Some("菠菜 | bulk"));
    assert_eq!(r[0].value_text.as_deref(), Some("\\12.5\\"));
    assert_eq!(r[0].value, None);
    assert_eq!(
        r[0].comments,
        vec!["a|b^c&d~e\\f \\H\\bold\\N\\ A \\Zx\\ end".to_string()]
    );
    assert_eq!(r[1].value, Some(1.5));
    assert_eq!(r[1].reference_range.as_deref(), Some("0&1"));
    assert_eq!(ends(&ev)[0].control_id.as_deref(), Some("ESC|01"));
}

#[test]
fn custom_delimiters() {
    let text = "MSH#$%*@#APP#F###20261128093000##ORU$R01#D1#P#2.5\r\
                OBR#1##S*F*1%S2#####\rOBX#1#NM#OPI$x##1.5#%\r";
    let ev = dec(&mllp_wrap(text.as_bytes()));
    let r = reads(&ev);
    assert_eq!(r[0].sample_id.as_deref(), Some("S#1"));
    assert_eq!(r[0].value, Some(1.5));
    assert_eq!(r[0].analyte, "op_carbamate");
}

#[test]
fn value_forms() {
    let ev = dec(&fixture("value_forms"));
    let got: Vec<(Option<f64>, Option<Qualifier>, Option<DeviceVerdict>)> = reads(&ev)
        .iter()
        .map(|r| (r.value, r.qualifier, r.device_verdict))
        .collect();
    use DeviceVerdict::*;
    use Qualifier::*;
    assert_eq!(
        got,
        vec![
            (Some(0.05), Some(Below), None),
            (Some(100.0), Some(Above), None),
            (None, Some(NotDetected), Some(Negative)),
            (None, None, Some(Positive)),
            (None, None, Some(Negative)),
            (None, None, Some(Positive)),
            (None, None, Some(Negative)),
            (None, None, Some(Positive)),
            (None, None, Some(Negative)),
            (Some(0.02), Some(Below), None),
            (Some(45.0), None, Some(Positive)),
            (Some(2.0), None, Some(Negative)),
            (Some(7.5), None, None),
            (None, None, Some(Invalid)),
            (None, None, Some(Negative)),
        ]
    );
    let r = reads(&ev);
    assert_eq!(r[13].value_text.as_deref(), Some("99"));
    assert_eq!(r[13].result_status.as_deref(), Some("X"));
    assert_eq!(r[11].result_status.as_deref(), Some("C"));
    assert_eq!(r[9].value_text.as_deref(), Some("<0.02"));
    assert_eq!(r[14].value_text.as_deref(), Some("see note"));
}

#[test]
fn nte_goes_to_the_obx_before_it() {
    let ev = dec(&fixture("nte"));
    let r = reads(&ev);
    assert_eq!(
        r[0].comments,
        vec!["复检阳性".to_string(), "second repetition".to_string()]
    );
    assert!(r[1].comments.is_empty());
}

#[test]
fn noise_one_warning_per_run() {
    let bytes = fixture("noise");
    let ev = dec(&bytes);
    let noise: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Diagnostic(d) if d.error == "noise" => {
                assert_eq!(d.level, Level::Warning);
                Some(d.offset)
            }
            _ => None,
        })
        .collect();
    assert_eq!(noise.len(), 3);
    assert_eq!(noise[0], 0);
    let junk = bytes.windows(6).position(|w| w == b"+++ATH").unwrap() as u64;
    assert_eq!(noise[1], junk);
    assert_eq!(noise[2] as usize, bytes.len() - 4);
    assert_eq!(
        ids(&ev),
        vec![Some("N1".into()), Some("N2".into()), Some("N3".into())]
    );
    assert_eq!(reads(&ev).len(), 3);
}

#[test]
fn unterminated_blocks_are_discarded() {
    let bytes = fixture("unterminated_block");
    let ev = dec(&bytes);
    assert_eq!(codes(&ev), vec!["unterminated_block", "unterminated_block"]);
    let errs: Vec<(u64, Level)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Diagnostic(d) => Some((d.offset, d.level)),
            _ => None,
        })
        .collect();
    let vts: Vec<u64> = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 0x0B)
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(errs, vec![(vts[0], Level::Error), (vts[2], Level::Error)]);
    assert_eq!(ids(&ev), vec![Some("KEPT1".into())]);
    assert_eq!(reads(&ev)[0].sample_id.as_deref(), Some("S-KEPT1"));
}

#[test]
fn fs_without_cr() {
    let mut bytes = mllp_wrap(oru("A").as_bytes());
    bytes.pop();
    bytes.extend(mllp_wrap(oru("B").as_bytes()));
    bytes.pop();
    let ev = dec(&bytes);
    assert_eq!(codes(&ev), vec!["missing_cr", "missing_cr"]);
    assert_eq!(ids(&ev), vec![Some("A".into()), Some("B".into())]);
    assert_chunking_invariant(Protocol::Hl7, &DecoderConfig::default(), &bytes, "fs");
}

#[test]
fn block_over_1mib_is_dropped_and_resynced() {
    let mut bytes = vec![0x0B];
    bytes.extend(oru("BIG").as_bytes());
    bytes.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    bytes.extend([0x1C, 0x0D]);
    bytes.extend(b"after");
    let good = mllp_wrap(oru("SMALL").as_bytes());
    bytes.extend(&good);
    let config = DecoderConfig::default();
    let ev = decode(Protocol::Hl7, &config, &bytes);
    assert_eq!(codes(&ev), vec!["message_too_long"]);
    assert_eq!(ids(&ev), vec![Some("SMALL".into())]);
    for sizes in [&[1000usize][..], &[65536, 7], &[usize::MAX]] {
        assert_eq!(decode_chunked(Protocol::Hl7, &config, &bytes, sizes), ev);
    }
    // Exactly 1 MiB of content is still a message.
    let text = oru("EDGE");
    let mut exact = text.clone().into_bytes();
    exact.resize(1024 * 1024, b'\r');
    let ev = dec(&mllp_wrap(&exact));
    assert_eq!(ids(&ev), vec![Some("EDGE".into())]);
    assert_eq!(codes(&ev), Vec::<&str>::new());
}

#[test]
fn bare_message_over_1mib_is_dropped() {
    let mut bytes = oru("BIG").into_bytes();
    bytes.extend(std::iter::repeat_n(b'y', 1024 * 1024));
    bytes.extend(b"\r\n");
    bytes.extend(oru("NEXT").as_bytes());
    let config = DecoderConfig::default();
    let ev = decode(Protocol::Hl7, &config, &bytes);
    assert_eq!(codes(&ev), vec!["message_too_long"]);
    assert_eq!(ids(&ev), vec![Some("NEXT".into())]);
    for sizes in [&[1000usize][..], &[65536, 3], &[1, 4096]] {
        assert_eq!(decode_chunked(Protocol::Hl7, &config, &bytes, sizes), ev);
    }
}

#[test]
fn bare_export_crlf() {
    let ev = dec(&fixture("bare_crlf"));
    assert_eq!(codes(&ev), Vec::<&str>::new());
    assert_eq!(ids(&ev), vec![Some("BARE1".into()), Some("BARE2".into())]);
    let r = reads(&ev);
    assert_eq!(r[0].vendor.as_deref(), Some("赵 四"));
    assert_eq!(r[0].value, Some(33.3));
    assert_eq!(r[1].sample_name.as_deref(), Some("牛肉"));
    assert_eq!(r[1].device_verdict, Some(DeviceVerdict::Positive));
    // The second message starts at its own MSH.
    let bytes = fixture("bare_crlf");
    let second = bytes.windows(4).rposition(|w| w == b"MSH|").unwrap() as u64;
    assert_eq!(ends(&ev)[1].offset, second);
}

#[test]
fn bare_needs_line_start_msh() {
    // "xMSH|" inside a line is not a message start; any separator after MSH is.
    let text = "MSH|^~\\&|A||||||ORU^R01|ONE|P|2.5\nOBX|1|NM|OPI||1|%|xMSH|\nMSH!^~\\&!A!!!!!!ORU^R01!TWO!P!2.5\nOBX!1!NM!OPI!!2!%\n";
    let ev = dec(text.as_bytes());
    assert_eq!(ids(&ev), vec![Some("ONE".into()), Some("TWO".into())]);
    let r = reads(&ev);
    assert_eq!((r[0].value, r[1].value), (Some(1.0), Some(2.0)));
}

#[test]
fn malformed_messages_are_rejected() {
    let ev = dec(&fixture("missing_msh"));
    assert_eq!(
        codes(&ev),
        vec!["missing_msh", "short_msh", "bad_delimiters"]
    );
    assert!(ev.iter().all(|e| match e {
        Event::Diagnostic(d) => d.level == Level::Error,
        _ => true,
    }));
    let e = ends(&ev);
    assert_eq!(e.len(), 4);
    for end in &e[..3] {
        assert_eq!(end.readings, 0);
        assert!(end.rejected.is_some());
    }
    assert!(e[0].rejected.as_deref().unwrap().contains("MSH"));
    assert_eq!(e[3].rejected, None);
    assert_eq!(e[3].control_id.as_deref(), Some("OK4"));
    assert_eq!(reads(&ev).len(), 1);
}

#[test]
fn undecodable_is_rejected_with_its_control_id() {
    let ev = dec(&fixture("undecodable"));
    assert_eq!(codes(&ev), vec!["undecodable"]);
    let e = ends(&ev);
    assert_eq!(e[0].control_id.as_deref(), Some("GBK0001"));
    assert_eq!(e[0].readings, 0);
    assert!(e[0].rejected.is_some());
    assert_eq!(e[1].rejected, None);
    assert_eq!(reads(&ev).len(), 1);
}

#[test]
fn non_oru_gives_no_readings() {
    let ev = dec(&fixture("non_oru"));
    assert_eq!(codes(&ev), vec!["not_oru"]);
    let e = ends(&ev);
    assert_eq!(e[0].control_id.as_deref(), Some("ADT0001"));
    assert_eq!((e[0].readings, e[0].rejected.clone()), (0, None));
    assert_eq!(reads(&ev).len(), 1);
    assert_eq!(reads(&ev)[0].message_id.as_deref(), Some("OK6"));
}

#[test]
fn ack_swaps_sender_and_echoes_control_id() {
    let ev = dec(&fixture("oru_utf8"));
    let end = &ends(&ev)[0];
    let h = AckHeader {
        sending_application: "FOODGATE",
        sending_facility: "M01",
        receiving_application: end.app.as_deref().unwrap(),
        receiving_facility: end.facility.as_deref().unwrap(),
        timestamp: "20261128093100",
        control_id: "FG000001",
        version: "2.5",
    };
    let a = ack(
        end.control_id.as_deref().unwrap(),
        AckCode::Accept,
        None,
        &h,
    );
    assert_eq!(a.first(), Some(&0x0B));
    assert!(a.ends_with(&[0x1C, 0x0D]));
    let text = String::from_utf8(a[1..a.len() - 2].to_vec()).unwrap();
    assert_eq!(
        text,
        "MSH|^~\\&|FOODGATE|M01|QUICKLAB^LAB01^L|东门市场检测站|20261128093100||ACK^R01|FG000001|P|2.5\rMSA|AA|MSG0001\r"
    );
    let r = ack("X|1", AckCode::Reject, Some("store busy"), &h);
    assert!(String::from_utf8_lossy(&r).contains("MSA|AR|X\\F\\1|store busy\r"));
    // An ack is itself a message this decoder reads (as non-ORU).
    let ev = dec(&a);
    assert_eq!(ids(&ev), vec![Some("FG000001".into())]);
    assert_eq!(codes(&ev), vec!["not_oru"]);
}

// ---- property tests ----

fn text_strategy() -> impl Strategy<Value = String> {
    // Printable text incl. every delimiter and some Chinese; no leading/trailing blanks
    // (the decoder trims them).
    proptest::string::string_regex("[a-zA-Z0-9|^~&\\\\#.,菠菜猪肉克伦 -]{0,12}")
        .unwrap()
        .prop_map(|s| s.trim().to_string())
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..100000).prop_map(|n| format!("{}.{}", n / 100, n % 100)),
        (0u32..1000).prop_map(|n| format!("<{n}")),
        (0u32..1000).prop_map(|n| format!(">{n}")),
        Just("ND".to_string()),
        Just("POS".to_string()),
        Just("阴性".to_string()),
    ]
}

fn obx_strategy() -> impl Strategy<Value = Obx> {
    (
        prop_oneof![Just("OPI"), Just("CLB"), Just("MG"), Just("ZZ9")],
        value_strategy(),
        text_strategy(),
        prop_oneof![Just(""), Just("N"), Just("H")],
        prop::collection::vec(
            text_strategy().prop_filter("nonempty", |s| !s.is_empty()),
            0..2,
        ),
    )
        .prop_map(|(code, value, unit, flag, comments)| Obx {
            value_type: "ST".into(),
            code: code.into(),
            name: "n".into(),
            value,
            unit,
            flag: flag.into(),
            comments,
            ..Obx::default()
        })
}

fn oru_strategy() -> impl Strategy<Value = Oru> {
    (
        text_strategy(),
        text_strategy(),
        text_strategy(),
        prop::collection::vec(
            (
                text_strategy(),
                text_strategy(),
                prop::collection::vec(obx_strategy(), 0..3),
            ),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(cid, source, vendor, orders, gb)| Oru {
            sending_application: "SIM".into(),
            timestamp: "20261128093000".into(),
            control_id: cid,
            charset: Some(if gb { "GB 18030-2000" } else { "UNICODE UTF-8" }.into()),
            source_id: source,
            vendor: vec![vendor],
            orders: orders
                .into_iter()
                .map(|(id, name, results)| Obr {
                    sample_id: id,
                    sample_name: name,
                    results,
                    ..Obr::default()
                })
                .collect(),
            ..Oru::default()
        })
}

fn some(s: &str) -> Option<foodgate_parsers::reading::Text> {
    (!s.is_empty()).then(|| s.into())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_chunking_is_invariant(
        bytes in prop::collection::vec(
            prop_oneof![any::<u8>(), Just(0x0Bu8), Just(0x1C), Just(b'\r'), Just(b'|'), Just(b'M')],
            0..600),
        sizes in prop::collection::vec(1usize..40, 1..6),
    ) {
        let config = DecoderConfig::default();
        let whole = decode(Protocol::Hl7, &config, &bytes);
        prop_assert_eq!(decode_chunked(Protocol::Hl7, &config, &bytes, &sizes), whole);
    }

    #[test]
    fn mangled_messages_chunking_invariant(
        parts in prop::collection::vec(
            prop_oneof![
                Just(mllp_wrap(oru("P").as_bytes())),
                Just(oru("Q").into_bytes()),
                Just(b"\x0bMSH|^~".to_vec()),
                Just(b"\x0b".to_vec()),
                Just(b"\x1c\r".to_vec()),
                Just(b"garbage\r\n".to_vec()),
                Just("MSH|^~\\&|A||||||ORU^R01|R|P|2.5||||||GB18030\rOBX|1|NM|OPI||1|%\r".as_bytes().to_vec()),
            ],
            0..8),
        cut in 0usize..40,
        sizes in prop::collection::vec(1usize..30, 1..5),
    ) {
        let mut bytes: Vec<u8> = parts.concat();
        let n = bytes.len();
        bytes.truncate(n.saturating_sub(cut));
        let config = DecoderConfig::default();
        let whole = decode(Protocol::Hl7, &config, &bytes);
        prop_assert_eq!(decode_chunked(Protocol::Hl7, &config, &bytes, &sizes), whole);
    }

    #[test]
    fn encode_decode_round_trip(msg in oru_strategy(), sizes in prop::collection::vec(1usize..64, 1..4)) {
        let enc = if msg.charset.as_deref() == Some("GB 18030-2000") { Encoding::Gb18030 } else { Encoding::Utf8 };
        let bytes = msg.to_mllp(enc);
        let config = DecoderConfig::default();
        let ev = decode(Protocol::Hl7, &config, &bytes);
        prop_assert_eq!(&decode_chunked(Protocol::Hl7, &config, &bytes, &sizes), &ev);
        prop_assert_eq!(codes(&ev), Vec::<&str>::new());
        let r = reads(&ev);
        let expected: Vec<(&Obr, &Obx)> = msg.orders.iter()
            .flat_map(|o| o.results.iter().map(move |x| (o, x))).collect();
        prop_assert_eq!(r.len(), expected.len());
        for (r, (o, x)) in r.iter().zip(expected) {
            prop_assert_eq!(r.analyte_code.as_deref(), Some(x.code.as_str()));
            prop_assert_eq!(&r.value_text, &some(&x.value));
            let v = foodgate_parsers::value::interpret(&x.value);
            prop_assert_eq!((r.value, r.qualifier), (v.value, v.qualifier));
            prop_assert_eq!(&r.unit, &some(&x.unit));
            prop_assert_eq!(&r.sample_id, &some(&o.sample_id));
            prop_assert_eq!(&r.sample_name, &some(&o.sample_name));
            prop_assert_eq!(&r.source, &some(&msg.source_id));
            prop_assert_eq!(&r.vendor, &some(&msg.vendor[0]));
            prop_assert_eq!(&r.message_id, &some(&msg.control_id));
            prop_assert_eq!(r.comments.iter().map(|c| c.as_str()).collect::<Vec<_>>(), x.comments.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(r.instrument.as_deref(), Some("SIM"));
        }
        let e = ends(&ev);
        prop_assert_eq!(e.len(), 1);
        prop_assert_eq!(e[0].control_id.clone(), some(&msg.control_id).map(String::from));
        prop_assert_eq!(e[0].readings, r.len());
    }

    #[test]
    fn escape_round_trips_through_the_decoder(s in "[ -~]{0,20}") {
        let s = s.trim().to_string();
        let text = format!("MSH|^~\\&|A||||||ORU^R01|C|P|2.5\rOBR|1||{}\rOBX|1|ST|OPI||1\r", escape(&s));
        let ev = dec(&mllp_wrap(text.as_bytes()));
        prop_assert_eq!(reads(&ev)[0].sample_id.clone(), some(&s));
    }
}

/// Decode `bytes` in `chunk`-sized feeds, dropping events as a consumer would; MB/s.
fn measure(bytes: &[u8], chunk: usize) -> (f64, usize) {
    let mut d = foodgate_parsers::new_decoder(Protocol::Hl7, DecoderConfig::default());
    let mut out = Vec::new();
    let mut n = 0;
    let t = std::time::Instant::now();
    for c in bytes.chunks(chunk) {
        d.feed(c, &mut out);
        n += out.len();
        out.clear();
    }
    d.finish(&mut out);
    n += out.len();
    (bytes.len() as f64 / t.elapsed().as_secs_f64() / 1e6, n)
}

/// Throughput: `cargo test --release -p foodgate-parsers --test all hl7::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, run in release"]
fn throughput() {
    let mut framed = Vec::new();
    while framed.len() < 64 * 1024 * 1024 {
        framed.extend(fixture("oru_utf8"));
        framed.extend(fixture("value_forms"));
    }
    let bare: Vec<u8> = std::iter::repeat_n(oru("B").into_bytes(), 400_000)
        .flatten()
        .collect();
    // A lab-system message: full header, 3 results with every field filled.
    let lab = Oru {
        sending_application: "QUICKLAB^2.16.840.1.113883.3.1234^ISO".into(),
        sending_facility: "东门农贸市场快检室".into(),
        receiving_application: "FOODGATE".into(),
        receiving_facility: "M01".into(),
        timestamp: "20261128093000+0800".into(),
        control_id: "20261128093000-000123".into(),
        charset: Some("UNICODE UTF-8".into()),
        source_id: "A-017".into(),
        vendor: vec!["李".into(), "秀英".into()],
        orders: vec![Obr {
            sample_id: "S20261128-000123".into(),
            service: "FOODSCREEN".into(),
            observed_at: "20261128091500".into(),
            sample_name: "菠菜".into(),
            results: ["OPI", "CLB", "MG"]
                .iter()
                .map(|c| Obx {
                    value_type: "NM".into(),
                    code: (*c).into(),
                    name: "有机磷和氨基甲酸酯类农药残留快速检测".into(),
                    value: "38.5".into(),
                    unit: "%".into(),
                    reference_range: "0-50".into(),
                    flag: "N".into(),
                    status: "F".into(),
                    observed_at: "20261128092000".into(),
                    equipment: "RZ-5000-01^SN123456".into(),
                    comments: vec![],
                })
                .collect(),
        }],
        ..Oru::default()
    };
    let lab_msg = lab.to_mllp(Encoding::Utf8);
    let lab_stream: Vec<u8> = std::iter::repeat_n(lab_msg, 64 * 1024 * 1024 / 900)
        .flatten()
        .collect();
    for (name, bytes) in [("lab", &lab_stream), ("dense", &framed), ("bare", &bare)] {
        for chunk in [4096, 65536, 1 << 20] {
            let (mbs, n) = measure(bytes, chunk);
            println!("hl7 {name}, {chunk}-byte feeds: {mbs:.0} MB/s ({n} events)");
        }
    }
}
