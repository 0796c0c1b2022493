//! UTF-8 validation of text payloads (RFC 6455 §8.1): ASCII and mixed text,
//! whole and fed in 1 KiB pieces as a fragmented message would arrive.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsreactor::protocol::utf8::Utf8Validator;

fn bench_utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let ascii = "{\"user\":\"alice\",\"msg\":\"hello world\"} "
        .repeat(2000)
        .into_bytes();
    let mixed = "κόσμε 世界 🎉 ascii text ".repeat(2000).into_bytes();
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("whole", name), text, |b, t| {
            b.iter(|| Utf8Validator::validate(black_box(t)))
        });
        group.bench_with_input(BenchmarkId::new("pieces_1k", name), text, |b, t| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for piece in black_box(t).chunks(1024) {
                    v.feed(piece).unwrap();
                }
                v.finish()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_utf8);
criterion_main!(benches);
