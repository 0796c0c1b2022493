//! Subscribe mode over HTTP: one subscriber on an event stream, a long
//! poll or a short poll, as a state machine without I/O. The client
//! (`client`) owns the socket; this decides what to send, what the
//! bytes received mean, and when to ask again.
//!
//! ```text
//!  request() ─► Head ──200/204──► Body ──complete──► Due (short poll: until its time) ─► request()
//!                 │                 │                   └─ or Ended (the connection closes: wait for EOF, redial)
//!                 └─ other status ──┴─ malformed, too large ─► error (the subscriber ends)
//! ```
//!
//! Each subscriber keeps its own cursor, so that none misses a message:
//! wsreactor's `since` (from a poll's `last_id` or a 204's `X-Last-Id`)
//! and an event stream's last event id (`Last-Event-ID` on a reconnect),
//! or, against nchan, its long-poll cursor `Etag`/`Last-Modified`, sent
//! back as `If-None-Match`/`If-Modified-Since` ([`CursorStyle::Nchan`]).
//!
//! - `sse`: the event stream's events.
//! - `poll`: a poll's body, as wsreactor and nchan write it.

pub mod poll;
pub mod sse;

use super::response::{self, Body, Head, ResponseError};
use sse::EventReader;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// How a subscriber receives a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket (`/ws/{channel}`).
    Ws,
    /// Server-Sent Events (`/sse/{channel}`).
    Sse,
    /// Long polling (`/poll/{channel}`): each poll waits for messages.
    LongPoll,
    /// Short polling (`/poll/{channel}?wait=0`), every `--poll-interval`.
    Poll,
}

impl Transport {
    /// Every transport, in the order reports list them.
    pub const ALL: [Transport; 4] = [Transport::Poll, Transport::LongPoll, Transport::Sse, Transport::Ws];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::LongPoll => "longpoll",
            Transport::Poll => "poll",
        }
    }

    /// The subscriber path of `channel` on wsreactor (and on the nchan
    /// configuration of `benches/nchan/`).
    pub fn path(self, channel: &str) -> String {
        match self {
            Transport::Ws => format!("/ws/{channel}"),
            Transport::Sse => format!("/sse/{channel}"),
            Transport::LongPoll | Transport::Poll => format!("/poll/{channel}"),
        }
    }
}

/// Whose cursor the polls follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorStyle {
    /// `?since=N` from the last poll's `last_id` (or `X-Last-Id`).
    Wsreactor,
    /// `If-None-Match`/`If-Modified-Since` from the last `Etag`/`Last-Modified`;
    /// each response's body is one message.
    Nchan,
}

/// What every HTTP subscriber of a run does, resolved.
#[derive(Debug, Clone)]
pub struct FeedPlan {
    /// Event stream, long poll or short poll (never `Ws`).
    pub transport: Transport,
    /// The request path, without query.
    pub path: String,
    /// The URL's query (a `token=`, say), sent with every request; may be empty.
    pub query: String,
    /// The `Host` header.
    pub host: String,
    /// A short poll's interval.
    pub interval: Duration,
    /// Polls reuse the connection; off: `Connection: close`, one per poll.
    pub keep_alive: bool,
    /// How the cursor is carried.
    pub cursor: CursorStyle,
    /// Headers of every request (`--header`).
    pub headers: Vec<(String, String)>,
    /// Longest body or event kept (a poll's, an event's): the messages of
    /// a run are far below it.
    pub max_body: usize,
}

/// A message as a transport delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The payload, decoded from base64 when the server encoded it.
    pub payload: Vec<u8>,
}

/// Why a subscriber ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// The subscribe request was answered with this status.
    Status(u16),
    /// The response broke HTTP/1.1 or was too large.
    Response(ResponseError),
    /// The body is not what the transport promises (bad JSON, bad base64).
    Body(&'static str),
}

impl FeedError {
    /// A short stable name for the report.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::Status(_) => "status",
            FeedError::Response(e) => e.kind(),
            FeedError::Body(kind) => kind,
        }
    }
}

/// What the client does after some input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep reading.
    Read,
    /// Send the next request on this connection at this time.
    Request(Instant),
    /// The server will close the connection: read to its EOF, then open a
    /// new one and send the next request at this time.
    Redial(Instant),
}

/// The cursor a subscriber resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Cursor {
    /// wsreactor's message id.
    since: Option<u64>,
    /// The event stream's last event id.
    last_event_id: Option<String>,
    /// nchan's long-poll cursor.
    etag: Option<String>,
    last_modified: Option<String>,
}

#[derive(Debug)]
enum State {
    /// A request is out: its response head is awaited.
    Head { sent: Instant },
    /// Reading a 200's body.
    Body { head: Head, reader: Reader, sent: Instant },
    /// Between requests.
    Idle,
}

#[derive(Debug)]
enum Reader {
    Events(Box<EventReader>),
    Poll(Vec<u8>),
}

/// One HTTP subscriber.
#[derive(Debug)]
pub struct Feed {
    cursor: Cursor,
    state: State,
    /// Requests sent.
    pub requests: u64,
    /// A response head has come.
    answered: bool,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// A subscriber with no cursor yet (it starts from what comes next).
    pub fn new() -> Feed {
        Feed {
            cursor: Cursor::default(),
            state: State::Idle,
            requests: 0,
            answered: false,
        }
    }

    /// Subscribed: the server has answered (a 204 with the cursor, an event
    /// stream's head), or, for an nchan long poll, which answers only with
    /// a message, the first poll has gone.
    pub fn ready(&self, plan: &FeedPlan) -> bool {
        self.answered
            || (plan.cursor == CursorStyle::Nchan && plan.transport == Transport::LongPoll && self.requests > 0)
    }

    /// When the request awaiting its answer went, unless it is a long
    /// poll's, which the server holds as long as it likes.
    pub fn awaiting_since(&self, plan: &FeedPlan) -> Option<Instant> {
        // wsreactor's first long poll is a short one; nchan's are all held.
        let held =
            plan.transport == Transport::LongPoll && (plan.cursor == CursorStyle::Nchan || self.cursor.since.is_some());
        match self.state {
            State::Head { sent } if !held => Some(sent),
            _ => None,
        }
    }

    /// Waiting between requests.
    pub fn idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// The connection was given up (a reconnect storm): whatever was
    /// under way on it is forgotten; the cursor stays, for the next.
    pub fn drop_connection(&mut self) {
        self.state = State::Idle;
    }

    /// Queue the next request in `out`.
    pub fn request(&mut self, plan: &FeedPlan, out: &mut Vec<u8>, now: Instant) {
        let c = &self.cursor;
        let mut query = Vec::new();
        if !plan.query.is_empty() {
            query.push(plan.query.clone());
        }
        let wsreactor = plan.cursor == CursorStyle::Wsreactor;
        if let Some(since) = c.since.filter(|_| wsreactor && plan.transport != Transport::Sse) {
            query.push(format!("since={since}"));
        }
        // Short polls; and a wsreactor long poller's first poll, so that
        // its 204 gives the cursor and what is published while its next
        // poll is on its way is not missed. (nchan picks a subscriber type
        // per location: the configuration of benches/nchan/ sends this to
        // its interval poll.)
        let first_long = wsreactor && plan.transport == Transport::LongPoll && c.since.is_none();
        if plan.transport == Transport::Poll || first_long {
            query.push("wait=0".to_owned());
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let _ = write!(out, "GET {}{query} HTTP/1.1\r\nHost: {}\r\n", plan.path, plan.host);
        if plan.transport == Transport::Sse {
            out.extend_from_slice(b"Accept: text/event-stream\r\n");
            if let Some(id) = &c.last_event_id {
                let _ = write!(out, "Last-Event-ID: {id}\r\n");
            }
        }
        if plan.cursor == CursorStyle::Nchan && plan.transport != Transport::Sse {
            if let Some(etag) = &c.etag {
                let _ = write!(out, "If-None-Match: {etag}\r\n");
            }
            if let Some(lm) = &c.last_modified {
                let _ = write!(out, "If-Modified-Since: {lm}\r\n");
            }
        }
        if !plan.keep_alive && plan.transport != Transport::Sse {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        for (name, value) in &plan.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.requests += 1;
        self.state = State::Head { sent: now };
    }

    /// Read the bytes at the front of `input`, handing each message to
    /// `deliver`; returns the bytes used and what to do next.
    pub fn read(
        &mut self,
        plan: &FeedPlan,
        input: &[u8],
        now: Instant,
        deliver: &mut dyn FnMut(Delivered),
    ) -> Result<(usize, Next), FeedError> {
        let mut used = 0;
        loop {
            match &mut self.state {
                State::Idle => return Ok((input.len(), Next::Read)),
                State::Head { sent } => {
                    let sent = *sent;
                    let Some(head) = response::read_head(&input[used..]).map_err(FeedError::Response)? else {
                        return Ok((used, Next::Read));
                    };
                    used += head.len;
                    self.answered = true;
                    match head.status {
                        // A poll with nothing new (wsreactor's short poll, or
                        // nchan's 304 Not Modified): the cursor may move.
                        204 | 304 => {
                            if let Some(id) = head.last_id {
                                self.cursor.since = Some(id);
                            }
                            self.nchan_cursor(&head);
                            let (close, mut body) = (head.close, head.body);
                            used += body.read(&input[used..], &mut |_| {}).map_err(FeedError::Response)?;
                            self.state = State::Idle;
                            return Ok((used, self.after(plan, sent, close, false, now)));
                        }
                        200 => {
                            let reader = match plan.transport {
                                Transport::Sse => Reader::Events(Box::new(EventReader::new(plan.max_body))),
                                _ => Reader::Poll(Vec::new()),
                            };
                            self.state = State::Body { head, reader, sent };
                        }
                        status => return Err(FeedError::Status(status)),
                    }
                }
                State::Body { head, reader, sent } => {
                    let sent = *sent;
                    let mut failed = None;
                    let n = {
                        let cursor = &mut self.cursor;
                        let mut take = |bytes: &[u8]| match reader {
                            Reader::Events(events) => {
                                // The cursor moves as an event is dispatched (at
                                // its blank line), never on an `id:` line alone: a
                                // connection lost mid-event resumes before it.
                                let r = events.read(bytes, &mut |e| {
                                    if e.last_id.is_some() {
                                        cursor.last_event_id.clone_from(&e.last_id);
                                    }
                                    match event_payload(&e) {
                                        Ok(Some(payload)) => deliver(Delivered { payload }),
                                        Ok(None) => {}
                                        Err(kind) => failed = Some(FeedError::Body(kind)),
                                    }
                                });
                                if r.is_err() {
                                    failed = Some(FeedError::Response(ResponseError::TooLarge));
                                }
                            }
                            Reader::Poll(body) if body.len() + bytes.len() > plan.max_body => {
                                failed = Some(FeedError::Response(ResponseError::TooLarge));
                            }
                            Reader::Poll(body) => body.extend_from_slice(bytes),
                        };
                        head.body.read(&input[used..], &mut take).map_err(FeedError::Response)?
                    };
                    used += n;
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    if head.body != Body::Done {
                        return Ok((used, Next::Read));
                    }
                    return self.body_done(plan, sent, now, deliver).map(|next| (used, next));
                }
            }
        }
    }

    /// The server closed the connection: the end of an event stream's body
    /// (the subscriber reconnects with its last event id), or of a poll's
    /// connection after its response. Inside a declared body it is an error.
    pub fn at_eof(
        &mut self,
        plan: &FeedPlan,
        now: Instant,
        deliver: &mut dyn FnMut(Delivered),
    ) -> Result<Instant, FeedError> {
        match &mut self.state {
            State::Idle => Ok(now),
            State::Head { .. } => Err(FeedError::Response(ResponseError::Truncated)),
            State::Body { head, sent, .. } => {
                head.body.at_eof().map_err(FeedError::Response)?;
                let sent = *sent;
                match self.body_done(plan, sent, now, deliver)? {
                    Next::Read => Ok(now),
                    Next::Request(at) | Next::Redial(at) => Ok(at),
                }
            }
        }
    }

    /// A 200's body is complete: deliver a poll's messages, move the cursor.
    fn body_done(
        &mut self,
        plan: &FeedPlan,
        sent: Instant,
        now: Instant,
        deliver: &mut dyn FnMut(Delivered),
    ) -> Result<Next, FeedError> {
        let State::Body { head, reader, .. } = std::mem::replace(&mut self.state, State::Idle) else {
            return Ok(Next::Read);
        };
        if let Reader::Poll(body) = reader {
            match plan.cursor {
                CursorStyle::Wsreactor => {
                    let batch = poll::read_batch(&body).map_err(FeedError::Body)?;
                    batch
                        .messages
                        .into_iter()
                        .for_each(|payload| deliver(Delivered { payload }));
                    self.cursor.since = Some(batch.last_id);
                }
                CursorStyle::Nchan => {
                    self.nchan_cursor(&head);
                    deliver(Delivered { payload: body });
                }
            }
        }
        Ok(self.after(plan, sent, head.close, true, now))
    }

    fn nchan_cursor(&mut self, head: &Head) {
        if head.etag.is_some() || head.last_modified.is_some() {
            self.cursor.etag = head.etag.clone();
            self.cursor.last_modified = head.last_modified.clone();
        }
    }

    /// When the next request goes, and on which connection: a long poll
    /// (or a stream that ended) asks again at once, a short poll one
    /// interval after its last request went.
    ///
    /// Against nchan, whose answer holds one message, a short poll that
    /// brought one asks again at once, as its clients do: more may wait.
    fn after(&self, plan: &FeedPlan, sent: Instant, close: bool, brought: bool, now: Instant) -> Next {
        let at = match plan.transport {
            Transport::Poll if brought && plan.cursor == CursorStyle::Nchan => now,
            Transport::Poll => (sent + plan.interval).max(now),
            _ => now,
        };
        if close || !plan.keep_alive {
            Next::Redial(at)
        } else {
            Next::Request(at)
        }
    }
}

/// The message an event carries: its data, or its data decoded for
/// wsreactor's `event: base64`; `None` for the events that are not
/// messages (`gap`, `expired`).
fn event_payload(e: &sse::Event) -> Result<Option<Vec<u8>>, &'static str> {
    use base64::Engine as _;
    match e.kind.as_str() {
        "message" => Ok(Some(e.data.clone().into_bytes())),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(&e.data)
            .map(Some)
            .map_err(|_| "bad_base64"),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests;
