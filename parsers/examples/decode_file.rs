//! Decode a capture file the way `foodgate parse` feeds it (64 KiB chunks, then finish)
//! and print throughput.
//!
//! `cargo run --release -p foodgate-parsers --example decode_file -- astm|hl7 FILE [RUNS]`
//!
//! The file is read into memory first: only decoding is timed. With RUNS > 1 the best
//! run and the spread are printed too.

use foodgate_parsers::{new_decoder, DecoderConfig, Event, Protocol};
use std::process::ExitCode;
use std::time::Instant;

const CHUNK: usize = 64 * 1024;

/// (readings, error diagnostics) of one run; the events are dropped chunk by chunk as a
/// consumer would, so memory stays flat.
fn decode(protocol: Protocol, bytes: &[u8]) -> (usize, usize) {
    let mut d = new_decoder(protocol, DecoderConfig::default());
    let mut out = Vec::new();
    let (mut readings, mut errors) = (0, 0);
    let mut count = |out: &mut Vec<Event>| {
        for e in out.drain(..) {
            match e {
                Event::Reading(_) => readings += 1,
                Event::Diagnostic(d) if d.level == foodgate_parsers::Level::Error => errors += 1,
                _ => {}
            }
        }
    };
    for chunk in bytes.chunks(CHUNK) {
        d.feed(chunk, &mut out);
        count(&mut out);
    }
    d.finish(&mut out);
    count(&mut out);
    (readings, errors)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(proto), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: decode_file astm|hl7 FILE [RUNS]");
        return ExitCode::from(2);
    };
    let Ok(protocol) = proto.parse::<Protocol>() else {
        eprintln!("unknown protocol {proto:?}");
        return ExitCode::from(2);
    };
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rates = Vec::with_capacity(runs);
    for run in 1..=runs {
        let t = Instant::now();
        let (readings, errors) = decode(protocol, &bytes);
        let secs = t.elapsed().as_secs_f64();
        let mbs = bytes.len() as f64 / secs / 1e6;
        rates.push(mbs);
        println!(
            "run {run}: bytes {} readings {readings} errors {errors} seconds {secs:.3} MB/s {mbs:.1}",
            bytes.len()
        );
    }
    if runs > 1 {
        let best = rates.iter().copied().fold(f64::MIN, f64::max);
        let worst = rates.iter().copied().fold(f64::MAX, f64::min);
        println!("best {best:.1} MB/s, worst {worst:.1} MB/s over {runs} runs");
    }
    ExitCode::SUCCESS
}
