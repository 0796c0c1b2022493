//! One connection's application state machine, without I/O and without a
//! clock (quinn-proto's shape): bytes, deliveries, broker answers and the
//! time go in through `handle_*`; bytes to send ([`Session::output`]), the
//! next deadline ([`Session::deadline`]), how the connection ends
//! ([`Session::poll_end`]) and broker [`Action`]s come out.
//!
//! ```text
//!  accept ─► Request ──upgrade, handler accepts─────────────────────────────► Open
//!              │ │ ├─upgrade with a topic ─► Waiting ──subscribed──► Open (with a feed)
//!              │ │ └─HttpHandler: ReadBody ─► Body ──body in─► (its next step)
//!              │ │    Ask ─► Waiting ──answer / deadline─► (its next step)
//!              │ │    Park ─► Parked ──messages taken / wait over / expiry─► (its next step)
//!              │ │    Stream ─► Stream ──expiry, slow, end──► Closing
//!              │ └──Respond (keep-alive)──► Request
//!              └─ refused, Connection: close, failed ─► Closing ──EOF/timeout──► (dropped)
//!   Open ──close handshake done (the peer's close came)──► Closing ──flushed──► (dropped)
//! ```
//!
//! Each state's data, its timer's start included, lives in its variant;
//! each transition is a function that returns the next state. `Closing`
//! flushes what is queued, shuts the write side and reads until the peer's
//! EOF, so a final status or close frame is not destroyed by a reset
//! (RFC 6455 §7.1.1: the server closes the TCP connection first). After a
//! complete closing handshake it does not wait: the peer's close frame was
//! its last (§5.5.1), so nothing unread can turn the close into a reset.
//!
//! The session knows HTTP/1.1 and WebSocket framing, states and
//! deadlines; what a request means is its handler's ([`crate::app`]). It
//! never calls the broker: it queues a [`Request`] as an
//! [`Action::Submit`] and waits in `Waiting` for the [`Answer`], which the
//! worker hands to [`Session::handle_answer`]; a subscription it no longer
//! needs goes back as [`Action::Unsubscribe`]. The reactor owns the socket
//! ([`super::connection`]); this module's tests drive a session with byte
//! slices and made-up stamps.

mod client;
mod conn;
mod expiry;
mod feed;
mod handler;
mod open;
mod request;
#[cfg(test)]
mod tests;
mod topics;

use super::buffer::{BufferPool, ReadBuf};
use super::output::Output;
use super::per_ip::{Hold, PerIp};
use super::settings::Settings;
use super::stamp::Stamp;
use crate::app::{App, Response, ServerInfo, UserData, Wake};
use crate::protocol::http::{HeadScanner, HttpDate, Status};
use crate::protocol::{CloseCode, WebSocket};
use crate::pubsub::{Address, Answer, Request, Subscription};
use crate::stats::{Transport, WorkerStats};
use handler::{Body, HttpWait, Parked, Streaming};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
#[cfg(test)]
use topics::Feed;
use topics::Topics;

pub use feed::Delivered;

/// What the worker lends a session for one step: buffers, limits,
/// counters, the time, and where the session's actions go.
pub struct Env<'a> {
    /// The worker's buffers.
    pub pool: &'a mut BufferPool,
    /// Limits and timeouts.
    pub settings: &'a Settings,
    /// The worker's counters.
    pub stats: &'a WorkerStats,
    /// The whole server, for handlers' pages about it (`/metrics`, `/readyz`).
    pub server: &'a dyn ServerInfo,
    /// The time the current loop iteration began.
    pub stamp: Stamp,
    /// The same, as the `Date` of a response.
    pub date: &'a HttpDate,
    /// Broker actions queued by this step, for the worker to carry out.
    pub actions: &'a mut Vec<Action>,
    /// What runs on the connections: handlers and routes.
    pub app: &'a App,
    /// The connection's address (for its handler).
    pub me: Address,
    /// The per-address limits (for a proxied request's client).
    pub per_ip: &'a PerIp,
    /// The time the current loop iteration began, as an instant.
    pub instant: Instant,
}

/// What a session asks the worker to do with the broker.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Submit this request; the answer comes to [`Session::handle_answer`].
    Submit(Request),
    /// This subscription is over.
    Unsubscribe(Subscription),
    /// For the access log (`[server] access_log`), when it is on.
    Access(Access),
}

/// What the access log hears of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// A request head: its method and path (not its query, which may
    /// hold a token).
    Request(Box<str>),
    /// Its answer's head: the status and the body's length (unknown for a
    /// stream).
    Response { status: u16, bytes: Option<usize> },
    /// A WebSocket session closed: who started the closing handshake and
    /// with what code (none: the connection ended without one).
    Closed(Option<crate::protocol::websocket::ClosedBy>),
}

/// Whether the session lives on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Keep it.
    Alive,
    /// Drop the connection.
    Dead,
}

/// The connection is finished (EOF, I/O error, or timeout).
#[derive(Debug, PartialEq, Eq)]
pub struct Dead;

/// Shorthand for "stop here, the connection is finished".
pub type Step = Result<(), Dead>;

#[derive(Debug)]
enum State {
    /// Reading an HTTP request head (RFC 9112 §2), since `since` (the
    /// connection's start, or the previous answer on a kept-alive one).
    Request { scanner: HeadScanner, since: Stamp },
    /// Reading the body a handler asked for; `since`: when its request
    /// could begin (the whole request is under `request_timeout`).
    Body { body: Box<Body>, since: Stamp },
    /// A broker request is out since `since`; what to do with its answer.
    Waiting { wait: Box<Wait>, since: Stamp },
    /// WebSocket open (RFC 6455 §4.2.2 step 5 done).
    Open(Box<Open>),
    /// A request parked on a subscription since `since` (a long poll),
    /// until its handler takes a message or its wait is over.
    Parked { parked: Box<Parked>, since: Stamp },
    /// A response streaming a subscription (Server-Sent Events);
    /// `last_event`: when bytes last went out.
    Stream { stream: Box<Streaming>, last_event: Stamp },
    /// Last bytes queued at `since`: flush, then either shut the write
    /// side (`shut`) and read to EOF (`linger`), or close at once (the
    /// closing handshake is done).
    Closing { shut: bool, linger: bool, since: Stamp },
}

/// The `Open` state's data, in one allocation.
#[derive(Debug)]
struct Open {
    ws: WebSocket,
    /// The topics it is subscribed to, or asked for (`None`: none ever,
    /// as the echo endpoint).
    topics: Option<Box<Topics>>,
    /// When the last input came; once our close frame is out, when it
    /// went out (RFC 6455 §7.1.1: the peer's answer is awaited from then,
    /// and what else it sends does not extend the wait).
    last_input: Stamp,
    /// A keep-alive ping is out since `last_input`.
    pinged: bool,
    /// The handler's close was called.
    told_close: bool,
    /// The handler, in `env.app`.
    handler: u16,
    /// The handler's per-connection data.
    data: UserData,
}

/// What a session waiting for the broker does with the answer.
#[derive(Debug)]
enum Wait {
    /// An HTTP handler's request: the answer is its handler's.
    Http(HttpWait),
    /// A WebSocket subscribed to a topic: the 101 (written once the
    /// subscription is live), the session it opens, its handler and data.
    Upgrade {
        response: Vec<u8>,
        ws: WebSocket,
        json: bool,
        handler: u16,
        data: UserData,
        /// When its subscription ends (Unix seconds).
        expires: Option<u64>,
        /// Its topic's join and leave events go out too.
        join_leave: bool,
    },
}

impl Open {
    /// When our close frame went out, if it did.
    fn close_sent(&self) -> Option<Stamp> {
        self.ws.close_state().sent.then_some(self.last_input)
    }

    /// Start the close handshake at `now` (once).
    fn close(&mut self, code: CloseCode, reason: &str, now: Stamp, out: &mut Vec<u8>) {
        if !self.ws.close_state().sent {
            self.ws.close(code, reason, out);
            self.last_input = now;
        }
    }

    /// When its timer next acts: the end of the close wait once our close
    /// is out, else the idle timeout, or half of it for the keep-alive ping.
    fn deadline(&self, s: &Settings) -> Stamp {
        match (self.close_sent(), self.pinged) {
            (Some(at), _) => at.plus(s.close_timeout),
            (None, true) => self.last_input.plus(s.idle_timeout),
            (None, false) => self.last_input.plus(s.idle_timeout / 2),
        }
    }

    /// Its timer at `now`: half the idle time without input sends a ping
    /// (a pong proves the peer alive), the whole of it closes with 1001;
    /// once our close is out, RFC 6455 §7.1.1's wait for the peer's answer
    /// is `close_timeout`, after which the connection is dropped. A buffer
    /// is taken from `pool` only for a frame to write (an idle connection
    /// holds none).
    fn on_timer(&mut self, now: Stamp, s: &Settings, out: &mut Output, pool: &mut BufferPool) -> Step {
        match self.close_sent() {
            Some(at) if now.since(at) >= s.close_timeout => return Err(Dead),
            Some(_) => {}
            None => {
                let quiet = now.since(self.last_input);
                if quiet >= s.idle_timeout {
                    self.close(CloseCode::GOING_AWAY, "idle timeout", now, out.buf(pool));
                } else if !self.pinged && quiet >= s.idle_timeout / 2 {
                    self.ws.send_ping(b"", out.buf(pool));
                    self.pinged = true;
                }
            }
        }
        Ok(())
    }
}

impl State {
    fn request(since: Stamp) -> State {
        State::Request {
            scanner: HeadScanner::default(),
            since,
        }
    }

    fn closing(since: Stamp) -> State {
        State::Closing {
            shut: false,
            linger: true,
            since,
        }
    }
}

/// How a connection ends once its last bytes are out
/// ([`Session::poll_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Shut the write side and read to the peer's EOF (or
    /// `close_timeout`): a peer still sending would otherwise get a reset,
    /// which can destroy the final status or close frame before it reads
    /// them.
    Linger,
    /// Close now: the peer's close frame came and ours went out whole. A
    /// peer sends nothing after its close frame (RFC 6455 §5.5.1), and the
    /// server closes the TCP connection first (§7.1.1).
    Close,
}

/// A session's buffers and the flags its states share.
#[derive(Debug, Default)]
struct Io {
    rbuf: Option<ReadBuf>,
    out: Output,
    /// Since when pending output has been over the limit.
    over_limit_since: Option<Stamp>,
    /// Bytes needed together at the front of the read buffer (frame, head,
    /// body); bounded by the limits, which are below 4 GiB.
    want: u32,
    /// One bit each: [`Flags`].
    flags: Flags,
    /// What the connection holds under the per-address limits; behind a
    /// trusted proxy, each request counts its client in it.
    hold: Hold,
}

/// A session's yes-or-no facts, in one byte (every connection holds them).
#[derive(Debug, Default, Clone, Copy)]
struct Flags(u8);

impl Flags {
    /// Output was queued by a delivery and not yet flushed.
    const DIRTY: u8 = 1;
    /// The request being answered is a HEAD: responses carry no body.
    const HEAD_ONLY: u8 = 2;
    /// Back in `Request` with input held while a poll or a broker request
    /// was pending: the reactor must process it and read again.
    const RESUME: u8 = 4;
    /// The session just opened: its handler is to hear of it.
    const JUST_OPENED: u8 = 8;
    /// The request being answered asked to close the connection after.
    const CLOSE: u8 = 16;

    fn get(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Set `flag` to `on`; what it was.
    fn replace(&mut self, flag: u8, on: bool) -> bool {
        let was = self.get(flag);
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
        was
    }
}

/// One connection's application state: its state machine and buffers.
#[derive(Debug)]
pub struct Session {
    state: State,
    io: Io,
}

impl Session {
    /// A fresh connection at `now`, waiting for a request.
    pub fn new(now: Stamp) -> Self {
        Session::holding(now, Hold::Nothing)
    }

    /// A session whose connection holds `hold` under the per-address
    /// limits (given back by whoever ends it: [`take_hold`](Self::take_hold)).
    pub fn holding(now: Stamp, hold: Hold) -> Self {
        Session {
            state: State::request(now),
            io: Io { hold, ..Io::default() },
        }
    }

    /// What the connection holds under the per-address limits; nothing after.
    pub fn take_hold(&mut self) -> Hold {
        std::mem::take(&mut self.io.hold)
    }

    /// A connection refused with `status` before anything is read (over
    /// `max_connections` or a per-address limit): the answer, with
    /// `Retry-After`, is queued and the session closes.
    pub fn refused(status: Status, why: &str, env: &mut Env<'_>) -> Self {
        let mut s = Session::new(env.stamp);
        s.state = s.io.refuse(status, &[("Retry-After", "1")], why, env);
        s
    }

    /// What this session is, for the per-transport gauges.
    pub fn transport(&self) -> Transport {
        match self.state {
            State::Request { .. } | State::Body { .. } | State::Waiting { .. } => Transport::Http,
            State::Open(_) => Transport::WebSocket,
            State::Parked { .. } => Transport::Poll,
            State::Stream { .. } => Transport::Sse,
            State::Closing { .. } => Transport::Closing,
        }
    }

    /// The subscription this session holds, if any.
    #[cfg(test)]
    pub fn subscription(&self) -> Option<&Subscription> {
        self.feed().map(|f| &f.sub)
    }

    /// The state, taken out to make its transition (each consumes its
    /// state and returns the next, rustls's `hs.rs` shape); what stands
    /// in for it meanwhile is never seen, as the next is put back at once.
    fn take_state(&mut self) -> State {
        std::mem::replace(
            &mut self.state,
            State::Closing {
                shut: true,
                linger: true,
                since: Stamp::default(),
            },
        )
    }

    /// Take a subscription out (the connection is going away): one at a
    /// time, until none is left.
    pub fn take_subscription(&mut self) -> Option<Subscription> {
        match &mut self.state {
            State::Open(open) => open.topics.as_mut()?.pop_feed().map(|f| f.sub),
            State::Waiting { wait, .. } => match &mut **wait {
                Wait::Http(http) => http.held.pop(),
                Wait::Upgrade { .. } => None,
            },
            State::Parked { parked, .. } if !parked.held.is_empty() => parked.held.pop(),
            State::Stream { stream, .. } if !stream.held.is_empty() => stream.held.pop(),
            State::Parked { since, .. } | State::Stream { last_event: since, .. } => {
                let since = *since;
                match self.take_state() {
                    State::Parked { parked, .. } => {
                        self.state = State::closing(since);
                        Some(parked.sub)
                    }
                    State::Stream { stream, .. } => {
                        self.state = State::closing(since);
                        Some(stream.sub)
                    }
                    other => {
                        self.state = other;
                        None
                    }
                }
            }
            _ => None,
        }
    }

    #[cfg(test)]
    fn feed(&self) -> Option<&Feed> {
        match &self.state {
            State::Open(open) => open.topics.as_ref()?.feeds().first(),
            _ => None,
        }
    }

    /// When the first subscription this session holds must end, if ever.
    fn expiry_at(&self) -> Option<Stamp> {
        match &self.state {
            State::Open(open) => {
                let feeds = open.topics.as_ref()?.feeds();
                feeds
                    .iter()
                    .filter_map(|f| f.expiry.as_ref())
                    .map(|e| e.at())
                    .reduce(Stamp::min)
            }
            State::Parked { parked, .. } => parked.expiry.as_ref().map(|e| e.at()),
            State::Stream { stream, .. } => stream.expiry.as_ref().map(|e| e.at()),
            _ => None,
        }
    }

    /// The bytes waiting to be sent.
    #[inline]
    pub fn output(&mut self) -> &mut Output {
        &mut self.io.out
    }

    /// Backpressure: a peer that does not read its output is not read from;
    /// a parked poll or a pending broker request reads only as much as one
    /// pipelined request head.
    #[inline]
    pub fn wants_read(&self, settings: &Settings) -> bool {
        let parked = matches!(self.state, State::Parked { .. } | State::Waiting { .. });
        let parked_full = parked && self.io.rbuf.as_ref().map_or(0, ReadBuf::len) >= settings.max_request_head;
        self.io.out.len() <= settings.write_buffer_limit && !parked_full
    }

    /// Bytes are held that the session has not consumed.
    #[inline]
    pub fn has_input(&self) -> bool {
        self.io.rbuf.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// Where the next read goes: the spare room of the read buffer (taken
    /// from the pool if none is held), sized towards what the state needs.
    #[inline]
    pub fn receive_buffer(&mut self, pool: &mut BufferPool) -> &mut [u8] {
        let want = self.io.want as usize;
        self.io.rbuf.get_or_insert_with(|| ReadBuf::take(pool)).spare(want)
    }

    /// `n` bytes were read into [`receive_buffer`](Self::receive_buffer).
    #[inline]
    pub fn handle_received(&mut self, n: usize, env: &mut Env<'_>) {
        if let Some(r) = self.io.rbuf.as_mut() {
            r.filled_by(n);
        }
        env.stats.bytes_in.fetch_add(n as u64, Relaxed);
        if let State::Open(open) = &mut self.state {
            if !open.ws.close_state().sent {
                open.pinged = false;
                open.last_input = env.stamp;
            }
        }
    }

    /// Input stopped for now: an empty read buffer goes back to the pool.
    #[inline]
    pub fn input_paused(&mut self, pool: &mut BufferPool) {
        if let Some(r) = self.io.rbuf.take_if(|r| r.is_empty()) {
            r.give(pool);
        }
    }

    /// True once after a parked poll or a broker request was answered and
    /// input is held behind it: process it and read the socket again, as no
    /// readiness edge will come for it (RFC 9112 §9.3.2: a server MUST
    /// answer pipelined requests in order).
    #[inline]
    pub fn poll_resume(&mut self) -> bool {
        self.io.flags.replace(Flags::RESUME, false)
    }

    /// Consume what the read buffer holds, according to the state.
    pub fn handle_input(&mut self, env: &mut Env<'_>) {
        loop {
            let more = match self.state {
                State::Request { .. } => self.on_head(env),
                State::Body { .. } => self.on_body(env),
                State::Open(_) => {
                    self.on_frames(env);
                    false
                }
                // A pipelined request waits until the answer.
                State::Parked { .. } | State::Waiting { .. } => false,
                State::Stream { .. } | State::Closing { .. } => {
                    // An event stream expects no input; after our last word,
                    // input is read only to reach EOF.
                    if let Some(r) = self.io.rbuf.as_mut() {
                        r.consume(r.len());
                    }
                    false
                }
            };
            // A head or body was consumed: pipelined bytes (frames after the
            // 101, or the next keep-alive request) are handled now, not on
            // the next readiness edge, which may never come.
            // A body of length 0 completes without input.
            let body = matches!(self.state, State::Body { .. });
            if !more || !(self.has_input() || body) {
                return;
            }
        }
    }

    /// Output was written: track how long it has been over the limit, and
    /// give drained buffers back.
    #[inline]
    pub fn handle_flushed(&mut self, env: &mut Env<'_>) {
        self.io.flags.replace(Flags::DIRTY, false);
        if self.io.out.len() > env.settings.write_buffer_limit {
            self.io.over_limit_since.get_or_insert(env.stamp);
        } else if self.io.over_limit_since.take().is_some() {
            self.drained(env);
        }
        self.io.out.trim(env.pool);
    }

    /// Once `Closing` has flushed its last bytes: how the connection ends
    /// (once; `None` before and after).
    #[inline]
    pub fn poll_end(&mut self) -> Option<End> {
        match &mut self.state {
            State::Closing {
                shut: shut @ false,
                linger,
                ..
            } if self.io.out.is_empty() => {
                *shut = true;
                Some(if *linger { End::Linger } else { End::Close })
            }
            _ => None,
        }
    }

    /// The next moment a timer of this session may act, from its state:
    /// never later than the time [`handle_timeout`](Self::handle_timeout)
    /// would do something, so the worker need not look before then.
    #[inline]
    pub fn deadline(&self, s: &Settings) -> Stamp {
        let state = match &self.state {
            State::Request { since, .. } => since.plus(s.handshake_timeout),
            State::Body { since, .. } | State::Waiting { since, .. } => since.plus(s.request_timeout),
            State::Open(open) => open.deadline(s),
            State::Parked { parked, since } => since.plus(parked.wait()),
            State::Stream { stream, last_event } => last_event.plus(stream.heartbeat()),
            State::Closing { since, .. } => since.plus(s.close_timeout),
        };
        let state = match self.expiry_at() {
            Some(at) => state.min(at),
            None => state,
        };
        match self.io.over_limit_since {
            Some(t) => state.min(t.plus(s.write_stall)),
            None => state,
        }
    }

    /// Check the timers at `env.stamp`; the reactor flushes after.
    pub fn handle_timeout(&mut self, env: &mut Env<'_>) -> Step {
        let s = env.settings;
        let now = env.stamp;
        if self.io.over_limit_since.is_some_and(|t| now.since(t) >= s.write_stall) {
            env.stats.count_slow(self.transport());
            return Err(Dead);
        }
        if self.expire(env) {
            return Ok(());
        }
        let io = &mut self.io;
        match &mut self.state {
            // No byte of a request yet (a kept-alive connection between
            // requests, or one that never spoke): close without a word, as
            // a 408 would race the client's next request.
            State::Request { since, .. } if now.since(*since) >= s.handshake_timeout => {
                if io.rbuf.as_ref().is_none_or(|r| r.is_empty()) {
                    return Err(Dead);
                }
                self.state = io.timed_out(env);
            }
            // The whole request, head and body, from when it could begin:
            // a body trickled a byte at a time is not given more time.
            State::Body { body, since } if now.since(*since) >= s.request_timeout => {
                let headers = std::mem::take(&mut body.headers);
                self.state = io.answer(Response::new(Status::REQUEST_TIMEOUT).headers(headers).close(), env)
            }
            // The broker did not answer: the handler says what that means
            // (a late answer is given back).
            State::Waiting { since, .. } if now.since(*since) >= s.request_timeout => self.wake(Wake::Deadline, env),
            State::Open(open) => return open.on_timer(now, s, &mut io.out, env.pool),
            State::Parked { parked, since } if now.since(*since) >= parked.wait() => self.wake(Wake::Deadline, env),
            State::Stream { stream, last_event } if now.since(*last_event) >= stream.heartbeat() => self.heartbeat(env),
            State::Closing { since, .. } if now.since(*since) >= s.close_timeout => return Err(Dead),
            _ => {}
        }
        Ok(())
    }

    /// The server is stopping: close WebSockets with 1001 (RFC 6455 §7.4.1),
    /// drop plain HTTP connections, polls and event streams.
    pub fn handle_server_shutdown(&mut self, env: &mut Env<'_>) -> Step {
        match &mut self.state {
            State::Request { .. }
            | State::Body { .. }
            | State::Waiting { .. }
            | State::Parked { .. }
            | State::Stream { .. } => Err(Dead),
            State::Open(open) if open.close_sent().is_none() => {
                open.close(
                    CloseCode::GOING_AWAY,
                    "server shutting down",
                    env.stamp,
                    self.io.out.buf(env.pool),
                );
                Ok(())
            }
            State::Open(_) | State::Closing { .. } => Ok(()),
        }
    }

    /// The broker's answer to this session's request.
    pub fn handle_answer(&mut self, answer: Answer, env: &mut Env<'_>) {
        if matches!(self.state, State::Open(_)) {
            return self.open_answer(answer, env);
        }
        if !matches!(self.state, State::Waiting { .. }) {
            // Not waiting (timed out, or closed): a subscription made for
            // it is given back.
            if let Answer::Subscribed(Ok((sub, _))) = answer {
                env.actions.push(Action::Unsubscribe(sub));
            }
            return;
        }
        self.state = match self.take_state() {
            State::Waiting { wait, .. } => (*wait).answer(answer, &mut self.io, env),
            other => other,
        };
        self.tell_opened(env);
        // Input held while waiting is the next state's (frames after the
        // 101, the next request): the reactor processes it now.
        if self.has_input() && !matches!(self.state, State::Closing { .. }) {
            self.io.flags.replace(Flags::RESUME, true);
        }
    }

    /// The connection is gone (EOF, error, timeout): a handler hears of it.
    pub fn handle_gone(&mut self, env: &mut Env<'_>) {
        self.tell_close(None, env);
    }

    /// Give the buffers back to the pool (the connection is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        if let Some(r) = self.io.rbuf.take() {
            r.give(pool);
        }
        self.io.out.release(pool);
    }

    /// Move to Closing; the subscriptions end here.
    fn enter_closing(&mut self, env: &mut Env<'_>) {
        self.tell_close(None, env);
        self.end_feeds(env);
        self.state = State::closing(env.stamp);
        self.io.want = 0;
    }

    /// Move to Closing after a complete closing handshake: close once the
    /// last bytes are out, without waiting for the peer's EOF.
    fn enter_closed(&mut self, env: &mut Env<'_>) {
        self.enter_closing(env);
        if let State::Closing { linger, .. } = &mut self.state {
            *linger = false;
        }
    }

    /// End the subscriptions, if any: they go back to the broker.
    fn end_feeds(&mut self, env: &mut Env<'_>) {
        while let Some(sub) = self.take_subscription() {
            env.actions.push(Action::Unsubscribe(sub));
        }
    }
}

impl Io {
    /// Answer a refused request and close; nothing after it is processed.
    fn refuse(&mut self, status: Status, headers: &[(&str, &str)], why: &str, env: &mut Env<'_>) -> State {
        let mut response = Response::refuse(status, why);
        for (name, value) in headers {
            response = response.header(name.to_string(), *value);
        }
        self.answer(response, env)
    }

    /// The request did not arrive in time: 408 and close.
    fn timed_out(&mut self, env: &mut Env<'_>) -> State {
        self.answer(Response::new(Status::REQUEST_TIMEOUT).close(), env)
    }
}

/// How many bytes must sit together at the front of the read buffer, as stored.
fn want(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
