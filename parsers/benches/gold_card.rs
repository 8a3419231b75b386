//! Decode throughput of protocol `gold-card`: ~50 MB of result frames, fed in 4 KiB chunks.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use foodgate_parsers::gold_card::{encode_frame, ResultPayload, TYPE_RESULT};
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Protocol};
use std::hint::black_box;

fn input() -> Vec<u8> {
    let mut out = Vec::with_capacity(52 << 20);
    let mut seq = 0u16;
    while out.len() < 50 << 20 {
        let p = ResultPayload {
            sample_id: format!("GC-{seq:05}"),
            item: 0x0101 + (seq % 3),
            assay_format: 0,
            verdict: u8::from(seq % 7 == 0),
            t_line: 200 + seq % 800,
            c_line: 1000,
            cutoff: 500,
            test_time: 1_795_829_535 + u32::from(seq),
            lot: "LOT2611A".into(),
            sample_name: "猪肉".into(),
        };
        out.extend(encode_frame(TYPE_RESULT, seq, &p.encode(Encoding::Gbk)));
        seq = seq.wrapping_add(1);
    }
    out
}

fn bench(c: &mut Criterion) {
    let bytes = input();
    let mut g = c.benchmark_group("gold-card");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("decode_50MB", |b| {
        b.iter(|| {
            let mut d = new_decoder(Protocol::GoldCard, DecoderConfig::default());
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
