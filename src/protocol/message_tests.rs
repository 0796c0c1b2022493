//! Tests for [`super::MessageReader`] and [`crate::protocol::WebSocket`],
//! named `test_<situation>_<input>` after smoltcp's habit.

use super::*;
use crate::protocol::close::CloseCode;
use crate::protocol::frame::RSV1;
use crate::protocol::mask::apply_mask;
use crate::protocol::websocket::{ClosedBy, WebSocket};

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A masked client frame.
fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut h = FrameHeader::new(opcode, payload.len() as u64);
    h.fin = fin;
    h.mask = Some(KEY);
    let mut out = Vec::new();
    h.write_to(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY);
    out
}

/// Owned copy of an event, so tests can collect them.
#[derive(Debug, PartialEq)]
enum Got {
    Msg(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

fn own(e: Event<'_>) -> Got {
    match e {
        Event::Message(k, p) => Got::Msg(k, p.to_vec()),
        Event::Ping(p) => Got::Ping(p.to_vec()),
        Event::Pong(p) => Got::Pong(p.to_vec()),
        Event::Close(c) => Got::Close(c.code.map(|c| c.0), c.reason.to_string()),
    }
}

/// Feed `wire` to a server reader, delivering it in pieces cut at `cuts`,
/// the way a socket would; returns the events, or the first error.
fn drive(wire: &[u8], cuts: &[usize], limits: ReadLimits) -> Result<Vec<Got>, ProtocolError> {
    let mut reader = MessageReader::new(Role::Server, limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut got = Vec::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain([wire.len()]) {
        let end = end.clamp(fed, wire.len());
        buf.extend_from_slice(&wire[fed..end]);
        fed = end;
        loop {
            match reader.read(&mut buf)? {
                Read::Incomplete { .. } => break,
                Read::Frame { consumed, event } => {
                    got.extend(event.map(own));
                    buf.drain(..consumed);
                }
            }
        }
    }
    Ok(got)
}

#[test]
fn test_open_single_text_frame() {
    let wire = frame(true, OpCode::Text, b"Hello");
    let mut buf = wire.clone();
    let mut reader = MessageReader::new(Role::Server, ReadLimits::default());
    match reader.read(&mut buf).unwrap() {
        Read::Frame { consumed, event } => {
            assert_eq!(consumed, wire.len());
            // One frame: borrowed from the buffer, no copy.
            assert_eq!(
                event,
                Some(Event::Message(MessageKind::Text, Payload::Borrowed(b"Hello")))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn test_fragmented_message_with_interleaved_ping() {
    let mut wire = frame(false, OpCode::Text, "frag".as_bytes());
    wire.extend(frame(true, OpCode::Ping, b"p"));
    wire.extend(frame(false, OpCode::Continuation, "mé".as_bytes()));
    wire.extend(frame(true, OpCode::Pong, b""));
    wire.extend(frame(true, OpCode::Continuation, "nt".as_bytes()));
    let expected = vec![
        Got::Ping(b"p".to_vec()),
        Got::Pong(vec![]),
        Got::Msg(MessageKind::Text, "fragmént".as_bytes().to_vec()),
    ];
    // Every way of cutting the stream in two gives the same events.
    for cut in 0..=wire.len() {
        assert_eq!(
            drive(&wire, &[cut], ReadLimits::default()).unwrap(),
            expected,
            "cut {cut}"
        );
    }
    // And byte by byte.
    let all: Vec<usize> = (0..wire.len()).collect();
    assert_eq!(drive(&wire, &all, ReadLimits::default()).unwrap(), expected);
}

#[test]
fn test_open_unmasked_frame() {
    let wire = [0x81, 0x00];
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()),
        Err(ProtocolError::UnmaskedFrame)
    );
}

#[test]
fn test_open_rsv_bits_without_extension() {
    for rsv in [RSV1, 0b010, 0b001] {
        let mut wire = frame(true, OpCode::Binary, b"x");
        wire[0] |= rsv << 4;
        assert_eq!(
            drive(&wire, &[], ReadLimits::default()),
            Err(ProtocolError::ReservedBits)
        );
    }
}

#[test]
fn test_open_continuation_without_message() {
    let wire = frame(true, OpCode::Continuation, b"x");
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()),
        Err(ProtocolError::UnexpectedContinuation)
    );
}

#[test]
fn test_fragmented_new_message_instead_of_continuation() {
    let mut wire = frame(false, OpCode::Text, b"a");
    wire.extend(frame(true, OpCode::Text, b"b"));
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()),
        Err(ProtocolError::ExpectedContinuation)
    );
}

#[test]
fn test_limits_frame_and_message_too_large_from_header_alone() {
    let limits = ReadLimits {
        max_frame_size: 10,
        max_message_size: 15,
    };
    // Only the header is delivered: the limit is enforced before the payload arrives.
    let wire = frame(true, OpCode::Binary, &[0; 11]);
    assert_eq!(drive(&wire[..6], &[], limits), Err(ProtocolError::FrameTooLarge));
    let mut wire = frame(false, OpCode::Binary, &[0; 10]);
    wire.extend(frame(true, OpCode::Continuation, &[0; 6]));
    assert_eq!(drive(&wire[..22], &[], limits), Err(ProtocolError::MessageTooLarge));
    // Exactly at the limit is fine.
    let mut wire = frame(false, OpCode::Binary, &[0; 10]);
    wire.extend(frame(true, OpCode::Continuation, &[0; 5]));
    assert_eq!(
        drive(&wire, &[], limits).unwrap(),
        vec![Got::Msg(MessageKind::Binary, vec![0; 15])]
    );
}

#[test]
fn test_text_invalid_utf8_fails_before_frame_is_complete() {
    let mut payload = b"valid text, then ".to_vec();
    payload.extend_from_slice(b"\xf4\x90\x80\x80");
    payload.extend_from_slice(&[b'x'; 100]);
    let wire = frame(true, OpCode::Text, &payload);
    // Deliver only up to just past the bad bytes: the error comes anyway.
    let partial = &wire[..6 + 19];
    assert_eq!(
        drive(partial, &[8, 12], ReadLimits::default()),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn test_fragmented_text_invalid_utf8_in_later_fragment() {
    let mut wire = frame(false, OpCode::Text, b"ok");
    wire.extend(frame(false, OpCode::Continuation, b"\xce"));
    wire.extend(frame(true, OpCode::Continuation, b"\xff"));
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()),
        Err(ProtocolError::InvalidUtf8)
    );
    // A code point split between fragments is fine.
    let mut wire = frame(false, OpCode::Text, b"\xce");
    wire.extend(frame(true, OpCode::Continuation, b"\xba"));
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()).unwrap(),
        vec![Got::Msg(MessageKind::Text, "κ".into())]
    );
}

#[test]
fn test_binary_is_not_validated() {
    let wire = frame(true, OpCode::Binary, b"\xff\xfe");
    assert_eq!(
        drive(&wire, &[3], ReadLimits::default()).unwrap(),
        vec![Got::Msg(MessageKind::Binary, vec![0xff, 0xfe])]
    );
}

#[test]
fn test_close_frame_validation() {
    let wire = frame(true, OpCode::Close, b"\x03\xe8done");
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()).unwrap(),
        vec![Got::Close(Some(1000), "done".into())]
    );
    let wire = frame(true, OpCode::Close, b"\x03\xee");
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()),
        Err(ProtocolError::InvalidCloseCode(1006))
    );
    let wire = frame(true, OpCode::Close, b"\x03\xe8\xc0\xaf");
    assert_eq!(
        drive(&wire, &[], ReadLimits::default()),
        Err(ProtocolError::InvalidUtf8)
    );
}

/// A server and a client endpoint talking through two Vecs.
#[test]
fn test_websocket_client_server_pair() {
    let mut client = WebSocket::client(ReadLimits::default(), 42);
    let mut server = WebSocket::server(ReadLimits::default());
    let mut to_server = Vec::new();
    let mut to_client = Vec::new();

    client.send(MessageKind::Text, b"echo me", &mut to_server);
    client.send_ping(b"are you there", &mut to_server);
    let mut events = Vec::new();
    while !to_server.is_empty() {
        let Read::Frame { consumed, event } = server.read(&mut to_server, &mut to_client).unwrap() else {
            panic!("incomplete");
        };
        if let Some(Event::Message(kind, payload)) = &event {
            server.send(*kind, payload, &mut to_client);
        }
        events.extend(event.map(own));
        to_server.drain(..consumed);
    }
    assert_eq!(
        events,
        vec![
            Got::Msg(MessageKind::Text, b"echo me".to_vec()),
            Got::Ping(b"are you there".to_vec())
        ]
    );

    // The client sees the echo and the automatic pong, unmasked.
    let mut seen = Vec::new();
    let mut sink = Vec::new();
    while !to_client.is_empty() {
        let Read::Frame { consumed, event } = client.read(&mut to_client, &mut sink).unwrap() else {
            panic!("incomplete");
        };
        seen.extend(event.map(own));
        to_client.drain(..consumed);
    }
    assert_eq!(
        seen,
        vec![
            Got::Msg(MessageKind::Text, b"echo me".to_vec()),
            Got::Pong(b"are you there".to_vec())
        ]
    );

    // Close handshake: client starts, server echoes, both see it done.
    client.close(CloseCode::NORMAL, "bye", &mut to_server);
    assert!(client.close_state().sent && !client.is_closed());
    let Read::Frame { consumed, .. } = server.read(&mut to_server, &mut to_client).unwrap() else {
        panic!("incomplete");
    };
    to_server.drain(..consumed);
    assert!(server.is_closed());
    let Read::Frame { event, .. } = client.read(&mut to_client, &mut sink).unwrap() else {
        panic!("incomplete");
    };
    assert_eq!(event.map(own), Some(Got::Close(Some(1000), String::new())));
    assert!(client.is_closed());
    // Each end knows the client started it: the server's 1000 only answered.
    let by_client = Some(ClosedBy::Peer(Some(CloseCode::NORMAL)));
    assert_eq!(server.close_state().started_by, by_client);
    assert_eq!(
        client.close_state().started_by,
        Some(ClosedBy::Us(Some(CloseCode::NORMAL)))
    );
}

#[test]
fn test_websocket_close_remembers_who_started_it_not_the_echoed_code() {
    // The server closes with 4001; the client's answer echoes 4001 (§5.5.1).
    let mut server = WebSocket::server(ReadLimits::default());
    let mut client = WebSocket::client(ReadLimits::default(), 9);
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    server.close(CloseCode(4001), "", &mut to_client);
    let _ = client.read(&mut to_client, &mut to_server).unwrap();
    let _ = server.read(&mut to_server, &mut Vec::new()).unwrap();
    assert!(server.is_closed() && client.is_closed());
    assert_eq!(
        server.close_state().started_by,
        Some(ClosedBy::Us(Some(CloseCode(4001))))
    );
    assert_eq!(
        client.close_state().started_by,
        Some(ClosedBy::Peer(Some(CloseCode(4001))))
    );
    // Failing the connection is our close too, with the error's code.
    let mut failed = WebSocket::server(ReadLimits::default());
    failed.fail(&ProtocolError::InvalidUtf8, &mut Vec::new());
    assert_eq!(
        failed.close_state().started_by,
        Some(ClosedBy::Us(Some(CloseCode(1007))))
    );
    assert_eq!(WebSocket::server(ReadLimits::default()).close_state().started_by, None);
}

#[test]
fn test_websocket_no_data_after_close_sent() {
    let mut server = WebSocket::server(ReadLimits::default());
    let mut out = Vec::new();
    server.close(CloseCode::GOING_AWAY, "shutdown", &mut out);
    let sent = out.len();
    server.send(MessageKind::Text, b"late", &mut out);
    server.send_ping(b"late", &mut out);
    assert_eq!(out.len(), sent);
    // A ping that arrives after our close gets no pong.
    let mut wire = frame(true, OpCode::Ping, b"x");
    let _ = server.read(&mut wire, &mut out).unwrap();
    assert_eq!(out.len(), sent);
}

#[test]
fn test_websocket_fail_sends_mapped_close_code() {
    let mut server = WebSocket::server(ReadLimits::default());
    let mut out = Vec::new();
    server.fail(&ProtocolError::InvalidUtf8, &mut out);
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xef]); // 1007
    assert!(server.is_closed());
}
