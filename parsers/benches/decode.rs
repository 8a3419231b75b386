//! Decode throughput of every protocol on 50 MB synthetic captures
//! (`foodgate_parsers::synth::capture_counted`), fed in 64 KiB chunks as `foodgate parse` does.
//!
//! `cargo bench -p foodgate-parsers --bench decode -- --warm-up-time 2 --measurement-time 15`
//!
//! Events are counted and dropped chunk by chunk, as a consumer would, so the readings are
//! really built (and freed) inside the timed region.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use foodgate_parsers::synth::capture_counted;
use foodgate_parsers::{new_decoder, DecoderConfig, Event, Protocol};
use std::hint::black_box;
use std::time::Duration;

const CAPTURE_BYTES: usize = 50_000_000;
const CHUNK: usize = 64 * 1024;
const SEED: u64 = 1;

/// Readings plus other events, so nothing can be optimized away.
fn decode(protocol: Protocol, bytes: &[u8]) -> (usize, usize) {
    let mut d = new_decoder(protocol, DecoderConfig::default());
    let mut out = Vec::new();
    let (mut readings, mut other) = (0, 0);
    let mut count = |out: &mut Vec<Event>| {
        for e in out.drain(..) {
            match e {
                Event::Reading(r) => {
                    black_box(&r);
                    readings += 1;
                }
                _ => other += 1,
            }
        }
    };
    for chunk in bytes.chunks(CHUNK) {
        d.feed(chunk, &mut out);
        count(&mut out);
    }
    d.finish(&mut out);
    count(&mut out);
    (readings, other)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for protocol in Protocol::ALL {
        let bytes = capture_counted(protocol, CAPTURE_BYTES, SEED).bytes;
        let (readings, other) = decode(protocol, &bytes);
        eprintln!(
            "{}: {} bytes -> {readings} readings, {other} other events",
            protocol.as_str(),
            bytes.len()
        );
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(protocol.as_str(), "50MB/64KiB-chunks"),
            &bytes,
            |b, bytes| b.iter(|| black_box(decode(protocol, black_box(bytes)))),
        );
    }
    group.finish();
}

// Set on the Criterion (not the group) so `--warm-up-time`/`--measurement-time` still win.
criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(20));
    targets = bench
}
criterion_main!(benches);
