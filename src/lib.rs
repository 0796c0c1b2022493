//! wsreactor: an RFC 6455 WebSocket server on a hand-written mio reactor.
//!
//! ```text
//!  main.rs ── config ──► reactor::serve ──► N × Worker (thread)
//!                                             │  mio::Poll, SO_REUSEPORT listener, Slab<Connection>, BufferPool
//!                                             ▼
//!                          Connection: Request ─► Open / Body / Poll / Sse ─► Closing
//!                                │ http::route     │ protocol::WebSocket (sans-IO)
//!                                                  │ pubsub::Broker: channels, history, per-worker inboxes
//! ```
//!
//! - [`app`]: applications on the reactor: WebSocket handlers by path, the built-in endpoints.
//! - [`protocol`]: RFC 6455 without I/O: handshake, frames, masking, UTF-8, close codes, messages.
//! - [`reactor`]: the worker threads that accept and serve connections.
//! - [`http`]: what each request target means, `/metrics`, the demo page.
//! - [`pubsub`]: channels for the push server: ids, history, delivery to every worker.
//! - [`load`]: the load generator (`wsreactor load`), a client reactor on the same protocol code.
//! - [`config`]: the TOML configuration, its defaults and validation.
//! - [`sys`]: process setup the server needs from the OS (descriptor limit).
//! - [`stats`]: the workers' counters and gauges, a leaf that the reactor
//!   writes and `/metrics` reads.
#![deny(missing_docs)]

pub mod app;
pub mod config;
pub mod http;
pub mod load;
pub mod protocol;
pub mod pubsub;
pub mod reactor;
pub mod stats;
pub mod sys;
