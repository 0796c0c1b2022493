//! One client connection as a state machine, driven by readiness and timers.
//!
//! ```text
//!  connect() ─► Connecting ──established──► Handshake ──101──► Open ──both closes──► Closing ──EOF──► (dropped)
//!                  │                           │                 │
//!                  └─ refused, timeout ────────┴─ status ≠ 101 ──┴─ EOF / reset without a close (1006),
//!                                                                    protocol error, echo timeout ──► (dropped, counted)
//! ```
//!
//! `Connecting` waits for a non-blocking `connect()` (EINPROGRESS) to
//! finish; `Handshake` has sent the upgrade request and checks the 101
//! against its key (RFC 6455 §4.1); `Open` sends messages when they are due
//! and matches echoes to them in order (echo mode), or checks and times
//! each published message it receives (subscribe mode), or sends one message
//! and closes on its echo (churn mode, [`Cycle`]); the close handshake is tracked per
//! direction inside the [`WebSocket`]; `Closing` waits for the server to
//! close the TCP connection first (§7.1.1), so the client's ports do not
//! pile up in TIME_WAIT across runs.
//!
//! In subscribe mode over HTTP (`--transport sse|longpoll|poll`) the
//! connection goes from `Connecting` to `Feed`, where a [`Feed`] says what
//! to ask and what the answers mean; a poll without keep-alive (or an
//! event stream the server ended) goes through `Redial`: the connection is
//! closed and the next one opens when the next request is due, with the
//! same cursor and the same [`Order`].
//!
//! Every error is counted where it is found, by kind, and ends only this
//! connection: the run goes on.

use super::churn::Cycle;
pub use super::ctx::Ctx;
use super::echo::EchoFlow;
use super::feed::{Feed, FeedPlan, Next};
use super::stats::record;
use super::subscribe::{Order, Seen, Stamp};
use super::transport::{Counted, Received, TlsTarget, Transport};
use super::{Mode, Plan};
use crate::protocol::handshake::{ClientHandshake, ClientHandshakeError};
use crate::protocol::mask::xorshift64;
use crate::protocol::{CloseCode, Event, Read as FrameRead, WebSocket};
use crate::reactor::buffer::BufferPool;
use mio::net::TcpStream;
use mio::Interest;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Largest response head accepted for the upgrade.
const MAX_RESPONSE_HEAD: usize = 8192;

/// Whether a client lives on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Keep it.
    Alive,
    /// Deregister and drop it.
    Dead,
    /// Its socket is closed: deregister it, and [`Client::redial`].
    Redial,
}

/// The connection is finished; whatever ended it has been counted.
struct Dead;

type Step = Result<(), Dead>;

enum State {
    /// Non-blocking `connect()` in progress.
    Connecting,
    /// Upgrade request queued; waiting for the 101 (§4.1).
    Handshake { hs: ClientHandshake },
    /// The WebSocket is open (§4.1: "_The WebSocket Connection is Established_").
    Open { ws: Box<WebSocket> },
    /// Both close frames exchanged (or the server failed us): wait for EOF.
    Closing,
    /// Subscribed over HTTP: a request out, or the next one `due`; with
    /// `redial`, on a new connection, once the server has closed this one.
    Feed { due: Option<Instant>, redial: bool },
    /// Between two connections of an HTTP subscriber: the next opens at `at`.
    Redial { at: Instant },
}

/// One client connection.
pub struct Client {
    /// Index over the whole run (its place in the schedules).
    index: usize,
    io: Transport,
    state: State,
    /// When the state began, or when our close frame was sent.
    since: Instant,
    /// Echo mode's messages.
    echo: EchoFlow,
    /// Subscribe mode: what this subscriber received, once open.
    order: Option<Box<Order>>,
    /// Churn mode: the cycle this connection is.
    cycle: Option<Box<Cycle>>,
    /// Reached `Open` (or, over HTTP, got its first answer) at some point.
    opened: bool,
    /// Subscribe mode over HTTP: the subscriber's requests and cursor.
    feed: Option<Box<Feed>>,
    /// What of `io.wire` is already in the figures.
    counted: Counted,
    /// The time of this client's entry in the worker's timer heap.
    pub armed: Option<Instant>,
}

impl Client {
    /// Start connecting client `index` to `addr`, from `source` if given.
    pub fn connect(
        index: usize,
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: Option<&TlsTarget>,
        now: Instant,
    ) -> io::Result<Client> {
        Ok(Client {
            index,
            io: Transport::connect(addr, source, tls)?,
            state: State::Connecting,
            since: now,
            echo: EchoFlow::new(index),
            order: None,
            cycle: None,
            opened: false,
            feed: None,
            counted: Counted::default(),
            armed: None,
        })
    }

    /// Churn mode: this connection is one cycle, due at `due`.
    pub fn with_cycle(mut self, due: Instant) -> Client {
        self.cycle = Some(Box::new(Cycle::new(due, self.since)));
        self
    }

    /// Churn mode: this connection's cycle, if it is one.
    pub fn cycle(&self) -> Option<&Cycle> {
        self.cycle.as_deref()
    }

    /// The socket, for (de)registration.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.io.stream()
    }

    /// Index over the whole run.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Still connecting or in the opening handshake (over HTTP: not yet
    /// answered).
    pub fn pending(&self) -> bool {
        !self.opened
            && matches!(
                self.state,
                State::Connecting | State::Handshake { .. } | State::Feed { .. }
            )
    }

    /// Between two connections: no socket to register.
    pub fn parked(&self) -> bool {
        matches!(self.state, State::Redial { .. })
    }

    /// Completed the opening handshake at some point.
    pub fn opened(&self) -> bool {
        self.opened
    }

    /// Messages awaiting their echo.
    pub fn in_flight(&self) -> usize {
        self.echo.in_flight()
    }

    /// Subscribe mode: has every one of the `accepted` messages, or will
    /// get no more (not open).
    pub fn caught_up(&self, accepted: u64) -> bool {
        let live = matches!(
            self.state,
            State::Open { .. } | State::Feed { .. } | State::Redial { .. } | State::Connecting
        );
        !(live && self.opened) || self.order.as_ref().is_none_or(|o| o.unique >= accepted)
    }

    /// Subscribe mode: distinct messages received so far.
    pub fn received_unique(&self) -> u64 {
        self.order.as_ref().map_or(0, |o| o.unique)
    }

    /// Subscribe mode: what this subscriber received (once, as it goes).
    pub fn take_order(&mut self) -> Option<Order> {
        self.order.take().map(|o| *o)
    }

    /// Sent its close frame and still waits for the server's.
    pub fn awaits_close(&self) -> bool {
        matches!(&self.state, State::Open { ws } if ws.close_state().sent && !ws.close_state().received)
    }

    /// The interest registered with the poll.
    pub fn registered(&self) -> Interest {
        self.io.registered()
    }

    /// Record what was registered.
    pub fn set_registered(&mut self, interest: Interest) {
        self.io.set_registered(interest);
    }

    /// Interest from state: writable while connecting (completion is a
    /// writable event) or while output is pending.
    pub fn interest(&self) -> Interest {
        if self.io.has_output() || matches!(self.state, State::Connecting) {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// When the next message is due, if one is and the pipeline has room.
    pub fn wake_at(&self, plan: &Plan, window: Option<(Instant, Instant)>, now: Instant) -> Option<Instant> {
        let ws = match &self.state {
            State::Open { ws } => ws,
            State::Feed {
                due: Some(at),
                redial: false,
            }
            | State::Redial { at } => return Some(*at),
            _ => return None,
        };
        let sending = plan.mode == Mode::Echo && !ws.close_state().sent && !ws.close_state().received;
        self.echo.wake_at(plan, window?, now).filter(|_| sending)
    }

    /// Handle readiness. `read_closed`: the peer has shut its side
    /// (`EPOLLRDHUP`), so reading must go on to the EOF.
    pub fn on_ready(&mut self, readable: bool, read_closed: bool, writable: bool, ctx: &mut Ctx<'_>) -> Life {
        let step = (|| {
            if matches!(self.state, State::Connecting) && !self.finish_connect(ctx)? {
                return Ok(());
            }
            if writable {
                self.flush(ctx)?;
            }
            if readable {
                self.read_all(read_closed, ctx)?;
            }
            self.pump(ctx);
            self.flush(ctx)
        })();
        self.life(step, ctx)
    }

    /// A timer fired: send what is due.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> Life {
        if matches!(self.state, State::Redial { at } if at <= ctx.now) {
            return Life::Redial;
        }
        self.pump(ctx);
        let step = self.flush(ctx);
        self.life(step, ctx)
    }

    /// Check time-outs.
    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let (plan, now) = (ctx.plan, ctx.now);
        let waited = now.saturating_duration_since(self.since);
        let t = &mut ctx.stats.errors.timed_out;
        let step = match &self.state {
            State::Connecting if waited >= plan.timeout => {
                t.connect += 1;
                Err(Dead)
            }
            State::Handshake { .. } if waited >= plan.timeout => {
                t.handshake += 1;
                Err(Dead)
            }
            State::Open { ws } if ws.close_state().sent && waited >= plan.close_timeout => {
                t.close += 1;
                Err(Dead)
            }
            State::Open { .. }
                if self
                    .echo
                    .oldest_sent()
                    .or_else(|| self.cycle.as_ref()?.awaiting_echo())
                    .is_some_and(|sent| now.saturating_duration_since(sent) >= plan.timeout) =>
            {
                t.message += 1;
                Err(Dead)
            }
            State::Feed { .. }
                if self
                    .feed
                    .as_ref()
                    .zip(plan.feed.as_ref())
                    .and_then(|(f, fp)| f.awaiting_since(fp))
                    .is_some_and(|sent| now.saturating_duration_since(sent) >= plan.timeout) =>
            {
                match self.opened {
                    false => t.handshake += 1,
                    true => t.message += 1,
                }
                Err(Dead)
            }
            // The server said it would close, and has not: on to the next
            // connection all the same.
            State::Feed { redial: true, due } if waited >= plan.close_timeout => {
                self.state = State::Redial { at: due.unwrap_or(now) };
                return Life::Redial;
            }
            State::Closing if waited >= plan.close_timeout => {
                // §7.1.1: the server should have closed the TCP connection.
                if self.cycle.as_ref().is_some_and(|c| c.done()) {
                    ctx.stats.churn.server_kept_open += 1;
                }
                Err(Dead)
            }
            _ => Ok(()),
        };
        self.life(step, ctx)
    }

    /// The run is over: start the close handshake (§7.1.2, code 1000).
    pub fn begin_close(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = match &mut self.state {
            State::Open { ws } if !ws.close_state().sent => {
                ws.close(CloseCode::NORMAL, "", self.io.out(ctx.pool));
                self.since = ctx.now;
                self.flush(ctx)
            }
            State::Open { .. } | State::Closing => Ok(()),
            // Only after an early stop: nothing to close yet. An HTTP
            // subscriber has no close handshake: its connection just ends.
            State::Connecting | State::Handshake { .. } | State::Feed { .. } | State::Redial { .. } => Err(Dead),
        };
        self.life(step, ctx)
    }

    /// HTTP subscriber: close the connection, and open the next one if it
    /// is due (true: register the new socket), else at its time.
    pub fn redial(&mut self, ctx: &mut Ctx<'_>) -> io::Result<bool> {
        self.account(ctx);
        self.io.hang_up();
        self.io.release(ctx.pool);
        let at = match self.state {
            State::Redial { at } => at,
            State::Feed { due, .. } => due.unwrap_or(ctx.now),
            _ => ctx.now,
        };
        if at > ctx.now {
            self.state = State::Redial { at };
            return Ok(false);
        }
        let plan = ctx.plan;
        self.io = Transport::connect(plan.target.addr, plan.source_for(self.index), plan.tls.as_ref())?;
        self.counted = Counted::default();
        self.state = State::Connecting;
        self.since = ctx.now;
        Ok(true)
    }

    /// Give the buffers back to the pool (the client is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.io.release(pool);
    }

    fn life(&mut self, step: Step, ctx: &mut Ctx<'_>) -> Life {
        self.account(ctx);
        match step {
            Ok(()) if matches!(self.state, State::Redial { .. }) => Life::Redial,
            Ok(()) => Life::Alive,
            Err(Dead) => {
                self.release(ctx.pool);
                Life::Dead
            }
        }
    }

    /// Add the bytes the socket carried since last time to the figures,
    /// once the window has begun.
    fn account(&mut self, ctx: &mut Ctx<'_>) {
        let wire = self.io.wire();
        if ctx.window.is_some() {
            ctx.stats.wire.bytes_in += wire.read - self.counted.read;
            ctx.stats.wire.bytes_out += wire.written - self.counted.written;
        }
        self.counted = wire;
    }

    /// Connecting: once established, queue the upgrade request (§4.1).
    fn finish_connect(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Dead> {
        match self.io.connected() {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => return Err(self.fail(&e, ctx)),
        }
        record(&mut ctx.stats.connect, ctx.now.saturating_duration_since(self.since));
        if ctx.window.is_some() {
            ctx.stats.wire.connects += 1;
        }
        let plan = ctx.plan;
        if let Some(fp) = &plan.feed {
            let feed = self.feed.get_or_insert_with(|| Box::new(Feed::new()));
            self.state = State::Feed {
                due: Some(ctx.now),
                redial: false,
            };
            self.since = ctx.now;
            send_request(feed, fp, &mut self.io, &mut self.state, ctx);
            // An nchan long poll is subscribed once it is sent.
            if !self.opened && feed.ready(fp) {
                self.became_ready(ctx);
            }
            return Ok(true);
        }
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&xorshift64(ctx.rng).to_ne_bytes());
        nonce[8..].copy_from_slice(&xorshift64(ctx.rng).to_ne_bytes());
        let hs = ClientHandshake::new(nonce);
        let target = &ctx.plan.target;
        let headers: Vec<(&str, &str)> = ctx.plan.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        hs.write_request(self.io.out(ctx.pool), &target.host, &target.path, &headers);
        self.state = State::Handshake { hs };
        self.since = ctx.now;
        Ok(true)
    }

    /// Read until WouldBlock (mio's edge-triggered rule), processing as we go.
    fn read_all(&mut self, read_closed: bool, ctx: &mut Ctx<'_>) -> Step {
        loop {
            if self.io.has_input() {
                self.process(ctx)?;
            }
            match self.io.read_some(ctx.pool) {
                // A short read emptied the socket's queue: later bytes raise
                // a new edge, so the read that would only say WouldBlock is
                // skipped (a syscall per message, as in the server). Not
                // after the peer's FIN, which raises no further edge.
                Ok(Received::Bytes { short: true }) if !read_closed => {
                    self.process(ctx)?;
                    break;
                }
                Ok(Received::Bytes { .. }) => {}
                Ok(Received::Blocked) => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && matches!(self.state, State::Feed { .. }) => {
                    return self.feed_eof(ctx);
                }
                Err(e) => return Err(self.fail(&e, ctx)),
            }
        }
        self.io.tidy(ctx.pool);
        Ok(())
    }

    /// Consume what the read buffer holds, according to the state.
    fn process(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if matches!(self.state, State::Handshake { .. }) {
            self.process_head(ctx)?;
        }
        match self.state {
            State::Open { .. } => self.process_frames(ctx),
            State::Feed { .. } => return self.process_feed(ctx),
            // After the close handshake input is read only to reach EOF.
            State::Closing => self.io.discard_input(),
            State::Connecting | State::Handshake { .. } | State::Redial { .. } => {}
        }
        Ok(())
    }

    /// Subscribed over HTTP: what the answers say, and when to ask again.
    fn process_feed(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let plan = ctx.plan;
        let (Some(feed), Some(fp), Some((rbuf, _))) = (self.feed.as_deref_mut(), &plan.feed, self.io.buffers(ctx.pool))
        else {
            return Ok(());
        };
        let was_ready = feed.ready(fp);
        let now = ctx.now;
        let order = &mut self.order;
        let read = feed.read(fp, rbuf.filled(), now, &mut |d| feed_delivery(order, &d.payload, ctx));
        let next = match read {
            Ok((used, next)) => {
                rbuf.consume(used);
                next
            }
            Err(e) => {
                match e {
                    super::feed::FeedError::Status(code) => {
                        *ctx.stats.errors.handshake_status.entry(code).or_default() += 1
                    }
                    e => *ctx.stats.errors.protocol.entry(e.kind()).or_default() += 1,
                }
                return Err(Dead);
            }
        };
        if !was_ready && feed.ready(fp) {
            self.became_ready(ctx);
        }
        if let Next::Request(at) | Next::Redial(at) = next {
            self.state = State::Feed {
                due: Some(at),
                redial: matches!(next, Next::Redial(_)),
            };
            self.since = now;
        }
        Ok(())
    }

    /// The subscriber's first answer: it is subscribed.
    fn became_ready(&mut self, ctx: &mut Ctx<'_>) {
        self.opened = true;
        record(&mut ctx.stats.handshake, ctx.now.saturating_duration_since(self.since));
        ctx.stats.opened += 1;
        self.order.get_or_insert_with(|| new_order(ctx.plan));
    }

    /// The server closed an HTTP subscriber's connection: after a response
    /// that said so, or at the end of an event stream (the server ended
    /// it: counted, and the subscriber resumes from its last event id).
    fn feed_eof(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let plan = ctx.plan;
        let (Some(feed), Some(fp)) = (self.feed.as_deref_mut(), &plan.feed) else {
            return Err(Dead);
        };
        let State::Feed { due, redial } = self.state else {
            return Err(Dead);
        };
        let stream = !feed.idle();
        let order = &mut self.order;
        let at = feed.at_eof(fp, ctx.now, &mut |d| feed_delivery(order, &d.payload, ctx));
        let at = match at {
            Ok(at) if redial => due.unwrap_or(at),
            Ok(at) => at,
            Err(e) => {
                *ctx.stats.errors.protocol.entry(e.kind()).or_default() += 1;
                return Err(Dead);
            }
        };
        if stream || !redial {
            ctx.stats.wire.reconnects += 1;
        }
        self.state = State::Redial { at };
        Ok(())
    }

    /// Handshake: check the answer; the bytes after a 101 are frames and
    /// stay in the buffer for `Open` (the upgrade hands its leftover on).
    fn process_head(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let (State::Handshake { hs }, Some((rbuf, _))) = (&self.state, self.io.buffers(ctx.pool)) else {
            return Ok(());
        };
        let errors = &mut ctx.stats.errors;
        match hs.read_response(rbuf.filled(), MAX_RESPONSE_HEAD) {
            Ok(None) => {
                self.io.want = MAX_RESPONSE_HEAD;
                Ok(())
            }
            Ok(Some(accepted)) => {
                rbuf.consume(accepted.head_len);
                record(&mut ctx.stats.handshake, ctx.now.saturating_duration_since(self.since));
                ctx.stats.opened += 1;
                let ws = WebSocket::client(ctx.plan.read_limits, xorshift64(ctx.rng));
                self.state = State::Open { ws: Box::new(ws) };
                self.opened = true;
                if let Some(p) = &ctx.plan.publish {
                    self.order = Some(Box::new(Order::new(p.lanes)));
                }
                self.since = ctx.now;
                self.io.want = 0;
                Ok(())
            }
            Err(ClientHandshakeError::Status(code)) => {
                *errors.handshake_status.entry(code).or_default() += 1;
                Err(Dead)
            }
            Err(e) => {
                *errors.handshake_invalid.entry(e.kind()).or_default() += 1;
                Err(Dead)
            }
        }
    }

    /// Open: parse frames and match echoes to the messages in flight.
    fn process_frames(&mut self, ctx: &mut Ctx<'_>) {
        let (State::Open { ws }, Some((rbuf, out))) = (&mut self.state, self.io.buffers(ctx.pool)) else {
            return;
        };
        let mut want = 0;
        while !rbuf.is_empty() {
            let closing = ws.close_state().sent;
            match ws.read(rbuf.filled_mut(), out) {
                Ok(FrameRead::Incomplete { frame_len }) => {
                    want = frame_len.unwrap_or(0);
                    break;
                }
                Ok(FrameRead::Frame { consumed, event }) => {
                    match (event, self.cycle.as_deref_mut(), self.order.as_deref_mut()) {
                        (Some(Event::Message(_, payload)), Some(cycle), _) if !closing => {
                            cycle.on_echo(payload.len(), ws, out, ctx.plan, ctx.stats);
                            self.since = ctx.now;
                        }
                        // The server's answer to our close ends a cycle.
                        (Some(Event::Close(frame)), Some(cycle), _) if closing => {
                            cycle.on_close_answer(frame.code, ctx)
                        }
                        (Some(Event::Message(_, payload)), ..) if ctx.plan.mode == Mode::Echo && !closing => self
                            .echo
                            .on_echo(payload.len(), ctx.now, ctx.plan, ctx.stats, ctx.interval),
                        // A delivery counts until the channel is closed.
                        (Some(Event::Message(_, payload)), _, Some(order)) => on_delivery(order, &payload, ctx),
                        (Some(Event::Message(..)), ..) => ctx.stats.received += 1,
                        // The server closed first: §7.1.5, its code is the
                        // connection's close code (1005 when it gave none).
                        (Some(Event::Close(frame)), ..) if !closing => {
                            let code = frame.code.unwrap_or(CloseCode::NO_STATUS).0;
                            *ctx.stats.errors.close_codes.entry(code).or_default() += 1;
                        }
                        _ => {}
                    }
                    rbuf.consume(consumed);
                }
                Err(e) => {
                    *ctx.stats.errors.protocol.entry(e.kind()).or_default() += 1;
                    ws.fail(&e, out);
                    rbuf.consume(rbuf.len());
                    break;
                }
            }
        }
        self.io.want = want;
        if ws.is_closed() {
            self.state = State::Closing;
            self.since = ctx.now;
        }
    }

    /// Open: queue the messages that are due (over HTTP: the request).
    fn pump(&mut self, ctx: &mut Ctx<'_>) {
        if let State::Feed { due, redial } = self.state {
            let plan = ctx.plan;
            if let (Some(at), false, Some(feed), Some(fp)) = (due, redial, self.feed.as_deref_mut(), &plan.feed) {
                if at <= ctx.now {
                    send_request(feed, fp, &mut self.io, &mut self.state, ctx);
                }
            }
            return;
        }
        let State::Open { ws } = &mut self.state else {
            return;
        };
        if ws.close_state().sent || ws.close_state().received {
            return;
        }
        if let Some(cycle) = self.cycle.as_deref_mut() {
            return cycle.send(ws, self.io.out(ctx.pool), ctx.plan, ctx.now, ctx.stats);
        }
        let Some(window) = ctx.window.filter(|_| ctx.plan.mode == Mode::Echo) else {
            return;
        };
        let out = self.io.out(ctx.pool);
        self.echo.pump(ws, out, ctx.plan, window, ctx.now, ctx.stats);
    }

    /// Write what is queued (not before the connection exists).
    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if matches!(self.state, State::Connecting | State::Redial { .. }) {
            return Ok(());
        }
        if let Err(e) = self.io.flush() {
            return Err(self.fail(&e, ctx));
        }
        self.io.tidy(ctx.pool);
        Ok(())
    }

    /// The connection broke (EOF or a socket error): count it as what it
    /// means in this state, and end it.
    fn fail(&mut self, e: &io::Error, ctx: &mut Ctx<'_>) -> Dead {
        let errors = &mut ctx.stats.errors;
        match &self.state {
            State::Connecting => errors.socket(e),
            State::Handshake { .. } if e.kind() == io::ErrorKind::UnexpectedEof => {
                *errors.handshake_invalid.entry("no_response").or_default() += 1
            }
            State::Handshake { .. } => errors.socket(e),
            // §7.1.5: closed with no close frame received: 1006.
            State::Open { ws } if !ws.close_state().received => {
                *errors.close_codes.entry(CloseCode::ABNORMAL.0).or_default() += 1
            }
            // The close handshake is done: EOF is what Closing waits for.
            State::Open { .. } | State::Closing => {}
            State::Feed { .. } | State::Redial { .. } => errors.socket(e),
        }
        Dead
    }
}

/// Queue an HTTP subscriber's next request.
fn send_request(feed: &mut Feed, fp: &FeedPlan, io: &mut Transport, state: &mut State, ctx: &mut Ctx<'_>) {
    feed.request(fp, io.out(ctx.pool), ctx.now);
    if ctx.window.is_some() {
        ctx.stats.wire.requests += 1;
    }
    *state = State::Feed {
        due: None,
        redial: false,
    };
}

/// What a subscriber of this run receives into: one lane order per publisher lane.
fn new_order(plan: &Plan) -> Box<Order> {
    Box::new(Order::new(plan.publish.as_ref().map_or(1, |p| p.lanes)))
}

/// An HTTP subscriber's delivery: a message can come in the same read as
/// the first answer, before the subscriber is marked ready, so the order
/// is made at the first that comes.
fn feed_delivery(order: &mut Option<Box<Order>>, payload: &[u8], ctx: &mut Ctx<'_>) {
    let order = order.get_or_insert_with(|| new_order(ctx.plan));
    on_delivery(order, payload, ctx);
}

/// Subscribe mode: check a delivered message's place in its lane and
/// record its latency from the time it was due to be published.
fn on_delivery(order: &mut Order, payload: &[u8], ctx: &mut Ctx<'_>) {
    let errors = &mut ctx.stats.errors;
    let stamp = match ctx.plan.kind {
        crate::protocol::MessageKind::Binary => Stamp::read(payload),
        crate::protocol::MessageKind::Text => Stamp::read_text(payload),
    };
    let Some(stamp) = stamp else {
        return errors.delivery("bad_payload", 1);
    };
    if payload.len() != ctx.plan.payload.len() {
        errors.delivery("wrong_size", 1);
    }
    match order.see(&stamp) {
        None => return errors.delivery("bad_payload", 1),
        Some(Seen::Duplicate) => {
            ctx.stats.received += 1;
            return errors.delivery("duplicate", 1);
        }
        Some(Seen::Late) => errors.delivery("out_of_order", 1),
        Some(Seen::InOrder | Seen::Ahead) => {}
    }
    ctx.stats.received += 1;
    // Payload times are the wall clock's: the publisher may be another
    // process (--observe).
    let now = ctx.plan.unix_ns(Instant::now());
    let since = |ns: u64| Duration::from_nanos(now.saturating_sub(ns));
    let latency = since(stamp.scheduled_ns);
    record(&mut ctx.stats.latency, latency);
    if let Some(sent) = stamp.sent_ns {
        record(&mut ctx.stats.service, since(sent));
    }
    // For the progress line and the run's seconds (`series`).
    record(ctx.interval, latency);
}
