//! Heap held by permessage-deflate state, measured with a counting allocator.
//!
//! Prints the figures quoted in `src/protocol/deflate/mod.rs` and docs/operating.md
//! (`cargo test --release --test deflate_memory -- --nocapture`), and checks
//! the properties that matter for idle connections: nothing is held before
//! the first message or after a message without context takeover, and a
//! decompression bomb costs about its limit, not its payload.
//!
//! One test function, so no other test allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use wsreactor::protocol::deflate::{DeflateError, DeflateParams, Deflater, Inflater, PerMessageDeflate};
use wsreactor::protocol::Role;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: usize = 1 << 20;

fn live() -> usize {
    LIVE.load(Relaxed)
}

/// Bytes still held by `f`'s result after it ran, and the most held on top
/// of `live()` while it ran.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = live();
    PEAK.store(base, Relaxed);
    let t = f();
    (t, live() - base, PEAK.load(Relaxed) - base)
}

fn kib(n: usize) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

#[test]
fn deflate_state_memory() {
    let msg: Vec<u8> = (0..2000u32)
        .flat_map(|i| format!("{{\"n\":{i}}},").into_bytes())
        .collect();
    let mut wire = Vec::with_capacity(2 * msg.len());
    let mut text = Vec::with_capacity(2 * msg.len());
    println!(
        "size_of PerMessageDeflate: {} B",
        std::mem::size_of::<PerMessageDeflate>()
    );
    println!("bits | Deflater (takeover) | Inflater (takeover)");
    let mut held = Vec::new();
    for bits in [15u8, 14, 13, 12, 11, 10, 9] {
        let (mut d, unused, _) = measure(|| Deflater::new(bits, false));
        assert_eq!(unused, 0, "a new Deflater allocates nothing");
        wire.clear();
        let ((), deflater, _) = measure(|| d.compress(&msg, &mut wire));
        let (mut i, unused, _) = measure(|| Inflater::new(bits, false));
        assert_eq!(unused, 0, "a new Inflater allocates nothing");
        text.clear();
        let (r, inflater, _) = measure(|| i.decompress(&wire, &mut text, MIB));
        r.unwrap();
        assert_eq!(text, msg);
        println!("{bits:>4} | {:>19} | {:>19}", kib(deflater), kib(inflater));
        held.push((bits, deflater, inflater));
        let before = live();
        drop((d, i));
        assert_eq!(before - live(), deflater + inflater, "dropping frees what was held");
    }
    assert!(held[0].1 > held[6].1, "a smaller window holds less");

    // Without context takeover nothing stays after the message.
    let p = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let (mut server, _, _) = measure(|| PerMessageDeflate::new(&p, Role::Server));
    let mut client = PerMessageDeflate::new(&p, Role::Client);
    wire.clear();
    let ((), kept, peak) = measure(|| server.compress(&msg, &mut wire));
    println!("no takeover: compress held {} after, {} at peak", kib(kept), kib(peak));
    assert_eq!(kept, 0);
    text.clear();
    let (r, kept, peak) = measure(|| client.decompress(&wire, &mut text, MIB));
    r.unwrap();
    println!(
        "no takeover: decompress held {} after, {} at peak",
        kib(kept),
        kib(peak)
    );
    assert_eq!(kept, 0);

    // A bomb: ~100 MB of zeros; with a 1 MiB limit it costs about 1 MiB.
    let bomb = {
        let mut d = Deflater::new(15, true);
        let mut out = Vec::new();
        d.compress(&vec![0u8; 100 * MIB], &mut out);
        out
    };
    let mut i = Inflater::new(15, false);
    let mut out = Vec::new();
    let (r, _, peak) = measure(|| i.decompress(&bomb, &mut out, MIB));
    assert_eq!(r, Err(DeflateError::TooLarge));
    println!(
        "bomb: {} compressed, peak heap {} with a 1 MiB limit",
        kib(bomb.len()),
        kib(peak)
    );
    assert!(peak < MIB + 128 * 1024, "peak {peak}");
}
