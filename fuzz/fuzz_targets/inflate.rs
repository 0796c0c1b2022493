//! permessage-deflate's inflater (RFC 7692) behind the message limit, fed
//! the way a peer reaches it: the input is cut into the payloads of a
//! compressed message's frames (the first with RSV1), framed and masked
//! here, and read by a server endpoint that negotiated deflate. A
//! decompression bomb must stop at the limit (1009), garbage must fail
//! (1007), and no message may come out larger than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsreactor::protocol::deflate::DeflateParams;
use wsreactor::protocol::{Event, Read, ReadLimits, WebSocket};

const LIMITS: ReadLimits = ReadLimits {
    max_frame_size: 1 << 20,
    max_message_size: 64 << 10,
};
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&KEY);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, data)) = data.split_first() else {
        return;
    };
    // Low bits: how many frames; bit 7: text or binary.
    let parts = 1 + (shape & 3) as usize;
    let opcode = if shape & 0x80 != 0 { 1 } else { 2 };
    let mut wire = Vec::new();
    let size = data.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(size).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let first = i == 0;
        frame(
            i + 1 == chunks.len(),
            first,
            if first { opcode } else { 0 },
            chunk,
            &mut wire,
        );
    }
    let mut ws = WebSocket::server(LIMITS).with_deflate(&DeflateParams::default(), 64);
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        match ws.read(&mut wire[at..], &mut out) {
            Ok(Read::Frame { consumed, event }) => {
                if let Some(Event::Message(_, payload)) = &event {
                    assert!(payload.len() <= LIMITS.max_message_size);
                }
                at += consumed;
            }
            Ok(Read::Incomplete { .. }) => panic!("a whole frame read as incomplete"),
            Err(e) => {
                ws.fail(&e, &mut out);
                return;
            }
        }
    }
});
