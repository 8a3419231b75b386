//! The real instrument captures of the project's shared contract folder, read where they lie
//! (never copied into this repository).

use crate::harness::{assert_chunking_invariant, decode, readings};
use foodgate_parsers::event::{FrameOutcome, LinkEvent};
use foodgate_parsers::{DecoderConfig, Event, Protocol};
use std::path::PathBuf;

fn captures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/astm");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} is absent (the shared captures are not here)",
            dir.display()
        );
        None
    }
}

/// (file, good frames, R records) from PROVENANCE.md.
const EXPECTED: [(&str, usize, usize); 14] = [
    ("abbott_afinion2.txt", 1, 1),
    ("cobas_c111.txt", 7, 1),
    ("cobas_c311.txt", 1, 7),
    ("dca_vantage.txt", 1, 3),
    ("genexpert.txt", 1, 84),
    ("mini_vidas.txt", 0, 0),
    ("mini_vidas_mock.txt", 5, 1),
    ("pentra_xlr.txt", 28, 21),
    ("spotchem_el.txt", 0, 0),
    ("spotchem_el_mock.txt", 6, 3),
    ("sysmex_xn550.txt", 1, 41),
    ("sysmex_xp100.txt", 1, 20),
    ("yumizen_h500.txt", 31, 21),
    ("roche_amplilink_session.bin", 7, 1),
];

#[test]
fn captures_decode_to_provenance_counts() {
    let Some(dir) = captures_dir() else { return };
    let config = DecoderConfig::default();
    for (file, frames, results) in EXPECTED {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let events = decode(Protocol::Astm, &config, &bytes);
        let accepted = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Link(LinkEvent::Frame {
                        outcome: FrameOutcome::Accepted,
                        ..
                    })
                )
            })
            .count();
        let rejected = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Link(LinkEvent::Frame {
                        outcome: FrameOutcome::Rejected,
                        ..
                    })
                )
            })
            .count();
        assert_eq!(accepted, frames, "{file}: good frames");
        assert_eq!(
            rejected, 0,
            "{file}: every checksum in the captures is valid"
        );
        assert_eq!(readings(&events).len(), results, "{file}: readings");
        assert_chunking_invariant(Protocol::Astm, &config, &bytes, file);
    }
}

#[test]
fn non_astm_captures_give_errors_not_readings() {
    let Some(dir) = captures_dir() else { return };
    for file in ["mini_vidas.txt", "spotchem_el.txt"] {
        let bytes = std::fs::read(dir.join(file)).expect("capture");
        let events = decode(Protocol::Astm, &DecoderConfig::default(), &bytes);
        assert!(readings(&events).is_empty(), "{file}");
        assert!(
            events.iter().any(
                |e| matches!(e, Event::Diagnostic(d) if d.level == foodgate_parsers::Level::Error)
            ),
            "{file}: the damage is reported"
        );
    }
}

#[test]
fn capture_fields_are_read_as_sent() {
    let Some(dir) = captures_dir() else { return };
    let config = DecoderConfig::default();
    let get = |file: &str| {
        readings(&decode(
            Protocol::Astm,
            &config,
            &std::fs::read(dir.join(file)).expect("capture"),
        ))
    };

    let roche = get("roche_amplilink_session.bin");
    assert_eq!(roche[0]["sample_id"], "BP19-24277");
    assert_eq!(roche[0]["value"], 61.0);
    assert_eq!(roche[0]["unit"], "cp/mL");
    assert_eq!(roche[0]["result_status"], "V");
    assert_eq!(roche[0]["analyte"], "unknown:HI2CAP96");

    // Test code in the 5th component.
    let sysmex = get("sysmex_xn550.txt");
    assert_eq!(sysmex[0]["analyte_code"], "WBC");
    assert_eq!(sysmex[0]["value"], 8.13);
    assert_eq!(sysmex[3]["device_verdict"], "negative"); // flag L

    // Leading spaces in values, instrument serial from H.5.
    let xp = get("sysmex_xp100.txt");
    assert_eq!(xp[0]["value"], 5.5);
    let afinion = get("abbott_afinion2.txt");
    assert_eq!(afinion[0]["instrument"], "AF20052397");
    assert_eq!(afinion[0]["measured_at"], "2024-12-06T14:06:15+08:00");

    // Status X: no value, device verdict invalid.
    let pentra = get("pentra_xlr.txt");
    let bas = pentra
        .iter()
        .find(|r| r["analyte_code"] == "BAS#")
        .expect("BAS#");
    assert_eq!(bas["value"], serde_json::Value::Null);
    assert_eq!(bas["device_verdict"], "invalid");

    // ETB frames joined, M record skipped.
    let c111 = get("cobas_c111.txt");
    assert_eq!(c111[0]["value"], 40.13);
    assert_eq!(c111[0]["unit"], "g/L");

    // Other delimiters (`@^\`): components still split right.
    let gx = get("genexpert.txt");
    assert_eq!(gx[0]["analyte_code"], "Xpert");
    assert_eq!(gx[0]["sample_id"], "PR25A137");
}
