//! Applications on the reactor: what a connection does once it is routed,
//! supplied by the application (uWebSockets' `App` and behaviours, ws-rs's
//! `Handler` are the models).
//!
//! An [`App`] maps request paths to WebSocket [`Handler`]s and to
//! [`HttpHandler`]s. A WebSocket handler accepts or refuses an upgrade
//! ([`Handler::open`], choosing a subprotocol, the connection's data, of
//! the handler's own [`Handler::Data`] type, and optionally a topic to
//! subscribe to, from a cursor), then hears of each [`Message`], of output
//! draining and of the close. It talks back through the [`Conn`] it is
//! lent (its data, send, publish to a topic, close), and any thread can
//! reach a connection or a topic through a [`Sender`]. An HTTP handler
//! answers a request in steps ([`Next`]): at once, after reading its body,
//! after the broker's answer, parked on a subscription, or as a stream.
//!
//! The server's own endpoints are applications on this same API: [`Echo`]
//! here, and the push server ([`crate::push`]), which uses nothing else.

mod echo;
mod erased;
mod http;
mod origin;
mod sender;
mod websocket;

pub use echo::Echo;
pub(crate) use erased::{AnyHandler, AnyHttpHandler, AnyNext, UserData};
pub use http::{Context, Delivery, HttpHandler, Next, Request, Response, ServerInfo, Wake};
pub(crate) use http::{HttpLink, Part};
pub use origin::Origin;
pub use sender::Sender;
pub(crate) use websocket::Link;
pub use websocket::{Accept, Conn, ConnId, Handler, Message, Refusal, Reply, Topic, TopicError, Upgrade};

use std::fmt;
use std::sync::Arc;

/// What the server runs: WebSocket and HTTP handlers by path.
///
/// A path ending in `/` is a prefix: `/chat/` takes `/chat/lobby` and
/// `/chat/` itself (the handler sees the rest, [`Upgrade::rest`]). The
/// first match wins. A path with both kinds of handler sends WebSocket
/// upgrades to the WebSocket one and every other request to the HTTP one.
#[derive(Clone, Default)]
pub struct App {
    websocket: Routes<dyn AnyHandler>,
    http: Routes<dyn AnyHttpHandler>,
}

/// Handlers by path, in the order they were added.
struct Routes<H: ?Sized>(Vec<(Box<str>, Arc<H>)>);

impl<H: ?Sized> Default for Routes<H> {
    fn default() -> Self {
        Routes(Vec::new())
    }
}

impl<H: ?Sized> Clone for Routes<H> {
    fn clone(&self) -> Self {
        Routes(self.0.clone())
    }
}

impl<H: ?Sized> Routes<H> {
    /// The first handler whose route takes `path`, by index.
    fn find(&self, path: &str) -> Option<u16> {
        let i = self.0.iter().position(|(route, _)| match route.strip_suffix('/') {
            Some(_) if route.len() > 1 => path.starts_with(&**route),
            _ => path == &**route,
        })?;
        u16::try_from(i).ok()
    }

    /// What follows route `i`'s prefix in `path` (a path [`find`](Self::find)
    /// gave it); empty for an exact route.
    fn rest<'p>(&self, i: u16, path: &'p str) -> &'p str {
        let route = &*self.0[usize::from(i)].0;
        match route.strip_suffix('/') {
            Some(_) if route.len() > 1 => path.get(route.len()..).unwrap_or_default(),
            _ => "",
        }
    }

    fn get(&self, i: u16) -> &H {
        &self.0[usize::from(i)].1
    }

    fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|(p, _)| &**p).collect()
    }
}

impl App {
    /// Nothing: every request is 404 until routes are added.
    pub fn new() -> Self {
        App::default()
    }

    /// Upgrades at `path` go to `handler`.
    pub fn websocket(mut self, path: &str, handler: impl Handler) -> Self {
        self.websocket.0.push((path.into(), Arc::new(handler)));
        self
    }

    /// Plain HTTP requests at `path` go to `handler`.
    pub fn http(mut self, path: &str, handler: impl HttpHandler) -> Self {
        self.http.0.push((path.into(), Arc::new(handler)));
        self
    }

    /// The WebSocket handler for `path`, by index.
    pub(crate) fn websocket_route(&self, path: &str) -> Option<u16> {
        self.websocket.find(path)
    }

    /// The HTTP handler for `path`, by index.
    pub(crate) fn http_route(&self, path: &str) -> Option<u16> {
        self.http.find(path)
    }

    /// What follows WebSocket handler `i`'s prefix in `path`.
    pub(crate) fn websocket_rest<'p>(&self, i: u16, path: &'p str) -> &'p str {
        self.websocket.rest(i, path)
    }

    /// What follows HTTP handler `i`'s prefix in `path`.
    pub(crate) fn http_rest<'p>(&self, i: u16, path: &'p str) -> &'p str {
        self.http.rest(i, path)
    }

    /// WebSocket handler `i`.
    pub(crate) fn handler(&self, i: u16) -> &dyn AnyHandler {
        self.websocket.get(i)
    }

    /// HTTP handler `i`.
    pub(crate) fn http_handler(&self, i: u16) -> &dyn AnyHttpHandler {
        self.http.get(i)
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("websocket", &self.websocket.paths())
            .field("http", &self.http.paths())
            .finish()
    }
}
