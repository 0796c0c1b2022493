//! Framing over real sockets (RFC 6455 §5): echo at the length-encoding
//! boundaries, fragmentation with interleaved control frames, and each
//! violation failing the connection with its close code (§7.1.7, §7.4.1)
//! followed by the server closing TCP.

mod common;

use common::*;
use std::io::Write;

/// Send `bytes` after the handshake; the server must answer with a close
/// `code`, then close the connection.
fn fails_with(settings: wsreactor::reactor::settings::Settings, bytes: &[u8], code: u16) {
    let server = Server::start(settings);
    let mut c = Client::upgrade(server.addr);
    c.write(bytes);
    c.expect_close(code);
    c.expect_eof();
    drop(c);
    assert!(server.wait_for(|s| &s.protocol_errors, 1, IO_TIMEOUT));
}

fn fails(bytes: &[u8], code: u16) {
    fails_with(settings(), bytes, code);
}

/// Printable ASCII of `len` bytes: valid as text and as binary.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn encoder_matches_rfc_examples() {
    // §5.7: a single-frame masked text message "Hello".
    assert_eq!(
        frame(TEXT, b"Hello"),
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
    // §5.7: 256 bytes and 64 KiB binary, unmasked headers.
    assert_eq!(encode(true, 0, BINARY, None, &[0; 256])[..4], [0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(
        encode(true, 0, BINARY, None, &[0; 65536])[..10],
        [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
    );
}

#[test]
fn open_echoes_text_and_binary_at_length_boundaries() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    // 7-bit, 16-bit and 64-bit length forms and their edges (§5.2).
    for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
        c.echo(TEXT, &payload(len));
        c.echo(BINARY, &payload(len));
    }
    c.echo(BINARY, &[0, 0xff, 0x80, 0xc3]);
    c.echo(TEXT, "héllo wörld ✓ 🦀".as_bytes());
    c.close(1000);
    assert_eq!(server.total(|s| &s.messages_in), 18);
}

#[test]
fn open_fragmented_message_with_interleaved_ping() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    // §5.4: control frames may be injected between fragments.
    let mut bytes = encode(false, 0, TEXT, Some(MASK), b"Hello, ");
    bytes.extend(frame(PING, b"are you there"));
    bytes.extend(encode(false, 0, CONT, Some(MASK), b"fragmented "));
    bytes.extend(encode(true, 0, CONT, Some(MASK), b"world"));
    c.write(&bytes);
    let pong = c.recv();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"are you there"[..]));
    let msg = c.recv();
    assert_eq!((msg.fin, msg.opcode), (true, TEXT));
    assert_eq!(msg.payload, b"Hello, fragmented world");
    c.close(1000);
}

#[test]
fn open_fragmented_text_splits_a_code_point() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    // "€" is E2 82 AC: split across three frames, sent one at a time.
    c.write(&encode(false, 0, TEXT, Some(MASK), b"price: \xE2"));
    c.write(&encode(false, 0, CONT, Some(MASK), b"\x82"));
    c.write(&encode(true, 0, CONT, Some(MASK), b"\xAC5"));
    let msg = c.recv();
    assert_eq!((msg.opcode, msg.payload.as_slice()), (TEXT, "price: €5".as_bytes()));
}

#[test]
fn open_frame_split_across_writes_is_reassembled() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    let bytes = frame(BINARY, &payload(70_000));
    for piece in [
        &bytes[..1],
        &bytes[1..5],
        &bytes[5..13],
        &bytes[13..40_000],
        &bytes[40_000..],
    ] {
        c.write(piece);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(c.recv().payload, payload(70_000));
}

#[test]
fn open_large_echoes_stay_in_order_behind_backpressure() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    // Large messages are echoed out of the buffer they arrived in; small
    // ones and pongs are copied. Mixed in one burst, and then 300 of 16 KiB
    // (4.8 MB) written before any echo is read, so replies queue behind each
    // other and the server stops reading until the client catches up.
    let mut burst = frame(PING, b"p");
    burst.extend(frame(BINARY, &payload(20_000)));
    burst.extend(frame(TEXT, b"small"));
    burst.extend(frame(BINARY, &payload(30_000)));
    c.write(&burst);
    let got: Vec<(u8, usize)> = (0..4).map(|_| c.recv()).map(|f| (f.opcode, f.payload.len())).collect();
    assert_eq!(got, [(PONG, 1), (BINARY, 20_000), (TEXT, 5), (BINARY, 30_000)]);
    let messages: Vec<Vec<u8>> = (0..300u32)
        .map(|i| {
            let mut p = payload(16 * 1024);
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        })
        .collect();
    let writer = {
        let mut w = c.stream.try_clone().unwrap();
        let bytes: Vec<u8> = messages.iter().flat_map(|m| frame(BINARY, m)).collect();
        std::thread::spawn(move || w.write_all(&bytes).unwrap())
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    for m in &messages {
        let f = c.recv();
        assert_eq!(f.opcode, BINARY);
        assert!(
            f.payload == *m,
            "echo {} differs",
            u32::from_be_bytes(f.payload[..4].try_into().unwrap())
        );
    }
    writer.join().unwrap();
    c.close(1000);
    assert_eq!(server.total(|s| &s.messages_out), 303);
}

#[test]
fn open_ping_gets_pong_with_same_payload() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    c.send(PING, &payload(125));
    let f = c.recv();
    assert_eq!((f.fin, f.opcode, f.payload), (true, PONG, payload(125)));
    // An unsolicited pong is ignored (§5.5.3).
    c.send(PONG, b"unsolicited");
    c.echo(TEXT, b"still here");
}

#[test]
fn open_unmasked_frame_is_1002() {
    // §5.1: "a server MUST close the connection upon receiving a frame that is not masked".
    fails(&encode(true, 0, TEXT, None, b"hi"), 1002);
}

#[test]
fn open_rsv_bits_are_1002() {
    // §5.2: RSV1-3 MUST be 0 without an extension defining them.
    for rsv in [0b100, 0b010, 0b001] {
        fails(&encode(true, rsv, TEXT, Some(MASK), b"hi"), 1002);
    }
}

#[test]
fn open_reserved_opcodes_are_1002() {
    for opcode in [0x3, 0xB] {
        fails(&frame(opcode, b""), 1002);
    }
}

#[test]
fn open_control_frame_over_125_bytes_is_1002() {
    // §5.5: control frames carry at most 125 bytes.
    fails(&frame(PING, &[b'x'; 126]), 1002);
}

#[test]
fn open_fragmented_ping_is_1002() {
    // §5.5: control frames MUST NOT be fragmented.
    fails(&encode(false, 0, PING, Some(MASK), b"x"), 1002);
}

#[test]
fn open_continuation_without_start_is_1002() {
    fails(&frame(CONT, b"orphan"), 1002);
}

#[test]
fn open_new_message_inside_fragmented_one_is_1002() {
    let mut bytes = encode(false, 0, TEXT, Some(MASK), b"part");
    bytes.extend(frame(TEXT, b"another"));
    fails(&bytes, 1002);
}

#[test]
fn open_invalid_utf8_text_is_1007() {
    // §8.1: invalid UTF-8 in a text message fails the connection with 1007.
    fails(&frame(TEXT, b"ok \xff"), 1007);
    // A surrogate (ED A0 80), invalid even when whole.
    fails(&frame(TEXT, b"\xED\xA0\x80"), 1007);
    // Invalid in a later fragment.
    let mut bytes = encode(false, 0, TEXT, Some(MASK), b"fine");
    bytes.extend(encode(true, 0, CONT, Some(MASK), b"\xC0\xAF"));
    fails(&bytes, 1007);
    // A message that ends inside a code point.
    fails(&frame(TEXT, b"cut \xE2\x82"), 1007);
}

#[test]
fn close_invalid_utf8_reason_is_1007() {
    fails(&frame(CLOSE, &close_payload(1000, b"bad \xff")), 1007);
}

#[test]
fn close_reserved_codes_are_1002() {
    // §7.4.1: 1005 and 1006 are never sent; 999 and 5000 are outside every range.
    for code in [1005, 1006, 999, 5000] {
        fails(&frame(CLOSE, &close_payload(code, b"")), 1002);
    }
}

#[test]
fn close_one_byte_payload_is_1002() {
    // §5.5.1: a body, if any, starts with a two-byte code.
    fails(&frame(CLOSE, &[0x03]), 1002);
}

#[test]
fn close_application_code_is_echoed() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    c.close(4000);
}

#[test]
fn close_empty_payload_is_answered() {
    let server = Server::start(settings());
    let mut c = Client::upgrade(server.addr);
    c.send(CLOSE, b"");
    let f = c.recv();
    assert_eq!(f.opcode, CLOSE);
    // An empty close may be answered empty or with 1000, never with 1005.
    assert!(matches!(f.close_code(), None | Some(1000)), "{f:?}");
    c.expect_eof();
}

fn limited(max: usize) -> wsreactor::reactor::settings::Settings {
    let mut s = settings();
    s.read_limits.max_message_size = max;
    s
}

#[test]
fn open_message_over_max_message_size_is_1009() {
    const MIB: usize = 1 << 20;
    // Exactly the limit is fine.
    let server = Server::start(limited(MIB));
    let mut c = Client::upgrade(server.addr);
    c.echo(BINARY, &payload(MIB));
    drop((c, server));
    // One frame one byte over.
    fails_with(limited(MIB), &frame(BINARY, &payload(MIB + 1)), 1009);
    // Fragments that add up to more.
    let mut bytes = encode(false, 0, BINARY, Some(MASK), &payload(MIB / 2 + 1));
    bytes.extend(encode(true, 0, CONT, Some(MASK), &payload(MIB / 2)));
    fails_with(limited(MIB), &bytes, 1009);
}
