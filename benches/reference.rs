//! Reference data load + validation time, and judging throughput.
//!
//! `cargo bench --bench reference -- --warm-up-time 1 --measurement-time 5`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use foodgate::judge::reference::{BUILTIN_NAME, BUILTIN_TEXT};
use foodgate::judge::{Judge, Reference};
use foodgate_parsers::{
    decode_all, new_decoder, DecoderConfig, Encoding, Event, Protocol, Reading,
};
use std::hint::black_box;
use std::path::Path;

/// Every reading of every fixture, as decoded (not judged).
fn fixture_readings() -> Vec<Reading> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut readings = Vec::new();
    for protocol in Protocol::ALL {
        let Ok(dir) = std::fs::read_dir(root.join(protocol.as_str())) else {
            continue;
        };
        let mut files: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        files.sort();
        for file in files {
            let encoding = std::fs::read_to_string(file.with_extension("encoding"))
                .ok()
                .and_then(|e| e.trim().parse::<Encoding>().ok());
            let config = DecoderConfig {
                encoding,
                ..DecoderConfig::default()
            };
            let bytes = std::fs::read(&file).expect("fixture");
            let mut decoder = new_decoder(protocol, config);
            for event in decode_all(decoder.as_mut(), &bytes) {
                if let Event::Reading(r) = event {
                    readings.push(*r);
                }
            }
        }
    }
    readings
}

fn bench(c: &mut Criterion) {
    c.bench_function("reference/load_builtin", |b| {
        b.iter(|| Reference::parse(black_box(BUILTIN_TEXT), BUILTIN_NAME).expect("valid"))
    });

    let readings = fixture_readings();
    let judge = Judge::builtin();
    let mut group = c.benchmark_group("judge");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("fixture_readings", |b| {
        b.iter_batched_ref(
            || readings.clone(),
            |batch| {
                for r in batch.iter_mut() {
                    std::hint::black_box(judge.judge(r));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
