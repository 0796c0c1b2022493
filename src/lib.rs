//! wsreactor: an RFC 6455 WebSocket server on a hand-written mio reactor.
//!
//! ```text
//!  main.rs ── server ──► reactor::Builder (App, Broker) ──► N × Worker (thread)
//!                          │  mio::Poll, SO_REUSEPORT listener, Slab<Connection>, BufferPool, Inbox
//!                          ▼
//!           Connection = Transport (Tcp) + Session (sans-IO: Request ─► Body / Waiting / Open / Poll / Sse ─► Closing)
//!                                               │ app::Handler (Echo, Subscriber, yours)   │ protocol::WebSocket
//!                                               │ Action::Submit ─► pubsub::Broker ─► Answer via the Inbox
//! ```
//!
//! An echoed message, plain TCP:
//!
//! ```text
//! socket ─Tcp::read─► ReadBuf (pooled, Session::receive_buffer) ─Session::handle_input─► State::Open
//!   ─WebSocket::read─► Event::Message(kind, Payload, unmasked in place) ─Handler::message─► Reply::Echo (Echo)
//!   ─WebSocket::echo_in_place (large: header rewritten in the same buffer) | WebSocket::send (small: copied)─►
//!   Output: Segment::Read (that buffer) | Segment::Owned ─Tcp::write (writev)─► socket
//! ```
//!
//! A published message:
//!
//! ```text
//! POST /pub/c ─Session: Request ─► Body ─► Waiting─► Action::Submit(Request::Publish) ─Worker─► Broker::submit
//!   LocalHub: channel c numbers it, keeps it in history ─► Arc<Message> (wire forms encoded once)
//!     ├─Inbox::push─► Mail.messages of each worker with subscribers of c (+ Waker)
//!     │    worker k ─Subscribers: c → slab keys─► Connection::deliver ─► Session::handle_delivery ─► Feed (cursor, gap)
//!     │      ─► Output: Segment::Shared (Arc<[u8]>, one frame for every subscriber) ─writev─► socket
//!     └─Inbox::answer_here─► Mail.answers: (Address, Answer::Published(Receipt)) ─generation checked─►
//!          Session::handle_answer ─► 200 {"id":N,"subscribers":M}, back to Request
//! ```
//!
//! A WebSocket application of your own implements [`app::Handler`] and runs
//! on [`reactor::Builder`] with an [`app::App`]; `examples/chat.rs` is a
//! chat room in under a hundred lines.
//!
//! - [`app`]: applications on the reactor: WebSocket handlers by path, the built-in endpoints.
//! - [`auth`]: private channels and the JWTs that open them.
//! - [`protocol`]: RFC 6455 without I/O: handshake, frames, masking, UTF-8, close codes, messages.
//! - [`reactor`]: the worker threads that accept and serve connections.
//! - [`http`]: what each request target means, `/metrics`, the demo page.
//! - [`pubsub`]: channels for the push server: ids, history, delivery to every worker.
//! - [`load`]: the load generator (`wsreactor load`), a client reactor on the same protocol code.
//! - [`config`]: the TOML configuration, its defaults and validation.
//! - [`server`]: the composition root: configuration, then broker, workers
//!   and signals, in one place (`wsreactor serve` and [`reactor::serve`]).
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
