//! Frame header decode and encode (RFC 6455 §5.2), and a whole masked
//! message through the server-side reader (decode, unmask, validate).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsreactor::protocol::frame::{FrameHeader, OpCode};
use wsreactor::protocol::mask::apply_mask;
use wsreactor::protocol::message::{MessageReader, Read, ReadLimits, Role};

fn masked_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut h = FrameHeader::new(opcode, payload.len() as u64);
    h.mask = Some(key);
    let mut out = Vec::new();
    h.write_to(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
    out
}

fn bench_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header");
    for len in [20u64, 1000, 70_000] {
        let mut h = FrameHeader::new(OpCode::Binary, len);
        h.mask = Some([1, 2, 3, 4]);
        let mut bytes = [0u8; FrameHeader::MAX_LEN];
        let n = h.encode(&mut bytes);
        group.bench_with_input(BenchmarkId::new("decode", len), &len, |b, _| {
            b.iter(|| FrameHeader::decode(black_box(&bytes[..n])))
        });
        group.bench_with_input(BenchmarkId::new("encode", len), &len, |b, _| {
            let mut out = [0u8; FrameHeader::MAX_LEN];
            b.iter(|| black_box(&h).encode(&mut out))
        });
    }
    group.finish();
}

fn bench_read_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_message");
    for (name, opcode, size) in [
        ("text", OpCode::Text, 20usize),
        ("text", OpCode::Text, 16 * 1024),
        ("binary", OpCode::Binary, 16 * 1024),
    ] {
        let payload = vec![b'a'; size];
        let wire = masked_frame(opcode, &payload);
        let mut reader = MessageReader::new(Role::Server, ReadLimits::default());
        let mut buf = wire.clone();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
            b.iter(|| {
                // Unmasking is in place: restore the masked bytes each round.
                buf.copy_from_slice(&wire);
                match reader.read(black_box(&mut buf)) {
                    Ok(Read::Frame { consumed, .. }) => consumed,
                    other => panic!("{other:?}"),
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_header, bench_read_message);
criterion_main!(benches);
