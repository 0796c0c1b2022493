//! The HTTP side of an application: an [`HttpHandler`] answers the
//! requests of its route. Each step returns what comes [`Next`]: an
//! answer now, a body to read, a broker request to wait for, a request
//! parked on a subscription (a long poll), or a stream (Server-Sent
//! Events). The session does the HTTP/1.1 around it (RFC 9112): framing,
//! keep-alive, `HEAD`, `100-continue`, `Date`, deadlines; the handler only
//! says what to answer.
//!
//! What a handler keeps between the steps of one request is its own
//! [`HttpHandler::Data`], moved into each step and back out of it.

use crate::protocol::http::{RequestHead, Status};
use crate::pubsub::{
    Answer, BrokerStats, BrokerTopology, Message, PresenceEvents, Request as BrokerRequest, Subscription,
};
use crate::reactor::settings::Settings;
use crate::stats::{PerIpStats, WorkerStats};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// An HTTP application on one route.
///
/// One value serves every request of its route on every worker thread
/// (hence `Sync`); a request's own state is its [`HttpHandler::Data`].
pub trait HttpHandler: Send + Sync + 'static {
    /// What the handler keeps between the steps of one request (`()` for
    /// nothing).
    type Data: Send + 'static;

    /// A request head arrived (already checked as HTTP/1.1, RFC 9112 §2):
    /// what comes next. A request that declares a body the handler does
    /// not read ([`Next::ReadBody`]) is answered and its connection closed
    /// (RFC 9112 §6.3: its body is never read as the next request), a
    /// success turned into `413`.
    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<Self::Data>;

    /// The body [`Next::ReadBody`] asked for is in.
    fn body(&self, data: Self::Data, body: &[u8], cx: &mut Context<'_>) -> Next<Self::Data> {
        let _ = (data, body, cx);
        Next::Respond(Response::refuse(Status::INTERNAL_ERROR, "this route reads no body"))
    }

    /// The broker answered the request of [`Next::Ask`]. A subscription it
    /// made is the handler's to keep (in [`Next::Park`] or
    /// [`Next::Stream`]) or to give back ([`Context::unsubscribe`]).
    fn answer(&self, data: Self::Data, answer: Answer, cx: &mut Context<'_>) -> Next<Self::Data> {
        let _ = data;
        if let Answer::Subscribed(Ok((sub, _))) = answer {
            cx.unsubscribe(sub);
        }
        Next::Respond(Response::refuse(Status::INTERNAL_ERROR, "this route asks no broker"))
    }

    /// A message on the subscription of a parked request or a stream.
    /// A parked request takes what it will answer with and says
    /// [`Delivery::Taken`]: once the batch of deliveries is over, it is
    /// woken ([`Wake::Ready`]). A stream writes it ([`Context::write`]).
    fn deliver(&self, data: &mut Self::Data, message: &Arc<Message>, cx: &mut Context<'_>) -> Delivery {
        let _ = (data, message, cx);
        Delivery::Skipped
    }

    /// A waiting or parked request's time is up, or its messages are in.
    /// A parked request's subscription is given back before this is called.
    fn wake(&self, data: Self::Data, wake: Wake, cx: &mut Context<'_>) -> Next<Self::Data> {
        let _ = (data, cx);
        let status = match wake {
            Wake::Deadline | Wake::Expired => Status::SERVICE_UNAVAILABLE,
            Wake::Ready => Status::INTERNAL_ERROR,
        };
        Next::Respond(Response::refuse(status, "no answer"))
    }

    /// A stream has been quiet for its heartbeat: write something that
    /// keeps proxies from timing it out, if its format has one.
    fn heartbeat(&self, data: &mut Self::Data, cx: &mut Context<'_>) {
        let _ = (data, cx);
    }

    /// A signal every node's connections get ([`crate::pubsub::Request::Signal`]),
    /// for a stream: what it means is the application's. [`Delivery::End`]
    /// ends the stream (after what was written); anything else, nothing.
    fn signal(&self, data: &mut Self::Data, payload: &[u8], cx: &mut Context<'_>) -> Delivery {
        let _ = (data, payload, cx);
        Delivery::Skipped
    }

    /// A stream's [`Next::Stream::expires`] came: write its last words;
    /// the stream ends after.
    fn expired(&self, data: &mut Self::Data, cx: &mut Context<'_>) {
        let _ = (data, cx);
    }
}

/// What comes after a step of an [`HttpHandler`].
pub enum Next<D> {
    /// Answer now. The connection stays for the next request unless the
    /// response or the client closes it.
    Respond(Response),
    /// Read the request's body, at most `limit` bytes (a longer one is
    /// `413`; the body is held whole, so a limit is at most 4 GiB), then
    /// [`HttpHandler::body`]. A client that expects `100 Continue` is sent
    /// it now. The whole request, head and body, has `request_timeout`.
    ReadBody {
        /// The request's state.
        data: D,
        /// The largest body taken.
        limit: usize,
    },
    /// Submit `request` to the broker, then [`HttpHandler::answer`], or
    /// [`HttpHandler::wake`] with [`Wake::Deadline`] if no answer comes
    /// within `request_timeout` (from the request's start when a body was
    /// read first). After such a wake the connection closes, so that a
    /// late answer can never be taken for the next request's.
    Ask {
        /// The request's state.
        data: D,
        /// What to ask.
        request: BrokerRequest,
    },
    /// Hold the request on `subscription` (a long poll): its messages go
    /// to [`HttpHandler::deliver`]; it is woken when one was taken
    /// ([`Wake::Ready`]), after `wait` ([`Wake::Deadline`]; between 1 ms
    /// and [`crate::config::MAX_TIMEOUT`]), or at `expires`
    /// ([`Wake::Expired`]), and answers then.
    Park {
        /// The request's state.
        data: D,
        /// What it waits on (the session gives it back when the request ends).
        subscription: Subscription,
        /// How long at most.
        wait: Duration,
        /// When it must end regardless (Unix seconds), if ever.
        expires: Option<u64>,
    },
    /// Answer with `head` (status and headers; its body runs until the
    /// connection closes) and what [`HttpHandler::deliver`] writes of each
    /// message on `subscription`; [`HttpHandler::heartbeat`] after
    /// `heartbeat` without output, [`HttpHandler::expired`] at `expires`.
    Stream {
        /// The stream's state.
        data: D,
        /// What it streams (given back when the stream ends).
        subscription: Subscription,
        /// The response head (a body given here is written first).
        head: Response,
        /// How long it may stay quiet.
        heartbeat: Duration,
        /// When it must end (Unix seconds), if ever.
        expires: Option<u64>,
    },
}

/// Why a request is woken ([`HttpHandler::wake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A parked request took messages.
    Ready,
    /// Its wait, or the broker's answer time (`request_timeout`), is over.
    Deadline,
    /// Its [`Next::Park::expires`] came.
    Expired,
}

/// What a delivery did ([`HttpHandler::deliver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing: the request had it already.
    Skipped,
    /// Taken: gathered for a parked request's answer, written on a stream.
    Taken,
    /// End the stream now (after what was written).
    End,
}

/// A request head, as a handler sees it.
pub struct Request<'a, 'h> {
    pub(crate) head: &'a RequestHead<'a, 'h>,
    /// The path after the handler's route.
    pub(crate) rest: &'a str,
    pub(crate) content_length: Option<u64>,
}

impl<'a> Request<'a, '_> {
    /// The method (`GET`, `POST`...).
    pub fn method(&self) -> &'a str {
        self.head.method
    }

    /// The path, without the query.
    pub fn path(&self) -> &'a str {
        self.head.path()
    }

    /// For a handler on a prefix route, the whole path after the prefix,
    /// as sent (see [`super::Upgrade::rest`]); empty for an exact route.
    pub fn rest(&self) -> &'a str {
        self.rest
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query()
    }

    /// The value of header `name` (case-insensitive): `Ok(None)` if
    /// absent, `Err(())` if it appears more than once.
    #[allow(clippy::result_unit_err)]
    pub fn header(&self, name: &str) -> Result<Option<&'a [u8]>, ()> {
        self.head.single(name).map_err(|_| ())
    }

    /// The body's declared length (`Content-Length`), if it has one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Did the client ask to close the connection after the answer?
    pub fn wants_close(&self) -> bool {
        self.head.wants_close()
    }

    /// The whole head, for what the accessors above do not give.
    pub fn head(&self) -> &'a RequestHead<'a, '_> {
        self.head
    }
}

/// One part of a response body.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Owned(Vec<u8>),
    /// Bytes shared with other connections (a message's encoded form).
    Shared(Arc<[u8]>),
}

impl Part {
    pub(crate) fn len(&self) -> usize {
        match self {
            Part::Owned(b) => b.len(),
            Part::Shared(b) => b.len(),
        }
    }
}

/// An HTTP response: status, headers, body. `Date`, `Content-Length`,
/// `Transfer-Encoding` and `Connection` are the session's to write: a
/// response that sets one, a header name that is not a token, a value
/// with CR, LF or NUL, or a 1xx status is answered `500` instead (RFC 9110
/// §5.5: a field value holds no CR or LF). A `204` or `304` carries no
/// body (RFC 9110 §6.4.1), whatever is given.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: Status,
    pub(crate) headers: Vec<(Cow<'static, str>, String)>,
    pub(crate) body: Vec<Part>,
    pub(crate) close: bool,
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn new(status: Status) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// `200 OK` with `content_type` and `body`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response::new(Status::OK)
            .header("Content-Type", content_type)
            .body(body)
    }

    /// A refusal: `status`, a `text/plain` body saying `why`, and the
    /// connection closed after it (nothing after a refused request is
    /// read as the next one).
    pub fn refuse(status: Status, why: &str) -> Self {
        let body = format!("{} {}: {why}\n", status.0, status.reason());
        Response::new(status)
            .header("Content-Type", "text/plain")
            .body(body)
            .close()
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Add headers.
    pub fn headers(mut self, headers: impl IntoIterator<Item = (Cow<'static, str>, String)>) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Append `bytes` to the body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body.push(Part::Owned(bytes.into()));
        self
    }

    /// Append bytes shared with other responses (a message's encoded
    /// form, [`Message::shared`]) to the body, without a copy.
    pub fn shared(mut self, bytes: Arc<[u8]>) -> Self {
        self.body.push(Part::Shared(bytes));
        self
    }

    /// Close the connection after this response.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// Close after it if `close`.
    pub fn close_if(self, close: bool) -> Self {
        if close {
            self.close()
        } else {
            self
        }
    }

    /// Its status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The body's length.
    pub fn body_len(&self) -> usize {
        self.body.iter().map(Part::len).sum()
    }

    /// The value of header `name`, if set (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler is lent for one step: the server's settings and
/// counters, the time, and the connection's side of a stream.
pub struct Context<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) stats: &'a WorkerStats,
    pub(crate) unix_time: u64,
    pub(crate) link: &'a mut dyn HttpLink,
}

impl Context<'_> {
    /// The server's settings.
    pub fn settings(&self) -> &Settings {
        self.settings
    }

    /// This worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        self.stats
    }

    /// Seconds since the Unix epoch, at the start of this loop iteration.
    pub fn unix_time(&self) -> u64 {
        self.unix_time
    }

    /// The whole server, for pages about it (`/metrics`, `/readyz`).
    pub fn server(&self) -> &dyn ServerInfo {
        self.link.server()
    }

    /// Give a subscription back to the broker (one the handler will not keep).
    pub fn unsubscribe(&mut self, subscription: Subscription) {
        self.link.unsubscribe(subscription);
    }

    /// Keep a subscription for this request while it asks the broker for
    /// more ([`Next::Ask`] again, from [`HttpHandler::answer`]): a request
    /// on several channels subscribes to them one after another. From now
    /// on the subscription's messages go to [`HttpHandler::deliver`]
    /// (before a stream's head, its writes are dropped: the handler keeps
    /// what it must send); it joins the [`Next::Park`] or [`Next::Stream`]
    /// the request comes to, and goes back with it, or when the request
    /// ends any other way. Only from [`HttpHandler::answer`]: elsewhere
    /// the subscription goes back at once.
    pub fn hold(&mut self, subscription: Subscription) {
        self.link.hold(subscription);
    }

    /// Headers that the answers the session writes itself for this
    /// request carry too (a `408` for a body too slow, a `413` for a body
    /// the handler did not read): a layer's, such as CORS, so that a page
    /// can read them. Set in the request step; the last call wins.
    pub fn answer_headers(&mut self, headers: Vec<(Cow<'static, str>, String)>) {
        self.link.answer_headers(headers);
    }

    /// Write `bytes` on a stream (dropped outside [`Next::Stream`]'s
    /// callbacks, where they would corrupt the framing).
    pub fn write(&mut self, bytes: &[u8]) {
        self.link.write(bytes);
    }

    /// Write bytes shared with other connections on a stream, without a copy.
    pub fn write_shared(&mut self, bytes: Arc<[u8]>) {
        self.link.write_shared(bytes);
    }
}

/// What the server tells a handler about itself.
pub trait ServerInfo {
    /// Every worker's counters.
    fn worker_stats(&self) -> &[Arc<WorkerStats>];
    /// How many channels exist.
    fn channels(&self) -> usize;
    /// Whether the broker can take requests, or why not.
    fn ready(&self) -> Result<(), &'static str>;
    /// A broker across nodes' counters.
    fn broker_stats(&self) -> Option<BrokerStats>;
    /// The per-address limits' counters.
    fn per_ip_stats(&self) -> PerIpStats;
    /// Join and leave events sent and dropped.
    fn presence_events(&self) -> PresenceEvents {
        PresenceEvents::default()
    }
    /// A broker across nodes' servers (which master, failovers seen).
    fn broker_topology(&self) -> Option<BrokerTopology> {
        None
    }
}

/// What the session lends an HTTP handler's [`Context`].
pub(crate) trait HttpLink {
    fn server(&self) -> &dyn ServerInfo;
    fn unsubscribe(&mut self, sub: Subscription);
    fn hold(&mut self, sub: Subscription);
    fn write(&mut self, bytes: &[u8]);
    fn write_shared(&mut self, bytes: Arc<[u8]>);
    fn answer_headers(&mut self, headers: Vec<(Cow<'static, str>, String)>);
}
