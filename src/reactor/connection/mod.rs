//! One TCP connection's life as a state machine, driven by readiness.
//!
//! ```text
//!  accept ─► Request ──101──► Open (echo, or a channel's WebSocket subscriber)
//!              │ ▲ ▲──200 (keep-alive)── Body (POST /pub) ◄─┤
//!              │ └───200/204 (keep-alive)── Poll (parked) ◄─┤
//!              │                              Sse ◄─────────┘
//!              └─ error status, Connection: close, close handshake done ─► Closing ──EOF/timeout──► (dropped)
//! ```
//!
//! `Request` reads an HTTP/1.1 request head and routes it (`request.rs`);
//! `Open` runs the WebSocket endpoint (`open.rs`; the close handshake is tracked per
//! direction inside it); `Poll` and `Sse` hold a channel subscription
//! (`feed.rs`); `Closing` flushes what is queued, shuts the write side and
//! reads until the peer's EOF, so a final status or close frame is not
//! destroyed by a reset (RFC 6455 §7.1.1: the server closes the TCP
//! connection first).
//!
//! Buffers are borrowed from the worker's pool only while bytes are in flight.

mod feed;
mod open;
mod request;

use super::buffer::{BufferPool, ReadBuf};
use super::output::Output;
use super::settings::Settings;
use super::stamp::Stamp;
use super::subscribers::Subscribers;
use crate::protocol::http::{write_head, HeadScanner, HttpDate, Status};
use crate::protocol::{CloseCode, WebSocket};
use crate::pubsub::Broker;
use crate::stats::{Transport, WorkerStats};
use feed::Feed;
use mio::net::TcpStream;
use mio::Interest;
use request::Publish;
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

pub use feed::Delivered;

/// What the worker lends a connection while it handles an event.
pub struct Ctx<'a> {
    /// The worker's buffers.
    pub pool: &'a mut BufferPool,
    /// Limits and timeouts.
    pub settings: &'a Settings,
    /// The worker's counters.
    pub stats: &'a WorkerStats,
    /// Every worker's counters (for `/metrics`).
    pub all_stats: &'a [Arc<WorkerStats>],
    /// Where channels live.
    pub hub: &'a dyn Broker,
    /// The worker's subscriber lists.
    pub subscribers: &'a mut Subscribers,
    /// The worker's index.
    pub worker: usize,
    /// The connection's slab key.
    pub key: usize,
    /// The time the current loop iteration began.
    pub now: Instant,
    /// The same, as a compact stamp for the connection's timers.
    pub stamp: Stamp,
    /// The same, as the `Date` of a response.
    pub date: &'a HttpDate,
}

/// Whether the connection lives on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Keep it.
    Alive,
    /// Deregister and drop it.
    Dead,
}

/// Shorthand for "stop here, the connection is finished".
type Step = Result<(), Dead>;

/// The connection is finished (EOF, I/O error, or timeout).
#[derive(Debug)]
pub struct Dead;

#[derive(Debug)]
enum State {
    /// Reading an HTTP request head (RFC 9112 §2).
    Request { scanner: HeadScanner },
    /// Reading the body of a publish.
    Body { publish: Box<Publish> },
    /// WebSocket open (RFC 6455 §4.2.2 step 5 done). `pinged`: a keep-alive
    /// ping is out since the last input. `feed`: the channel it subscribes
    /// to (`None`: the echo endpoint).
    Open {
        ws: Box<WebSocket>,
        pinged: bool,
        feed: Option<Box<Feed>>,
    },
    /// A long poll parked until a message or the poll timeout.
    Poll { feed: Box<Feed> },
    /// A Server-Sent Events stream.
    Sse { feed: Box<Feed> },
    /// Last bytes queued: flush, shut the write side (`shut`), read to EOF.
    Closing { shut: bool },
}

/// A connection and its buffers.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    state: State,
    rbuf: Option<ReadBuf>,
    out: Output,
    /// When the state began (Request, Poll, Closing), our close was sent
    /// (Open), or the last event went out (Sse).
    since: Stamp,
    last_input: Stamp,
    /// Since when pending output has been over the limit.
    over_limit_since: Option<Stamp>,
    /// Bytes needed together at the front of the read buffer (frame, head,
    /// body); bounded by the limits, which are below 4 GiB.
    want: u32,
    /// The interest currently registered with the poll.
    registered: Interest,
    /// Counts against `max_connections` (a rejected connection does not).
    counted: bool,
    /// Output was queued by a delivery and not yet flushed.
    dirty: bool,
    /// The request being answered is a HEAD: responses carry no body.
    head_only: bool,
    /// When the worker's timer wheel will next look at this connection
    /// ([`deadline`](Self::deadline) or earlier).
    scheduled: Stamp,
}

impl Connection {
    /// A freshly accepted connection, registered for reading.
    pub fn new(stream: TcpStream, now: Stamp, counted: bool) -> Self {
        Connection {
            stream,
            state: State::Request {
                scanner: HeadScanner::default(),
            },
            rbuf: None,
            out: Output::default(),
            since: now,
            last_input: now,
            over_limit_since: None,
            want: 0,
            registered: Interest::READABLE,
            counted,
            dirty: false,
            head_only: false,
            scheduled: now.far_after(),
        }
    }

    /// An accepted connection refused with `status` before anything is read
    /// (over `max_connections`): the answer is queued and the connection closes.
    pub fn refused(stream: TcpStream, status: Status, ctx: &mut Ctx<'_>) -> Self {
        let mut conn = Connection::new(stream, ctx.stamp, false);
        conn.respond(status, &[], b"", true, ctx);
        conn
    }

    /// The socket, for (de)registration.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Does this connection count against `max_connections`?
    pub fn counted(&self) -> bool {
        self.counted
    }

    /// The interest registered with the poll.
    pub fn registered(&self) -> Interest {
        self.registered
    }

    /// Record what was registered.
    pub fn set_registered(&mut self, interest: Interest) {
        self.registered = interest;
    }

    /// What this connection is, for the per-transport gauges.
    pub fn transport(&self) -> Transport {
        match self.state {
            State::Request { .. } | State::Body { .. } => Transport::Http,
            State::Open { .. } => Transport::WebSocket,
            State::Poll { .. } => Transport::Poll,
            State::Sse { .. } => Transport::Sse,
            State::Closing { .. } => Transport::Closing,
        }
    }

    /// The channel this connection is subscribed to, if any.
    pub fn channel(&self) -> Option<&Arc<str>> {
        self.feed().map(|f| &f.channel)
    }

    /// Interest from state (rustls's `event_set`): readable while input is
    /// wanted, writable only while output is pending.
    pub fn interest(&self, settings: &Settings) -> Interest {
        match (self.wants_read(settings), !self.out.is_empty()) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        }
    }

    /// Handle readiness.
    /// `read_closed`: the peer has shut its side (`EPOLLRDHUP`), so reading
    /// must go on to the EOF.
    pub fn on_ready(&mut self, readable: bool, read_closed: bool, writable: bool, ctx: &mut Ctx<'_>) -> Life {
        let step = (|| {
            let was_blocked = !self.wants_read(ctx.settings);
            if writable {
                self.flush(ctx)?;
            }
            // Also read when backpressure just lifted: bytes left in the
            // socket then raise no new readable edge.
            if readable || (was_blocked && self.wants_read(ctx.settings)) {
                self.read_all(read_closed, ctx)?;
            }
            self.after_io()
        })();
        self.life(step, ctx)
    }

    /// The next moment a timer of this connection may act, from its state:
    /// never later than the time [`on_tick`](Self::on_tick) would do
    /// something, so the worker need not look before then.
    pub fn deadline(&self, s: &Settings) -> Stamp {
        let state = match &self.state {
            State::Request { .. } => self.since.plus(s.handshake_timeout),
            State::Body { .. } => self.since.plus(s.request_timeout),
            State::Open { ws, .. } if ws.close_state().sent => self.since.plus(s.close_timeout),
            State::Open { pinged: true, .. } => self.last_input.plus(s.idle_timeout),
            State::Open { .. } => self.last_input.plus(s.idle_timeout / 2),
            State::Poll { .. } => self.since.plus(s.pubsub.poll_timeout),
            State::Sse { .. } => self.since.plus(s.pubsub.sse_heartbeat),
            State::Closing { .. } => self.since.plus(s.close_timeout),
        };
        match self.over_limit_since {
            Some(t) => state.min(t.plus(s.write_stall)),
            None => state,
        }
    }

    /// When the timer wheel holds this connection for.
    pub fn scheduled(&self) -> Stamp {
        self.scheduled
    }

    /// Record when the timer wheel holds this connection for.
    pub fn set_scheduled(&mut self, at: Stamp) {
        self.scheduled = at;
    }

    /// Check timeouts; called when the connection's deadline comes.
    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = self.check_timers(ctx);
        self.life(step, ctx)
    }

    /// The server is stopping: close WebSockets with 1001 (RFC 6455 §7.4.1),
    /// drop plain HTTP connections, polls and event streams.
    pub fn on_shutdown(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = match &mut self.state {
            State::Request { .. } | State::Body { .. } | State::Poll { .. } | State::Sse { .. } => Err(Dead),
            State::Open { ws, .. } if !ws.close_state().sent => {
                ws.close(CloseCode::GOING_AWAY, "server shutting down", self.out.buf(ctx.pool));
                self.since = ctx.stamp;
                self.flush(ctx).and_then(|_| self.after_io())
            }
            State::Open { .. } | State::Closing { .. } => Ok(()),
        };
        self.life(step, ctx)
    }

    /// Give the buffers back to the pool (the connection is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        if let Some(r) = self.rbuf.take() {
            r.give(pool);
        }
        self.out.release(pool);
    }

    fn life(&mut self, step: Step, ctx: &mut Ctx<'_>) -> Life {
        match step {
            Ok(()) => Life::Alive,
            Err(Dead) => {
                self.release(ctx.pool);
                Life::Dead
            }
        }
    }

    /// Backpressure: a peer that does not read its output is not read from;
    /// a parked poll reads only as much as one pipelined request head.
    fn wants_read(&self, settings: &Settings) -> bool {
        let parked_full = matches!(self.state, State::Poll { .. })
            && self.rbuf.as_ref().map_or(0, ReadBuf::len) >= settings.max_request_head;
        self.out.len() <= settings.write_buffer_limit && !parked_full
    }

    /// Read until WouldBlock (mio's edge-triggered rule), processing as we go.
    fn read_all(&mut self, read_closed: bool, ctx: &mut Ctx<'_>) -> Step {
        let mut drained = false;
        loop {
            // Bytes kept from before (backpressure, or a partial frame).
            if self.rbuf.as_ref().is_some_and(|r| !r.is_empty()) {
                self.process(ctx);
                self.flush(ctx)?;
            }
            if drained || !self.wants_read(ctx.settings) {
                break;
            }
            let mut rbuf = self.rbuf.take().unwrap_or_else(|| ReadBuf::take(ctx.pool));
            let spare = rbuf.spare(self.want as usize);
            let room = spare.len();
            let result = self.stream.read(spare);
            match result {
                Ok(0) => {
                    rbuf.give(ctx.pool);
                    return Err(Dead);
                }
                Ok(n) => {
                    // A short read emptied the socket's queue: bytes that
                    // arrive later raise a new edge, so the read that would
                    // only say WouldBlock is skipped (a syscall per message).
                    // Not when the peer has half-closed: its EOF raises no
                    // further edge and must be read now.
                    drained = n < room && !read_closed;
                    rbuf.filled_by(n);
                    ctx.stats.bytes_in.fetch_add(n as u64, Relaxed);
                    self.last_input = ctx.stamp;
                    if let State::Open { pinged, .. } = &mut self.state {
                        *pinged = false;
                    }
                    self.rbuf = Some(rbuf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rbuf = Some(rbuf);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.rbuf = Some(rbuf),
                Err(_) => {
                    rbuf.give(ctx.pool);
                    return Err(Dead);
                }
            }
        }
        if let Some(r) = self.rbuf.take_if(|r| r.is_empty()) {
            r.give(ctx.pool);
        }
        Ok(())
    }

    /// Consume what the read buffer holds, according to the state.
    fn process(&mut self, ctx: &mut Ctx<'_>) {
        loop {
            let more = match self.state {
                State::Request { .. } => self.process_head(ctx),
                State::Body { .. } => self.process_body(ctx),
                State::Open { .. } => {
                    self.process_frames(ctx);
                    false
                }
                // A pipelined request waits until the poll is answered.
                State::Poll { .. } => false,
                State::Sse { .. } | State::Closing { .. } => {
                    // An event stream expects no input; after our last word,
                    // input is read only to reach EOF.
                    if let Some(r) = self.rbuf.as_mut() {
                        r.consume(r.len());
                    }
                    false
                }
            };
            // A head or body was consumed: pipelined bytes (frames after the
            // 101, or the next keep-alive request) are handled now, not on
            // the next readiness edge, which may never come.
            if !more || self.rbuf.as_ref().is_none_or(|r| r.is_empty()) {
                return;
            }
        }
    }

    /// Queue a plain HTTP response; with `close`, move to Closing, else the
    /// request timer starts again for the next request on this connection.
    /// The answer to a HEAD is the head alone, `Content-Length` included
    /// (RFC 9110 §9.3.2).
    fn respond(&mut self, status: Status, headers: &[(&str, &str)], body: &[u8], close: bool, ctx: &mut Ctx<'_>) {
        let out = self.out.buf(ctx.pool);
        let length = (status.0 >= 200 && status != Status::NO_CONTENT).then_some(body.len());
        write_head(out, status, headers, length, close, ctx.date);
        if !self.head_only {
            out.extend_from_slice(body);
        }
        if close {
            self.enter_closing(ctx);
        } else {
            self.since = ctx.stamp;
        }
    }

    /// Move to Closing; a subscription ends here.
    fn enter_closing(&mut self, ctx: &mut Ctx<'_>) {
        self.end_feed(ctx);
        self.state = State::Closing { shut: false };
        self.since = ctx.stamp;
        self.want = 0;
    }

    /// Write until WouldBlock or done; give buffers back when drained.
    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Step {
        self.dirty = false;
        while !self.out.is_empty() {
            match self.out.write_to(&mut self.stream, ctx.pool) {
                Ok(0) => return Err(Dead),
                Ok(n) => {
                    ctx.stats.bytes_out.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Dead),
            }
        }
        if self.out.len() > ctx.settings.write_buffer_limit {
            self.over_limit_since.get_or_insert(ctx.stamp);
        } else {
            self.over_limit_since = None;
        }
        self.out.trim(ctx.pool);
        Ok(())
    }

    /// After I/O: once Closing has flushed, shut the write side.
    fn after_io(&mut self) -> Step {
        if let State::Closing { shut: shut @ false } = &mut self.state {
            if self.out.is_empty() {
                self.stream.shutdown(Shutdown::Write).map_err(|_| Dead)?;
                *shut = true;
            }
        }
        Ok(())
    }

    fn check_timers(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let s = ctx.settings;
        let now = ctx.stamp;
        if self.over_limit_since.is_some_and(|t| now.since(t) >= s.write_stall) {
            ctx.stats.count_slow(self.transport());
            return Err(Dead);
        }
        match &mut self.state {
            // No byte of a request yet (a kept-alive connection between
            // requests, or one that never spoke): close without a word, as
            // a 408 would race the client's next request.
            State::Request { .. }
                if now.since(self.since) >= s.handshake_timeout && self.rbuf.as_ref().is_none_or(|r| r.is_empty()) =>
            {
                Err(Dead)
            }
            State::Request { .. } if now.since(self.since) >= s.handshake_timeout => self.timed_out(ctx),
            // The whole request, head and body, from when it could begin:
            // a body trickled a byte at a time is not given more time.
            State::Body { .. } if now.since(self.since) >= s.request_timeout => self.timed_out(ctx),
            State::Request { .. } | State::Body { .. } => Ok(()),
            State::Open { ws, .. } if ws.close_state().sent => {
                // §7.1.1: the peer had its chance to answer our close.
                if now.since(self.since) >= s.close_timeout {
                    Err(Dead)
                } else {
                    Ok(())
                }
            }
            State::Open { ws, pinged, .. } => {
                let quiet = now.since(self.last_input);
                let idle = quiet >= s.idle_timeout;
                if !idle && (*pinged || quiet < s.idle_timeout / 2) {
                    return Ok(());
                }
                let out = self.out.buf(ctx.pool);
                if idle {
                    ws.close(CloseCode::GOING_AWAY, "idle timeout", out);
                    self.since = now;
                } else {
                    // Half the idle time without input: a pong proves the peer alive.
                    ws.send_ping(b"", out);
                    *pinged = true;
                }
                self.flush(ctx)
            }
            State::Poll { .. } if now.since(self.since) >= s.pubsub.poll_timeout => {
                if self.poll_timed_out(ctx) {
                    self.resume_requests(ctx)?;
                }
                self.flush(ctx).and_then(|_| self.after_io())
            }
            State::Sse { .. } if now.since(self.since) >= s.pubsub.sse_heartbeat => {
                // A comment line (WHATWG HTML §9.2.6) keeps proxies from
                // timing the stream out and reveals a vanished client.
                self.out.buf(ctx.pool).extend_from_slice(b": heartbeat\n\n");
                self.since = now;
                self.flush(ctx)
            }
            State::Poll { .. } | State::Sse { .. } => Ok(()),
            State::Closing { .. } if now.since(self.since) >= s.close_timeout => Err(Dead),
            State::Closing { .. } => Ok(()),
        }
    }

    /// The request did not arrive in time: 408 and close.
    fn timed_out(&mut self, ctx: &mut Ctx<'_>) -> Step {
        ctx.stats.count_http_error(Status::REQUEST_TIMEOUT);
        self.respond(Status::REQUEST_TIMEOUT, &[], b"", true, ctx);
        self.flush(ctx)?;
        self.after_io()
    }
}

/// How many bytes must sit together at the front of the read buffer, as stored.
fn want(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
