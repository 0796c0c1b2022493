//! Applications on the reactor: what a WebSocket connection does once it
//! is routed, supplied by the application (uWebSockets' behaviours and
//! ws-rs's `Handler` are the models).
//!
//! An [`App`] maps request paths to [`Handler`]s and says which built-in
//! HTTP routes it serves. A handler accepts or refuses an upgrade
//! ([`Handler::open`], choosing a subprotocol, per-connection user data and
//! optionally a topic to subscribe to), then hears of each message, of
//! output draining and of the close. It talks back through the [`Conn`] it
//! is lent (send, publish to a topic, close), and any thread can reach a
//! connection or a topic through a [`Sender`].
//!
//! The server's own endpoints are built-in handlers on this same API:
//! [`Echo`] (`/`) and [`Subscriber`] (`/ws/{channel}`); the push server's
//! HTTP transports (publish, long poll, SSE), `/healthz`, `/metrics` and the
//! demo page are routes of the session that an [`App`] switches on.

mod builtin;

pub use builtin::{Echo, Subscriber};

use crate::protocol::http::{RequestHead, Status};
use crate::protocol::{CloseCode, MessageKind};
use crate::pubsub::{Address, Command, Inbox, Request};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A connection's address, valid from any thread for as long as the
/// connection lives (a message sent to a gone one is dropped).
pub type ConnId = Address;

/// Per-connection user data, set when the handler accepts.
pub type UserData = Box<dyn Any + Send>;

/// A WebSocket application.
///
/// One value serves every connection of its route, on every worker thread
/// (hence `Sync`); state of one connection lives in its [`UserData`].
pub trait Handler: Send + Sync + 'static {
    /// A client asks for a WebSocket at `upgrade.path()` (RFC 6455 §4.2.1
    /// already checked): accept it, or refuse it with a status and why.
    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept, Refusal>;

    /// The connection is open (the 101 is queued): the first moment it can
    /// be sent to.
    fn opened(&self, conn: &mut dyn Conn) {
        let _ = conn;
    }

    /// A whole message arrived (text is valid UTF-8, RFC 6455 §8.1).
    fn message(&self, conn: &mut dyn Conn, kind: MessageKind, payload: &[u8]) -> Reply;

    /// Output that was over `write_buffer_limit` went out: there is room
    /// to send again.
    fn drain(&self, conn: &mut dyn Conn) {
        let _ = conn;
    }

    /// The connection is closing or gone: `code` is the peer's close code,
    /// if it sent one. Called once, and nothing can be sent any more.
    fn close(&self, conn: &mut dyn Conn, code: Option<CloseCode>) {
        let _ = (conn, code);
    }
}

/// What a handler does with a message besides what it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing more.
    Done,
    /// Send the same message back; a large one goes out of the buffer it
    /// arrived in, without a copy.
    Echo,
}

/// An upgrade request, as a handler sees it.
pub struct Upgrade<'a, 'h> {
    pub(crate) head: &'a RequestHead<'a, 'h>,
    pub(crate) protocols: &'a [&'a str],
    /// The path after the handler's route ([`App::websocket`]).
    pub(crate) rest: &'a str,
}

impl Upgrade<'_, '_> {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// For a handler on a prefix route, the whole path after the prefix,
    /// as sent (not percent-decoded, not split): `/chat/lobby/x` at route
    /// `/chat/` is `lobby/x`. Empty for an exact route. A handler that
    /// takes a name from the path takes all of it and checks it (the
    /// [`Subscriber`] takes a channel name, [`crate::pubsub::channel_name`]):
    /// taking one segment of it would let `/chat/allowed/other` reach
    /// `other` past a proxy's rule on the prefix.
    pub fn rest(&self) -> &str {
        self.rest
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.head.query()
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    pub fn protocols(&self) -> &[&str] {
        self.protocols
    }

    /// The value of header `name` (case-insensitive), if it appears once.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.single(name).ok().flatten()
    }
}

/// A handler's acceptance of an upgrade.
#[derive(Default)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) topic: Option<Topic>,
    pub(crate) data: Option<UserData>,
}

/// A topic to subscribe a connection to before its 101 is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) since: Option<u64>,
    /// Messages in the `wsreactor.json` envelope, gaps told.
    pub(crate) envelope: bool,
}

impl Accept {
    /// Accept with no subprotocol, no data, no topic.
    pub fn new() -> Self {
        Accept::default()
    }

    /// Speak `protocol`, which must be one the client offered (RFC 6455
    /// §4.2.2 step 5).
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocol = Some(protocol.to_string());
        self
    }

    /// Keep `data` with the connection (`data::<T>()` on a `dyn Conn`).
    pub fn data(mut self, data: impl Any + Send) -> Self {
        self.data = Some(Box::new(data));
        self
    }

    /// Subscribe the connection to `topic` (a channel of the broker; its
    /// name as [`crate::pubsub::valid_channel`] allows) before it opens:
    /// everything published to the topic from then on is sent to it, as a
    /// frame of the published kind. A topic that is not a channel name,
    /// which the HTTP routes could not name, refuses the upgrade with 400
    /// instead.
    pub fn subscribe(mut self, topic: &str) -> Self {
        self.topic = Some(Topic {
            name: topic.to_string(),
            since: None,
            envelope: false,
        });
        self
    }
}

impl fmt::Debug for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept")
            .field("protocol", &self.protocol)
            .field("topic", &self.topic)
            .field("data", &self.data.is_some())
            .finish()
    }
}

/// A refused upgrade: the status and why (sent as the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: Status,
    /// Why, in a few words.
    pub why: String,
}

impl Refusal {
    /// Refuse with `status` because `why`.
    pub fn new(status: Status, why: impl Into<String>) -> Self {
        Refusal {
            status,
            why: why.into(),
        }
    }
}

/// What a handler can do with the connection it is called for.
pub trait Conn {
    /// This connection's address, for a [`Sender`].
    fn id(&self) -> ConnId;
    /// Queue a message (dropped once our close is sent).
    fn send(&mut self, kind: MessageKind, payload: &[u8]);
    /// Publish to a topic: every connection subscribed to it, on every
    /// worker, gets it. A topic that is not a channel name
    /// ([`crate::pubsub::valid_channel`]) is dropped and logged.
    fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]);
    /// Start the close handshake (RFC 6455 §7.1.2).
    fn close(&mut self, code: CloseCode, reason: &str);
    /// The user data the handler accepted the connection with.
    fn user_data(&mut self) -> Option<&mut UserData>;
}

impl dyn Conn + '_ {
    /// The user data, as the type it was given.
    pub fn data<T: Any>(&mut self) -> Option<&mut T> {
        self.user_data()?.downcast_mut()
    }
}

/// What the server runs: WebSocket handlers by path, and which built-in
/// HTTP routes it serves.
#[derive(Clone, Default)]
pub struct App {
    handlers: Vec<(Box<str>, Arc<dyn Handler>)>,
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
    pub(crate) fn handler(&self, i: u16) -> &dyn Handler {
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

/// Reaches connections and topics from any thread (a clone per thread is
/// cheap). What it sends goes through the workers' inboxes.
#[derive(Clone, Debug)]
pub struct Sender {
    inboxes: Arc<[Inbox]>,
}

impl Sender {
    pub(crate) fn new(inboxes: Arc<[Inbox]>) -> Self {
        Sender { inboxes }
    }

    /// Send a message to connection `to` (dropped if it is gone or closing).
    pub fn send(&self, to: ConnId, kind: MessageKind, payload: &[u8]) {
        if let Some(inbox) = self.inboxes.get(to.worker) {
            inbox.command(Command::Send {
                to,
                kind,
                payload: payload.into(),
            });
        }
    }

    /// Publish to `topic` (the worker that carries it out is the first).
    /// A topic that is not a channel name ([`crate::pubsub::valid_channel`])
    /// is dropped and logged: no route could name it.
    pub fn publish(&self, topic: &str, kind: MessageKind, payload: &[u8]) {
        if !crate::pubsub::valid_channel(topic) {
            log::warn!("a publish to {topic:?} dropped: not a channel name");
            return;
        }
        let request = Request::Publish {
            channel: topic.into(),
            kind,
            payload: payload.into(),
            idempotency_key: None,
        };
        self.inboxes[0].command(Command::Submit(request));
    }
}
