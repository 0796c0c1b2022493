//! WebSocket upgrades ([`crate::app::Handler::open`]) and a WebSocket's
//! topic subscription (`Open` with a feed); a parked request's or a
//! stream's deliveries are their HTTP handler's ([`super::handler`]).
//!
//! A subscription is live before the 101 is queued: the session asks the
//! broker and waits (`Waiting`); the broker counts the subscriber and
//! snapshots the history, so a message published after the client saw the
//! 101 reaches it. The feed's cursor is the last id the connection was
//! given; anything at or below it is skipped, which makes
//! replay-then-live free of gaps and duplicates.

use super::expiry::Expiry;
use super::topics::{Feed, Topics};
use super::{Access, Action, Env, Flags, Io, Open, Session, State, Wait};
use crate::app::{Next, Upgrade, UserData};
use crate::protocol::deflate::{negotiate, DeflateParams};
use crate::protocol::handshake::{validate_upgrade, write_switching_protocols};
use crate::protocol::http::{RequestHead, Status};
use crate::protocol::{CloseCode, MessageKind, WebSocket};
use crate::pubsub::message::gap_json;
use crate::pubsub::{valid_channel, Answer, Encoding, HubError, Message, Request, Snapshot, Subscription, Via};
use crate::stats::Transport;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

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
        match self.state {
            State::Parked { .. } | State::Stream { .. } => return self.deliver_to_handler(msg, env),
            State::Waiting { .. } => return self.deliver_to_waiting(msg, env),
            _ => {}
        }
        // Nothing goes out on a token past its exp: the topics whose end
        // came are taken out first (what their handler said is queued);
        // the message may still be another live topic's.
        let expired = self.expire(env).then(|| self.queued());
        match (expired, self.deliver_open(msg, env)) {
            (Some(Delivered::Queued), _) => Delivered::Queued,
            (_, delivered) => delivered,
        }
    }

    /// A message for an open WebSocket's topic: queued if it is one of
    /// its live feeds' and new to it.
    fn deliver_open(&mut self, msg: &Arc<Message>, env: &mut Env<'_>) -> Delivered {
        let over = self.io.out.len() > env.settings.write_buffer_limit;
        let transport = self.transport();
        let io = &mut self.io;
        let slow = match &mut self.state {
            // After our close frame nothing more may be sent (RFC 6455 §5.5.1).
            State::Open(open) if open.ws.close_state().sent => return Delivered::Nothing,
            State::Open(open) => {
                let Open {
                    ws, topics, last_input, ..
                } = &mut **open;
                // Only its own channels' messages, whatever the worker's lists say.
                let Some(feed) = topics.as_mut().and_then(|t| t.feed_mut(&msg.channel)) else {
                    return Delivered::Nothing;
                };
                if msg.event.is_some() {
                    // A join or leave: to a feed that asked, and dropped
                    // rather than counted against a slow reader.
                    if !feed.join_leave || over {
                        return Delivered::Nothing;
                    }
                    io.out.push_shared(msg.shared(feed.encoding), env.pool);
                    return self.queued();
                }
                let Some(gap) = feed.cursor.advance(msg) else {
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
                        let json = gap_json(&msg.channel, gap);
                        ws.send(MessageKind::Text, json.as_bytes(), io.out.buf(env.pool));
                    }
                    io.out.push_shared(msg.shared(feed.encoding), env.pool);
                    env.stats.count_delivered(transport, 1);
                }
                over
            }
            _ => return Delivered::Nothing,
        };
        if slow {
            env.stats.count_slow(transport);
            self.end_feeds(env);
        }
        self.queued()
    }

    /// Output was queued by a delivery: flushed once after the batch.
    pub(super) fn queued(&mut self) -> Delivered {
        if self.io.flags.replace(Flags::DIRTY, true) {
            Delivered::AlreadyQueued
        } else {
            Delivered::Queued
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
            rest: env.app.websocket_rest(handler, head.path()),
            settings: env.settings,
            unix_time: env.date.secs(),
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
        // Live before the 101 is queued: the 101 waits for the answer.
        let mut response = Vec::new();
        write_switching_protocols(&mut response, &upgrade, protocol, extension.as_deref());
        let wait = Wait::Upgrade {
            response,
            ws,
            json: topic.envelope,
            handler,
            data,
            expires: topic.expires,
            join_leave: topic.join_leave && topic.envelope,
        };
        let request = Request::Subscribe {
            channel: topic.name.into(),
            since: topic.since,
            presence: topic.presence,
            via: Via::WebSocket,
        };
        env.actions.push(Action::Submit(request));
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
        topics: Option<Box<Topics>>,
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
            topics,
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
        (response, mut ws, json, expires, join_leave): (Vec<u8>, WebSocket, bool, Option<u64>, bool),
        handler: u16,
        data: UserData,
        sub: Subscription,
        snapshot: Snapshot,
        env: &mut Env<'_>,
    ) -> State {
        self.out.buf(env.pool).extend_from_slice(&response);
        let encoding = if json { Encoding::JsonFrame } else { Encoding::Frame };
        if let (true, Some(gap)) = (json, snapshot.gap) {
            let json = gap_json(sub.channel(), gap);
            ws.send(MessageKind::Text, json.as_bytes(), self.out.buf(env.pool));
        }
        self.replay(&snapshot.replay, encoding, Transport::WebSocket, env);
        let mut feed = Feed::new(sub, &snapshot, encoding);
        feed.expiry = expires.map(|exp| Expiry::new(exp, env));
        feed.join_leave = join_leave;
        self.opened(ws, Some(Topics::one(feed)), handler, data, env)
    }

    pub(super) fn replay(
        &mut self,
        messages: &[Arc<Message>],
        encoding: Encoding,
        transport: Transport,
        env: &mut Env<'_>,
    ) {
        for m in messages {
            self.out.push_shared(m.shared(encoding), env.pool);
        }
        env.stats.count_delivered(transport, messages.len() as u64);
    }
}

impl Wait {
    /// What the broker said to the request waited for: the next state.
    pub(super) fn answer(self, answer: Answer, io: &mut Io, env: &mut Env<'_>) -> State {
        match self {
            Wait::Http(http) => {
                let app = env.app;
                // A subscription the answer brings is the handler's to keep
                // or give back; one it drops is given back here.
                let made = match &answer {
                    Answer::Subscribed(Ok((sub, _))) => Some(sub.again()),
                    _ => None,
                };
                let before = env.actions.len();
                let (step, held) = super::handler::with_cx_holding(&mut io.out, env, http.held, |cx| {
                    app.http_handler(http.handler).answer(http.data, answer, cx)
                });
                if let Some(made) = made {
                    let kept = held.contains(&made)
                        || match &step {
                            Next::Park { subscription, .. } | Next::Stream { subscription, .. } => {
                                *subscription == made
                            }
                            _ => false,
                        };
                    let given_back = env.actions[before..]
                        .iter()
                        .any(|a| matches!(a, Action::Unsubscribe(s) if *s == made));
                    if !kept && !given_back {
                        log::warn!("a handler dropped its subscription to {:?}: given back", made.channel());
                        env.actions.push(Action::Unsubscribe(made));
                    }
                }
                io.step_holding(http.handler, step, env.stamp, held, env)
            }
            Wait::Upgrade {
                response,
                ws,
                json,
                handler,
                data,
                expires,
                join_leave,
            } => match answer {
                Answer::Subscribed(Ok((sub, snapshot))) => io.subscribed_upgrade(
                    (response, ws, json, expires, join_leave),
                    handler,
                    data,
                    sub,
                    snapshot,
                    env,
                ),
                Answer::Subscribed(Err(e))
                | Answer::Published(Err(e))
                | Answer::Found(Err(e))
                | Answer::Signalled(Err(e)) => io.refuse_broker(e, env),
                Answer::Published(Ok(_)) | Answer::Found(Ok(_)) | Answer::Signalled(Ok(_)) => {
                    io.refuse(Status::INTERNAL_ERROR, &[], "the broker answered another request", env)
                }
            },
        }
    }
}

impl Io {
    /// The broker could not subscribe a WebSocket: 503 with `Retry-After`
    /// (nothing was done; the client may try again).
    pub(super) fn refuse_broker(&mut self, e: HubError, env: &mut Env<'_>) -> State {
        self.refuse(
            Status::SERVICE_UNAVAILABLE,
            &[("Retry-After", "1")],
            &e.to_string(),
            env,
        )
    }
}
