//! One WebSocket endpoint, sans I/O: bytes in, events and bytes to send out.
//!
//! [`WebSocket`] wraps the [`MessageReader`] with what the protocol itself
//! requires an endpoint to answer, so that neither the server nor the load
//! generator can forget it: a pong for every ping (§5.5.2), a close frame in
//! reply to a close (§5.5.1), and no data after our own close. The close
//! handshake is tracked per direction (§7.1).
//!
//! Outgoing frames are appended to a caller-owned `Vec<u8>`; the caller
//! decides when to flush it. Clients mask with keys from a small generator
//! seeded by the caller (the protocol never reads a clock or an OS RNG).

use super::close::{close_payload, CloseCode};
use super::deflate::{DeflateParams, Deflater, PerMessageDeflate};
use super::error::ProtocolError;
use super::frame::{FrameHeader, OpCode, RSV1};
use super::mask::{apply_mask, xorshift64};
use super::message::{Event, MessageKind, MessageReader, Read, ReadLimits, Role};

/// Close handshake progress, one flag per direction (§7.1.2-§7.1.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloseState {
    /// We have queued a close frame.
    pub sent: bool,
    /// The peer's close frame has arrived.
    pub received: bool,
    /// Who started the closing handshake, once someone has: the other
    /// end's frame only answers it, typically echoing its code (§5.5.1),
    /// so a log that named the last code heard would blame the wrong end.
    pub started_by: Option<ClosedBy>,
}

/// The end whose close frame came first (§7.1.2: it "starts the WebSocket
/// closing handshake"), with the code that frame carried (none: an empty
/// close frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// Our close came first, or we failed the connection (§7.1.7).
    Us(Option<CloseCode>),
    /// The peer's close came first.
    Peer(Option<CloseCode>),
}

/// [`CloseState`] as an endpoint keeps it: six bytes, where the enum
/// would take eight and grow an open session past its allocation budget
/// (the reactor's size tests).
#[derive(Debug, Clone, Copy, Default)]
struct Closing {
    sent: bool,
    received: bool,
    /// Who sent the first close frame: [`NOBODY`], [`US`] or [`PEER`].
    first: u8,
    /// That frame's code; 0 for none (no close code is 0, §7.4).
    code: u16,
}

const NOBODY: u8 = 0;
const US: u8 = 1;
const PEER: u8 = 2;

impl Closing {
    /// Record the first close frame, if this is it.
    fn started(&mut self, by: u8, code: Option<CloseCode>) {
        if self.first == NOBODY {
            self.first = by;
            self.code = code.map_or(0, |c| c.0);
        }
    }

    fn state(self) -> CloseState {
        let code = (self.code != 0).then_some(CloseCode(self.code));
        CloseState {
            sent: self.sent,
            received: self.received,
            started_by: match self.first {
                US => Some(ClosedBy::Us(code)),
                PEER => Some(ClosedBy::Peer(code)),
                _ => None,
            },
        }
    }
}

/// A WebSocket endpoint after the opening handshake.
#[derive(Debug)]
pub struct WebSocket {
    role: Role,
    reader: MessageReader,
    close: Closing,
    /// xorshift64 state for client masking keys (§5.3 asks for unpredictable
    /// keys; the seed comes from the caller).
    mask_state: u64,
    /// permessage-deflate for what we send, with its size threshold; boxed
    /// so that an endpoint without it pays one pointer.
    deflater: Option<Box<(Deflater, usize)>>,
}

impl WebSocket {
    /// A server endpoint.
    pub fn server(limits: ReadLimits) -> Self {
        WebSocket {
            role: Role::Server,
            reader: MessageReader::new(Role::Server, limits),
            close: Closing::default(),
            mask_state: 0,
            deflater: None,
        }
    }

    /// A client endpoint; `mask_seed` seeds the masking keys (any nonzero-ish
    /// random value: a zero seed is replaced).
    pub fn client(limits: ReadLimits, mask_seed: u64) -> Self {
        WebSocket {
            role: Role::Client,
            reader: MessageReader::new(Role::Client, limits),
            close: Closing::default(),
            mask_state: mask_seed | 1,
            deflater: None,
        }
    }

    /// Use permessage-deflate as negotiated (RFC 7692): incoming messages
    /// with RSV1 are inflated; outgoing ones of at least `min_size` bytes
    /// are compressed.
    pub fn with_deflate(mut self, params: &DeflateParams, min_size: usize) -> Self {
        let PerMessageDeflate { deflater, inflater } = PerMessageDeflate::new(params, self.role);
        let limits = self.reader.limits();
        self.reader = MessageReader::new(self.role, limits).with_inflater(inflater);
        self.deflater = Some(Box::new((deflater, min_size)));
        self
    }

    /// Does either direction's compressor hold zlib state now?
    pub fn holds_deflate_state(&self) -> bool {
        self.reader.holds_inflate_state() || self.deflater.as_ref().is_some_and(|d| d.0.holds_state())
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Close handshake progress.
    pub fn close_state(&self) -> CloseState {
        self.close.state()
    }

    /// Both close frames have been exchanged: the TCP connection may go (§7.1.1).
    pub fn is_closed(&self) -> bool {
        self.close.sent && self.close.received
    }

    /// Parse one frame from the front of `buf` (see [`MessageReader::read`]).
    /// Replies the protocol requires (pong, close) are appended to `out`.
    /// Data after the peer's close is ignored (§5.5.1: the close is the last
    /// frame); messages after our own close are still returned, marked by
    /// [`CloseState::sent`], and are the caller's to drop.
    pub fn read<'a>(&mut self, buf: &'a mut [u8], out: &mut Vec<u8>) -> Result<Read<'a>, ProtocolError> {
        if self.close.received {
            return Ok(Read::Frame {
                consumed: buf.len(),
                event: None,
            });
        }
        let read = self.reader.read(buf)?;
        if let Read::Frame {
            event: Some(ref event), ..
        } = read
        {
            match event {
                Event::Ping(payload) if !self.close.sent => self.write_frame(OpCode::Pong, 0, payload, out),
                Event::Close(frame) => {
                    self.close.received = true;
                    self.close.started(PEER, frame.code);
                    if !self.close.sent {
                        // §5.5.1: reply with a close, typically echoing the code.
                        self.send_close_frame(frame.code, "", out);
                    }
                }
                _ => {}
            }
        }
        Ok(read)
    }

    /// Queue a data message as one frame, compressed if deflate was
    /// negotiated and it is at least the threshold. Ignored once we sent a close.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>) {
        if self.close.sent {
            return;
        }
        match self.deflater.as_deref_mut() {
            Some((deflater, min_size)) if payload.len() >= *min_size => {
                let mut compressed = Vec::with_capacity(payload.len() / 2 + 16);
                deflater.compress(payload, &mut compressed);
                // RFC 7692 §6: RSV1 marks the first frame of a compressed message.
                self.write_frame(kind.opcode(), RSV1, &compressed, out);
            }
            _ => self.write_frame(kind.opcode(), 0, payload, out),
        }
    }

    /// Turn a frame just read into our reply carrying the same message, in
    /// place, so a large echo is not copied. `frame` is the whole frame as
    /// [`read`](Self::read) consumed it, and its message must have come out
    /// as [`Payload::Borrowed`](super::message::Payload) (one frame, not
    /// compressed): the payload, already unmasked, is the frame's tail. Our
    /// header is written just before it, where the peer's longer masked
    /// header was (§5.2: a server's frames carry no masking key). Returns
    /// where the reply starts in `frame`, or `None` when it must be built by
    /// [`send`](Self::send) instead: we are a client, we sent a close, or
    /// the message is to be compressed.
    pub fn echo_in_place(&mut self, frame: &mut [u8], kind: MessageKind, payload_len: usize) -> Option<usize> {
        let compress = self.deflater.as_ref().is_some_and(|d| payload_len >= d.1);
        if self.role != Role::Server || self.close.sent || compress {
            return None;
        }
        let header_len = frame.len().checked_sub(payload_len)?;
        let mut bytes = [0u8; FrameHeader::MAX_LEN];
        let n = FrameHeader::new(kind.opcode(), payload_len as u64).encode(&mut bytes);
        let start = header_len.checked_sub(n)?;
        frame[start..header_len].copy_from_slice(&bytes[..n]);
        Some(start)
    }

    /// Queue a ping (payload of at most 125 bytes; longer is cut).
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if !self.close.sent {
            let len = payload.len().min(super::frame::MAX_CONTROL_PAYLOAD);
            self.write_frame(OpCode::Ping, 0, &payload[..len], out);
        }
    }

    /// Start the close handshake (§7.1.2). Does nothing if already started.
    pub fn close(&mut self, code: CloseCode, reason: &str, out: &mut Vec<u8>) {
        if !self.close.sent {
            self.send_close_frame(Some(code), reason, out);
        }
    }

    /// Fail the connection for a protocol error (§7.1.7): queue a close with
    /// the error's code, if a close can still be sent.
    pub fn fail(&mut self, error: &ProtocolError, out: &mut Vec<u8>) {
        let reason = error.to_string();
        self.close(CloseCode::from(error), &reason, out);
        // Nothing more will be read: treat the input direction as done.
        self.close.received = true;
    }

    fn send_close_frame(&mut self, code: Option<CloseCode>, reason: &str, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        if let Some(code) = code {
            close_payload(code, reason, &mut payload);
        }
        self.write_frame(OpCode::Close, 0, &payload, out);
        self.close.sent = true;
        // An answer to the peer's close finds it already recorded.
        self.close.started(US, code);
    }

    /// Append one final frame; clients mask a copy of the payload.
    fn write_frame(&mut self, opcode: OpCode, rsv: u8, payload: &[u8], out: &mut Vec<u8>) {
        let mut header = FrameHeader::new(opcode, payload.len() as u64);
        header.rsv = rsv;
        match self.role {
            Role::Server => {
                out.reserve(header.encoded_len() + payload.len());
                header.write_to(out);
                out.extend_from_slice(payload);
            }
            Role::Client => {
                let key = self.next_mask_key();
                header.mask = Some(key);
                out.reserve(header.encoded_len() + payload.len());
                header.write_to(out);
                let start = out.len();
                out.extend_from_slice(payload);
                apply_mask(&mut out[start..], key);
            }
        }
    }

    fn next_mask_key(&mut self) -> [u8; 4] {
        (xorshift64(&mut self.mask_state) as u32).to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::Payload;

    /// A client's masked frame carrying `payload` as one `kind` message.
    fn client_frame(kind: MessageKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        WebSocket::client(ReadLimits::default(), 42).send(kind, payload, &mut out);
        out
    }

    /// Read one frame with `ws`; the consumed length and payload length.
    fn read_one(ws: &mut WebSocket, frame: &mut [u8]) -> (usize, usize) {
        match ws.read(frame, &mut Vec::new()).unwrap() {
            Read::Frame {
                consumed,
                event: Some(Event::Message(_, Payload::Borrowed(p))),
            } => (consumed, p.len()),
            other => panic!("expected one borrowed message, got {other:?}"),
        }
    }

    #[test]
    fn echo_in_place_equals_a_sent_echo() {
        // Every length encoding (§5.2: 7-bit, 16-bit, 64-bit) and its edges.
        for len in [0usize, 1, 125, 126, 1000, 65535, 65536, 70000] {
            for kind in [MessageKind::Text, MessageKind::Binary] {
                let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                let mut frame = client_frame(kind, &payload);
                let mut server = WebSocket::server(ReadLimits::default());
                let (consumed, payload_len) = read_one(&mut server, &mut frame);
                assert_eq!(consumed, frame.len());
                let start = server.echo_in_place(&mut frame, kind, payload_len).unwrap();
                let mut sent = Vec::new();
                WebSocket::server(ReadLimits::default()).send(kind, &payload, &mut sent);
                assert_eq!(&frame[start..], &sent[..], "len {len} {kind:?}");
            }
        }
    }

    #[test]
    fn echo_in_place_declines_when_send_would_differ() {
        let payload = vec![7u8; 300];
        // After our close no data may go out (§5.5.1).
        let mut frame = client_frame(MessageKind::Binary, &payload);
        let mut server = WebSocket::server(ReadLimits::default());
        let (_, n) = read_one(&mut server, &mut frame);
        server.close(CloseCode::NORMAL, "", &mut Vec::new());
        assert_eq!(server.echo_in_place(&mut frame, MessageKind::Binary, n), None);
        // A message at or over the compression threshold is compressed.
        let params = DeflateParams::default();
        let mut frame = client_frame(MessageKind::Binary, &payload);
        let mut server = WebSocket::server(ReadLimits::default()).with_deflate(&params, 256);
        let (_, n) = read_one(&mut server, &mut frame);
        assert_eq!(server.echo_in_place(&mut frame, MessageKind::Binary, n), None);
        // Under the threshold it goes out as is.
        let mut frame = client_frame(MessageKind::Binary, &payload[..100]);
        let mut server = WebSocket::server(ReadLimits::default()).with_deflate(&params, 256);
        let (_, n) = read_one(&mut server, &mut frame);
        assert!(server.echo_in_place(&mut frame, MessageKind::Binary, n).is_some());
        // A client never echoes in place (its frames must be masked).
        let mut client = WebSocket::client(ReadLimits::default(), 1);
        let mut unmasked = Vec::new();
        WebSocket::server(ReadLimits::default()).send(MessageKind::Binary, &payload, &mut unmasked);
        let (_, n) = read_one(&mut client, &mut unmasked);
        assert_eq!(client.echo_in_place(&mut unmasked, MessageKind::Binary, n), None);
    }
}
