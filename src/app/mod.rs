//! Applications on the reactor: what a WebSocket connection does once it
//! is routed, supplied by the application (uWebSockets' behaviours and
//! ws-rs's `Handler` are the models).
//!
//! An [`App`] maps request paths to [`Handler`]s and says which built-in
//! HTTP routes it serves. A handler accepts or refuses an upgrade
//! ([`Handler::open`], choosing a subprotocol, the connection's data, of
//! the handler's own [`Handler::Data`] type, and optionally a topic to
//! subscribe to, from a cursor), then hears of each [`Message`], of output
//! draining and of the close. It talks back through the [`Conn`] it is
//! lent (its data, send, publish to a topic, close), and any thread can
//! reach a connection or a topic through a [`Sender`].
//!
//! The server's own endpoints are built-in handlers on this same API:
//! [`Echo`] (`/`) and [`Subscriber`] (`/ws/{channel}`); the push server's
//! HTTP transports (publish, long poll, SSE), `/healthz`, `/metrics` and the
//! demo page are routes of the session that an [`App`] switches on.

mod builtin;
mod erased;
mod sender;
mod websocket;

pub use builtin::{Echo, Subscriber, JSON_PROTOCOL};
pub(crate) use erased::{AnyHandler, Link, UserData};
pub use sender::Sender;
pub use websocket::{Accept, Conn, ConnId, Handler, Message, Refusal, Reply, Upgrade};

use std::fmt;
use std::sync::Arc;

/// What the server runs: WebSocket handlers by path, and which built-in
/// HTTP routes it serves.
#[derive(Clone, Default)]
pub struct App {
    handlers: Vec<(Box<str>, Arc<dyn AnyHandler>)>,
    pub(crate) push: bool,
    pub(crate) pages: bool,
}

impl App {
    /// Nothing: every request is 404 until routes are added.
    pub fn new() -> Self {
        App::default()
    }

    /// What `wsreactor serve` runs: the echo at `/`, the push server
    /// (`/ws/`, `/pub/`, `/poll/`, `/sse/`), `/healthz`, `/metrics` and the
    /// demo page.
    pub fn standard() -> Self {
        App::new().websocket("/", Echo).push_server().pages()
    }

    /// Upgrades at `path` go to `handler`; a path ending in `/` is a
    /// prefix (`/chat/` takes `/chat/lobby`). The first match wins.
    pub fn websocket(mut self, path: &str, handler: impl Handler) -> Self {
        self.handlers.push((path.into(), Arc::new(handler)));
        self
    }

    /// The push server: WebSocket subscribers at `/ws/{channel}`
    /// ([`Subscriber`]), and publishing, long polling and Server-Sent
    /// Events over HTTP.
    pub fn push_server(mut self) -> Self {
        self.push = true;
        self.websocket("/ws/", Subscriber)
    }

    /// `/healthz`, `/metrics`, and the demo page at `GET /`.
    pub fn pages(mut self) -> Self {
        self.pages = true;
        self
    }

    /// The handler for an upgrade at `path`, by index.
    pub(crate) fn route(&self, path: &str) -> Option<u16> {
        let i = self.handlers.iter().position(|(p, _)| match p.strip_suffix('/') {
            Some(_) if p.len() > 1 => path.starts_with(&**p) && path.len() > p.len(),
            _ => path == &**p,
        })?;
        u16::try_from(i).ok()
    }

    /// What follows handler `i`'s prefix in `path` (a path [`route`](Self::route)
    /// gave it); empty for an exact route.
    pub(crate) fn rest<'p>(&self, i: u16, path: &'p str) -> &'p str {
        let prefix = &*self.handlers[usize::from(i)].0;
        match prefix.strip_suffix('/') {
            Some(_) if prefix.len() > 1 => path.get(prefix.len()..).unwrap_or_default(),
            _ => "",
        }
    }

    /// Handler `i` (from [`route`](Self::route)).
    pub(crate) fn handler(&self, i: u16) -> &dyn AnyHandler {
        &*self.handlers[usize::from(i)].1
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<&str> = self.handlers.iter().map(|(p, _)| &**p).collect();
        f.debug_struct("App")
            .field("websocket", &paths)
            .field("push", &self.push)
            .field("pages", &self.pages)
            .finish()
    }
}
