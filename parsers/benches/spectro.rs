//! Decode throughput of protocol `spectro`: ~50 MB of FSA sentences, fed in 4 KiB chunks.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foodgate_parsers::spectro::Fsa;
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Protocol};
use std::hint::black_box;

fn input() -> Vec<u8> {
    const ITEMS: [(&str, &str); 4] = [
        ("HCHO", "mg/kg"),
        ("SO2", "g/kg"),
        ("NO2", "mg/kg"),
        ("OPI", "%"),
    ];
    let mut out = Vec::with_capacity(52 << 20);
    let mut seq = 0u64;
    while out.len() < 50 << 20 {
        let (item, unit) = ITEMS[(seq % 4) as usize];
        let s = Fsa {
            seq: seq.to_string(),
            time: "20261128093215".into(),
            item: item.into(),
            sample_id: format!("S-{seq:06}"),
            sample_name: "草鱼".into(),
            category: "13".into(),
            absorbance: "0.412".into(),
            value: format!("{}.{}", seq % 90, seq % 10),
            unit: unit.into(),
            dilution: "1".into(),
            verdict: if seq % 9 == 0 { "F" } else { "P" }.into(),
        };
        out.extend(s.encode(Encoding::Gbk));
        seq += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let bytes = input();
    let mut g = c.benchmark_group("spectro");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("decode_50MB", |b| {
        b.iter(|| {
            let mut d = new_decoder(Protocol::Spectro, DecoderConfig::default());
            let mut out = Vec::new();
            let mut n = 0usize;
            for chunk in bytes.chunks(4096) {
                d.feed(chunk, &mut out);
                n += out.len();
                out.clear();
            }
            d.finish(&mut out);
            black_box(n + out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
