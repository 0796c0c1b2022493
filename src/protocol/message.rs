//! Message assembly: frames in, messages and control frames out (RFC 6455 §5.4-§5.6).
//!
//! [`MessageReader`] parses frames in place from the front of a caller-owned
//! buffer. A message that fits in one frame is handed out as a slice of that
//! buffer with no copy; only a fragmented message is assembled into a `Vec`,
//! held only while the message is in progress. Control frames may arrive
//! between fragments (§5.4) and are handed out at once.
//!
//! Everything is checked as early as the bytes allow: sequencing and size
//! limits from the header alone, and UTF-8 of a text frame on each partial
//! read, so a bad client is failed before its whole message is buffered.

use super::close::CloseFrame;
use super::deflate::{DeflateError, Inflater};
use super::error::ProtocolError;
use super::frame::{FrameHeader, OpCode, RSV1};
use super::mask::apply_mask_offset;
use super::utf8::Utf8Validator;
use std::ops::Deref;

/// Which end of the connection this is: servers require masked frames,
/// clients require unmasked ones (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts masked frames, sends unmasked ones.
    Server,
    /// Accepts unmasked frames, sends masked ones.
    Client,
}

/// Size caps for incoming data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest accepted frame payload.
    pub max_frame_size: usize,
    /// Largest accepted message, summed over its fragments.
    pub max_message_size: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
        }
    }
}

/// Data message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text (opcode 1).
    Text,
    /// Binary data (opcode 2).
    Binary,
}

impl MessageKind {
    /// The opcode of the first frame of such a message.
    pub fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// A complete message's payload: borrowed from the read buffer when the
/// message was one frame, owned when it was assembled from fragments.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Unmasked in place in the caller's buffer.
    Borrowed(&'a [u8]),
    /// Assembled from several frames.
    Owned(Vec<u8>),
}

impl Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }
}

/// Something the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete data message (text already validated as UTF-8).
    Message(MessageKind, Payload<'a>),
    /// A ping; its payload must be echoed in a pong (§5.5.2).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame, already validated (§5.5.1).
    Close(CloseFrame<'a>),
}

/// The result of one [`MessageReader::read`].
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// The buffer does not hold a whole frame yet. `frame_len`, once the
    /// header is known, is the whole frame's size (header and payload), so
    /// the caller can make room for it.
    Incomplete {
        /// Header plus payload length of the frame in progress, if known.
        frame_len: Option<usize>,
    },
    /// One frame was consumed from the front of the buffer.
    Frame {
        /// Bytes to drop from the front of the buffer.
        consumed: usize,
        /// What it completed, if anything (a non-final fragment completes nothing).
        event: Option<Event<'a>>,
    },
}

/// A fragmented or compressed message in progress.
#[derive(Debug)]
struct Assembly {
    kind: MessageKind,
    /// RSV1 was set on the first frame (RFC 7692 §6.1): `payload` holds
    /// the inflated bytes so far.
    compressed: bool,
    payload: Vec<u8>,
}

/// Incoming half of a WebSocket endpoint: parses frames, enforces the
/// framing rules and limits, and assembles messages.
#[derive(Debug)]
pub struct MessageReader {
    role: Role,
    /// RSV bits a negotiated extension gives meaning to (none without one).
    allowed_rsv: u8,
    /// UTF-8 state of the text message in progress (fragmented or not).
    utf8: Utf8Validator,
    /// [`ReadLimits::max_frame_size`] and [`ReadLimits::max_message_size`],
    /// at most `u32::MAX`: every endpoint holds them, and no buffer of
    /// ours reaches 4 GiB (its offsets are `u32`).
    max_frame_size: u32,
    max_message_size: u32,
    /// Payload bytes of the data frame at the front of the buffer already
    /// unmasked and validated by an earlier call that returned `Incomplete`
    /// (below `max_frame_size`).
    progress: u32,
    /// A fragmented message in progress and the inflater, when there are
    /// any: both are rare, in one allocation, so that an idle endpoint
    /// pays one pointer for them (its state fits 88 bytes with the rest).
    rare: Option<Box<Rare>>,
}

/// What a [`MessageReader`] seldom holds.
#[derive(Debug, Default)]
struct Rare {
    assembly: Option<Assembly>,
    /// permessage-deflate, when negotiated (RFC 7692).
    inflater: Option<Inflater>,
}

/// `n`, or `u32::MAX` if it is more.
fn at_most_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl MessageReader {
    /// A reader for the given role and limits.
    pub fn new(role: Role, limits: ReadLimits) -> Self {
        MessageReader {
            role,
            allowed_rsv: 0,
            utf8: Utf8Validator::new(),
            max_frame_size: at_most_u32(limits.max_frame_size),
            max_message_size: at_most_u32(limits.max_message_size),
            progress: 0,
            rare: None,
        }
    }

    /// The fragmented message in progress, if any.
    fn assembly(&self) -> Option<&Assembly> {
        self.rare.as_ref().and_then(|r| r.assembly.as_ref())
    }

    /// Take the fragmented message in progress out, if any.
    fn take_assembly(&mut self) -> Option<Assembly> {
        let rare = self.rare.as_mut()?;
        let assembly = rare.assembly.take();
        if rare.inflater.is_none() {
            self.rare = None;
        }
        assembly
    }

    /// Keep `assembly` for the next frame of its message.
    fn keep_assembly(&mut self, assembly: Assembly) {
        self.rare.get_or_insert_with(Box::default).assembly = Some(assembly);
    }

    /// Accept compressed messages (RSV1 on a first frame) and inflate them
    /// with `inflater` (RFC 7692 §6).
    pub fn with_inflater(mut self, inflater: Inflater) -> Self {
        self.allowed_rsv = RSV1;
        self.rare.get_or_insert_with(Box::default).inflater = Some(inflater);
        self
    }

    /// Does the decompressor hold zlib state right now?
    pub fn holds_inflate_state(&self) -> bool {
        self.rare
            .as_ref()
            .and_then(|r| r.inflater.as_ref())
            .is_some_and(|i| i.holds_state())
    }

    /// The size caps in force.
    pub fn limits(&self) -> ReadLimits {
        ReadLimits {
            max_frame_size: self.max_frame_size as usize,
            max_message_size: self.max_message_size as usize,
        }
    }

    /// Is a fragmented message being assembled?
    pub fn in_message(&self) -> bool {
        self.assembly().is_some()
    }

    /// Parse the frame at the front of `buf`, unmasking it in place.
    ///
    /// Between a call that returns `Incomplete` and the next one, the caller
    /// may append to the buffer but must pass it starting at the same byte:
    /// the part of the frame already unmasked is remembered.
    pub fn read<'a>(&mut self, buf: &'a mut [u8]) -> Result<Read<'a>, ProtocolError> {
        let Some((header, header_len)) = FrameHeader::decode(buf)? else {
            return Ok(Read::Incomplete { frame_len: None });
        };
        self.check_header(&header)?;
        // check_header bounded payload_len by max_frame_size, a usize.
        let payload_len = header.payload_len as usize;
        let frame_len = header_len + payload_len;
        let key = header.mask.unwrap_or([0; 4]);
        let available = (buf.len() - header_len).min(payload_len);

        if !header.opcode.is_control() {
            // Unmask and validate what has arrived so far (fail fast, §8.1).
            let start = self.progress as usize;
            let fresh = &mut buf[header_len + start..header_len + available];
            if header.mask.is_some() {
                apply_mask_offset(fresh, key, start);
            }
            // Compressed text is validated once inflated.
            if self.current_kind(header.opcode) == MessageKind::Text && !self.is_compressed(&header) {
                self.utf8.feed(fresh).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            // Below payload_len, itself at most max_frame_size.
            self.progress = available as u32;
        }
        if available < payload_len {
            return Ok(Read::Incomplete {
                frame_len: Some(frame_len),
            });
        }
        self.progress = 0;
        let payload = &mut buf[header_len..frame_len];
        let event = if header.opcode.is_control() {
            if header.mask.is_some() {
                apply_mask_offset(payload, key, 0);
            }
            Some(control_event(header.opcode, payload)?)
        } else {
            self.data_frame(&header, payload)?
        };
        Ok(Read::Frame {
            consumed: frame_len,
            event,
        })
    }

    /// Rules decidable from the header alone.
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // §5.2: RSV bits MUST be 0 unless an extension defines them; RFC 7692
        // uses RSV1 on the first frame of a message only.
        let first_data_frame = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv & !self.allowed_rsv != 0 || (header.rsv != 0 && !first_data_frame) {
            return Err(ProtocolError::ReservedBits);
        }
        // §5.1: clients MUST mask, servers MUST NOT.
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > u64::from(self.max_frame_size) {
            return Err(ProtocolError::FrameTooLarge);
        }
        // §5.4: fragments of one message are not interleaved with another.
        let so_far = match (header.opcode, self.assembly()) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (OpCode::Continuation, Some(a)) => a.payload.len() as u64,
            _ => 0,
        };
        // Compressed frames are bounded by the inflated size instead (data_frame).
        if !header.opcode.is_control()
            && !self.is_compressed(header)
            && so_far + header.payload_len > u64::from(self.max_message_size)
        {
            return Err(ProtocolError::MessageTooLarge);
        }
        Ok(())
    }

    /// The kind of message a data frame with this opcode belongs to.
    fn current_kind(&self, opcode: OpCode) -> MessageKind {
        match (opcode, self.assembly()) {
            (OpCode::Text, _) => MessageKind::Text,
            (OpCode::Continuation, Some(a)) => a.kind,
            _ => MessageKind::Binary,
        }
    }

    /// Does this data frame belong to a compressed message?
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        match self.assembly() {
            Some(a) if header.opcode == OpCode::Continuation => a.compressed,
            _ => header.rsv & RSV1 != 0,
        }
    }

    /// A complete, unmasked, validated data frame.
    fn data_frame<'a>(&mut self, header: &FrameHeader, payload: &'a [u8]) -> Result<Option<Event<'a>>, ProtocolError> {
        let kind = self.current_kind(header.opcode);
        if self.is_compressed(header) {
            return self.compressed_frame(kind, header.fin, payload);
        }
        match (header.fin, self.take_assembly()) {
            // A whole message in one frame: hand out the slice, no copy.
            (true, None) => {
                self.finish_text(kind)?;
                Ok(Some(Event::Message(kind, Payload::Borrowed(payload))))
            }
            // First fragment (§5.4).
            (false, None) => {
                self.keep_assembly(Assembly {
                    kind,
                    compressed: false,
                    payload: payload.to_vec(),
                });
                Ok(None)
            }
            (fin, Some(mut assembly)) => {
                assembly.payload.extend_from_slice(payload);
                if fin {
                    self.finish_text(kind)?;
                    Ok(Some(Event::Message(kind, Payload::Owned(assembly.payload))))
                } else {
                    self.keep_assembly(assembly);
                    Ok(None)
                }
            }
        }
    }

    /// A frame of a compressed message: inflate it at once, so the size
    /// limit (decompression bombs) and UTF-8 are checked frame by frame.
    fn compressed_frame<'a>(
        &mut self,
        kind: MessageKind,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<Event<'a>>, ProtocolError> {
        // RSV1 is only accepted when an inflater was configured.
        let rare = self.rare.as_mut().ok_or(ProtocolError::ReservedBits)?;
        let inflater = rare.inflater.as_mut().ok_or(ProtocolError::ReservedBits)?;
        let mut assembly = rare.assembly.take().unwrap_or(Assembly {
            kind,
            compressed: true,
            payload: Vec::new(),
        });
        let before = assembly.payload.len();
        inflater
            .decompress_part(payload, fin, &mut assembly.payload, self.max_message_size as usize)
            .map_err(|e| match e {
                DeflateError::TooLarge => ProtocolError::MessageTooLarge,
                DeflateError::Corrupt => ProtocolError::BadCompression,
            })?;
        if kind == MessageKind::Text {
            self.utf8
                .feed(&assembly.payload[before..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if !fin {
            rare.assembly = Some(assembly);
            return Ok(None);
        }
        self.finish_text(kind)?;
        Ok(Some(Event::Message(kind, Payload::Owned(assembly.payload))))
    }

    fn finish_text(&mut self, kind: MessageKind) -> Result<(), ProtocolError> {
        if kind == MessageKind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }
}

fn control_event(opcode: OpCode, payload: &[u8]) -> Result<Event<'_>, ProtocolError> {
    Ok(match opcode {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        OpCode::Close => Event::Close(CloseFrame::parse(payload)?),
        OpCode::Continuation | OpCode::Text | OpCode::Binary => {
            unreachable!("not a control opcode")
        }
    })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
