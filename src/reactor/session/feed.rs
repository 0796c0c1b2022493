//! Channel subscriptions on a session: a WebSocket subscriber (`Open`
//! with a feed), a parked long poll (`Poll`) and an event stream (`Sse`).
//!
//! Every subscription is live before its answer head is queued: the
//! session asks the broker and waits (`Waiting`); the broker counts the
//! subscriber and snapshots the history, so a message published after the
//! client saw the 101 (or the 200 head of an event stream) reaches it. The
//! feed's cursor is the last id the connection was given; anything at or
//! below it is skipped, which makes replay-then-live free of gaps and
//! duplicates.

use super::request::Wait;
use super::token::Expiry;
use super::{Access, Action, Env, Flags, Io, Open, Session, State};
use crate::app::{Upgrade, UserData};
use crate::auth::Grant;
use crate::http::{query_u64, NotANumber};
use crate::protocol::deflate::{negotiate, DeflateParams};
use crate::protocol::handshake::{validate_upgrade, write_switching_protocols};
use crate::protocol::http::{RequestHead, Status};
use crate::protocol::{CloseCode, MessageKind, WebSocket};
use crate::pubsub::message::{gap_json, gap_object};
use crate::pubsub::{valid_channel, Encoding, Gap, Message, Request, Snapshot, Subscription};
use crate::stats::Transport;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A session's subscription to one channel.
#[derive(Debug)]
pub struct Feed {
    /// The broker's handle, given back when the feed ends.
    pub sub: Subscription,
    /// The last id given to the client (or known to be missed).
    cursor: u64,
    /// The start of the numbering `cursor` is of ([`Message::epoch_start`]).
    epoch_start: u64,
    /// How messages are put on this connection's wire.
    encoding: Encoding,
    /// A poll's answer being gathered: messages and whether ids were
    /// missed (and whether the cursor asked from was not vouched for).
    pending: Vec<Arc<Message>>,
    gap: bool,
    reset: bool,
    /// The poll asked for `Connection: close`.
    close: bool,
    /// When the token of a private channel ends.
    pub(super) expiry: Option<Expiry>,
    /// A long poll's `wait=S`, in milliseconds (`None`: `poll_timeout`).
    wait_ms: Option<u32>,
}

/// What a delivery did to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Nothing (not subscribed, or already had it).
    Nothing,
    /// Output queued; [`Session::handle_deliveries_done`] must follow once.
    Queued,
    /// Output queued before, still to be flushed.
    AlreadyQueued,
}

impl Session {
    /// A message for this session's channel, from the worker's inbox.
    /// The reactor gives the socket what it takes first when output is over
    /// the limit, so that only a subscriber that does not read is slow.
    pub fn handle_delivery(&mut self, msg: &Arc<Message>, env: &mut Env<'_>) -> Delivered {
        // Nothing goes out on a token past its exp.
        if self.expire_token(env) {
            return self.queued();
        }
        let over = self.io.out.len() > env.settings.write_buffer_limit;
        let transport = self.transport();
        let io = &mut self.io;
        let slow = match &mut self.state {
            // After our close frame nothing more may be sent (RFC 6455 §5.5.1).
            State::Open(open) if open.ws.close_state().sent => return Delivered::Nothing,
            State::Open(open) => {
                let Open {
                    ws, feed, last_input, ..
                } = &mut **open;
                let Some(feed) = feed else {
                    return Delivered::Nothing;
                };
                let Some(gap) = feed.advance(msg) else {
                    return Delivered::Nothing;
                };
                if over {
                    // A slow subscriber is dropped, never waited for: 1013
                    // (RFC 6455 §7.4.1 via the IANA registry, "Try Again
                    // Later") and it may resume with ?since.
                    ws.close(CloseCode::TRY_AGAIN_LATER, "slow subscriber", io.out.buf(env.pool));
                    *last_input = env.stamp;
                } else {
                    if let (Encoding::JsonFrame, Some(gap)) = (feed.encoding, gap) {
                        ws.send(MessageKind::Text, gap_json(gap).as_bytes(), io.out.buf(env.pool));
                    }
                    io.out.push_shared(msg.shared(feed.encoding), env.pool);
                    env.stats.count_delivered(transport, 1);
                }
                over
            }
            State::Poll { feed, .. } => {
                let Some(gap) = feed.advance(msg) else {
                    return Delivered::Nothing;
                };
                feed.gap |= gap.is_some();
                feed.reset |= gap.is_some_and(|g| g.reset);
                feed.pending.push(msg.clone());
                false
            }
            State::Sse { feed, last_event } => {
                let Some(gap) = feed.advance(msg) else {
                    return Delivered::Nothing;
                };
                if !over {
                    if let Some(gap) = gap {
                        write_sse_gap(io.out.buf(env.pool), gap);
                    }
                    io.out.push_shared(msg.shared(feed.encoding), env.pool);
                    env.stats.count_delivered(transport, 1);
                    *last_event = env.stamp;
                }
                over
            }
            _ => return Delivered::Nothing,
        };
        if slow {
            env.stats.count_slow(transport);
            if transport == Transport::WebSocket {
                self.end_feed(env);
            } else {
                self.enter_closing(env);
                // Nothing more is worth sending: drop what is queued too.
                self.io.out.release(env.pool);
            }
        }
        self.queued()
    }

    /// Output was queued by a delivery: flushed once after the batch.
    fn queued(&mut self) -> Delivered {
        if self.io.flags.replace(Flags::DIRTY, true) {
            Delivered::AlreadyQueued
        } else {
            Delivered::Queued
        }
    }

    /// After a batch of deliveries: answer a poll that got messages.
    pub fn handle_deliveries_done(&mut self, env: &mut Env<'_>) {
        let State::Poll { feed, since } = &self.state else {
            return;
        };
        if feed.pending.is_empty() {
            return;
        }
        let since = *since;
        let State::Poll { feed, .. } = std::mem::replace(&mut self.state, State::request(since)) else {
            unreachable!("matched above");
        };
        let last_id = feed.cursor;
        self.state = self.io.answer_poll(*feed, last_id, env);
        if self.has_input() && matches!(self.state, State::Request { .. }) {
            self.io.flags.replace(Flags::RESUME, true);
        }
    }

    /// Nothing came within the poll's wait: 204, and the client asks again.
    pub(super) fn poll_timed_out(&mut self, env: &mut Env<'_>) {
        let State::Poll { since, .. } = self.state else {
            return;
        };
        let State::Poll { feed, .. } = std::mem::replace(&mut self.state, State::request(since)) else {
            unreachable!("matched above");
        };
        let close = feed.close;
        self.state = self.io.poll_nothing(*feed, env);
        if !close && self.has_input() {
            self.io.flags.replace(Flags::RESUME, true);
        }
    }
}

impl Io {
    /// A WebSocket upgrade for `handler` (RFC 6455 §4.2.2): it accepts or
    /// refuses; a connection it subscribes to a topic first waits for the
    /// subscription.
    pub(super) fn upgrade(&mut self, head: &RequestHead<'_, '_>, handler: u16, env: &mut Env<'_>) -> State {
        let upgrade = match validate_upgrade(head) {
            Ok(upgrade) => upgrade,
            Err(e) => {
                log::debug!("handshake refused: {e}");
                return self.refuse(e.status(), e.headers(), &e.to_string(), env);
            }
        };
        let asked = Upgrade {
            head,
            protocols: &upgrade.protocols,
            rest: env.app.rest(handler, head.path()),
        };
        let accept = match env.app.handler(handler).open(&asked) {
            Ok(accept) => accept,
            Err(refusal) => return self.refuse(refusal.status, &[], &refusal.why, env),
        };
        // §4.2.2 step 5: one of the offered subprotocols, or none.
        let protocol = accept.protocol.as_deref();
        if protocol.is_some_and(|p| !upgrade.protocols.contains(&p)) {
            let why = "the handler chose a subprotocol the client did not offer";
            return self.refuse(Status::INTERNAL_ERROR, &[], why, env);
        }
        let mut ws = WebSocket::server(env.settings.read_limits);
        let deflate = &env.settings.deflate;
        let params = deflate
            .enabled
            .then(|| negotiate(&upgrade.extensions, deflate))
            .flatten();
        let extension = params.as_ref().map(DeflateParams::response_header);
        if let Some(params) = &params {
            ws = ws.with_deflate(params, deflate.min_size);
        }
        let data = accept.data;
        let Some(topic) = accept.topic else {
            write_switching_protocols(self.out.buf(env.pool), &upgrade, protocol, extension.as_deref());
            return self.opened(ws, None, handler, data, env);
        };
        if !valid_channel(&topic.name) {
            let why = "topic names are 1 to 128 of A-Z a-z 0-9 _ . : -";
            return self.refuse(Status::BAD_REQUEST, &[], why, env);
        }
        let grant = match self.grant(head, &topic.name, env) {
            Ok(grant) => grant,
            Err(refused) => return refused,
        };
        // Live before the 101 is queued: the 101 waits for the answer.
        let mut response = Vec::new();
        write_switching_protocols(&mut response, &upgrade, protocol, extension.as_deref());
        let wait = Wait::Upgrade {
            response,
            ws,
            json: topic.envelope,
            handler,
            data,
            grant,
        };
        self.submit_subscribe(&topic.name, topic.since, wait, env)
    }

    fn submit_subscribe(&mut self, channel: &str, since: Option<u64>, wait: Wait, env: &mut Env<'_>) -> State {
        let channel = channel.into();
        env.actions.push(Action::Submit(Request::Subscribe { channel, since }));
        State::Waiting {
            wait: Box::new(wait),
            since: env.stamp,
        }
    }

    /// The 101 is queued: the session speaks WebSocket from here (and its
    /// handler hears of it once the state is in place).
    fn opened(
        &mut self,
        ws: WebSocket,
        feed: Option<Box<Feed>>,
        handler: u16,
        data: UserData,
        env: &mut Env<'_>,
    ) -> State {
        env.stats.upgrades.fetch_add(1, Relaxed);
        if env.settings.access_log {
            env.actions.push(Action::Access(Access::Response {
                status: 101,
                bytes: None,
            }));
        }
        self.want = 0;
        self.flags.replace(Flags::JUST_OPENED, true);
        State::Open(Box::new(Open {
            ws,
            feed,
            last_input: env.stamp,
            pinged: false,
            told_close: false,
            handler,
            data,
        }))
    }

    /// A subscriber's subscription is live: the 101, the gap if any, what
    /// it missed, then live messages.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn subscribed_upgrade(
        &mut self,
        (response, mut ws, json, grant): (Vec<u8>, WebSocket, bool, Option<Grant>),
        handler: u16,
        data: UserData,
        sub: Subscription,
        snapshot: Snapshot,
        env: &mut Env<'_>,
    ) -> State {
        self.out.buf(env.pool).extend_from_slice(&response);
        let encoding = if json { Encoding::JsonFrame } else { Encoding::Frame };
        if let (true, Some(gap)) = (json, snapshot.gap) {
            ws.send(MessageKind::Text, gap_json(gap).as_bytes(), self.out.buf(env.pool));
        }
        self.replay(&snapshot.replay, encoding, Transport::WebSocket, env);
        let mut feed = Box::new(Feed::new(sub, &snapshot, encoding));
        feed.expiry = grant.map(|g| Expiry::new(g, env));
        self.opened(ws, Some(feed), handler, data, env)
    }

    /// `GET /poll/{channel}?since=N`: subscribe, then answer at once if the
    /// history has something after N, else park.
    pub(super) fn start_poll(&mut self, head: &RequestHead<'_, '_>, channel: &str, env: &mut Env<'_>) -> State {
        if head.method != "GET" {
            return self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET")], "use GET", env);
        }
        let Ok(since) = query_u64(head.query(), "since") else {
            return self.refuse(Status::BAD_REQUEST, &[], "since must be a message id", env);
        };
        // `wait=S`: park at most S seconds (capped by poll_timeout); `wait=0`
        // is a short poll, answered at once.
        let Ok(wait) = query_u64(head.query(), "wait") else {
            return self.refuse(Status::BAD_REQUEST, &[], "wait must be a number of seconds", env);
        };
        let grant = match self.grant(head, channel, env) {
            Ok(grant) => grant,
            Err(refused) => return refused,
        };
        let close = head.wants_close();
        let cap = env.settings.pubsub.poll_timeout.as_millis();
        let wait_ms = wait.map(|w| u128::from(w).saturating_mul(1000).min(cap) as u32);
        self.submit_subscribe(channel, since, Wait::Poll { close, grant, wait_ms }, env)
    }

    /// A poll's subscription is live: park until a publish or the poll
    /// timeout, or answer now with what the history had.
    pub(super) fn subscribed_poll(
        &mut self,
        (close, grant, wait_ms): (bool, Option<Grant>, Option<u32>),
        sub: Subscription,
        snapshot: Snapshot,
        env: &mut Env<'_>,
    ) -> State {
        let mut feed = Box::new(Feed::new(sub, &snapshot, Encoding::PollItem));
        feed.close = close;
        feed.expiry = grant.map(|g| Expiry::new(g, env));
        feed.wait_ms = wait_ms;
        if snapshot.replay.is_empty() && snapshot.gap.is_none() {
            if wait_ms == Some(0) {
                // A short poll with nothing new: 204 and the cursor, now.
                return self.poll_nothing(*feed, env);
            }
            return State::Poll { feed, since: env.stamp };
        }
        feed.pending = snapshot.replay;
        feed.gap = snapshot.gap.is_some();
        feed.reset = snapshot.gap.is_some_and(|g| g.reset);
        self.answer_poll(*feed, snapshot.last_id, env)
    }

    /// `GET /sse/{channel}` (WHATWG HTML §9.2): a `text/event-stream` that
    /// resumes after `Last-Event-ID`, or `?since`.
    pub(super) fn start_events(&mut self, head: &RequestHead<'_, '_>, channel: &str, env: &mut Env<'_>) -> State {
        if head.method != "GET" {
            return self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET")], "use GET", env);
        }
        // A reconnecting EventSource sends Last-Event-ID with its original
        // URL: the header is the newer cursor.
        let since = match head.single("last-event-id") {
            Ok(Some(v)) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Some)
                .ok_or(NotANumber),
            Ok(None) => query_u64(head.query(), "since"),
            Err(_) => Err(NotANumber),
        };
        let Ok(since) = since else {
            return self.refuse(
                Status::BAD_REQUEST,
                &[],
                "since and Last-Event-ID must be message ids",
                env,
            );
        };
        let grant = match self.grant(head, channel, env) {
            Ok(grant) => grant,
            Err(refused) => return refused,
        };
        self.submit_subscribe(channel, since, Wait::Events { grant }, env)
    }

    /// An event stream's subscription is live: the head, the gap if any,
    /// what it missed, then live events.
    pub(super) fn subscribed_events(
        &mut self,
        grant: Option<Grant>,
        sub: Subscription,
        snapshot: Snapshot,
        env: &mut Env<'_>,
    ) -> State {
        // The body runs until the connection closes, so the head says so.
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ];
        self.write_head(Status::OK, &headers, None, true, env);
        if let Some(gap) = snapshot.gap {
            write_sse_gap(self.out.buf(env.pool), gap);
        }
        self.replay(&snapshot.replay, Encoding::SseEvent, Transport::Sse, env);
        self.want = 0;
        let mut feed = Box::new(Feed::new(sub, &snapshot, Encoding::SseEvent));
        feed.expiry = grant.map(|g| Expiry::new(g, env));
        State::Sse {
            feed,
            last_event: env.stamp,
        }
    }

    fn replay(&mut self, messages: &[Arc<Message>], encoding: Encoding, transport: Transport, env: &mut Env<'_>) {
        for m in messages {
            self.out.push_shared(m.shared(encoding), env.pool);
        }
        env.stats.count_delivered(transport, messages.len() as u64);
    }

    /// Answer a poll with its gathered messages; the subscription ends and
    /// the connection returns to `Request` (keep-alive) or closes.
    pub(super) fn answer_poll(&mut self, mut feed: Feed, last_id: u64, env: &mut Env<'_>) -> State {
        let messages = std::mem::take(&mut feed.pending);
        let (gap, reset, close) = (feed.gap, feed.reset, feed.close);
        env.actions.push(Action::Unsubscribe(feed.sub));
        let reset = if reset { ",\"reset\":true" } else { "" };
        let tail = format!("],\"last_id\":{last_id},\"gap\":{gap}{reset}}}");
        const OPEN: &[u8] = b"{\"messages\":[";
        let items: usize = messages.iter().map(|m| m.encoded(Encoding::PollItem).len()).sum();
        let body_len = OPEN.len() + items + messages.len().saturating_sub(1) + tail.len();
        let headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")];
        self.write_head(Status::OK, &headers, Some(body_len), close, env);
        self.out.buf(env.pool).extend_from_slice(OPEN);
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                self.out.buf(env.pool).push(b',');
            }
            self.out.push_shared(m.shared(Encoding::PollItem), env.pool);
        }
        self.out.buf(env.pool).extend_from_slice(tail.as_bytes());
        env.stats.count_delivered(Transport::Poll, messages.len() as u64);
        if close {
            self.want = 0;
            State::closing(env.stamp)
        } else {
            State::request(env.stamp)
        }
    }
}

impl Io {
    /// Nothing for a poll (its wait is over, or it was a short poll): 204
    /// with `X-Last-Id`, the cursor to ask from next, so that a client that
    /// polled without `since` misses nothing published before its next poll.
    fn poll_nothing(&mut self, feed: Feed, env: &mut Env<'_>) -> State {
        let (close, cursor) = (feed.close, feed.cursor.to_string());
        env.actions.push(Action::Unsubscribe(feed.sub));
        let headers = [("Cache-Control", "no-store"), ("X-Last-Id", cursor.as_str())];
        self.respond(Status::NO_CONTENT, &headers, b"", close, env)
    }
}

impl Feed {
    /// How long a long poll stays parked: its `wait`, or `poll_timeout`.
    pub(super) fn park(&self, poll_timeout: std::time::Duration) -> std::time::Duration {
        self.wait_ms
            .map_or(poll_timeout, |ms| std::time::Duration::from_millis(u64::from(ms)))
    }

    fn new(sub: Subscription, snapshot: &Snapshot, encoding: Encoding) -> Self {
        Feed {
            sub,
            cursor: snapshot.last_id,
            epoch_start: snapshot.epoch_start,
            encoding,
            pending: Vec::new(),
            gap: false,
            reset: false,
            close: false,
            expiry: None,
            wait_ms: None,
        }
    }

    /// Take message `msg`: `None` if the client has it already, else the
    /// ids it skips, if any (the local hub never skips; a broker across
    /// nodes might). A message of another numbering than the cursor's (the
    /// broker lost the channel and made it again, a new epoch) is a reset,
    /// whichever path brought it (live, or the catch-up after an outage):
    /// the client is told, as for a cursor the server cannot vouch for,
    /// with the ids of the new numbering before it that it will not get
    /// (`to` below `from` when none), and follows the new numbering.
    fn advance(&mut self, msg: &Message) -> Option<Option<Gap>> {
        let (id, start) = (msg.id, msg.epoch_start);
        if start != self.epoch_start {
            self.epoch_start = start;
            // A client that held nothing has no cursor to drop.
            if self.cursor != 0 {
                self.cursor = id;
                return Some(Some(Gap {
                    from: start.saturating_add(1),
                    to: id.saturating_sub(1),
                    reset: true,
                }));
            }
            self.cursor = start;
        }
        if id <= self.cursor {
            return None;
        }
        let gap = (id > self.cursor + 1).then(|| Gap::trimmed(self.cursor + 1, id - 1));
        self.cursor = id;
        Some(gap)
    }
}

/// An SSE event telling the client of a gap (the same object as the
/// JSON subprotocol's).
fn write_sse_gap(out: &mut Vec<u8>, gap: Gap) {
    let _ = write!(out, "event: gap\ndata: {}\n\n", gap_object(gap));
}
