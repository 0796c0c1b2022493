//! The server's WebSocket reader: frames parsed and unmasked in place,
//! fragments assembled into messages, UTF-8 checked as bytes arrive, pongs
//! and closes answered, all under small limits. The input's first bytes
//! choose where the stream is cut into reads; the buffer is kept the way
//! the reactor keeps it (consumed from the front, appended at the back).
//! Nothing may panic, a length the reader asks for is bounded by the frame
//! limit, and an error ends in a close frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsreactor::protocol::{Event, Read, ReadLimits, WebSocket};

const LIMITS: ReadLimits = ReadLimits {
    max_frame_size: 64 << 10,
    max_message_size: 256 << 10,
};

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = 1 + step as usize * 4;
    let mut ws = WebSocket::server(LIMITS);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        while !buf.is_empty() {
            let consumed = match ws.read(&mut buf, &mut out) {
                Ok(Read::Incomplete { frame_len }) => {
                    if let Some(n) = frame_len {
                        assert!(n <= LIMITS.max_frame_size + 14, "asked for {n} bytes");
                    }
                    break;
                }
                Ok(Read::Frame { consumed, event }) => {
                    if let Some(Event::Message(_, payload)) = &event {
                        assert!(payload.len() <= LIMITS.max_message_size);
                    }
                    consumed
                }
                Err(e) => {
                    let before = out.len();
                    let sent = ws.close_state().sent;
                    ws.fail(&e, &mut out);
                    // §7.1.7: failing sends a close, unless one went already.
                    assert!(out.len() > before || sent);
                    return;
                }
            };
            assert!(consumed > 0 && consumed <= buf.len());
            buf.drain(..consumed);
        }
    }
});
