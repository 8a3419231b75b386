//! Shared fixture harness: every `fixtures/<protocol>/NAME.bin` comes with
//! `NAME.expected.jsonl` (the readings as decoded, one JSON object a line: what
//! `foodgate parse` prints without the judge's `verdict`, `reason` and `limit`) and `NAME.diagnostics.jsonl` (`{"level","error","offset"}` a line). A fixture may
//! have `NAME.encoding` holding an encoding name for the decoder.
//!
//! `UPDATE_FIXTURES=1 cargo test -p foodgate-parsers` rewrites the expected files from the
//! decoder's output: review every changed line by hand before committing.

#![allow(dead_code)]

use foodgate_parsers::{decode_all, new_decoder, DecoderConfig, Event, Protocol};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn fixtures_dir(protocol: Protocol) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(protocol.as_str())
}

pub fn decode(protocol: Protocol, config: &DecoderConfig, bytes: &[u8]) -> Vec<Event> {
    let mut d = new_decoder(protocol, config.clone());
    decode_all(d.as_mut(), bytes)
}

/// Decode `bytes` fed in the given chunk sizes (cycled until the input is used up).
pub fn decode_chunked(
    protocol: Protocol,
    config: &DecoderConfig,
    bytes: &[u8],
    sizes: &[usize],
) -> Vec<Event> {
    let mut d = new_decoder(protocol, config.clone());
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        d.feed(&rest[..n], &mut out);
        rest = &rest[n..];
        k += 1;
    }
    d.finish(&mut out);
    out
}

pub fn readings(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reading(r) => Some(serde_json::to_value(r).expect("reading serializes")),
            _ => None,
        })
        .collect()
}

pub fn diagnostics(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Diagnostic(d) => Some(serde_json::json!({
                "level": d.level, "error": d.error, "offset": d.offset,
            })),
            _ => None,
        })
        .collect()
}

/// Codes of the diagnostics, in order.
pub fn codes(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Diagnostic(d) => Some(d.error),
            _ => None,
        })
        .collect()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_FIXTURES=1 to create)",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn write_jsonl(path: &Path, values: &[Value]) {
    let mut s = String::new();
    for v in values {
        s.push_str(&serde_json::to_string(v).expect("serializes"));
        s.push('\n');
    }
    std::fs::write(path, s).expect("write expected file");
}

/// Equal event lists, or a panic that shows the first difference (briefly: events can be large).
pub fn assert_same_events(got: &[Event], want: &[Event], what: &str) {
    if got == want {
        return;
    }
    let brief = |e: Option<&Event>| {
        let s = format!("{e:?}");
        s.chars().take(600).collect::<String>()
    };
    let i = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    panic!(
        "{what}: {} events vs {} expected; first difference at event {i}:\n got: {}\nwant: {}",
        got.len(),
        want.len(),
        brief(got.get(i)),
        brief(want.get(i))
    );
}

/// The chunkings every fixture is checked under.
pub fn assert_chunking_invariant(
    protocol: Protocol,
    config: &DecoderConfig,
    bytes: &[u8],
    name: &str,
) {
    let whole = decode(protocol, config, bytes);
    assert_same_events(
        &decode_chunked(protocol, config, bytes, &[1]),
        &whole,
        &format!("{name}: byte-at-a-time vs whole"),
    );
    if bytes.len() <= 4096 {
        for split in 1..bytes.len() {
            assert_same_events(
                &decode_chunked(protocol, config, bytes, &[split, usize::MAX]),
                &whole,
                &format!("{name}: split at {split} vs whole"),
            );
        }
    } else {
        for sizes in [&[7usize, 1, 300][..], &[4096], &[1000, 3, 17, 65536]] {
            assert_same_events(
                &decode_chunked(protocol, config, bytes, sizes),
                &whole,
                &format!("{name}: chunking {sizes:?} vs whole"),
            );
        }
    }
}

/// Check every fixture of `protocol` against its expected files, under every chunking.
/// Returns how many fixtures were checked.
pub fn check_fixtures(protocol: Protocol) -> usize {
    let dir = fixtures_dir(protocol);
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    entries.sort();
    for path in &entries {
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(path).expect("read fixture");
        let mut config = DecoderConfig::default();
        let enc_path = path.with_extension("encoding");
        if let Ok(enc) = std::fs::read_to_string(&enc_path) {
            config.encoding = Some(enc.trim().parse().expect("fixture encoding name"));
        }
        let events = decode(protocol, &config, &bytes);
        let got_r = readings(&events);
        let got_d = diagnostics(&events);
        let exp_r_path = dir.join(format!("{name}.expected.jsonl"));
        let exp_d_path = dir.join(format!("{name}.diagnostics.jsonl"));
        if update {
            write_jsonl(&exp_r_path, &got_r);
            write_jsonl(&exp_d_path, &got_d);
        } else {
            assert_eq!(
                got_r,
                read_jsonl(&exp_r_path),
                "{name}: readings differ from {}",
                exp_r_path.display()
            );
            assert_eq!(
                got_d,
                read_jsonl(&exp_d_path),
                "{name}: diagnostics differ from {}",
                exp_d_path.display()
            );
        }
        assert_chunking_invariant(protocol, &config, &bytes, &name);
    }
    entries.len()
}

/// Fixtures whose inputs a test generates with the protocol's encoder: with
/// `UPDATE_FIXTURES` set the inputs are written, otherwise each committed `NAME.bin` must be
/// what the generator makes. Then every fixture is checked as [`check_fixtures`] does.
pub fn check_generated_fixtures(protocol: Protocol, inputs: Vec<(&str, Vec<u8>, Option<&str>)>) {
    let dir = fixtures_dir(protocol);
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    if update {
        std::fs::create_dir_all(&dir).expect("fixture dir");
    }
    let n = inputs.len();
    for (name, bytes, encoding) in inputs {
        let bin = dir.join(format!("{name}.bin"));
        if update {
            std::fs::write(&bin, &bytes).expect("write fixture");
            if let Some(e) = encoding {
                std::fs::write(dir.join(format!("{name}.encoding")), format!("{e}\n"))
                    .expect("write encoding");
            }
        } else {
            let committed = std::fs::read(&bin).expect("fixture input");
            assert_eq!(
                committed, bytes,
                "{name}.bin is not what the generator makes"
            );
        }
    }
    assert_eq!(check_fixtures(protocol), n);
}
