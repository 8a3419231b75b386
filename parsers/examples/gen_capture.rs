//! Write a synthetic capture to a file, for the Python comparison and manual tests.
//!
//! `cargo run --release -p foodgate-parsers --example gen_capture -- astm|hl7 BYTES FILE [SEED]`

use foodgate_parsers::synth::{astm_capture_counted, hl7_capture_counted};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(proto), Some(size), Some(path)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: gen_capture astm|hl7 BYTES FILE [SEED]");
        return ExitCode::from(2);
    };
    let Ok(size) = size.parse::<usize>() else {
        eprintln!("BYTES must be a number, got {size:?}");
        return ExitCode::from(2);
    };
    let seed = match args.get(3).map(|s| s.parse::<u64>()) {
        None => 1,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("SEED: {e}");
            return ExitCode::from(2);
        }
    };
    let cap = match proto.as_str() {
        "astm" => astm_capture_counted(size, seed),
        "hl7" => hl7_capture_counted(size, seed),
        other => {
            eprintln!("unknown protocol {other:?}: astm or hl7");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(path, &cap.bytes) {
        eprintln!("{path}: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{proto}: {} bytes, {} messages, {} results -> {path}",
        cap.bytes.len(),
        cap.messages,
        cap.results
    );
    ExitCode::SUCCESS
}
