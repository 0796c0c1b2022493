//! The WebSocket side of an application: a [`Handler`] accepts or refuses
//! an upgrade, keeps data of its own type with each connection it accepts,
//! and hears of messages, drained output and the close through a typed
//! [`Conn`].

use crate::protocol::http::{RequestHead, Status};
use crate::protocol::{CloseCode, MessageKind};
use crate::pubsub::{Address, Found, HubError, Presence, Query, Receipt};
use crate::reactor::settings::Settings;
use std::fmt;

/// A connection's address, valid from any thread for as long as the
/// connection lives (a message sent to a gone one is dropped).
pub type ConnId = Address;

/// A WebSocket application.
///
/// One value serves every connection of its route, on every worker thread
/// (hence `Sync`); what belongs to one connection is its [`Handler::Data`],
/// given when the handler accepts it and lent back on every call.
pub trait Handler: Send + Sync + 'static {
    /// What the handler keeps with each connection (`()` for nothing).
    type Data: Send + 'static;

    /// A client asks for a WebSocket at `upgrade.path()` (RFC 6455 §4.2.1
    /// already checked): accept it, or refuse it with a status and why.
    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept<Self::Data>, Refusal>;

    /// The connection is open (the 101 is queued): the first moment it can
    /// be sent to.
    fn opened(&self, conn: &mut Conn<'_, Self::Data>) {
        let _ = conn;
    }

    /// A whole message arrived (a text one is valid UTF-8, RFC 6455 §8.1).
    fn message(&self, conn: &mut Conn<'_, Self::Data>, message: Message<'_>) -> Reply;

    /// Output that was over `write_buffer_limit` went out: there is room
    /// to send again.
    fn drain(&self, conn: &mut Conn<'_, Self::Data>) {
        let _ = conn;
    }

    /// The end of the subscription to `topic` ([`Topic::expires`], or
    /// [`Conn::expires`]) came: nothing of it is sent any more, and it is
    /// over ([`Conn::topics`] no longer has it). By default the connection
    /// is closed with 1008 (RFC 6455 §7.4.1, policy violation).
    fn expired(&self, conn: &mut Conn<'_, Self::Data>, topic: &str) {
        let _ = topic;
        conn.close(CloseCode::POLICY_VIOLATION, "subscription expired");
    }

    /// The broker answered a [`Conn::subscribe`] to `topic` (answers come
    /// in the order of the subscribes; one given up by
    /// [`Conn::unsubscribe`] first is not told). `Ok`: it is live, and
    /// what the handler sends now goes out before the topic's first
    /// message (what its history holds after [`Topic::since`], a gap, then
    /// live ones). `Err`: nothing was subscribed.
    fn subscribed(&self, conn: &mut Conn<'_, Self::Data>, topic: &str, result: Result<(), HubError>) {
        let _ = (conn, topic, result);
    }

    /// A signal every node's connections get ([`crate::pubsub::Request::Signal`],
    /// sent by any handler that asks the broker): what it means is the
    /// application's (the push server's API disconnects a user with one).
    fn signal(&self, conn: &mut Conn<'_, Self::Data>, payload: &[u8]) {
        let _ = (conn, payload);
    }

    /// The broker answered a [`Conn::publish`], in the order they were
    /// made: the message's id and subscribers, or why it was not (or may
    /// not have been) published.
    fn published(&self, conn: &mut Conn<'_, Self::Data>, result: Result<Receipt, HubError>) {
        let _ = (conn, result);
    }

    /// The broker answered a [`Conn::query`], in the order they were made:
    /// what it found, or why it could not look.
    fn found(&self, conn: &mut Conn<'_, Self::Data>, result: Result<Found, HubError>) {
        let _ = (conn, result);
    }

    /// The connection is closing or gone: `code` is the peer's close code,
    /// if it sent one. Called once, and nothing can be sent any more.
    fn close(&self, conn: &mut Conn<'_, Self::Data>, code: Option<CloseCode>) {
        let _ = (conn, code);
    }
}

/// A whole WebSocket message (RFC 6455 §5.6), as a handler gets and sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message: UTF-8, checked by the protocol before any handler sees it.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// Its opcode's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }

    /// Its payload.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// A message of `kind` with `payload`; `None` for text that is not UTF-8.
    pub fn new(kind: MessageKind, payload: &'a [u8]) -> Option<Self> {
        match kind {
            MessageKind::Text => std::str::from_utf8(payload).ok().map(Message::Text),
            MessageKind::Binary => Some(Message::Binary(payload)),
        }
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
    /// The path after the handler's route ([`super::App::websocket`]).
    pub(crate) rest: &'a str,
    pub(crate) settings: &'a Settings,
    pub(crate) unix_time: u64,
}

impl Upgrade<'_, '_> {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// For a handler on a prefix route, the whole path after the prefix,
    /// as sent (not percent-decoded, not split): `/chat/lobby/x` at route
    /// `/chat/` is `lobby/x`. Empty for an exact route. A handler that
    /// takes a name from the path takes all of it and checks it (the push
    /// server's subscriber takes a channel name, [`crate::pubsub::channel_name`]):
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

    /// The request head, for what the accessors above do not give.
    pub fn head(&self) -> &RequestHead<'_, '_> {
        self.head
    }

    /// The server's settings.
    pub fn settings(&self) -> &Settings {
        self.settings
    }

    /// Seconds since the Unix epoch, at the start of this loop iteration.
    pub fn unix_time(&self) -> u64 {
        self.unix_time
    }
}

/// A handler's acceptance of an upgrade, with the connection's data.
pub struct Accept<D = ()> {
    pub(crate) protocol: Option<String>,
    pub(crate) topic: Option<Topic>,
    pub(crate) data: D,
}

/// A topic to subscribe a connection to: before its 101 is sent
/// ([`Accept::subscribe`]), or once it is open ([`Conn::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub(crate) name: String,
    pub(crate) since: Option<u64>,
    /// Messages in the `wsreactor.json` envelope, gaps told.
    pub(crate) envelope: bool,
    /// When it ends (Unix seconds): [`Handler::expired`].
    pub(crate) expires: Option<u64>,
    /// The subscriber is a member of the topic's presence, as this.
    pub(crate) presence: Option<Box<Presence>>,
    /// Join and leave events of the topic go out (in the envelope).
    pub(crate) join_leave: bool,
}

impl Topic {
    /// The topic `name` (a channel of the broker, as
    /// [`crate::pubsub::valid_channel`] allows), from its next message on,
    /// as bare frames, without end.
    pub fn new(name: &str) -> Self {
        Topic {
            name: name.to_string(),
            since: None,
            envelope: false,
            expires: None,
            presence: None,
            join_leave: false,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start after message `id` (a cursor the client sent): what the
    /// topic's history holds after it is sent first, and a gap the history
    /// cannot fill is told (in the envelope).
    pub fn since(mut self, id: u64) -> Self {
        self.since = Some(id);
        self
    }

    /// Send its messages in the `wsreactor.json` envelope (text frames
    /// with their ids and channel, and gap notices `{"channel":..,"gap":..}`)
    /// instead of as bare frames.
    pub fn envelope(mut self) -> Self {
        self.envelope = true;
        self
    }

    /// End it at `exp` (seconds since the Unix epoch, a token's `exp`):
    /// nothing of it goes out from then, and the handler hears of it
    /// ([`Handler::expired`]). [`Conn::expires`] moves it.
    pub fn expires(mut self, exp: u64) -> Self {
        self.expires = Some(exp);
        self
    }

    /// Make the subscriber a member of the topic's presence, as
    /// `presence`, for as long as it is subscribed (the broker refuses the
    /// subscribe, [`HubError::PresenceFull`], when the topic has `[presence]
    /// max_members`).
    pub fn presence(mut self, presence: Presence) -> Self {
        self.presence = Some(Box::new(presence));
        self
    }

    /// Send the topic's join and leave events too, `{"channel":..,
    /// "join":{member}}` (in the envelope only: bare frames carry
    /// published messages alone).
    pub fn join_leave(mut self) -> Self {
        self.join_leave = true;
        self
    }
}

/// Why [`Conn::subscribe`] or [`Conn::publish`] did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// The name is not a channel name ([`crate::pubsub::valid_channel`]).
    NotAChannel,
    /// The connection is subscribed to it already, or its subscribe is out.
    AlreadySubscribed,
    /// It is subscribed to `[limits] max_channels_per_connection` topics
    /// already (this many, subscribes still out counted).
    TooMany(usize),
    /// The connection is closing: our close frame is out.
    Closing,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::NotAChannel => f.write_str("not a channel name: 1 to 128 of A-Z a-z 0-9 _ . : -"),
            TopicError::AlreadySubscribed => f.write_str("already subscribed"),
            TopicError::TooMany(n) => write!(
                f,
                "subscribed to {n} channels already, as many as one connection may (limits.max_channels_per_connection)"
            ),
            TopicError::Closing => f.write_str("the connection is closing"),
        }
    }
}

impl std::error::Error for TopicError {}

impl Accept<()> {
    /// Accept with no subprotocol, no topic, and no data.
    pub fn new() -> Self {
        Accept {
            protocol: None,
            topic: None,
            data: (),
        }
    }
}

impl Default for Accept<()> {
    fn default() -> Self {
        Accept::new()
    }
}

impl<D> Accept<D> {
    /// Keep `data` with the connection: every call of the handler for it
    /// lends it back ([`Conn::data`]).
    pub fn data<E>(self, data: E) -> Accept<E> {
        Accept {
            protocol: self.protocol,
            topic: self.topic,
            data,
        }
    }

    /// Speak `protocol`, which must be one the client offered (RFC 6455
    /// §4.2.2 step 5).
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocol = Some(protocol.to_string());
        self
    }

    /// Subscribe the connection to `topic` (a channel of the broker; its
    /// name as [`crate::pubsub::valid_channel`] allows) before it opens:
    /// everything published to the topic from then on is sent to it, as a
    /// frame of the published kind. A topic that is not a channel name,
    /// which the HTTP routes could not name, refuses the upgrade with 400
    /// instead.
    pub fn subscribe(mut self, topic: &str) -> Self {
        self.topic = Some(Topic::new(topic));
        self
    }

    /// End the subscription at `exp` (seconds since the Unix epoch, a
    /// token's `exp`): nothing of the topic goes out from then, and the
    /// handler hears of it ([`Handler::expired`]). [`Conn::expires`] moves
    /// it. Without a [`subscribe`](Self::subscribe), nothing.
    pub fn expires(mut self, exp: u64) -> Self {
        if let Some(topic) = &mut self.topic {
            topic.expires = Some(exp);
        }
        self
    }

    /// Start the subscription after message `id` (a cursor the client
    /// sent): what the topic's history holds after it is sent first, and a
    /// gap the history cannot fill is told (in the envelope). Without a
    /// [`subscribe`](Self::subscribe), nothing.
    pub fn since(mut self, id: u64) -> Self {
        if let Some(topic) = &mut self.topic {
            topic.since = Some(id);
        }
        self
    }

    /// Make the subscriber a member of the topic's presence
    /// ([`Topic::presence`]).
    pub fn presence(mut self, presence: Presence) -> Self {
        if let Some(topic) = self.topic.take() {
            self.topic = Some(topic.presence(presence));
        }
        self
    }

    /// Send the topic's join and leave events too ([`Topic::join_leave`]).
    pub fn join_leave(mut self) -> Self {
        if let Some(topic) = &mut self.topic {
            topic.join_leave = true;
        }
        self
    }

    /// Send the topic's messages in the `wsreactor.json` envelope (text
    /// frames with their ids, channel and kind, and gap notices), instead
    /// of as bare frames. Without a [`subscribe`](Self::subscribe), nothing.
    pub fn envelope(mut self) -> Self {
        if let Some(topic) = &mut self.topic {
            topic.envelope = true;
        }
        self
    }
}

impl<D> fmt::Debug for Accept<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept")
            .field("protocol", &self.protocol)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
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

/// The connection a handler is called for, with the data it keeps.
pub struct Conn<'a, D> {
    pub(crate) link: &'a mut dyn Link,
    pub(crate) data: &'a mut D,
}

impl<D> Conn<'_, D> {
    /// This connection's address, for a [`super::Sender`].
    pub fn id(&self) -> ConnId {
        self.link.id()
    }

    /// The data the handler accepted the connection with.
    pub fn data(&mut self) -> &mut D {
        self.data
    }

    /// Queue a message (dropped once our close is sent, RFC 6455 §5.5.1).
    pub fn send(&mut self, message: Message<'_>) {
        self.link.send(message.kind(), message.as_bytes());
    }

    /// Queue a text message.
    pub fn send_text(&mut self, text: &str) {
        self.send(Message::Text(text));
    }

    /// Queue a binary message.
    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.send(Message::Binary(bytes));
    }

    /// Publish to a topic: every connection subscribed to it, on every
    /// worker, gets it; the broker's answer comes to
    /// [`Handler::published`]. A topic that is not a channel name
    /// ([`crate::pubsub::valid_channel`]) is refused, and nothing is sent.
    pub fn publish(&mut self, topic: &str, message: Message<'_>) -> Result<(), TopicError> {
        self.link.publish(topic, message.kind(), message.as_bytes())
    }

    /// Ask the broker what `query` finds (a channel's presence, say),
    /// changing nothing; its answer comes to [`Handler::found`]. Refused at
    /// once once the connection is closing.
    pub fn query(&mut self, query: Query) -> Result<(), TopicError> {
        self.link.query(query)
    }

    /// Subscribe the open connection to `topic`: the broker's answer comes
    /// to [`Handler::subscribed`], and then the topic's messages (each as
    /// [`Topic::envelope`] says) until [`unsubscribe`](Self::unsubscribe),
    /// its end ([`Handler::expired`]) or the close. Refused at once, with
    /// nothing asked of the broker, for a name that is not a channel, a
    /// topic it has (or asked for) already, one over `[limits]
    /// max_channels_per_connection`, or a closing connection.
    pub fn subscribe(&mut self, topic: Topic) -> Result<(), TopicError> {
        self.link.subscribe(topic)
    }

    /// End the subscription to `topic`, or give up a subscribe still out
    /// (its answer is then not told): nothing of it is sent from now on.
    /// False if it had neither.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.link.unsubscribe(topic)
    }

    /// The topics it is subscribed to (live, not still asked for), in the
    /// order they became live.
    pub fn topics(&self) -> Vec<&str> {
        self.link.topics()
    }

    /// Start the close handshake (RFC 6455 §7.1.2).
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.link.close(code, reason);
    }

    /// The first topic it is subscribed to (the one [`Accept::subscribe`]
    /// named, while it lasts), if any.
    pub fn topic(&self) -> Option<&str> {
        self.link.topics().first().copied()
    }

    /// Move the end of its subscription to `topic` to `exp` (Unix
    /// seconds): a newer token's; for a subscribe still out, the end it
    /// will have once live. Without either, nothing.
    pub fn expires(&mut self, topic: &str, exp: u64) {
        self.link.expires(topic, exp);
    }

    /// Whether its subscription to `topic` has an end ([`Topic::expires`]).
    pub fn has_expiry(&self, topic: &str) -> bool {
        self.link.has_expiry(topic)
    }

    /// The last id of `topic` the connection was given or is known to
    /// have missed, if it is subscribed to it. In [`Handler::subscribed`]:
    /// the channel's last id as the subscription began (what the history
    /// gives after the topic's cursor comes up to it, live messages after).
    pub fn cursor(&self, topic: &str) -> Option<u64> {
        self.link.cursor(topic)
    }

    /// The server's settings.
    pub fn settings(&self) -> &Settings {
        self.link.settings()
    }

    /// Seconds since the Unix epoch, at the start of this loop iteration.
    pub fn unix_time(&self) -> u64 {
        self.link.unix_time()
    }
}

/// What the session lends a handler: the connection's side of a [`Conn`].
pub(crate) trait Link {
    fn id(&self) -> ConnId;
    fn send(&mut self, kind: MessageKind, payload: &[u8]);
    fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]) -> Result<(), TopicError>;
    fn subscribe(&mut self, topic: Topic) -> Result<(), TopicError>;
    fn query(&mut self, query: Query) -> Result<(), TopicError>;
    fn unsubscribe(&mut self, topic: &str) -> bool;
    fn close(&mut self, code: CloseCode, reason: &str);
    fn topics(&self) -> Vec<&str>;
    fn expires(&mut self, topic: &str, exp: u64);
    fn has_expiry(&self, topic: &str) -> bool;
    fn cursor(&self, topic: &str) -> Option<u64>;
    fn settings(&self) -> &Settings;
    fn unix_time(&self) -> u64;
}
