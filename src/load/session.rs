//! One client connection's protocol as a state machine, without a
//! socket or a clock (the server's `reactor::session` is the pattern): the
//! driver ([`super::client`]) lends it the connection's buffers ([`Bufs`])
//! and the time in [`Ctx`]; bytes read go in with [`Session::handle_input`],
//! the end of the connection with [`Session::handle_eof`] or
//! [`Session::handle_error`]; what to send comes out in the buffers' output
//! queue, when to wake in [`Session::wake_at`], and whether to keep the
//! connection in [`Step`] and [`Session::parked`].
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
use super::ctx::Ctx;
use super::echo::EchoFlow;
use super::feed::{Feed, FeedPlan, Next};
use super::scenario::{Disruption, End};
use super::stats::record;
use super::subscribe::{Order, Seen, Stamp};
use super::transport::Bufs;
use super::{Mode, Plan};
use crate::protocol::handshake::{ClientHandshake, ClientHandshakeError};
use crate::protocol::mask::xorshift64;
use crate::protocol::{CloseCode, Event, MessageKind, Read as FrameRead, WebSocket};
use std::io;
use std::time::{Duration, Instant};

/// Largest response head accepted for the upgrade.
const MAX_RESPONSE_HEAD: usize = 8192;

/// The connection is finished; whatever ended it has been counted.
#[derive(Debug, PartialEq, Eq)]
pub struct Dead;

/// What a step leaves: the connection goes on, or it is finished.
pub type Step = Result<(), Dead>;

#[derive(Debug)]
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

/// One client connection's protocol.
pub struct Session {
    /// Index over the whole run (its place in the schedules).
    index: usize,
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
    /// Subscribe mode with several channels (`wsreactor.mux`): subscribes
    /// sent and not yet answered; the subscriber is ready at none.
    unanswered: u32,
    /// Subscribe mode: its part in a slow-reader or storm scenario.
    disruption: Option<Box<Disruption>>,
    /// Subscribe mode over WebSocket with `wsreactor.json`: the id of the
    /// latest message, to resume from (`?since=`) after a drop.
    last_id: Option<u64>,
}

impl Session {
    /// Client `index`, connecting since `now`.
    pub fn new(index: usize, now: Instant) -> Session {
        Session {
            index,
            state: State::Connecting,
            since: now,
            echo: EchoFlow::new(index),
            order: None,
            cycle: None,
            opened: false,
            feed: None,
            unanswered: 0,
            disruption: None,
            last_id: None,
        }
    }

    /// Subscribe mode: this subscriber's part in the run's scenario.
    pub fn with_disruption(mut self, d: Option<Disruption>) -> Session {
        self.disruption = d.map(Box::new);
        self
    }

    /// Its part in the scenario, once, as the subscriber goes.
    pub fn take_disruption(&mut self) -> Option<Disruption> {
        self.disruption.take().map(|d| *d)
    }

    /// A slow reader.
    pub fn slow(&self) -> bool {
        self.disruption.as_ref().is_some_and(|d| d.slow().is_some())
    }

    /// A slow reader's receive buffer, if it has its own.
    pub fn slow_rcvbuf(&self) -> Option<usize> {
        self.disruption.as_ref()?.slow()?.rcvbuf()
    }

    /// Reads its socket now (a slow reader pauses).
    pub fn reading(&self, window: Option<(Instant, Instant)>, now: Instant) -> bool {
        match self.disruption.as_deref() {
            Some(Disruption::Slow(s)) => s.reading(window, now),
            _ => true,
        }
    }

    /// A slow reader's pause is over and it has not read since: it reads
    /// what waits (once).
    pub fn resume_due(&mut self, window: Option<(Instant, Instant)>, now: Instant) -> bool {
        match (self.disruption.as_deref_mut(), window) {
            (Some(Disruption::Slow(s)), Some(w)) if !s.resumed && now >= s.resume_at(w) => {
                s.resumed = true;
                true
            }
            _ => false,
        }
    }

    /// A reconnect storm's drop is due: if the subscriber is open, its
    /// connection is given up (the session waits in `Redial` for its
    /// return, its cursor kept) and true is returned.
    pub fn storm_due(&mut self, ctx: &Ctx<'_>) -> bool {
        let Some(Disruption::Storm(s)) = self.disruption.as_deref_mut() else {
            return false;
        };
        if !s.due(ctx.window, ctx.now) {
            return false;
        }
        let open = self.opened
            && matches!(
                self.state,
                State::Open { .. } | State::Feed { .. } | State::Redial { .. }
            );
        let Some(back) = s.drop_now(open, ctx.now) else {
            return false;
        };
        if let Some(feed) = self.feed.as_deref_mut() {
            feed.drop_connection();
        }
        self.state = State::Redial { at: back };
        true
    }

    /// Churn mode: this connection is one cycle, due at `due`.
    pub fn with_cycle(mut self, due: Instant) -> Session {
        self.cycle = Some(Box::new(Cycle::new(due, self.since)));
        self
    }

    /// Churn mode: this connection's cycle, if it is one.
    pub fn cycle(&self) -> Option<&Cycle> {
        self.cycle.as_deref()
    }

    /// Index over the whole run.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Still connecting or in the opening handshake (over HTTP: not yet
    /// answered).
    pub fn pending(&self) -> bool {
        !self.opened
            && (matches!(
                self.state,
                State::Connecting | State::Handshake { .. } | State::Feed { .. }
            ) || self.unanswered > 0)
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
            State::Open { .. }
                | State::Feed { .. }
                | State::Redial { .. }
                | State::Connecting
                | State::Handshake { .. }
        );
        // A slow reader is not reconciled: the drain does not wait for it.
        !(live && self.opened) || self.slow() || self.order.as_ref().is_none_or(|o| o.unique >= accepted)
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

    /// The socket is connecting: its completion is a writable event.
    pub fn connecting(&self) -> bool {
        matches!(self.state, State::Connecting)
    }

    /// Bytes may be written (the connection exists).
    pub fn can_send(&self) -> bool {
        !matches!(self.state, State::Connecting | State::Redial { .. })
    }

    /// A timer fired: the next connection of an HTTP subscriber is due.
    pub fn redial_due(&self, now: Instant) -> bool {
        matches!(self.state, State::Redial { at } if at <= now)
    }

    /// The connection is closed (to open the next one): when the next is
    /// due. Until [`handle_redialed`](Self::handle_redialed), if it is
    /// later than `now`, the session waits in `Redial`.
    pub fn handle_hung_up(&mut self, now: Instant) -> Instant {
        let at = match self.state {
            State::Redial { at } => at,
            State::Feed { due, .. } => due.unwrap_or(now),
            _ => now,
        };
        if at > now {
            self.state = State::Redial { at };
        }
        at
    }

    /// A new connection is being made.
    pub fn handle_redialed(&mut self, now: Instant) {
        self.state = State::Connecting;
        self.since = now;
    }

    /// When the next message is due, if one is and the pipeline has room.
    pub fn wake_at(&self, plan: &Plan, window: Option<(Instant, Instant)>, now: Instant) -> Option<Instant> {
        let scenario = window.and_then(|w| self.disruption.as_ref()?.wake_at(w));
        let own = match &self.state {
            State::Open { ws } => {
                let sending = plan.mode == Mode::Echo && !ws.close_state().sent && !ws.close_state().received;
                window.and_then(|w| self.echo.wake_at(plan, w, now)).filter(|_| sending)
            }
            State::Feed {
                due: Some(at),
                redial: false,
            }
            | State::Redial { at } => Some(*at),
            _ => None,
        };
        own.into_iter().chain(scenario).min()
    }

    /// Check time-outs (the driver calls it every tick).
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let (plan, now) = (ctx.plan, ctx.now);
        // A paused reader waits for nothing: what it asked for is unread.
        if !self.reading(ctx.window, now) {
            return Ok(());
        }
        let waited = now.saturating_duration_since(self.since);
        let t = &mut ctx.stats.errors.timed_out;
        match &self.state {
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
                Ok(())
            }
            State::Closing if waited >= plan.close_timeout => {
                // §7.1.1: the server should have closed the TCP connection.
                if self.cycle.as_ref().is_some_and(|c| c.done()) {
                    ctx.stats.churn.server_kept_open += 1;
                }
                Err(Dead)
            }
            _ => Ok(()),
        }
    }

    /// The run is over: start the close handshake (§7.1.2, code 1000).
    pub fn begin_close(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) -> Step {
        match &mut self.state {
            State::Open { ws } if !ws.close_state().sent => {
                ws.close(CloseCode::NORMAL, "", bufs.out(ctx.pool));
                self.since = ctx.now;
                Ok(())
            }
            State::Open { .. } | State::Closing => Ok(()),
            // Only after an early stop: nothing to close yet. An HTTP
            // subscriber has no close handshake: its connection just ends.
            State::Connecting | State::Handshake { .. } | State::Feed { .. } | State::Redial { .. } => Err(Dead),
        }
    }

    /// Connecting, established: queue the upgrade request (§4.1), or
    /// over HTTP the first request.
    pub fn handle_connected(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) {
        record(&mut ctx.stats.connect, ctx.now.saturating_duration_since(self.since));
        if ctx.window.is_some() {
            ctx.stats.wire.connects += 1;
        }
        let plan = ctx.plan;
        // Over HTTP the request, cursor and all, goes now.
        if let (Some(Disruption::Storm(s)), Some(_)) = (self.disruption.as_deref_mut(), &plan.feed) {
            s.back(ctx.now);
        }
        if let Some(fp) = &plan.feed {
            let feed = self.feed.get_or_insert_with(|| Box::new(Feed::new()));
            self.state = State::Feed {
                due: Some(ctx.now),
                redial: false,
            };
            self.since = ctx.now;
            send_request(feed, fp, bufs, &mut self.state, ctx);
            // An nchan long poll is subscribed once it is sent.
            if !self.opened && feed.ready(fp) {
                self.became_ready(ctx);
            }
            return;
        }
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&xorshift64(ctx.rng).to_ne_bytes());
        nonce[8..].copy_from_slice(&xorshift64(ctx.rng).to_ne_bytes());
        let hs = ClientHandshake::new(nonce);
        let target = &ctx.plan.target;
        let headers: Vec<(&str, &str)> = ctx.plan.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        // Back from a drop: from the latest message it had (the
        // `wsreactor.json` envelope's id), in place of any `since` the URL had.
        let path = match self.last_id {
            Some(id) => {
                let (route, query) = target.path.split_once('?').unwrap_or((&target.path, ""));
                let kept = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("since="));
                let query: Vec<String> = kept.map(str::to_owned).chain([format!("since={id}")]).collect();
                format!("{route}?{}", query.join("&"))
            }
            None => target.path.clone(),
        };
        hs.write_request(bufs.out(ctx.pool), &target.host, &path, &headers);
        self.state = State::Handshake { hs };
        self.since = ctx.now;
    }

    /// The peer's EOF: over HTTP the end of a response or an event stream;
    /// otherwise the connection broke, or (`Closing`) ended as it should.
    pub fn handle_eof(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if matches!(self.state, State::Feed { .. }) {
            return self.feed_eof(ctx);
        }
        Err(self.handle_error(&io::ErrorKind::UnexpectedEof.into(), ctx))
    }

    /// Bytes were read: consume what the read buffer holds, according to
    /// the state.
    pub fn handle_input(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) -> Step {
        if matches!(self.state, State::Handshake { .. }) {
            self.process_head(bufs, ctx)?;
        }
        match self.state {
            State::Open { .. } => self.process_frames(bufs, ctx),
            State::Feed { .. } => return self.process_feed(bufs, ctx),
            // After the close handshake input is read only to reach EOF.
            State::Closing => bufs.discard_input(),
            State::Connecting | State::Handshake { .. } | State::Redial { .. } => {}
        }
        Ok(())
    }

    /// Subscribed over HTTP: what the answers say, and when to ask again.
    fn process_feed(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) -> Step {
        let plan = ctx.plan;
        let (Some(feed), Some(fp), Some((rbuf, _))) = (self.feed.as_deref_mut(), &plan.feed, bufs.buffers(ctx.pool))
        else {
            return Ok(());
        };
        let was_ready = feed.ready(fp);
        let now = ctx.now;
        let (order, disruption) = (&mut self.order, &mut self.disruption);
        let read = feed.read(fp, rbuf.filled(), now, &mut |d| {
            feed_delivery(order, disruption, &d.payload, ctx)
        });
        let next = match read {
            Ok((used, next)) => {
                rbuf.consume(used);
                next
            }
            Err(e) => {
                match e {
                    super::feed::FeedError::Status(code)
                        if slow_end(&mut self.disruption, End::Status(code), ctx.window, ctx.now) => {}
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
        ready(&mut self.opened, &mut self.order, self.since, ctx);
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
        let (order, disruption) = (&mut self.order, &mut self.disruption);
        let at = feed.at_eof(fp, ctx.now, &mut |d| feed_delivery(order, disruption, &d.payload, ctx));
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
            // The server ended a slow reader's stream (it resumes).
            slow_end(&mut self.disruption, End::Eof, ctx.window, ctx.now);
        }
        self.state = State::Redial { at };
        Ok(())
    }

    /// Handshake: check the answer; the bytes after a 101 are frames and
    /// stay in the buffer for `Open` (the upgrade hands its leftover on).
    fn process_head(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) -> Step {
        let (State::Handshake { hs }, Some((rbuf, out))) = (&self.state, bufs.buffers(ctx.pool)) else {
            return Ok(());
        };
        let errors = &mut ctx.stats.errors;
        match hs.read_response(rbuf.filled(), MAX_RESPONSE_HEAD) {
            Ok(None) => {
                bufs.want = MAX_RESPONSE_HEAD;
                Ok(())
            }
            Ok(Some(accepted)) => {
                rbuf.consume(accepted.head_len);
                let mut ws = WebSocket::client(ctx.plan.read_limits, xorshift64(ctx.rng));
                match &ctx.plan.mux {
                    // Several channels: ready once every subscribe is
                    // answered (the handshake's time runs until then).
                    Some(mux) => {
                        for command in &mux.subscribes {
                            ws.send(MessageKind::Text, command.as_bytes(), out);
                        }
                        self.unanswered = mux.subscribes.len() as u32;
                    }
                    // Opened again after a drop: the same subscriber, its
                    // order kept, subscribed again from its cursor.
                    None if self.opened => {
                        if let Some(Disruption::Storm(s)) = self.disruption.as_deref_mut() {
                            s.back(ctx.now);
                        }
                        self.since = ctx.now;
                    }
                    None => {
                        record(&mut ctx.stats.handshake, ctx.now.saturating_duration_since(self.since));
                        ctx.stats.opened += 1;
                        self.opened = true;
                        if let Some(p) = &ctx.plan.publish {
                            self.order = Some(Box::new(Order::new(p.streams())));
                        }
                        self.since = ctx.now;
                    }
                }
                self.state = State::Open { ws: Box::new(ws) };
                bufs.want = 0;
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
    fn process_frames(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) {
        let (State::Open { ws }, Some((rbuf, out))) = (&mut self.state, bufs.buffers(ctx.pool)) else {
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
                        // Several channels: replies, then JSON envelopes
                        // (a delivery counts until the channel is closed).
                        (Some(Event::Message(_, payload)), ..) if ctx.plan.mux.is_some() || ctx.plan.envelope => {
                            let sub = Subscribed {
                                order: &mut self.order,
                                disruption: &mut self.disruption,
                                last_id: &mut self.last_id,
                            };
                            match on_mux_message(&payload, &mut self.unanswered, sub, ctx) {
                                MuxSaid::Ready => ready(&mut self.opened, &mut self.order, self.since, ctx),
                                // Never subscribed to all it asked for: not
                                // a subscriber of this run.
                                MuxSaid::Refused if !closing => {
                                    ws.close(CloseCode::NORMAL, "", out);
                                    self.since = ctx.now;
                                }
                                MuxSaid::Refused => {}
                                MuxSaid::Nothing => {}
                            }
                        }
                        // A delivery counts until the channel is closed.
                        (Some(Event::Message(_, payload)), _, Some(order)) => {
                            on_delivery(order, &mut self.disruption, &payload, ctx)
                        }
                        (Some(Event::Message(..)), ..) => ctx.stats.received += 1,
                        // The server closed first: §7.1.5, its code is the
                        // connection's close code (1005 when it gave none).
                        (Some(Event::Close(frame)), ..) if !closing => {
                            let code = frame.code.unwrap_or(CloseCode::NO_STATUS).0;
                            if !slow_end(&mut self.disruption, End::Close(code), ctx.window, ctx.now) {
                                *ctx.stats.errors.close_codes.entry(code).or_default() += 1;
                            }
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
        bufs.want = want;
        if ws.is_closed() {
            self.state = State::Closing;
            self.since = ctx.now;
        }
    }

    /// Queue the messages that are due (over HTTP: the request).
    pub fn pump(&mut self, bufs: &mut Bufs, ctx: &mut Ctx<'_>) {
        if let State::Feed { due, redial } = self.state {
            let plan = ctx.plan;
            if let (Some(at), false, Some(feed), Some(fp)) = (due, redial, self.feed.as_deref_mut(), &plan.feed) {
                if at <= ctx.now {
                    send_request(feed, fp, bufs, &mut self.state, ctx);
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
            return cycle.send(ws, bufs.out(ctx.pool), ctx.plan, ctx.now, ctx.stats);
        }
        let Some(window) = ctx.window.filter(|_| ctx.plan.mode == Mode::Echo) else {
            return;
        };
        let out = bufs.out(ctx.pool);
        self.echo.pump(ws, out, ctx.plan, window, ctx.now, ctx.stats);
    }

    /// The connection broke (EOF or a socket error): count it as what it
    /// means in this state, and end it.
    pub fn handle_error(&mut self, e: &io::Error, ctx: &mut Ctx<'_>) -> Dead {
        let errors = &mut ctx.stats.errors;
        match &self.state {
            State::Connecting => errors.socket(e),
            State::Handshake { .. } if e.kind() == io::ErrorKind::UnexpectedEof => {
                *errors.handshake_invalid.entry("no_response").or_default() += 1
            }
            State::Handshake { .. } => errors.socket(e),
            // §7.1.5: closed with no close frame received: 1006.
            State::Open { ws } if !ws.close_state().received => {
                if !slow_end(
                    &mut self.disruption,
                    End::Close(CloseCode::ABNORMAL.0),
                    ctx.window,
                    ctx.now,
                ) {
                    *errors.close_codes.entry(CloseCode::ABNORMAL.0).or_default() += 1
                }
            }
            // The close handshake is done: EOF is what Closing waits for.
            State::Open { .. } | State::Closing => {}
            State::Feed { .. } | State::Redial { .. } => {
                if !slow_end(
                    &mut self.disruption,
                    End::Io(super::stats::io_kind(e)),
                    ctx.window,
                    ctx.now,
                ) {
                    errors.socket(e)
                }
            }
        }
        Dead
    }
}

/// What a `wsreactor.mux` message meant to a subscriber.
enum MuxSaid {
    /// The last subscribe was answered ok.
    Ready,
    /// A subscribe was refused.
    Refused,
    /// A delivery, a notice, or an answer that is not the last.
    Nothing,
}

/// What a subscriber's deliveries go into.
struct Subscribed<'s> {
    order: &'s mut Option<Box<Order>>,
    disruption: &'s mut Option<Box<Disruption>>,
    /// The latest message id seen, for a resume.
    last_id: &'s mut Option<u64>,
}

/// A message in the JSON envelope: on a `wsreactor.mux` connection
/// (`--channels-per-connection`) a reply to a subscribe or a channel's
/// message, on a `wsreactor.json` one a message (its `data` the payload as
/// published, base64 for binary, its `id` the cursor to resume from); a
/// gap or another notice; each counted as what it is.
fn on_mux_message(payload: &[u8], unanswered: &mut u32, sub: Subscribed<'_>, ctx: &mut Ctx<'_>) -> MuxSaid {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Said<'a> {
        id: Option<u64>,
        reply: Option<serde::de::IgnoredAny>,
        ok: Option<bool>,
        #[serde(borrow)]
        data: Option<std::borrow::Cow<'a, str>>,
        encoding: Option<std::borrow::Cow<'a, str>>,
        gap: Option<serde::de::IgnoredAny>,
    }
    let errors = &mut ctx.stats.errors;
    let Ok(said) = serde_json::from_slice::<Said<'_>>(payload) else {
        errors.delivery("bad_payload", 1);
        return MuxSaid::Nothing;
    };
    if said.reply.is_some() {
        if *unanswered == 0 {
            // Not one of ours: every subscribe was answered already.
            errors.delivery("unexpected", 1);
            return MuxSaid::Nothing;
        }
        if said.ok != Some(true) {
            *errors.handshake_invalid.entry("subscribe_refused").or_default() += 1;
            return MuxSaid::Refused;
        }
        *unanswered = unanswered.saturating_sub(1);
        return if *unanswered == 0 {
            MuxSaid::Ready
        } else {
            MuxSaid::Nothing
        };
    }
    if said.gap.is_some() {
        errors.delivery("gap", 1);
        return MuxSaid::Nothing;
    }
    let (Some(data), Some(order)) = (said.data, sub.order.as_deref_mut()) else {
        // A notice (a subscription ended), or a message before the last
        // subscribe was answered: not counted as delivered.
        errors.delivery("unexpected", 1);
        return MuxSaid::Nothing;
    };
    if said.id.is_some() {
        *sub.last_id = said.id;
    }
    match said.encoding.as_deref() {
        Some("base64") => match base64::engine::general_purpose::STANDARD.decode(data.as_bytes()) {
            Ok(bytes) => on_delivery(order, sub.disruption, &bytes, ctx),
            Err(_) => ctx.stats.errors.delivery("bad_payload", 1),
        },
        _ => on_delivery(order, sub.disruption, data.as_bytes(), ctx),
    }
    MuxSaid::Nothing
}

/// Queue an HTTP subscriber's next request.
fn send_request(feed: &mut Feed, fp: &FeedPlan, bufs: &mut Bufs, state: &mut State, ctx: &mut Ctx<'_>) {
    feed.request(fp, bufs.out(ctx.pool), ctx.now);
    if ctx.window.is_some() {
        ctx.stats.wire.requests += 1;
    }
    *state = State::Feed {
        due: None,
        redial: false,
    };
}

/// A subscriber is ready (its first answer over HTTP, its last
/// subscribe answered over `wsreactor.mux`): opened, its handshake timed
/// from `since`, its order made.
fn ready(opened: &mut bool, order: &mut Option<Box<Order>>, since: Instant, ctx: &mut Ctx<'_>) {
    *opened = true;
    record(&mut ctx.stats.handshake, ctx.now.saturating_duration_since(since));
    ctx.stats.opened += 1;
    order.get_or_insert_with(|| new_order(ctx.plan));
}

/// What a subscriber of this run receives into: one order per stream (a
/// publisher lane's messages to one channel).
fn new_order(plan: &Plan) -> Box<Order> {
    Box::new(Order::new(plan.publish.as_ref().map_or(1, |p| p.streams())))
}

/// An HTTP subscriber's delivery: a message can come in the same read as
/// the first answer, before the subscriber is marked ready, so the order
/// is made at the first that comes.
fn feed_delivery(
    order: &mut Option<Box<Order>>,
    disruption: &mut Option<Box<Disruption>>,
    payload: &[u8],
    ctx: &mut Ctx<'_>,
) {
    let order = order.get_or_insert_with(|| new_order(ctx.plan));
    on_delivery(order, disruption, payload, ctx);
}

/// A slow reader's connection ended once the window (and its pause)
/// began; the first end is the one kept: true, and it is the scenario's
/// figure, not an error; false for any other subscriber, or before.
fn slow_end(
    disruption: &mut Option<Box<Disruption>>,
    end: End,
    window: Option<(Instant, Instant)>,
    now: Instant,
) -> bool {
    match disruption.as_deref_mut() {
        Some(Disruption::Slow(s)) if window.is_some_and(|(start, _)| now >= start) => {
            s.ended.get_or_insert(end);
            true
        }
        _ => false,
    }
}

/// Subscribe mode: check a delivered message's place in its lane and
/// record its latency from the time it was due to be published (a slow
/// reader's apart), its publish's reach, and the subscriber's part in the
/// scenario.
fn on_delivery(order: &mut Order, disruption: &mut Option<Box<Disruption>>, payload: &[u8], ctx: &mut Ctx<'_>) {
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
            // Counted in the run's deliveries unless a slow reader's.
            ctx.stats.received += u64::from(disruption.as_deref().is_none_or(|d| d.slow().is_none()));
            return errors.delivery("duplicate", 1);
        }
        Some(Seen::Late) => errors.delivery("out_of_order", 1),
        Some(Seen::InOrder | Seen::Ahead) => {}
    }
    // Payload times are the wall clock's: the publisher may be another
    // process (--observe).
    let at = Instant::now();
    let now = ctx.plan.unix_ns(at);
    let since = |ns: u64| Duration::from_nanos(now.saturating_sub(ns));
    let latency = since(stamp.scheduled_ns);
    if let Some(d) = disruption.as_deref_mut() {
        // On the session's clock (the event's time), as its drop and return.
        let due = ctx.now.checked_sub(latency).unwrap_or(ctx.now);
        d.on_delivery(due, order.gapless(), ctx.now);
        if d.slow().is_some() {
            return record(&mut ctx.stats.slow_latency, latency);
        }
    }
    ctx.stats.received += 1;
    ctx.stats.fanout.see(stamp.lane, stamp.seq, latency);
    record(&mut ctx.stats.latency, latency);
    if let Some(sent) = stamp.sent_ns {
        record(&mut ctx.stats.service, since(sent));
    }
    // For the progress line and the run's seconds (`series`).
    record(ctx.interval, latency);
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
