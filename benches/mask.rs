//! Unmasking throughput (RFC 6455 §5.3): the word-at-a-time path against the
//! byte loop it replaces, over message sizes from a chat line to 1 MiB.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsreactor::protocol::mask::{apply_mask, apply_mask_simple};

fn bench_mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for size in [20usize, 1024, 16 * 1024, 1 << 20] {
        let mut buf = vec![0x5au8; size + 1];
        group.throughput(Throughput::Bytes(size as u64));
        // Offset by one byte: the payload after a frame header is rarely aligned.
        group.bench_with_input(BenchmarkId::new("word", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf[1..]), black_box(key)))
        });
        group.bench_with_input(BenchmarkId::new("bytewise", size), &size, |b, _| {
            b.iter(|| apply_mask_simple(black_box(&mut buf[1..]), black_box(key)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_mask);
criterion_main!(benches);
