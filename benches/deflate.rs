//! permessage-deflate throughput (RFC 7692 §7.2): compressing and
//! decompressing JSON messages of ~200 B, 4 KiB and 64 KiB, with context
//! takeover (one long-lived stream per direction) and without (a fresh zlib
//! state per message, allocation included, as an idle-friendly server runs).
//!
//! Each benchmark walks a cycle of 16 different messages of one size, so the
//! takeover case sees related traffic rather than the same message again.
//! Throughput is in uncompressed bytes; the compressed sizes are printed first.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use wsreactor::protocol::deflate::{Deflater, Inflater};

const SIZES: [usize; 3] = [200, 4 << 10, 64 << 10];
const CYCLE: usize = 16;

/// A deterministic xorshift generator: the same messages on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// One market-data or chat event, as a push server would fan out.
fn event(rng: &mut Rng, seq: u64) -> String {
    const SYMBOLS: &[&str] = &["BTC-USD", "ETH-USD", "SOL-USD", "ETH-BTC", "DOGE-USD"];
    const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    const WORDS: &[&str] = &[
        "the", "order", "filled", "at", "market", "price", "see", "chart", "ok", "thanks",
    ];
    if rng.next().is_multiple_of(4) {
        let words: Vec<&str> = (0..3 + rng.next() % 8).map(|_| rng.pick(WORDS)).collect();
        format!(
            r#"{{"type":"chat","room":"lobby-{}","seq":{seq},"ts":{},"user":"{}","text":"{}"}}"#,
            rng.next() % 5,
            1_700_000_000_000 + seq * 37 + rng.next() % 1000,
            rng.pick(USERS),
            words.join(" ")
        )
    } else {
        format!(
            r#"{{"type":"trade","channel":"market.{}","seq":{seq},"ts":{},"data":{{"price":"{}.{:02}","size":"0.{:04}","side":"{}","id":"t-{:08}"}}}}"#,
            rng.pick(SYMBOLS),
            1_700_000_000_000 + seq * 37 + rng.next() % 1000,
            20_000 + rng.next() % 30_000,
            rng.next() % 100,
            rng.next() % 10_000,
            if rng.next().is_multiple_of(2) { "buy" } else { "sell" },
            rng.next() % 100_000_000
        )
    }
}

/// A JSON message of about `size` bytes: one event, or a batch of them.
fn message(rng: &mut Rng, size: usize, seq: &mut u64) -> Vec<u8> {
    let mut s = String::from(r#"{"events":["#);
    loop {
        *seq += 1;
        s.push_str(&event(rng, *seq));
        if s.len() + 3 >= size {
            break;
        }
        s.push(',');
    }
    s.push_str("]}");
    s.into_bytes()
}

fn messages(size: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ size as u64);
    let mut seq = 0;
    (0..CYCLE).map(|_| message(&mut rng, size, &mut seq)).collect()
}

/// The cycle compressed in order by one stream, as a receiver would get it.
fn compressed(msgs: &[Vec<u8>], no_context_takeover: bool) -> Vec<Vec<u8>> {
    let mut d = Deflater::new(15, no_context_takeover);
    msgs.iter()
        .map(|m| {
            let mut out = Vec::new();
            d.compress(m, &mut out);
            out
        })
        .collect()
}

fn mode(no_context_takeover: bool) -> &'static str {
    if no_context_takeover {
        "no_takeover"
    } else {
        "takeover"
    }
}

fn print_ratios() {
    for size in SIZES {
        let msgs = messages(size);
        let plain: usize = msgs.iter().map(Vec::len).sum();
        for nct in [false, true] {
            let packed: usize = compressed(&msgs, nct).iter().map(Vec::len).sum();
            eprintln!(
                "deflate ratio {size:>6} B {:<11}: {plain} -> {packed} bytes ({:.1}%)",
                mode(nct),
                100.0 * packed as f64 / plain as f64
            );
        }
    }
}

fn bench_deflate(c: &mut Criterion) {
    print_ratios();
    let mut group = c.benchmark_group("deflate");
    group.measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let msgs = messages(size);
        let avg = msgs.iter().map(Vec::len).sum::<usize>() / CYCLE;
        group.throughput(Throughput::Bytes(avg as u64));
        for nct in [false, true] {
            let mut d = Deflater::new(15, nct);
            let mut out = Vec::with_capacity(2 * size);
            let mut i = 0;
            group.bench_function(BenchmarkId::new(mode(nct), size), |b| {
                b.iter(|| {
                    out.clear();
                    d.compress(black_box(&msgs[i % CYCLE]), &mut out);
                    i += 1;
                    out.len()
                })
            });
        }
    }
    group.finish();
}

fn bench_inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflate");
    group.measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let msgs = messages(size);
        let avg = msgs.iter().map(Vec::len).sum::<usize>() / CYCLE;
        group.throughput(Throughput::Bytes(avg as u64));
        for nct in [false, true] {
            // A message only refers back to earlier ones of the cycle, which
            // sit at the same distance on every lap, so the cycle can repeat.
            let wire = compressed(&msgs, nct);
            let mut inf = Inflater::new(15, nct);
            let mut out = Vec::with_capacity(2 * size);
            let mut i = 0;
            group.bench_function(BenchmarkId::new(mode(nct), size), |b| {
                b.iter(|| {
                    out.clear();
                    inf.decompress(black_box(&wire[i % CYCLE]), &mut out, 1 << 20).unwrap();
                    debug_assert_eq!(out, msgs[i % CYCLE]);
                    i += 1;
                    out.len()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_deflate, bench_inflate);
criterion_main!(benches);
