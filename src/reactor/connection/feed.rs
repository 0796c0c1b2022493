//! Channel subscriptions on a connection: a WebSocket subscriber (`Open`
//! with a feed), a parked long poll (`Poll`) and an event stream (`Sse`).
//!
//! Every subscription is live before its answer head is queued: the broker
//! counts the subscriber and snapshots the history under the channel's lock,
//! so a message published after the client saw the 101 (or the 200 head of
//! an event stream) reaches it. The feed's cursor is the last id the
//! connection was given; anything at or below it in the inbox is skipped,
//! which makes replay-then-live free of gaps and duplicates.

use super::{Connection, Ctx, Life, State};
use crate::http::{query_u64, NotANumber};
use crate::protocol::deflate::{negotiate, DeflateParams};
use crate::protocol::handshake::{validate_upgrade, write_switching_protocols};
use crate::protocol::http::{write_head, RequestHead, Status};
use crate::protocol::{CloseCode, MessageKind, WebSocket};
use crate::pubsub::message::{gap_json, gap_object};
use crate::pubsub::{Encoding, Gap, Message, Snapshot};
use crate::stats::Transport;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The `wsreactor.json` subprotocol: messages in a JSON envelope, gaps told.
pub const JSON_PROTOCOL: &str = "wsreactor.json";

/// A connection's subscription to one channel.
#[derive(Debug)]
pub struct Feed {
    /// The channel (the worker's shared name).
    pub channel: Arc<str>,
    /// The last id given to the client (or known to be missed).
    cursor: u64,
    /// How messages are put on this connection's wire.
    encoding: Encoding,
    /// A poll's answer being gathered: messages and whether ids were
    /// missed (and whether the cursor asked from was not vouched for).
    pending: Vec<Arc<Message>>,
    gap: bool,
    reset: bool,
    /// The poll asked for `Connection: close`.
    close: bool,
}

/// What a delivery did to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Nothing (not subscribed, or already had it).
    Nothing,
    /// Output queued; [`Connection::after_delivery`] must follow once.
    Queued,
    /// Output queued before, still to be flushed.
    AlreadyQueued,
}

impl Connection {
    pub(super) fn feed(&self) -> Option<&Feed> {
        match &self.state {
            State::Open { feed: Some(f), .. } | State::Poll { feed: f } | State::Sse { feed: f } => Some(f),
            _ => None,
        }
    }

    /// End the subscription, if any: the broker and the worker forget it.
    pub(super) fn end_feed(&mut self, ctx: &mut Ctx<'_>) {
        let feed = match &mut self.state {
            State::Open { feed, .. } => feed.take(),
            State::Poll { .. } | State::Sse { .. } => {
                let placeholder = State::Closing { shut: false };
                match std::mem::replace(&mut self.state, placeholder) {
                    State::Poll { feed } | State::Sse { feed } => Some(feed),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(feed) = feed {
            ctx.hub.unsubscribe(&feed.channel, ctx.worker);
            ctx.subscribers.remove(&feed.channel, ctx.key);
        }
    }

    /// Subscribe in the broker and the worker; `None` after answering 503.
    fn subscribe(&mut self, channel: &str, since: Option<u64>, ctx: &mut Ctx<'_>) -> Option<(Arc<str>, Snapshot)> {
        match ctx.hub.subscribe(channel, ctx.worker, since, ctx.now) {
            Ok(snapshot) => Some((ctx.subscribers.add(channel, ctx.key), snapshot)),
            Err(e) => {
                self.refuse(Status::SERVICE_UNAVAILABLE, &[], &e.to_string(), ctx);
                None
            }
        }
    }

    /// A WebSocket upgrade: the echo endpoint (`channel` None) or a
    /// channel's subscriber (RFC 6455 §4.2.2).
    pub(super) fn upgrade(&mut self, head: &RequestHead<'_, '_>, channel: Option<&str>, ctx: &mut Ctx<'_>) -> bool {
        let upgrade = match validate_upgrade(head) {
            Ok(upgrade) => upgrade,
            Err(e) => {
                log::debug!("handshake refused: {e}");
                return self.refuse(e.status(), e.headers(), &e.to_string(), ctx);
            }
        };
        let since = match channel.map(|_| query_u64(head.query(), "since")).transpose() {
            Ok(since) => since.flatten(),
            Err(NotANumber) => return self.refuse(Status::BAD_REQUEST, &[], "since must be a message id", ctx),
        };
        // §4.2.2 step 5: echo one of the offered subprotocols, or none.
        let json = channel.is_some() && upgrade.protocols.contains(&JSON_PROTOCOL);
        let mut ws = WebSocket::server(ctx.settings.read_limits);
        let deflate = &ctx.settings.deflate;
        let params = deflate
            .enabled
            .then(|| negotiate(&upgrade.extensions, deflate))
            .flatten();
        let extension = params.as_ref().map(DeflateParams::response_header);
        if let Some(params) = &params {
            ws = ws.with_deflate(params, deflate.min_size);
        }
        // Live before the 101 is queued.
        let subscription = match channel {
            Some(channel) => match self.subscribe(channel, since, ctx) {
                Some(s) => Some(s),
                None => return false,
            },
            None => None,
        };
        let protocol = json.then_some(JSON_PROTOCOL);
        write_switching_protocols(self.out.buf(ctx.pool), &upgrade, protocol, extension.as_deref());
        ctx.stats.upgrades.fetch_add(1, Relaxed);
        self.want = 0;
        let feed = subscription.map(|(channel, snapshot)| {
            let encoding = if json { Encoding::JsonFrame } else { Encoding::Frame };
            if let (true, Some(gap)) = (json, snapshot.gap) {
                ws.send(MessageKind::Text, gap_json(gap).as_bytes(), self.out.buf(ctx.pool));
            }
            self.replay(&snapshot.replay, encoding, Transport::WebSocket, ctx);
            Box::new(Feed::new(channel, snapshot.last_id, encoding))
        });
        self.state = State::Open {
            ws: Box::new(ws),
            pinged: false,
            feed,
        };
        true
    }

    /// `GET /poll/{channel}?since=N`: answer at once if the history has
    /// something after N, else park until a publish or the poll timeout.
    pub(super) fn start_poll(&mut self, head: &RequestHead<'_, '_>, channel: &str, ctx: &mut Ctx<'_>) -> bool {
        if head.method != "GET" {
            return self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET")], "use GET", ctx);
        }
        let Ok(since) = query_u64(head.query(), "since") else {
            return self.refuse(Status::BAD_REQUEST, &[], "since must be a message id", ctx);
        };
        let close = head.wants_close();
        let Some((channel, snapshot)) = self.subscribe(channel, since, ctx) else {
            return false;
        };
        let mut feed = Box::new(Feed::new(channel, snapshot.last_id, Encoding::PollItem));
        feed.close = close;
        if snapshot.replay.is_empty() && snapshot.gap.is_none() {
            self.state = State::Poll { feed };
            self.since = ctx.stamp;
            return false;
        }
        feed.pending = snapshot.replay;
        feed.gap = snapshot.gap.is_some();
        feed.reset = snapshot.gap.is_some_and(|g| g.reset);
        let last_id = snapshot.last_id;
        self.state = State::Poll { feed };
        self.answer_poll(last_id, ctx)
    }

    /// `GET /sse/{channel}` (WHATWG HTML §9.2): a `text/event-stream` that
    /// resumes after `Last-Event-ID`, or `?since`.
    pub(super) fn start_events(&mut self, head: &RequestHead<'_, '_>, channel: &str, ctx: &mut Ctx<'_>) -> bool {
        if head.method != "GET" {
            return self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET")], "use GET", ctx);
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
                ctx,
            );
        };
        let Some((channel, snapshot)) = self.subscribe(channel, since, ctx) else {
            return false;
        };
        // The body runs until the connection closes, so the head says so.
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ];
        write_head(self.out.buf(ctx.pool), Status::OK, &headers, None, true, ctx.date);
        if let Some(gap) = snapshot.gap {
            write_sse_gap(self.out.buf(ctx.pool), gap);
        }
        self.replay(&snapshot.replay, Encoding::SseEvent, Transport::Sse, ctx);
        self.state = State::Sse {
            feed: Box::new(Feed::new(channel, snapshot.last_id, Encoding::SseEvent)),
        };
        self.since = ctx.stamp;
        self.want = 0;
        false
    }

    fn replay(&mut self, messages: &[Arc<Message>], encoding: Encoding, transport: Transport, ctx: &mut Ctx<'_>) {
        for m in messages {
            self.out.push_shared(m.shared(encoding), ctx.pool);
        }
        ctx.stats.count_delivered(transport, messages.len() as u64);
    }

    /// A message from the worker's inbox for this connection's channel.
    pub fn deliver(&mut self, msg: &Arc<Message>, ctx: &mut Ctx<'_>) -> Delivered {
        let limit = ctx.settings.write_buffer_limit;
        // A batch of deliveries queues before it flushes: before calling
        // the subscriber slow, give the socket what it will take now.
        if self.out.len() > limit && self.flush(ctx).is_err() {
            // Dead: the flush after the batch finds out again and drops it.
            return Delivered::Nothing;
        }
        let over = self.out.len() > limit;
        let transport = self.transport();
        let (feed, ws) = match &mut self.state {
            // After our close frame nothing more may be sent (RFC 6455 §5.5.1).
            State::Open { ws, .. } if ws.close_state().sent => return Delivered::Nothing,
            State::Open {
                feed: Some(feed), ws, ..
            } => (feed, Some(ws)),
            State::Poll { feed } | State::Sse { feed } => (feed, None),
            _ => return Delivered::Nothing,
        };
        if msg.id <= feed.cursor {
            return Delivered::Nothing;
        }
        // The local hub never skips; a broker across nodes might.
        let gap = (msg.id > feed.cursor + 1).then(|| Gap::trimmed(feed.cursor + 1, msg.id - 1));
        feed.cursor = msg.id;
        match (transport, ws) {
            (_, Some(ws)) if over => {
                // A slow subscriber is dropped, never waited for: 1013
                // (RFC 6455 §7.4.1 via the IANA registry, "Try Again Later")
                // and it may resume with ?since.
                ctx.stats.count_slow(transport);
                ws.close(CloseCode::TRY_AGAIN_LATER, "slow subscriber", self.out.buf(ctx.pool));
                self.since = ctx.stamp;
                self.end_feed(ctx);
            }
            (_, Some(ws)) => {
                if let (Encoding::JsonFrame, Some(gap)) = (feed.encoding, gap) {
                    ws.send(MessageKind::Text, gap_json(gap).as_bytes(), self.out.buf(ctx.pool));
                }
                self.out.push_shared(msg.shared(feed.encoding), ctx.pool);
                ctx.stats.count_delivered(transport, 1);
            }
            (Transport::Poll, None) => {
                feed.gap |= gap.is_some();
                feed.pending.push(msg.clone());
            }
            (_, None) if over => {
                ctx.stats.count_slow(transport);
                self.enter_closing(ctx);
                // Nothing more is worth sending: drop what is queued too.
                self.out.release(ctx.pool);
            }
            (_, None) => {
                if let Some(gap) = gap {
                    write_sse_gap(self.out.buf(ctx.pool), gap);
                }
                self.out.push_shared(msg.shared(feed.encoding), ctx.pool);
                ctx.stats.count_delivered(transport, 1);
                self.since = ctx.stamp;
            }
        }
        if std::mem::replace(&mut self.dirty, true) {
            Delivered::AlreadyQueued
        } else {
            Delivered::Queued
        }
    }

    /// After a batch of deliveries: answer a poll that got messages, flush.
    pub fn after_delivery(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = (|| {
            if let State::Poll { feed } = &self.state {
                if !feed.pending.is_empty() {
                    let last_id = feed.cursor;
                    if self.answer_poll(last_id, ctx) {
                        self.resume_requests(ctx)?;
                    }
                }
            }
            self.flush(ctx)?;
            self.after_io()
        })();
        self.life(step, ctx)
    }

    /// Nothing came within `poll_timeout`: 204, and the client asks again.
    /// `X-Last-Id` gives a client that polled without `since` the cursor to
    /// ask from, so nothing published before its next poll is missed.
    /// True when the connection stays for the next request.
    pub(super) fn poll_timed_out(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let (close, cursor) = match &self.state {
            State::Poll { feed } => (feed.close, feed.cursor),
            _ => (false, 0),
        };
        self.end_feed(ctx);
        self.state = State::Request {
            scanner: Default::default(),
        };
        let cursor = cursor.to_string();
        let headers = [("Cache-Control", "no-store"), ("X-Last-Id", cursor.as_str())];
        self.respond(Status::NO_CONTENT, &headers, b"", close, ctx);
        !close
    }

    /// Back in `Request` after a poll was answered: requests pipelined
    /// behind it were read (as far as one head) while it was parked, and no
    /// readiness edge will come for them (RFC 9112 §9.3.2: a server MUST
    /// answer pipelined requests in order). Handle them, and read what
    /// the parked poll left in the socket.
    pub(super) fn resume_requests(&mut self, ctx: &mut Ctx<'_>) -> super::Step {
        if self.rbuf.as_ref().is_some_and(|r| !r.is_empty()) {
            self.read_all(false, ctx)?;
        }
        Ok(())
    }

    /// Answer a poll with its gathered messages and return to `Request`
    /// (keep-alive). True when pipelined input should be processed now.
    fn answer_poll(&mut self, last_id: u64, ctx: &mut Ctx<'_>) -> bool {
        let State::Poll { feed } = &mut self.state else {
            return false;
        };
        let messages = std::mem::take(&mut feed.pending);
        let (gap, reset, close) = (feed.gap, feed.reset, feed.close);
        self.end_feed(ctx);
        self.state = State::Request {
            scanner: Default::default(),
        };
        let reset = if reset { ",\"reset\":true" } else { "" };
        let tail = format!("],\"last_id\":{last_id},\"gap\":{gap}{reset}}}");
        const OPEN: &[u8] = b"{\"messages\":[";
        let items: usize = messages.iter().map(|m| m.encoded(Encoding::PollItem).len()).sum();
        let body_len = OPEN.len() + items + messages.len().saturating_sub(1) + tail.len();
        let out = self.out.buf(ctx.pool);
        let headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")];
        write_head(out, Status::OK, &headers, Some(body_len), close, ctx.date);
        out.extend_from_slice(OPEN);
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                self.out.buf(ctx.pool).push(b',');
            }
            self.out.push_shared(m.shared(Encoding::PollItem), ctx.pool);
        }
        self.out.buf(ctx.pool).extend_from_slice(tail.as_bytes());
        ctx.stats.count_delivered(Transport::Poll, messages.len() as u64);
        if close {
            self.enter_closing(ctx);
        } else {
            self.since = ctx.stamp;
        }
        !close
    }
}

impl Feed {
    fn new(channel: Arc<str>, cursor: u64, encoding: Encoding) -> Self {
        Feed {
            channel,
            cursor,
            encoding,
            pending: Vec::new(),
            gap: false,
            reset: false,
            close: false,
        }
    }
}

/// An SSE event telling the client of a gap (the same object as the
/// JSON subprotocol's).
fn write_sse_gap(out: &mut Vec<u8>, gap: Gap) {
    let _ = write!(out, "event: gap\ndata: {}\n\n", gap_object(gap));
}
