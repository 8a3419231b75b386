//! Decoding throughput of `enzyme-print` over ~50 MB of printed reports with ESC/POS.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foodgate_parsers::enzyme_print::{encode_report, Report, ReportRow};
use foodgate_parsers::{decode_all, new_decoder, DecoderConfig, Encoding, Protocol};
use std::hint::black_box;

fn input() -> Vec<u8> {
    let mut report = Report::example();
    report.rows = (1..=12)
        .map(|c| ReportRow::Used {
            channel: c,
            sample_id: format!("S{c:04}"),
            name: ["菠菜", "小白菜", "上海青", "Bok Choy"][usize::from(c) % 4].into(),
            delta_at: 0.105 + f64::from(c) / 100.0,
            rate: 74.5 - f64::from(c),
            conclusion: "阴性".into(),
        })
        .collect();
    let one = encode_report(&report, Encoding::Gbk, true);
    let mut bytes = Vec::with_capacity(52 * 1024 * 1024);
    while bytes.len() < 50 * 1024 * 1024 {
        bytes.extend_from_slice(&one);
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let bytes = input();
    let mut g = c.benchmark_group("enzyme_print");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(10);
    g.bench_function("decode_50mb", |b| {
        b.iter(|| {
            let mut d = new_decoder(Protocol::EnzymePrint, DecoderConfig::default());
            let mut n = 0usize;
            let mut out = Vec::new();
            for chunk in bytes.chunks(64 * 1024) {
                d.feed(chunk, &mut out);
                n += out.len();
                out.clear();
            }
            d.finish(&mut out);
            black_box(n + out.len())
        })
    });
    g.finish();
    // Keep decode_all linked in the bench's view of the API.
    let _ = decode_all;
}

criterion_group!(benches, bench);
criterion_main!(benches);
