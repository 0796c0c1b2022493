//! The WebSocket protocol, sans I/O (RFC 6455).
//!
//! Nothing here touches a socket or a clock: bytes go in, events and bytes to
//! send come out. The server's reactor and the load generator both drive it,
//! and the tests drive it with byte slices cut at arbitrary points.
//!
//! - [`http`]: the HTTP/1.1 request head (found incrementally, parsed by httparse) and responses.
//! - [`handshake`]: the opening handshake, server and client (§4).
//! - [`frame`]: frame headers (§5.2).
//! - [`mask`]: payload masking (§5.3), a word at a time.
//! - [`utf8`]: incremental UTF-8 validation (§8.1).
//! - [`close`]: close codes and payloads (§5.5.1, §7.4).
//! - [`deflate`]: permessage-deflate (RFC 7692): negotiation and per-message compression.
//! - [`message`]: frames to messages: fragmentation, limits, interleaved control frames (§5.4).
//! - [`websocket`]: an endpoint: automatic pong, close handshake per direction (§5.5, §7).
//! - [`error`]: protocol violations and their one mapping to close codes.

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod message;
pub mod utf8;
pub mod websocket;

pub use close::{CloseCode, CloseFrame};
pub use error::ProtocolError;
pub use frame::{FrameHeader, OpCode};
pub use message::{Event, MessageKind, Payload, Read, ReadLimits, Role};
pub use websocket::WebSocket;
