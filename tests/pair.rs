//! A deterministic client/server pair in memory, no sockets and no clock:
//! the opening handshake and then WebSocket endpoints on both sides, with
//! the byte streams between them cut at arbitrary points.
//!
//! Properties:
//! - any sequence of valid messages (text and binary, any size up to a few
//!   frames' worth, fragmented or not, with pings between fragments, with or
//!   without permessage-deflate) comes out of the server in order and whole,
//!   and its echo out of the client, however either stream is split;
//! - arbitrary bytes sent as a request always end in an HTTP status (or a
//!   101), and arbitrary bytes after a 101 end in a close code or are still
//!   waiting for more (which the idle timer answers with 1001), never in a
//!   panic or a buffer past its limits.

use proptest::prelude::*;
use wsreactor::protocol::deflate::{negotiate, DeflateConfig};
use wsreactor::protocol::handshake::{validate_upgrade, write_switching_protocols, ClientHandshake};
use wsreactor::protocol::http::{HeadScanner, RequestHead, Status, MAX_HEADERS};
use wsreactor::protocol::{CloseCode, Event, MessageKind, Read, ReadLimits, WebSocket};

const HEAD_LIMIT: usize = 8192;
const LIMITS: ReadLimits = ReadLimits {
    max_frame_size: 1 << 20,
    max_message_size: 1 << 20,
};

/// A byte stream in flight: what one side wrote, delivered to the other in
/// the pieces `cuts` chooses.
struct Pipe {
    bytes: Vec<u8>,
    cuts: Vec<usize>,
    next_cut: usize,
}

impl Pipe {
    fn new(cuts: Vec<usize>) -> Pipe {
        Pipe {
            bytes: Vec::new(),
            cuts,
            next_cut: 0,
        }
    }

    /// The next piece (at least one byte if any is pending).
    fn take(&mut self) -> Vec<u8> {
        let n = match self.cuts.get(self.next_cut) {
            Some(&c) => c.clamp(1, self.bytes.len().max(1)),
            None => self.bytes.len(),
        };
        self.next_cut += 1;
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n).collect()
    }
}

/// What the server side decided about a request.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Waiting for the rest of the head (the handshake timer answers 408).
    Incomplete,
    /// Refused with this status.
    Status(u16),
    /// 101; the bytes after the head are WebSocket data.
    Upgraded,
}

/// The server's side of the opening handshake over `input` received so far.
struct ServerHandshake {
    scanner: HeadScanner,
}

impl ServerHandshake {
    fn read(&mut self, input: &[u8], out: &mut Vec<u8>) -> (Answer, usize, Option<WebSocket>) {
        let len = match self.scanner.scan(input, HEAD_LIMIT) {
            Ok(None) => return (Answer::Incomplete, 0, None),
            Ok(Some(n)) => n,
            Err(e) => return (Answer::Status(e.status().0), 0, None),
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = match RequestHead::parse(&input[..len], &mut headers) {
            Ok(h) => h,
            Err(e) => return (Answer::Status(e.status().0), len, None),
        };
        if let Err(e) = head.check() {
            return (Answer::Status(e.status().0), len, None);
        }
        let upgrade = match validate_upgrade(&head) {
            Ok(u) => u,
            Err(e) => return (Answer::Status(e.status().0), len, None),
        };
        let params = negotiate(&upgrade.extensions, &DeflateConfig::default());
        let mut ws = WebSocket::server(LIMITS);
        let extension = params.as_ref().map(|p| p.response_header());
        if let Some(p) = &params {
            ws = ws.with_deflate(p, 64);
        }
        write_switching_protocols(out, &upgrade, None, extension.as_deref());
        (Answer::Upgraded, len, Some(ws))
    }
}

/// Read every complete frame at the front of `buf` with `ws`; each message
/// goes to `got`, and with `echo` is answered at once, as the server's
/// echo endpoint does (after the peer's close frame nothing more is sent).
/// `Err` with the close code on a protocol error.
fn drain(
    ws: &mut WebSocket,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    got: &mut Vec<(MessageKind, Vec<u8>)>,
    echo: bool,
) -> Result<(), u16> {
    while !buf.is_empty() {
        let before = got.len();
        let consumed = match ws.read(buf, out) {
            Ok(Read::Incomplete { frame_len }) => {
                assert!(frame_len.is_none_or(|n| n <= LIMITS.max_frame_size + 14));
                return Ok(());
            }
            Ok(Read::Frame { consumed, event }) => {
                if let Some(Event::Message(kind, payload)) = event {
                    got.push((kind, payload.to_vec()));
                }
                consumed
            }
            Err(e) => {
                ws.fail(&e, out);
                return Err(CloseCode::from(&e).0);
            }
        };
        buf.drain(..consumed);
        if echo {
            let fresh = got.len() > before && !ws.close_state().sent;
            if let Some((kind, payload)) = got.last().filter(|_| fresh) {
                ws.send(*kind, payload, out);
            }
        }
    }
    Ok(())
}

/// One message as the client sends it: `pieces` fragments (§5.4), a ping
/// between each two (control frames may interleave).
fn send_fragmented(kind: MessageKind, payload: &[u8], pieces: usize, key: [u8; 4], out: &mut Vec<u8>) {
    use wsreactor::protocol::{FrameHeader, OpCode};
    let pieces = pieces.clamp(1, payload.len().max(1));
    let size = payload.len().div_ceil(pieces).max(1);
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(size).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { kind.opcode() } else { OpCode::Continuation };
        let mut header = FrameHeader::new(opcode, chunk.len() as u64);
        header.fin = i + 1 == chunks.len();
        header.mask = Some(key);
        header.write_to(out);
        out.extend(chunk.iter().enumerate().map(|(j, b)| b ^ key[j % 4]));
        if !header.fin {
            let mut ping = FrameHeader::new(OpCode::Ping, 1);
            ping.mask = Some(key);
            ping.write_to(out);
            out.push(b'p' ^ key[0]);
        }
    }
}

fn message() -> impl Strategy<Value = (MessageKind, Vec<u8>, usize)> {
    let text = proptest::string::string_regex("(.|\n){0,300}")
        .unwrap()
        .prop_map(|s| (MessageKind::Text, s.into_bytes()));
    let binary = proptest::collection::vec(any::<u8>(), 0..3000).prop_map(|b| (MessageKind::Binary, b));
    let big = (0usize..70_000).prop_map(|n| (MessageKind::Binary, (0..n).map(|i| (i * 7) as u8).collect()));
    (prop_oneof![4 => text, 4 => binary, 1 => big], 1usize..4).prop_map(|((k, p), n)| (k, p, n))
}

/// Run the whole exchange: handshake, every message echoed, close.
fn exchange(messages: &[(MessageKind, Vec<u8>, usize)], deflate: bool, up: Vec<usize>, down: Vec<usize>) {
    let client_hs = ClientHandshake::new([9; 16]);
    let mut c2s = Pipe::new(up);
    let mut s2c = Pipe::new(down);
    let extra: &[(&str, &str)] = if deflate {
        &[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
    } else {
        &[]
    };
    client_hs.write_request(&mut c2s.bytes, "127.0.0.1", "/", extra);
    let mut client = WebSocket::client(LIMITS, 0x5eed);
    for (kind, payload, pieces) in messages {
        send_fragmented(*kind, payload, *pieces, [1, 2, 3, 4], &mut c2s.bytes);
    }
    client.close(CloseCode::NORMAL, "", &mut c2s.bytes);

    // The server side.
    let mut hs = ServerHandshake {
        scanner: HeadScanner::default(),
    };
    let mut server: Option<WebSocket> = None;
    let mut server_in = Vec::new();
    let mut received = Vec::new();
    // The client side.
    let mut client_in = Vec::new();
    let mut accepted = false;
    let mut echoed = Vec::new();
    for _round in 0..100_000 {
        if c2s.bytes.is_empty() && s2c.bytes.is_empty() {
            break;
        }
        server_in.extend(c2s.take());
        if server.is_none() {
            let (answer, used, ws) = hs.read(&server_in, &mut s2c.bytes);
            match answer {
                Answer::Incomplete => {}
                Answer::Upgraded => {
                    server_in.drain(..used);
                    server = ws;
                }
                Answer::Status(s) => panic!("the server refused a valid upgrade: {s}"),
            }
        }
        if let Some(ws) = server.as_mut() {
            drain(ws, &mut server_in, &mut s2c.bytes, &mut received, true).expect("valid frames refused");
        }
        client_in.extend(s2c.take());
        if !accepted {
            if let Some(a) = client_hs.read_response(&client_in, HEAD_LIMIT).unwrap() {
                client_in.drain(..a.head_len);
                accepted = true;
                // Deflate as the server answered (the pair negotiates it for real).
                if deflate {
                    let params = negotiate(
                        &["permessage-deflate; client_max_window_bits"],
                        &DeflateConfig::default(),
                    )
                    .unwrap();
                    client = WebSocket::client(LIMITS, 0x5eed).with_deflate(&params, 64);
                }
            }
        }
        if accepted {
            drain(&mut client, &mut client_in, &mut c2s.bytes, &mut echoed, false).expect("valid echo refused");
        }
    }
    let sent: Vec<(MessageKind, Vec<u8>)> = messages.iter().map(|(k, p, _)| (*k, p.clone())).collect();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the server got different messages");
    assert!(echoed == sent, "the echoes differ");
    let server = server.unwrap();
    assert!(server.is_closed() && client.is_closed());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn messages_survive_any_split_of_either_stream(
        messages in proptest::collection::vec(message(), 0..8),
        deflate in any::<bool>(),
        up in proptest::collection::vec(1usize..400, 0..200),
        down in proptest::collection::vec(1usize..400, 0..200),
    ) {
        exchange(&messages, deflate, up, down);
    }

    #[test]
    fn arbitrary_request_bytes_end_in_a_status(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        prefix in proptest::sample::select(vec![
            &b""[..], b"GET / HTTP/1.1\r\n", b"POST /pub/a HTTP/1.1\r\nHost: x\r\n",
        ]),
    ) {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&bytes);
        let mut hs = ServerHandshake { scanner: HeadScanner::default() };
        let (answer, used, _) = hs.read(&input, &mut Vec::new());
        match answer {
            // Still waiting: the handshake timer ends it with 408.
            Answer::Incomplete => prop_assert!(input.len() < HEAD_LIMIT),
            Answer::Status(s) => prop_assert!(Status(s).reason() != "Unknown", "{s}"),
            Answer::Upgraded => prop_assert!(used <= input.len()),
        }
    }

    #[test]
    fn arbitrary_frame_bytes_end_in_a_close_code_or_wait(
        bytes in proptest::collection::vec(any::<u8>(), 0..4000),
        cuts in proptest::collection::vec(1usize..64, 0..100),
    ) {
        let mut ws = WebSocket::server(LIMITS);
        let mut pipe = Pipe::new(cuts);
        pipe.bytes = bytes;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut got = Vec::new();
        let mut code = None;
        while !pipe.bytes.is_empty() && code.is_none() {
            buf.extend(pipe.take());
            code = drain(&mut ws, &mut buf, &mut out, &mut got, false).err();
        }
        if let Some(code) = code {
            // A close frame with that code went out (§7.1.7).
            prop_assert!(ws.close_state().sent);
            prop_assert!([1002, 1007, 1009].contains(&code), "{code}");
        }
        for (_, payload) in &got {
            prop_assert!(payload.len() <= LIMITS.max_message_size);
        }
    }
}
