//! Write a synthetic capture to a file, for the Python comparison and manual tests.
//!
//! `cargo run --release -p foodgate-parsers --example gen_capture -- PROTOCOL BYTES FILE [SEED]`
//! (PROTOCOL: astm, hl7, gold-card, spectro or enzyme-print)

use foodgate_parsers::synth::capture_counted;
use foodgate_parsers::Protocol;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(proto), Some(size), Some(path)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: gen_capture PROTOCOL BYTES FILE [SEED]");
        return ExitCode::from(2);
    };
    let protocol = match proto.parse::<Protocol>() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
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
    let cap = capture_counted(protocol, size, seed);
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
