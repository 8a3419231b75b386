//! Protocol `enzyme-print`: printed pesticide-residue reports with ESC/POS commands.

use crate::harness::{
    assert_chunking_invariant, check_fixtures, codes, decode, decode_chunked, diagnostics,
    fixtures_dir, readings,
};
use foodgate_parsers::enzyme_print::{encode_report, Report, ReportRow};
use foodgate_parsers::event::DeviceInfo;
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Event, Protocol};
use proptest::prelude::*;
use serde_json::{json, Value};

const P: Protocol = Protocol::EnzymePrint;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir(P).join(format!("{name}.bin"))).expect("fixture exists")
}

fn run(bytes: &[u8]) -> Vec<Event> {
    decode(P, &DecoderConfig::default(), bytes)
}

fn gbk(s: &str) -> Vec<u8> {
    Encoding::Gbk.encode(s).into_owned()
}

/// Readings without their stream offsets, to compare differently laid-out inputs.
fn without_offsets(events: &[Event]) -> Vec<Value> {
    readings(events)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().expect("object").remove("offset");
            r
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present") as u64
}

#[test]
fn fixtures() {
    assert!(check_fixtures(P) >= 14);
}

#[test]
fn document_example_fields() {
    let bytes = fixture("example");
    let events = run(&bytes);
    assert_eq!(codes(&events), Vec::<&str>::new());
    let r = readings(&events);
    assert_eq!(r.len(), 3, "channel 03 is unused");
    let first = &r[0];
    assert_eq!(first["protocol"], "enzyme-print");
    assert_eq!(first["analyte"], "op_carbamate");
    assert_eq!(first["method"], "enzyme_inhibition");
    assert_eq!(first["value"], 74.5);
    assert_eq!(first["unit"], "%");
    assert_eq!(first["sample_id"], "S0001");
    assert_eq!(first["sample_name"], "菠菜");
    assert_eq!(first["delta_a0"], 0.412);
    assert_eq!(first["delta_at"], 0.105);
    assert_eq!(first["recomputed_rate"], 74.5);
    assert_eq!(first["device_verdict"], "positive");
    assert_eq!(first["conclusion"], "阳性");
    assert_eq!(first["instrument"], "NC12-2023-0457");
    assert_eq!(first["measured_at"], "2026-11-28T09:32:15+08:00");
    assert_eq!(first["tester"], "李明");
    assert_eq!(
        first["metadata"].get("model"),
        None,
        "model is on the Device event"
    );
    assert_eq!(first["metadata"]["method"], "GB/T 5009.199-2003");
    for judged in ["verdict", "reason", "limit"] {
        assert!(
            first.get(judged).is_none(),
            "decoders never judge: {judged}"
        );
    }
    assert_eq!(first["offset"], find(&bytes, &gbk("01   S0001")));
    assert_eq!(r[1]["sample_name"], "小白菜");
    assert_eq!(r[1]["device_verdict"], "negative");
    assert_eq!(r[1]["value"], 3.4);
    assert_eq!(r[1]["recomputed_rate"], 3.4);
    assert_eq!(r[2]["sample_id"], "S0003");
    assert_eq!(r[2]["recomputed_rate"], 43.9);
    let device: Vec<&DeviceInfo> = events
        .iter()
        .filter_map(|e| match e {
            Event::Device(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(device.len(), 1);
    assert_eq!(device[0].model.as_deref(), Some("NC-12"));
    assert_eq!(device[0].serial_number.as_deref(), Some("NC12-2023-0457"));
}

#[test]
fn printer_commands_are_skipped_and_unknown_warned_once() {
    let bytes = fixture("escpos");
    let events = run(&bytes);
    assert_eq!(
        without_offsets(&events),
        without_offsets(&run(&fixture("example")))
    );
    // Two unknown commands in the report (ESC t, GS (): one warning, at the first.
    let d = diagnostics(&events);
    assert_eq!(
        d,
        vec![
            json!({"level": "warning", "error": "unknown_printer_command",
                    "offset": find(&bytes, b"\x1bt")})
        ]
    );
}

#[test]
fn unknown_command_warned_once_per_report() {
    let mut one = gbk("====\n");
    one.extend(b"\x1bZ");
    one.extend(encode_report(&Report::example(), Encoding::Gbk, false));
    let mut r = Report::example();
    r.tester = Some("王\u{1b}Q芳".into());
    let two = [
        one.clone(),
        encode_report(&r, Encoding::Gbk, true),
        b"\x1dZ\x1c9\n".to_vec(),
    ]
    .concat();
    let events = run(&two);
    let c = codes(&events);
    assert_eq!(
        c.iter()
            .filter(|c| **c == "unknown_printer_command")
            .count(),
        2,
        "{c:?}"
    );
    assert_eq!(readings(&events).len(), 6);
    assert_eq!(readings(&events)[3]["tester"], "王芳");
}

#[test]
fn known_command_arguments_that_look_like_line_ends_are_skipped() {
    // ESC d 0x0A, ESC 3 0x0A and ESC ! 0x1B in the middle of lines.
    let bytes = encode_report(&Report::example(), Encoding::Gbk, true);
    assert!(bytes.windows(3).any(|w| w == b"\x1b3\n"));
    let events = run(&bytes);
    assert_eq!(codes(&events), Vec::<&str>::new());
    assert_eq!(
        without_offsets(&events),
        without_offsets(&run(&fixture("example")))
    );
}

#[test]
fn crlf_and_lf_read_alike() {
    let crlf = run(&fixture("crlf"));
    assert_eq!(codes(&crlf), Vec::<&str>::new());
    assert_eq!(
        without_offsets(&crlf),
        without_offsets(&run(&fixture("example")))
    );
}

#[test]
fn full_width_colons_and_spaces() {
    let events = run(&fixture("fullwidth"));
    assert_eq!(codes(&events), Vec::<&str>::new());
    let r = readings(&events);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["instrument"], "NC12-2023-0457");
    assert_eq!(r[0]["measured_at"], "2026-11-28T09:32:15+08:00");
    assert_eq!(r[0]["delta_a0"], 0.412);
    assert_eq!(r[0]["sample_id"], "S0001");
    assert_eq!(r[0]["sample_name"], "菠菜");
    assert_eq!(r[1]["sample_id"], "S0002");
    assert_eq!(r[1]["value"], 3.4);
    assert_eq!(r[1]["tester"], "李明");
}

#[test]
fn delta_a0_spellings_and_slash_date() {
    let r = readings(&run(&fixture("da0_and_slash_date")));
    assert_eq!(r[0]["delta_a0"], 0.4);
    assert_eq!(r[0]["recomputed_rate"], 80.0);
    assert_eq!(r[0]["measured_at"], "2026-11-28T09:32:00+08:00");
    let r = readings(&run(&fixture("control_value_key")));
    assert_eq!(r[0]["delta_a0"], 0.5);
    assert_eq!(r[0]["recomputed_rate"], 10.0);
    assert_eq!(r[1]["device_verdict"], "invalid");
    assert_eq!(r[1]["conclusion"], "无效");
    assert_eq!(r[0]["metadata"]["操作单位"], "城东市场", "unknown key kept");
    for key in ["对照ΔA0", "对照 △A0", "对照 DA0"] {
        let mut report = Report::example();
        report.header[4].0 = key.into();
        let r = readings(&run(&encode_report(&report, Encoding::Gbk, false)));
        assert_eq!(r[0]["delta_a0"], 0.412, "{key}");
    }
}

#[test]
fn names_with_spaces() {
    let r = readings(&run(&fixture("names_with_spaces")));
    let names: Vec<&str> = r
        .iter()
        .map(|r| r["sample_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["青 菜", "Bok Choy 2", "上海 青", "苹果 (红富士)"]);
    assert_eq!(r[1]["delta_at"], 0.25);
    assert_eq!(r[3]["sample_id"], "S0312");
}

#[test]
fn unused_channels_skipped_bad_row_dropped() {
    let bytes = fixture("unused_and_bad_row");
    let events = run(&bytes);
    let r = readings(&events);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["sample_id"], "S0402");
    assert_eq!(
        diagnostics(&events),
        vec![json!({"level": "error", "error": "bad_row",
                    "offset": find(&bytes, &gbk("04   S0404"))})]
    );
}

#[test]
fn report_cut_by_title_is_discarded() {
    let bytes = fixture("cut_by_title");
    let events = run(&bytes);
    let r = readings(&events);
    assert_eq!(r.len(), 1, "only the second report's row");
    assert_eq!(r[0]["sample_id"], "S0003");
    assert_eq!(
        diagnostics(&events),
        vec![json!({"level": "error", "error": "incomplete_report",
                    "offset": find(&bytes, &gbk("      农药残留"))})]
    );
}

#[test]
fn report_cut_by_end_of_input_is_discarded() {
    let events = run(&fixture("cut_by_eof"));
    assert!(readings(&events).is_empty());
    assert_eq!(codes(&events).last(), Some(&"incomplete_report"));
}

#[test]
fn back_to_back_reports() {
    let events = run(&fixture("back_to_back"));
    assert_eq!(codes(&events), Vec::<&str>::new());
    let r = readings(&events);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["sample_id"], "S0001");
    assert_eq!(r[1]["sample_id"], "S0002");
}

#[test]
fn closing_rule_followed_by_title_belongs_to_next_report() {
    let bytes = fixture("shared_rule");
    let events = run(&bytes);
    let r = readings(&events);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["sample_id"], "S0002");
    assert_eq!(
        diagnostics(&events),
        vec![json!({"level": "error", "error": "incomplete_report",
                    "offset": find(&bytes, &gbk("      农药残留"))})]
    );
}

#[test]
fn readings_wait_for_the_line_after_the_closing_rule() {
    let bytes = fixture("example");
    let mut d = new_decoder(P, DecoderConfig::default());
    let mut out = Vec::new();
    d.feed(&bytes, &mut out);
    assert!(readings(&out).is_empty(), "a title could still follow");
    d.feed(b"\n\nnoise\n", &mut out);
    assert_eq!(readings(&out).len(), 3);
    assert_eq!(codes(&out), ["text_outside_report"]);
    let mut d = new_decoder(P, DecoderConfig::default());
    let mut out = Vec::new();
    d.feed(&bytes, &mut out);
    d.finish(&mut out);
    assert_eq!(readings(&out).len(), 3, "end of input completes it");
}

#[test]
fn utf8_configured() {
    let config = DecoderConfig {
        encoding: Some(Encoding::Utf8),
        ..DecoderConfig::default()
    };
    let events = decode(P, &config, &fixture("utf8"));
    let r = readings(&events);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["sample_name"], "菠菜");
    assert_eq!(codes(&events), ["text_outside_report"], "once per gap");
}

#[test]
fn missing_delta_a0_gives_nulls() {
    let r = readings(&run(&fixture("no_delta_a0")));
    assert_eq!(r.len(), 2);
    for r in &r {
        assert_eq!(r["delta_a0"], Value::Null);
        assert_eq!(r["recomputed_rate"], Value::Null);
        assert!(r["delta_at"].is_number());
    }
    let mut report = Report::example();
    report.header[4].1 = "0.000".into();
    let r = readings(&run(&encode_report(&report, Encoding::Gbk, false)));
    assert_eq!(r[0]["delta_a0"], 0.0);
    assert_eq!(r[0]["recomputed_rate"], Value::Null, "ΔA0 of 0");
}

#[test]
fn bad_datetime_warns_and_config_fills_in() {
    let config = DecoderConfig {
        instrument: Some("stall-7-enzyme".into()),
        ..DecoderConfig::default()
    };
    let events = decode(P, &config, &fixture("bad_datetime"));
    assert_eq!(codes(&events), ["bad_datetime"]);
    let r = readings(&events);
    assert_eq!(r[0]["measured_at"], Value::Null);
    assert_eq!(r[0]["instrument"], "stall-7-enzyme");
    assert_eq!(r[0]["tester"], Value::Null);
}

#[test]
fn configured_offset_applies() {
    let config = DecoderConfig {
        utc_offset: chrono::FixedOffset::east_opt(7 * 3600).unwrap(),
        ..DecoderConfig::default()
    };
    let r = readings(&decode(P, &config, &fixture("example")));
    assert_eq!(r[0]["measured_at"], "2026-11-28T09:32:15+07:00");
}

#[test]
fn overlong_line_discards_report() {
    let mut bytes = gbk("================================\n      农药残留快速检测报告\n");
    bytes.extend(b"X".repeat(5000));
    bytes.extend(b"\n");
    bytes.extend(fixture("example"));
    let events = run(&bytes);
    assert_eq!(codes(&events), ["line_too_long", "incomplete_report"]);
    assert_eq!(readings(&events).len(), 3, "the next report is read");
    assert_chunking_invariant(P, &DecoderConfig::default(), &bytes, "overlong");
}

#[test]
fn truncated_command_at_end() {
    let mut bytes = fixture("example");
    bytes.push(0x1b);
    let events = run(&bytes);
    assert_eq!(codes(&events), ["truncated_printer_command"]);
    assert_eq!(readings(&events).len(), 3);
}

fn arb_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["菠", "菜", "青", "A", "b", "7", " ", "(", "红"]),
        1..6,
    )
    .prop_map(|v| v.concat())
    .prop_filter("name must not start or end with a space", |s| {
        s.trim() == s && !s.is_empty()
    })
}

fn arb_row() -> impl Strategy<Value = ReportRow> {
    prop_oneof![
        (1u8..100).prop_map(|channel| ReportRow::Unused { channel }),
        (
            1u8..100,
            "[A-Z][0-9]{1,6}",
            arb_text(),
            0u32..1000,
            -500i32..1000,
            prop::sample::select(vec!["阳性", "阴性", "无效"]),
        )
            .prop_map(|(channel, id, name, at, rate, c)| ReportRow::Used {
                channel,
                sample_id: id,
                name,
                delta_at: f64::from(at) / 1000.0,
                rate: f64::from(rate) / 10.0,
                conclusion: c.into(),
            }),
    ]
}

fn arb_report() -> impl Strategy<Value = Report> {
    (
        prop::collection::vec(arb_row(), 0..8),
        prop::option::of(0u32..1000),
        prop::option::of(prop::sample::select(vec!["李明", "Wang Fang"])),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rows, a0, tester, crlf, full_width)| {
            let mut r = Report::example();
            r.rows = rows;
            r.header.truncate(4);
            if let Some(a0) = a0 {
                r.header
                    .push(("对照 ΔA0".into(), format!("{:.3}", f64::from(a0) / 1000.0)));
            }
            r.tester = tester.map(String::from);
            r.crlf = crlf;
            r.full_width = full_width;
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic_and_chunking_is_invisible(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        sizes in prop::collection::vec(1usize..40, 1..5),
    ) {
        let config = DecoderConfig::default();
        let whole = decode(P, &config, &bytes);
        prop_assert_eq!(decode_chunked(P, &config, &bytes, &sizes), whole);
    }

    #[test]
    fn mangled_reports_chunking_is_invisible(
        report in arb_report(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        sizes in prop::collection::vec(1usize..64, 1..5),
    ) {
        let mut bytes = encode_report(&report, Encoding::Gbk, true);
        bytes.extend(encode_report(&report, Encoding::Gbk, false));
        for (at, b) in cuts {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let config = DecoderConfig::default();
        let whole = decode(P, &config, &bytes);
        prop_assert_eq!(decode_chunked(P, &config, &bytes, &sizes), whole);
    }

    #[test]
    fn encode_decode_round_trip(
        report in arb_report(),
        escpos in any::<bool>(),
        utf8 in any::<bool>(),
    ) {
        let encoding = if utf8 { Encoding::Utf8 } else { Encoding::Gbk };
        let config = DecoderConfig {
            encoding: Some(encoding),
            ..DecoderConfig::default()
        };
        let bytes = encode_report(&report, encoding, escpos);
        let events = decode(P, &config, &bytes);
        prop_assert_eq!(codes(&events), Vec::<&str>::new());
        let got = readings(&events);
        let used: Vec<&ReportRow> = report
            .rows
            .iter()
            .filter(|r| matches!(r, ReportRow::Used { .. }))
            .collect();
        prop_assert_eq!(got.len(), used.len());
        let a0 = report.header.get(4).map(|(_, v)| v.parse::<f64>().unwrap());
        for (g, row) in got.iter().zip(used) {
            let ReportRow::Used { sample_id, name, delta_at, rate, conclusion, .. } = row else {
                unreachable!()
            };
            prop_assert_eq!(&g["sample_id"], sample_id.as_str());
            prop_assert_eq!(&g["sample_name"], name.as_str());
            prop_assert_eq!(g["delta_at"].as_f64(), Some(*delta_at));
            prop_assert_eq!(g["value"].as_f64(), Some(*rate));
            prop_assert_eq!(&g["conclusion"], conclusion.as_str());
            prop_assert_eq!(g["delta_a0"].as_f64(), a0);
            prop_assert_eq!(g["recomputed_rate"].is_null(), a0.is_none_or(|a| a == 0.0));
            prop_assert_eq!(&g["tester"], &json!(report.tester));
            prop_assert_eq!(&g["instrument"], "NC12-2023-0457");
        }
    }
}

#[test]
fn a_paper_cut_after_the_closing_rule_ends_the_report_at_once() {
    let bytes = fixture("example");
    let mut d = new_decoder(P, DecoderConfig::default());
    let mut out = Vec::new();
    d.feed(&bytes, &mut out);
    assert!(readings(&out).is_empty());
    // Feed three lines, then a full cut (GS V 0), as printers do after a report.
    d.feed(b"\n\n\n\x1dV\x00", &mut out);
    assert_eq!(readings(&out).len(), 3, "the cut completes the report");
    assert!(codes(&out).is_empty(), "{:?}", codes(&out));
    // A cut in the middle of a report ends nothing: the report still needs its rules.
    let mut d = new_decoder(P, DecoderConfig::default());
    let mut out = Vec::new();
    let cut_at = find(&bytes, &gbk("通道")) as usize;
    d.feed(&bytes[..cut_at], &mut out);
    d.feed(b"\x1dVB\x03", &mut out);
    d.feed(&bytes[cut_at..], &mut out);
    d.finish(&mut out);
    assert_eq!(readings(&out).len(), 3);
}
