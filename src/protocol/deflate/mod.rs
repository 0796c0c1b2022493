//! permessage-deflate (RFC 7692), sans I/O: the negotiation and the codec.
//!
//! Two steps, both free of sockets and clocks:
//!
//! 1. **Handshake** ([`negotiate`], RFC 7692 §5, §7.1): give it every
//!    `Sec-WebSocket-Extensions` value of the upgrade request and the
//!    server's [`DeflateConfig`]. `Some(params)` means compression is on:
//!    send `Sec-WebSocket-Extensions: {params.response_header()}` in the 101.
//!    `None` means the offers were declined and the connection goes on
//!    uncompressed; nothing in RFC 7692 makes a server fail the handshake.
//! 2. **Messages** ([`PerMessageDeflate`], §7.2): built from the params and
//!    the [`Role`](super::Role). It works on whole messages, not frames:
//!    - sending: if `payload.len() >= config.min_size`, [`PerMessageDeflate::compress`]
//!      the payload and send the result with RSV1 set on the first frame;
//!      otherwise send it as is with RSV1 clear;
//!    - receiving: a message whose first frame has RSV1 set (RSV1 on a
//!      continuation or control frame is a protocol error, §6.1) is
//!      decompressed with [`PerMessageDeflate::decompress`] once complete,
//!      or frame by frame with [`PerMessageDeflate::decompress_part`]. UTF-8
//!      is checked on the decompressed text. Map [`DeflateError::TooLarge`]
//!      to close code 1009 and [`DeflateError::Corrupt`] to 1007 (RFC 7692
//!      §8 just says to fail the connection).
//!
//! ```
//! use wsreactor::protocol::deflate::{negotiate, DeflateConfig, PerMessageDeflate};
//! use wsreactor::protocol::Role;
//!
//! let offer = "permessage-deflate; client_max_window_bits";
//! let params = negotiate(&[offer], &DeflateConfig::default()).expect("accepted");
//! assert_eq!(params.response_header(), "permessage-deflate");
//!
//! let mut server = PerMessageDeflate::new(&params, Role::Server);
//! let mut client = PerMessageDeflate::new(&params, Role::Client);
//! let (mut wire, mut text) = (Vec::new(), Vec::new());
//! server.compress(b"Hello", &mut wire);
//! assert_eq!(wire, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]); // §7.2.3.1
//! client.decompress(&wire, &mut text, 1 << 20).unwrap();
//! assert_eq!(text, b"Hello");
//! ```
//!
//! # Memory
//!
//! Idle connections must stay cheap, so each direction allocates its zlib
//! state on the first message that needs it, and, when that direction has
//! no context takeover (`server_no_context_takeover` for what a server
//! sends, `client_no_context_takeover` for what it receives), drops it again
//! after every message. With context takeover the state must live as long as
//! the connection, since the next message may refer back into the window:
//! better ratio for repetitive traffic, at the price of the figures below
//! for every connection that has sent or received one compressed message.
//! [`PerMessageDeflate::holds_state`] says whether anything is held.
//!
//! Heap held once used, with context takeover (zlib-rs 0.6 through flate2,
//! level 6; printed by `cargo test --release --test deflate_memory -- --nocapture`):
//!
//! | window bits | compressor | decompressor |
//! |---|---|---|
//! | 15 | 371 KiB | 47 KiB |
//! | 14 | 307 KiB | 47 KiB |
//! | 13 | 275 KiB | 47 KiB |
//! | 12 | 259 KiB | 47 KiB |
//! | 11 | 251 KiB | 47 KiB |
//! | 10 | 247 KiB | 47 KiB |
//! | 9  | 245 KiB | 47 KiB |
//!
//! Without context takeover both are 0 between messages (the same figures
//! are allocated and freed around each one), and a [`PerMessageDeflate`]
//! itself is 40 bytes. The compressor's floor is zlib-rs's fixed 128 KiB
//! hash table plus its 112 KiB of symbol and pending buffers (memLevel 8,
//! which flate2 offers no way to lower); the decompressor always allocates
//! a 32 KiB window, whatever the window bits. So the cheap setting is no
//! context takeover, not a small window, and a smaller
//! `client_max_window_bits` saves the server nothing.
//!
//! # Choices
//!
//! - **8-bit windows.** zlib cannot produce a raw DEFLATE stream with an
//!   8-bit window (it quietly used 9, then started refusing). A client's
//!   `server_max_window_bits=8` is therefore declined (§7.1.2.1 allows it;
//!   answering 9 would break "the same or smaller value"), and the config's
//!   `server_max_window_bits` is clamped to 9..=15. Our decompressor reads
//!   a peer's 8-bit stream with a 9-bit window, which is always safe.
//! - **A client that does not offer `client_max_window_bits`** may use 15
//!   bits and we cannot say otherwise (§7.1.2.2): we accept it anyway rather
//!   than decline, since the decompressor costs the same either way.
//! - **Empty messages** compress to the single byte `00` (§7.2.3.6), written
//!   without touching (or allocating) the compressor. An empty compressed
//!   payload, which no correct sender writes, is read as an empty message
//!   instead of feeding zlib a lone tail.
//! - **A final block** (BFINAL, §7.2.3.4) ends zlib's stream; what follows it
//!   starts a fresh one. A peer that then refers back past it is reported
//!   as [`DeflateError::Corrupt`], never silently misread.
//! - **Fan-out.** With `server_no_context_takeover` a compressed message does
//!   not depend on the connection, so it can be compressed once and its
//!   bytes shared among subscribers whose `server_max_window_bits` is at
//!   least the one it was compressed with.

mod codec;
mod negotiate;

pub use codec::{DeflateError, Deflater, Inflater, PerMessageDeflate, TAIL};
pub use negotiate::{
    negotiate, DeflateConfig, DeflateParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_SERVER_WINDOW_BITS, MIN_WINDOW_BITS,
};
