//! `foodgate parse`: files and stdin alike, exit codes, hostile input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn foodgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foodgate"))
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn parse_file(args: &[&str], file: &Path) -> Output {
    foodgate()
        .arg("parse")
        .args(args)
        .arg(file)
        .output()
        .expect("run foodgate")
}

fn parse_stdin(args: &[&str], bytes: &[u8]) -> Output {
    let mut child = foodgate()
        .arg("parse")
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foodgate");
    let mut stdin = child.stdin.take().expect("stdin");
    let bytes = bytes.to_vec();
    // Feed from another thread while this one drains stdout/stderr (no pipe deadlock),
    // in small pieces so the binary sees many short reads.
    let writer = std::thread::spawn(move || {
        for piece in bytes.chunks(7) {
            if stdin.write_all(piece).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().expect("wait foodgate");
    writer.join().expect("writer thread");
    out
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(bytes.to_vec())
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn file_and_stdin_give_identical_output() {
    for (name, args) in [
        (
            "astm/food_screening.bin",
            &["--protocol", "astm", "--encoding", "gbk"][..],
        ),
        ("astm/malformed_frames.bin", &["--protocol", "astm"][..]),
        ("astm/long_frames.bin", &["--protocol", "astm"][..]),
    ] {
        let path = fixture(name);
        let bytes = std::fs::read(&path).expect("fixture");
        let a = parse_file(args, &path);
        let b = parse_stdin(args, &bytes);
        assert_eq!(
            a.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&a.stderr)
        );
        assert_eq!(b.status.code(), Some(0), "{name}");
        assert_eq!(a.stdout, b.stdout, "{name}: stdout");
        assert_eq!(a.stderr, b.stderr, "{name}: stderr");
    }
}

#[test]
fn readings_on_stdout_with_every_contract_key() {
    let out = parse_file(
        &["--protocol", "astm", "--encoding", "gbk"],
        &fixture("astm/food_screening.bin"),
    );
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 3);
    let keys = [
        "protocol",
        "instrument",
        "sample_id",
        "sample_name",
        "source",
        "analyte",
        "method",
        "value",
        "unit",
        "qualifier",
        "device_verdict",
        "measured_at",
        "category",
        "verdict",
        "reason",
        "limit",
    ];
    for line in &lines {
        for k in keys {
            assert!(line.get(k).is_some(), "key {k} missing in {line}");
        }
        // Judged: a verdict and a reason that is not the decoder's "not judged".
        assert!(line["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty() && !r.starts_with("not judged")));
    }
    assert_eq!(lines[0]["verdict"], "fail");
    assert_eq!(lines[0]["sample_name"], "菠菜");
    assert_eq!(lines[0]["analyte"], "op_carbamate");
}

#[test]
fn diagnostics_on_stderr_as_json_lines() {
    let out = parse_file(
        &["--protocol", "astm"],
        &fixture("astm/bad_checksum_lost.bin"),
    );
    assert_eq!(out.status.code(), Some(0));
    let diags = json_lines(&out.stderr);
    let codes: Vec<&str> = diags.iter().filter_map(|d| d["error"].as_str()).collect();
    assert_eq!(codes, ["bad_checksum", "message_discarded"]);
    for d in &diags {
        assert_eq!(d["level"], "error");
        assert!(d["offset"].is_u64());
        assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(json_lines(&out.stdout).len(), 1);
}

#[test]
fn exit_codes() {
    // Bad arguments: 2, with a message naming what is wrong.
    let out = foodgate()
        .args(["parse", "--protocol", "morse", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("morse"));
    let out = foodgate()
        .args(["parse", "--protocol", "astm", "--encoding", "ebcdic", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = foodgate().args(["parse", "x"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    // A file that cannot be read: 1.
    let out = parse_file(
        &["--protocol", "astm"],
        Path::new("/nonexistent/capture.bin"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/capture.bin"));
}

#[test]
fn random_input_exits_zero() {
    // A deterministic pseudo-random megabyte, with some framing bytes sprinkled in.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            [
                0x02,
                0x03,
                0x04,
                0x05,
                0x0D,
                0x17,
                b'|',
                b'H',
                (x >> 8) as u8,
            ][(x % 9) as usize]
        })
        .collect();
    for protocol in ["astm", "hl7", "enzyme-print", "gold-card", "spectro"] {
        let out = parse_stdin(&["--protocol", protocol], &bytes);
        assert_eq!(out.status.code(), Some(0), "{protocol}");
    }
}

#[test]
fn help_is_there() {
    let out = foodgate().args(["parse", "--help"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--protocol"));
}

/// Every fixture of every protocol through the binary: the decoded keys match the fixture's
/// expected readings, and a file and stdin give the same bytes out. The keys a judge owns
/// (`verdict`, `reason`, `limit`, `category`) are left to the judging tests.
#[test]
fn every_fixture_decodes_to_its_expected_readings() {
    let judged = ["verdict", "reason", "limit", "category"];
    let strip = |mut v: serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            for k in judged {
                o.remove(k);
            }
        }
        v
    };
    let mut checked = 0;
    for protocol in ["astm", "hl7", "enzyme-print", "gold-card", "spectro"] {
        let dir = fixture(protocol);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fixture dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        inputs.sort();
        for input in inputs {
            let mut args = vec!["--protocol".to_string(), protocol.to_string()];
            if let Ok(enc) = std::fs::read_to_string(input.with_extension("encoding")) {
                args.extend(["--encoding".to_string(), enc.trim().to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let from_file = parse_file(&args, &input);
            let name = input.display().to_string();
            assert_eq!(from_file.status.code(), Some(0), "{name}");
            let from_stdin = parse_stdin(&args, &std::fs::read(&input).expect("read"));
            assert_eq!(
                from_file.stdout, from_stdin.stdout,
                "{name}: stdout file vs stdin"
            );
            assert_eq!(
                from_file.stderr, from_stdin.stderr,
                "{name}: stderr file vs stdin"
            );
            let stem = input
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            let expected_path = dir.join(format!("{stem}.expected.jsonl"));
            let expected: Vec<serde_json::Value> =
                json_lines(&std::fs::read(&expected_path).expect("expected file"))
                    .into_iter()
                    .map(strip)
                    .collect();
            let got: Vec<serde_json::Value> = json_lines(&from_file.stdout)
                .into_iter()
                .map(strip)
                .collect();
            assert_eq!(got, expected, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 57, "only {checked} fixtures found");
}
