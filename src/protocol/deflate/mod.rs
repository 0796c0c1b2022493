//! permessage-deflate (RFC 7692), sans I/O.
//!
//! **Handshake** ([`negotiate`], RFC 7692 §5, §7.1): give it every
//! `Sec-WebSocket-Extensions` value of the upgrade request and the server's
//! [`DeflateConfig`]. `Some(params)` means compression is on: send
//! `Sec-WebSocket-Extensions: {params.response_header()}` in the 101. `None`
//! means the offers were declined and the connection goes on uncompressed;
//! nothing in RFC 7692 makes a server fail the handshake.
//!
//! 8-bit windows: zlib cannot produce a raw DEFLATE stream with an 8-bit
//! window, so a client's `server_max_window_bits=8` is declined (§7.1.2.1
//! allows it; answering 9 would break "the same or smaller value"), and the
//! config's `server_max_window_bits` is clamped to 9..=15.

mod negotiate;

pub use negotiate::{
    negotiate, DeflateConfig, DeflateParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_SERVER_WINDOW_BITS, MIN_WINDOW_BITS,
};
