//! Tests for the codec: the RFC 7692 §7.2.3 examples, round trips, memory
//! release, and decompression bombs.

use super::*;
use proptest::prelude::*;

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
const MIB: usize = 1 << 20;

fn params(server_nct: bool, client_nct: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        ..DeflateParams::default()
    }
}

/// A server and a client that agreed on `p`.
fn pair(p: &DeflateParams) -> (PerMessageDeflate, PerMessageDeflate) {
    (
        PerMessageDeflate::new(p, Role::Server),
        PerMessageDeflate::new(p, Role::Client),
    )
}

fn compress(d: &mut PerMessageDeflate, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    d.compress(payload, &mut out);
    out
}

fn decompress(d: &mut PerMessageDeflate, compressed: &[u8]) -> Result<Vec<u8>, DeflateError> {
    let mut out = Vec::new();
    d.decompress(compressed, &mut out, 16 * MIB).map(|()| out)
}

/// Text that compresses like chat traffic: repeated keys, varying values.
fn json(n: usize, seed: u32) -> Vec<u8> {
    let mut s = String::new();
    let mut x = seed;
    while s.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"u{}\",\"text\":\"msg {}\"}},",
            x >> 8,
            x % 97,
            x % 1013
        ));
    }
    s.truncate(n);
    s.into_bytes()
}

#[test]
fn test_rfc_7_2_3_1_hello_compressed() {
    let (mut server, mut client) = pair(&params(true, true));
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
}

#[test]
fn test_rfc_7_2_3_2_context_takeover_shrinks_second_message() {
    // With takeover the second "Hello" is one back-reference (§7.2.3.2).
    let (mut server, mut client) = pair(&params(false, false));
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    let second = compress(&mut server, b"Hello");
    assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
    assert_eq!(decompress(&mut client, &second).unwrap(), b"Hello");
    // Without it, every message stands alone.
    let (mut server, _) = pair(&params(true, false));
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
}

#[test]
fn test_rfc_7_2_3_3_stored_block() {
    let (_, mut client) = pair(&params(false, false));
    let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    assert_eq!(decompress(&mut client, &stored).unwrap(), b"Hello");
}

#[test]
fn test_rfc_7_2_3_4_bfinal_then_more_messages() {
    let (_, mut client) = pair(&params(false, false));
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(decompress(&mut client, &bfinal).unwrap(), b"Hello");
    // The stream restarted: later messages still read.
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
    // A final block with nothing after it: the tail is not fed to the new stream.
    assert_eq!(decompress(&mut client, &bfinal[..7]).unwrap(), b"Hello");
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
}

#[test]
fn test_bfinal_then_back_reference_is_corrupt() {
    let (_, mut client) = pair(&params(false, false));
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(decompress(&mut client, &bfinal).unwrap(), b"Hello");
    // §7.2.3.2's second message refers back to the first; the window is gone.
    assert_eq!(
        decompress(&mut client, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
        Err(DeflateError::Corrupt)
    );
}

#[test]
fn test_rfc_7_2_3_5_two_blocks_in_one_message() {
    let (_, mut client) = pair(&params(false, false));
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(decompress(&mut client, &two).unwrap(), b"Hello");
}

#[test]
fn test_rfc_7_2_3_6_empty_message() {
    let (mut server, mut client) = pair(&params(false, false));
    for _ in 0..3 {
        // Twice in a row, where zlib itself would emit nothing the second time.
        assert_eq!(compress(&mut server, b""), [0x00]);
        assert_eq!(decompress(&mut client, &[0x00]).unwrap(), b"");
    }
    assert!(!server.holds_state(), "an empty message allocates nothing");
    assert_eq!(compress(&mut server, b"Hello"), HELLO);
    assert_eq!(compress(&mut server, b""), [0x00]);
    assert_eq!(compress(&mut server, b"Hello"), [0xf2, 0x00, 0x11, 0x00, 0x00]);
}

#[test]
fn test_empty_compressed_payload_reads_as_empty() {
    let (_, mut client) = pair(&params(false, false));
    assert_eq!(decompress(&mut client, &[]).unwrap(), b"");
    assert!(!client.holds_state());
    assert_eq!(decompress(&mut client, &HELLO).unwrap(), b"Hello");
}

#[test]
fn test_state_allocated_lazily() {
    let (server, client) = pair(&params(false, false));
    assert!(!server.holds_state() && !client.holds_state());
}

#[test]
fn test_context_takeover_keeps_state() {
    let (mut server, mut client) = pair(&params(false, false));
    let wire = compress(&mut server, &json(1000, 1));
    assert!(server.deflater.holds_state());
    decompress(&mut client, &wire).unwrap();
    assert!(client.inflater.holds_state());
}

#[test]
fn test_no_context_takeover_frees_state_after_each_message() {
    let (mut server, mut client) = pair(&params(true, true));
    for seed in 0..3 {
        let msg = json(5000, seed);
        let wire = compress(&mut server, &msg);
        assert!(!server.holds_state());
        assert_eq!(decompress(&mut client, &wire).unwrap(), msg);
        assert!(!client.holds_state());
    }
}

#[test]
fn test_one_direction_without_takeover() {
    // Server keeps its compressor; the client resets, so the server's decompressor goes.
    let (mut server, mut client) = pair(&params(false, true));
    let wire = compress(&mut server, &json(1000, 2));
    decompress(&mut client, &wire).unwrap();
    let wire = compress(&mut client, &json(1000, 3));
    decompress(&mut server, &wire).unwrap();
    assert!(server.deflater.holds_state() && !server.inflater.holds_state());
    assert!(!client.deflater.holds_state() && client.inflater.holds_state());
}

#[test]
fn test_takeover_compresses_repeats_smaller() {
    let msg = json(2000, 7);
    let (mut with, _) = pair(&params(false, false));
    let (mut without, _) = pair(&params(true, false));
    let (a1, a2) = (compress(&mut with, &msg), compress(&mut with, &msg));
    let (b1, b2) = (compress(&mut without, &msg), compress(&mut without, &msg));
    assert_eq!(a1, b1);
    assert_eq!(b1, b2);
    assert!(a2.len() * 10 < a1.len(), "{} vs {}", a2.len(), a1.len());
}

#[test]
fn test_decompress_part_any_split() {
    let msg = json(20_000, 9);
    let (mut server, _) = pair(&params(false, false));
    let wire = compress(&mut server, &msg);
    for cut in [0, 1, 7, wire.len() / 2, wire.len() - 1, wire.len()] {
        let (_, mut client) = pair(&params(false, false));
        let mut out = Vec::new();
        client.decompress_part(&wire[..cut], false, &mut out, MIB).unwrap();
        client.decompress_part(&wire[cut..], true, &mut out, MIB).unwrap();
        assert_eq!(out, msg, "cut at {cut}");
    }
}

#[test]
fn test_corrupt_input() {
    let (_, mut client) = pair(&params(false, false));
    // BTYPE 11 is reserved.
    assert_eq!(decompress(&mut client, &[0xff; 16]), Err(DeflateError::Corrupt));
    assert!(!client.holds_state(), "a failed stream is dropped");
    // A stored block whose NLEN is not LEN's complement.
    let (_, mut client) = pair(&params(false, false));
    assert_eq!(
        decompress(&mut client, &[0x00, 0x05, 0x00, 0x00, 0x00, b'H']),
        Err(DeflateError::Corrupt)
    );
}

#[test]
fn test_data_after_final_block_starts_new_stream() {
    // A final block, then a second complete message body in the same payload.
    let (_, mut client) = pair(&params(false, false));
    let mut payload = vec![0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    payload.extend_from_slice(&HELLO);
    assert_eq!(decompress(&mut client, &payload).unwrap(), b"HelloHello");
}

#[test]
fn test_small_window_roundtrip() {
    let mut msg = json(3000, 4);
    msg.extend_from_within(..200);
    let small = DeflateParams {
        server_max_window_bits: Some(9),
        client_max_window_bits: Some(10),
        ..params(false, false)
    };
    let (mut server, mut client) = pair(&small);
    for _ in 0..2 {
        let wire = compress(&mut server, &msg);
        assert_eq!(decompress(&mut client, &wire).unwrap(), msg);
        let wire = compress(&mut client, &msg);
        assert_eq!(decompress(&mut server, &wire).unwrap(), msg);
    }
}

#[test]
fn test_window_8_read_with_9() {
    let p = DeflateParams {
        server_max_window_bits: Some(8),
        client_max_window_bits: Some(8),
        ..params(false, false)
    };
    let (mut server, mut client) = pair(&p);
    assert_eq!(
        format!("{:?}", server.deflater),
        format!("{:?}", Deflater::new(9, false))
    );
    let msg = json(3000, 5);
    let wire = compress(&mut server, &msg);
    assert_eq!(decompress(&mut client, &wire).unwrap(), msg);
}

#[test]
fn test_limit_exact_size_allowed_one_more_refused() {
    let msg = json(10_000, 6);
    let (mut server, _) = pair(&params(true, true));
    let wire = compress(&mut server, &msg);
    let (_, mut client) = pair(&params(true, true));
    let mut out = Vec::new();
    client.decompress(&wire, &mut out, msg.len()).unwrap();
    assert_eq!(out, msg);
    out.clear();
    assert_eq!(
        client.decompress(&wire, &mut out, msg.len() - 1),
        Err(DeflateError::TooLarge)
    );
    assert!(out.len() <= msg.len());
}

#[test]
fn test_limit_counts_the_whole_message_across_parts() {
    let msg = json(10_000, 8);
    let (mut server, _) = pair(&params(false, false));
    let wire = compress(&mut server, &msg);
    let (_, mut client) = pair(&params(false, false));
    let mut out = Vec::new();
    let half = wire.len() / 2;
    let max = msg.len() - 100;
    let first = client.decompress_part(&wire[..half], false, &mut out, max);
    let result = first.and_then(|()| client.decompress_part(&wire[half..], true, &mut out, max));
    assert_eq!(result, Err(DeflateError::TooLarge));
    // The next message starts from zero again.
    let (mut server, _) = pair(&params(true, true));
    let (_, mut client) = pair(&params(true, true));
    let wire = compress(&mut server, &msg);
    assert_eq!(decompress(&mut client, &wire).unwrap(), msg);
    assert_eq!(decompress(&mut client, &wire).unwrap(), msg);
}

/// ~100 KB of DEFLATE that inflates to 100 MB of zeros (DEFLATE's ratio
/// tops out near 1032:1, so 1 KB could only ever make ~1 MB).
fn bomb() -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(200_000);
    for i in 0..100 {
        let flush = if i == 99 {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        let before = c.total_in();
        while c.total_in() - before < MIB as u64 {
            let done = (c.total_in() - before) as usize;
            c.compress_vec(&zeros[done..], &mut out, flush).unwrap();
        }
    }
    c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - TAIL.len());
    out
}

#[test]
fn test_bomb_stops_at_the_limit() {
    let bomb = bomb();
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let (_, mut client) = pair(&params(false, false));
    let mut out = Vec::new();
    assert_eq!(client.decompress(&bomb, &mut out, MIB), Err(DeflateError::TooLarge));
    assert!(out.len() <= MIB + 1);
    assert!(out.capacity() <= MIB + 1, "capacity {}", out.capacity());
    assert!(!client.holds_state());
    // Frame by frame: caught in the first frame of 16 KiB.
    let (_, mut client) = pair(&params(false, false));
    let mut out = Vec::new();
    assert_eq!(
        client.decompress_part(&bomb[..16 << 10], false, &mut out, MIB),
        Err(DeflateError::TooLarge)
    );
    assert!(out.capacity() <= MIB + 1, "capacity {}", out.capacity());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_roundtrip(
        msgs in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                (0usize..70_000, any::<u32>()).prop_map(|(n, seed)| json(n, seed)),
                (0usize..200_000).prop_map(|n| vec![b'a'; n]),
            ],
            1..6,
        ),
        server_nct in any::<bool>(),
        client_nct in any::<bool>(),
        bits in 9u8..=15,
        split in any::<prop::sample::Index>(),
    ) {
        let p = DeflateParams {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: Some(bits),
            client_max_window_bits: Some(24 - bits),
        };
        let (mut server, mut client) = pair(&p);
        for msg in &msgs {
            // Server to client, whole.
            let wire = compress(&mut server, msg);
            prop_assert_eq!(&decompress(&mut client, &wire).unwrap(), msg);
            // Client to server, in two parts.
            let wire = compress(&mut client, msg);
            let cut = split.index(wire.len() + 1);
            let mut out = Vec::new();
            server.decompress_part(&wire[..cut], false, &mut out, msg.len()).unwrap();
            server.decompress_part(&wire[cut..], true, &mut out, msg.len()).unwrap();
            prop_assert_eq!(&out, msg);
        }
        prop_assert_eq!(server.deflater.holds_state(), !server_nct && msgs.iter().any(|m| !m.is_empty()));
        prop_assert!(!server_nct || !client.inflater.holds_state());
        prop_assert!(!client_nct || !server.inflater.holds_state());
    }
}
