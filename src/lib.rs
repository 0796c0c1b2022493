//! wsreactor: an RFC 6455 WebSocket server on a hand-written mio reactor.
//!
//! ```text
//!  main.rs ── server ──► reactor::Builder (App, Broker) ──► N × Worker (thread)
//!                          │  mio::Poll, SO_REUSEPORT listener, Slab<Connection>, BufferPool, Inbox
//!                          ▼
//!           Connection = Transport (Tcp) + Session (sans-IO: Request ─► Body / Waiting / Open / Parked / Stream ─► Closing)
//!                                               │ app::Handler, app::HttpHandler (push::*, Echo, yours)   │ protocol::WebSocket
//!                                               │ Action::Submit ─► pubsub::Broker ─► Answer via the Inbox
//! ```
//!
//! An echoed message, plain TCP:
//!
//! ```text
//! socket ─Tcp::read─► ReadBuf (pooled, Session::receive_buffer) ─Session::handle_input─► State::Open
//!   ─WebSocket::read─► Event::Message(kind, Payload, unmasked in place) ─Handler::message─► Reply::Echo (Echo)
//!   ─WebSocket::echo_in_place (large: header rewritten in the same buffer) | WebSocket::send (small: copied)─►
//!   Output: Segment::Read (that buffer) | Segment::Owned ─Tcp::write (sendmsg)─► socket
//! ```
//!
//! A published message:
//!
//! ```text
//! POST /pub/c ─Session: Request ─App::http_route─► push::Publish::request: Next::ReadBody ─► Body ─► Publish::body:
//!   Next::Ask ─► Waiting ─► Action::Submit(Request::Publish) ─Worker─► Broker::submit
//!   LocalHub: channel c numbers it, keeps it in history ─► Arc<Message> (wire forms encoded once)
//!     ├─Inbox::push─► Mail.messages of each worker with subscribers of c (+ Waker)
//!     │    worker k ─Subscribers: c → slab keys─► Connection::deliver ─► Session::handle_delivery ─► Feed (Cursor, gap)
//!     │      ─► Output: Segment::Shared (Arc<[u8]>, one frame for every subscriber) ─sendmsg─► socket
//!     └─Inbox::answer_here─► Mail.answers: (Address, Answer::Published(Receipt)) ─generation checked─►
//!          Session::handle_answer ─► Publish::answer ─► 200 {"id":N,"subscribers":M}, back to Request
//! ```
//!
//! An application of your own implements [`app::Handler`] (WebSocket) or
//! [`app::HttpHandler`] and runs on [`reactor::Builder`] with an
//! [`app::App`], alone or beside the push server ([`push::standard`]), which
//! is itself an application on that API; `examples/chat.rs` is a chat room
//! in under a hundred lines, `examples/newsroom.rs` adds an HTTP route and a
//! WebSocket route to the standard server.
//!
//! - [`app`]: applications on the reactor: WebSocket and HTTP handlers by path, the echo.
//! - [`auth`]: private channels and the JWTs that open them.
//! - [`protocol`]: RFC 6455 without I/O: handshake, frames, masking, UTF-8, close codes, messages.
//! - [`reactor`]: the worker threads that accept and serve connections.
//! - [`pubsub`]: channels for the push server: ids, history, delivery to every worker.
//! - [`push`]: the push server, an application on [`app`]: publish, WebSocket,
//!   SSE and polls, CORS and subscriber tokens, `/metrics`, the demo page.
//! - [`load`]: the load generator (`wsreactor load`), a client reactor on the same protocol code.
//! - [`config`]: the TOML configuration, its defaults and validation.
//! - [`server`]: the composition root: configuration, then broker, workers
//!   and signals, in one place (`wsreactor serve` and [`server::serve`]).
//! - [`sys`]: process setup the server needs from the OS (descriptor limit).
//! - [`stats`]: the workers' counters and gauges, a leaf that the reactor
//!   writes and `/metrics` reads.
#![deny(missing_docs)]

pub mod app;
pub mod auth;
pub mod config;
pub mod load;
pub mod protocol;
pub mod pubsub;
pub mod push;
pub mod reactor;
pub mod server;
pub mod stats;
pub mod sys;

/// The README's Rust (its library in ten lines), compiled by `cargo test
/// --doc` so that it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
