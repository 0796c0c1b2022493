//! Compressing and decompressing messages (RFC 7692 §7.2).
//!
//! A [`Deflater`] and an [`Inflater`] each own one direction's raw DEFLATE
//! stream. The zlib state is allocated on the first message that needs it,
//! and dropped after every message when that direction has no context
//! takeover, so an idle connection holds only a few words per direction.

use super::negotiate::{DeflateParams, MAX_WINDOW_BITS, MIN_SERVER_WINDOW_BITS};
use crate::protocol::message::Role;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::fmt;

/// The empty stored block a sync flush ends with: stripped by the sender
/// (§7.2.1), appended by the receiver (§7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's default level: a fair middle between ratio and speed for text.
const LEVEL: Compression = Compression::new(6);

/// The first output chunk when inflating: most messages fit.
const MIN_CHUNK: usize = 4096;

/// Why a compressed message cannot be read. Either way the connection is
/// failed: RFC 7692 §8 for corrupt data, RFC 6455 §10.4 (1009) for size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeflateError {
    /// The message inflates to more than the allowed size; inflating stopped there.
    TooLarge,
    /// Not a valid DEFLATE stream, or data after a final block.
    Corrupt,
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeflateError::TooLarge => f.write_str("decompressed message too large"),
            DeflateError::Corrupt => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for DeflateError {}

/// Both directions of one connection's permessage-deflate.
#[derive(Debug)]
pub struct PerMessageDeflate {
    /// Compresses what we send.
    pub deflater: Deflater,
    /// Decompresses what we receive.
    pub inflater: Inflater,
}

impl PerMessageDeflate {
    /// The codec for one end: a server compresses with the `server_*`
    /// parameters and decompresses with the `client_*` ones; a client the other way.
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        let server = (params.server_window_bits(), params.server_no_context_takeover);
        let client = (params.client_window_bits(), params.client_no_context_takeover);
        let (ours, theirs) = match role {
            Role::Server => (server, client),
            Role::Client => (client, server),
        };
        PerMessageDeflate {
            deflater: Deflater::new(ours.0, ours.1),
            inflater: Inflater::new(theirs.0, theirs.1),
        }
    }

    /// See [`Deflater::compress`].
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.deflater.compress(payload, out)
    }

    /// See [`Inflater::decompress`].
    pub fn decompress(&mut self, compressed: &[u8], out: &mut Vec<u8>, max_size: usize) -> Result<(), DeflateError> {
        self.inflater.decompress(compressed, out, max_size)
    }

    /// See [`Inflater::decompress_part`].
    pub fn decompress_part(
        &mut self,
        part: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), DeflateError> {
        self.inflater.decompress_part(part, fin, out, max_size)
    }

    /// Whether either direction holds zlib state (memory) right now.
    pub fn holds_state(&self) -> bool {
        self.deflater.holds_state() || self.inflater.holds_state()
    }
}

/// The sending direction.
pub struct Deflater {
    window_bits: u8,
    no_context_takeover: bool,
    /// Boxed so that an idle connection pays one pointer, not zlib's stream struct.
    state: Option<Box<Compress>>,
}

impl Deflater {
    /// A compressor with a `2^window_bits` byte window, allocated on first use.
    /// zlib cannot write a raw stream with an 8-bit window, so 8 is raised to
    /// 9: never agree to 8 for our own compressor ([`super::negotiate`] does not).
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Deflater {
            window_bits: window_bits.clamp(MIN_SERVER_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
            state: None,
        }
    }

    /// Compress one whole message and append it to `out`: sync flush, then
    /// the trailing `00 00 ff ff` removed (§7.2.1). Everything appended must
    /// be sent (with RSV1 on the first frame): with context takeover the
    /// peer's window has to see what ours saw, so deciding afterwards to
    /// send the message uncompressed would desynchronise the two.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if payload.is_empty() {
            // §7.2.3.6: an empty stored block, whose header byte is all that
            // is left once the tail is removed. Written by hand: zlib would
            // answer a second flush in a row with nothing, and the stream's
            // bit position is byte-aligned after every message anyway.
            out.push(0x00);
            return;
        }
        let bits = self.window_bits;
        let c = self
            .state
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(LEVEL, false, bits)));
        let start = out.len();
        let mut input = payload;
        out.reserve(payload.len() / 2 + 64);
        loop {
            let before = c.total_in();
            // Only misuse of the stream (a flush after Finish) makes zlib fail here.
            let status = c
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("deflate with a sync flush");
            input = &input[(c.total_in() - before) as usize..];
            // zlib's rule: done once the input is gone and the output was not
            // filled; a full output may hide more of the flush.
            if input.is_empty() && (out.len() < out.capacity() || status == Status::BufError) {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        debug_assert!(out[start..].ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
        if self.no_context_takeover {
            self.state = None;
        }
    }

    /// Whether the zlib state is allocated.
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("holds_state", &self.holds_state())
            .finish()
    }
}

/// The receiving direction.
pub struct Inflater {
    window_bits: u8,
    no_context_takeover: bool,
    state: Option<Box<Decompress>>,
    /// Bytes the current message has inflated to so far.
    produced: usize,
    /// A part of the current message has been fed.
    in_message: bool,
    /// The last input ended a final block (§7.2.3.4) and zlib's stream was restarted.
    after_final: bool,
}

impl Inflater {
    /// A decompressor for a peer that uses at most a `2^window_bits` byte
    /// window, allocated on first use. Inflating with a larger window is
    /// always safe, so 8 becomes 9 (the smallest zlib takes for a raw stream).
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Inflater {
            window_bits: window_bits.clamp(MIN_SERVER_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
            state: None,
            produced: 0,
            in_message: false,
            after_final: false,
        }
    }

    /// Decompress one whole message (its frames' payloads concatenated),
    /// appending it to `out` (§7.2.2). Stops with [`DeflateError::TooLarge`]
    /// as soon as the message would inflate past `max_size` bytes, having
    /// inflated at most `max_size + 1` of them, so `out` grows by at most that.
    pub fn decompress(&mut self, compressed: &[u8], out: &mut Vec<u8>, max_size: usize) -> Result<(), DeflateError> {
        self.decompress_part(compressed, true, out, max_size)
    }

    /// Decompress a message frame by frame: call with each frame's payload,
    /// `fin` on the last. `max_size` bounds the whole message, so a bomb is
    /// caught on the frame where it goes off. After an error the stream is
    /// unusable and the connection must be failed.
    pub fn decompress_part(
        &mut self,
        part: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), DeflateError> {
        if part.is_empty() && fin && !self.in_message {
            // No correct compressor writes nothing (an empty message is one
            // 0x00, §7.2.3.6); inflating just the tail would leave the stream
            // inside a stored block header, so it is read as an empty message.
            return Ok(());
        }
        self.in_message = true;
        let mut result = self.feed(part, false, out, max_size);
        if fin && result.is_ok() {
            result = self.feed(&TAIL, true, out, max_size);
        }
        if fin || result.is_err() {
            self.produced = 0;
            self.in_message = false;
            self.after_final = false;
            if self.no_context_takeover || result.is_err() {
                self.state = None;
            }
        }
        result
    }

    /// Inflate `input` in chunks no larger than what `max_size` still allows.
    fn feed(
        &mut self,
        mut input: &[u8],
        is_tail: bool,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), DeflateError> {
        if input.is_empty() || (is_tail && self.after_final) {
            // The tail completes a sync flush; after a final block there is none to complete.
            return Ok(());
        }
        self.after_final = false;
        let bits = self.window_bits;
        let d = self
            .state
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        loop {
            // One byte past the limit tells "exactly max_size" from "more".
            let budget = (max_size - self.produced).saturating_add(1);
            let room = self
                .produced
                .max(input.len().saturating_mul(4))
                .max(MIN_CHUNK)
                .min(budget);
            let len = out.len();
            out.reserve_exact(room);
            out.resize(len + room, 0);
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d.decompress(input, &mut out[len..], FlushDecompress::Sync);
            let consumed = (d.total_in() - in_before) as usize;
            let written = (d.total_out() - out_before) as usize;
            out.truncate(len + written);
            let status = status.map_err(|_| DeflateError::Corrupt)?;
            input = &input[consumed..];
            self.produced += written;
            if self.produced > max_size {
                return Err(DeflateError::TooLarge);
            }
            match status {
                Status::StreamEnd => {
                    // §7.2.3.4: the peer flushed with BFINAL set. zlib's stream
                    // is over; whatever follows (in the RFC's example an empty
                    // stored block) starts a new one, with an empty window.
                    d.reset(false);
                    if input.is_empty() || is_tail {
                        self.after_final = true;
                        return Ok(());
                    }
                }
                _ if input.is_empty() && written < room => return Ok(()),
                // No progress with input left and room to write: it would never end.
                _ if consumed == 0 && written == 0 => return Err(DeflateError::Corrupt),
                _ => {}
            }
        }
    }

    /// Whether the zlib state is allocated.
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("holds_state", &self.holds_state())
            .field("produced", &self.produced)
            .finish()
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
