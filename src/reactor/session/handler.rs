//! An HTTP request in its handler's hands: what the session keeps while
//! the body is read (`Body`), the broker asked (`Waiting`), the request
//! parked (`Parked`) or streamed (`Stream`), and the [`Context`] each step
//! of the handler is lent.

use super::expiry::Expiry;
use super::{Action, Delivered, Env, Flags, Io, Session, State, Wait};
use crate::app::{AnyHttpHandler, Context, Delivery, HttpLink, Next, Response, ServerInfo, UserData, Wake};
use crate::protocol::http::Status;
use crate::pubsub::{HubError, Message, Subscription};
use crate::reactor::buffer::BufferPool;
use crate::reactor::output::Output;
use crate::stats::Transport;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// A request whose body is being read.
#[derive(Debug)]
pub(super) struct Body {
    pub(super) handler: u16,
    pub(super) data: UserData,
    pub(super) len: usize,
    /// What the session's own answers to it carry ([`Context::answer_headers`]).
    pub(super) headers: Headers,
}

/// Headers a handler gives.
pub(super) type Headers = Vec<(Cow<'static, str>, String)>;

/// A request waiting for the broker's answer.
#[derive(Debug)]
pub(super) struct HttpWait {
    pub(super) handler: u16,
    pub(super) data: UserData,
    /// Subscriptions its handler holds ([`Context::hold`]) while it asks
    /// for more: their messages go to the handler meanwhile.
    pub(super) held: Vec<Subscription>,
}

/// A request parked on a subscription (a long poll).
#[derive(Debug)]
pub(super) struct Parked {
    pub(super) handler: u16,
    pub(super) data: UserData,
    pub(super) sub: Subscription,
    /// The subscriptions it held before it parked (several channels).
    pub(super) held: Vec<Subscription>,
    /// How long it may stay parked.
    pub(super) wait_ms: u32,
    pub(super) expiry: Option<Expiry>,
    /// The handler took a message: it is woken after the batch.
    pub(super) ready: bool,
}

/// A response streaming a subscription (Server-Sent Events).
#[derive(Debug)]
pub(super) struct Streaming {
    pub(super) handler: u16,
    pub(super) data: UserData,
    pub(super) sub: Subscription,
    /// The subscriptions it held before it streamed (several channels).
    pub(super) held: Vec<Subscription>,
    /// How long it may stay quiet.
    pub(super) heartbeat_ms: u32,
    pub(super) expiry: Option<Expiry>,
}

/// Is `channel` one of a request's subscriptions?
fn on(sub: &Subscription, held: &[Subscription], channel: &str) -> bool {
    **sub.channel() == *channel || held.iter().any(|h| **h.channel() == *channel)
}

impl Parked {
    pub(super) fn wait(&self) -> Duration {
        Duration::from_millis(u64::from(self.wait_ms))
    }
}

impl Streaming {
    pub(super) fn heartbeat(&self) -> Duration {
        Duration::from_millis(u64::from(self.heartbeat_ms))
    }
}

/// What a handler's [`Context`] reaches of the session.
struct Lent<'a> {
    out: &'a mut Output,
    pool: &'a mut BufferPool,
    actions: &'a mut Vec<Action>,
    server: &'a dyn ServerInfo,
    /// Writes go out (a stream's callbacks); elsewhere they would corrupt
    /// the framing and are dropped.
    stream: bool,
    answer_headers: Option<Headers>,
    /// What the handler holds ([`Context::hold`]), where it may (`None`
    /// elsewhere: given back at once).
    held: Option<Vec<Subscription>>,
}

impl HttpLink for Lent<'_> {
    fn server(&self) -> &dyn ServerInfo {
        self.server
    }

    fn unsubscribe(&mut self, sub: Subscription) {
        self.actions.push(Action::Unsubscribe(sub));
    }

    fn hold(&mut self, sub: Subscription) {
        match &mut self.held {
            Some(held) => held.push(sub),
            None => {
                log::warn!("a handler held a subscription outside an answer: given back");
                self.actions.push(Action::Unsubscribe(sub));
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.stream {
            self.out.buf(self.pool).extend_from_slice(bytes);
        } else {
            log::warn!("a handler wrote outside a stream: dropped");
        }
    }

    fn write_shared(&mut self, bytes: Arc<[u8]>) {
        if self.stream {
            self.out.push_shared(bytes, self.pool);
        } else {
            log::warn!("a handler wrote outside a stream: dropped");
        }
    }

    fn answer_headers(&mut self, headers: Headers) {
        self.answer_headers = Some(headers);
    }
}

/// Lend a handler a [`Context`] for one step, writing to `out` if `stream`.
pub(super) fn with_cx<R>(
    out: &mut Output,
    env: &mut Env<'_>,
    stream: bool,
    f: impl FnOnce(&mut Context<'_>) -> R,
) -> R {
    with_cx_headers(out, env, stream, f).0
}

/// [`with_cx`], and the headers the step gave for the session's own answers.
pub(super) fn with_cx_headers<R>(
    out: &mut Output,
    env: &mut Env<'_>,
    stream: bool,
    f: impl FnOnce(&mut Context<'_>) -> R,
) -> (R, Option<Headers>) {
    let (r, headers, _) = lend(out, env, stream, None, f);
    (r, headers)
}

/// [`with_cx`] for a broker's answer, where the handler may hold
/// subscriptions: the step, and `held` with what it held added.
pub(super) fn with_cx_holding<R>(
    out: &mut Output,
    env: &mut Env<'_>,
    held: Vec<Subscription>,
    f: impl FnOnce(&mut Context<'_>) -> R,
) -> (R, Vec<Subscription>) {
    let (r, _, held) = lend(out, env, false, Some(held), f);
    (r, held.unwrap_or_default())
}

/// Lend a handler a [`Context`] for one step: what it returned, the
/// headers it gave, and what it holds (where it may hold: `held` given).
fn lend<R>(
    out: &mut Output,
    env: &mut Env<'_>,
    stream: bool,
    held: Option<Vec<Subscription>>,
    f: impl FnOnce(&mut Context<'_>) -> R,
) -> (R, Option<Headers>, Option<Vec<Subscription>>) {
    let mut lent = Lent {
        out,
        pool: env.pool,
        actions: env.actions,
        server: env.server,
        stream,
        answer_headers: None,
        held,
    };
    let mut cx = Context {
        settings: env.settings,
        stats: env.stats,
        unix_time: env.date.secs(),
        link: &mut lent,
    };
    let r = f(&mut cx);
    (r, lent.answer_headers, lent.held)
}

impl Session {
    /// A message for a request still asking the broker that holds a
    /// subscription of its channel: its handler's, with nothing written.
    pub(super) fn deliver_to_waiting(&mut self, msg: &Arc<Message>, env: &mut Env<'_>) -> Delivered {
        let app = env.app;
        let State::Waiting { wait, .. } = &mut self.state else {
            return Delivered::Nothing;
        };
        let super::Wait::Http(http) = &mut **wait else {
            return Delivered::Nothing;
        };
        if !http.held.iter().any(|h| **h.channel() == *msg.channel) {
            return Delivered::Nothing;
        }
        let handler = app.http_handler(http.handler);
        with_cx(&mut self.io.out, env, false, |cx| {
            handler.deliver(&mut http.data, msg, cx)
        });
        Delivered::Nothing
    }

    /// A message for a parked request or a stream: its handler's. Nothing
    /// goes out after its `expires`. A stream whose output is over the
    /// limit when a message comes is slow: it ends, what is queued dropped.
    pub(super) fn deliver_to_handler(&mut self, msg: &Arc<Message>, env: &mut Env<'_>) -> Delivered {
        if self.expire(env) {
            return self.queued();
        }
        let app = env.app;
        let over = self.io.out.len() > env.settings.write_buffer_limit;
        match &mut self.state {
            // Only its own channel's messages, whatever the worker's lists say.
            State::Parked { parked, .. } if !on(&parked.sub, &parked.held, &msg.channel) => return Delivered::Nothing,
            State::Stream { stream, .. } if !on(&stream.sub, &stream.held, &msg.channel) => return Delivered::Nothing,
            State::Parked { parked, .. } => {
                let handler = app.http_handler(parked.handler);
                let taken = with_cx(&mut self.io.out, env, false, |cx| {
                    handler.deliver(&mut parked.data, msg, cx)
                });
                match taken {
                    Delivery::Skipped => return Delivered::Nothing,
                    Delivery::Taken | Delivery::End => parked.ready = true,
                }
            }
            // A join or leave for a stream over its limit is dropped, as a
            // WebSocket drops it: only a message makes a subscriber slow.
            State::Stream { .. } if over && msg.event.is_some() => return Delivered::Nothing,
            State::Stream { stream, last_event } => {
                let handler = app.http_handler(stream.handler);
                let taken = with_cx(&mut self.io.out, env, !over, |cx| {
                    handler.deliver(&mut stream.data, msg, cx)
                });
                match taken {
                    Delivery::Skipped => return Delivered::Nothing,
                    // Not a message: written, not counted as a delivery.
                    Delivery::Taken if msg.event.is_some() => *last_event = env.stamp,
                    Delivery::Taken if over => {
                        env.stats.count_slow(Transport::Sse);
                        self.enter_closing(env);
                        // Nothing more is worth sending: drop what is queued too.
                        self.io.out.release(env.pool);
                    }
                    Delivery::Taken => {
                        env.stats.count_delivered(Transport::Sse, 1);
                        *last_event = env.stamp;
                    }
                    Delivery::End => self.enter_closing(env),
                }
            }
            _ => return Delivered::Nothing,
        }
        self.queued()
    }

    /// A signal for a stream: its handler may write, and end it.
    pub(super) fn stream_signal(&mut self, payload: &[u8], env: &mut Env<'_>) {
        let app = env.app;
        let State::Stream { stream, .. } = &mut self.state else {
            return;
        };
        let handler = app.http_handler(stream.handler);
        let said = with_cx(&mut self.io.out, env, true, |cx| {
            handler.signal(&mut stream.data, payload, cx)
        });
        if said == Delivery::End {
            self.enter_closing(env);
        }
    }

    /// After a batch of deliveries: wake a parked request that took some.
    pub fn handle_deliveries_done(&mut self, env: &mut Env<'_>) {
        if matches!(&self.state, State::Parked { parked, .. } if parked.ready) {
            self.wake(Wake::Ready, env);
        }
    }

    /// Wake a parked request or a waiting one: the state's own transition.
    pub(super) fn wake(&mut self, wake: Wake, env: &mut Env<'_>) {
        self.state = match self.take_state() {
            State::Parked { parked, .. } => (*parked).wake(wake, &mut self.io, env),
            State::Waiting { wait, .. } => (*wait).deadline(wake, &mut self.io, env),
            other => other,
        };
        // Input held while parked is the next request's: processed now.
        if self.has_input() && matches!(self.state, State::Request { .. }) {
            self.io.flags.replace(Flags::RESUME, true);
        }
    }

    /// A stream's quiet time is over: its handler's heartbeat.
    pub(super) fn heartbeat(&mut self, env: &mut Env<'_>) {
        if let State::Stream { stream, last_event } = &mut self.state {
            stream.heartbeat_now(&mut self.io, env);
            *last_event = env.stamp;
        }
    }

    /// A stream's `expires` came: its handler's last words, then the end.
    pub(super) fn stream_expired(&mut self, env: &mut Env<'_>) {
        self.state = match self.take_state() {
            State::Stream { stream, .. } => (*stream).expire(&mut self.io, env),
            other => other,
        };
    }
}

impl Parked {
    /// Its messages are in, its wait is over or its subscription ended:
    /// the subscription goes back, and its handler says what comes next.
    fn wake(self, wake: Wake, io: &mut Io, env: &mut Env<'_>) -> State {
        let Parked {
            handler,
            data,
            sub,
            held,
            ..
        } = self;
        env.actions.push(Action::Unsubscribe(sub));
        env.actions.extend(held.into_iter().map(Action::Unsubscribe));
        let app = env.app;
        let step = with_cx(&mut io.out, env, false, |cx| {
            app.http_handler(handler).wake(data, wake, cx)
        });
        io.step(handler, step, env.stamp, env)
    }
}

impl HttpWait {
    /// The broker did not answer within `request_timeout`: its handler
    /// answers, and the connection closes after, so that a late answer
    /// can never be taken for the next request's.
    pub(super) fn deadline(self, wake: Wake, io: &mut Io, env: &mut Env<'_>) -> State {
        let HttpWait { handler, data, held } = self;
        env.actions.extend(held.into_iter().map(Action::Unsubscribe));
        let app = env.app;
        let mut step = with_cx(&mut io.out, env, false, |cx| {
            app.http_handler(handler).wake(data, wake, cx)
        });
        io.flags.replace(Flags::CLOSE, true);
        if !matches!(step, Next::Respond(_)) {
            io.give_back(step, env);
            log::warn!("a handler went on after the broker's deadline: 500");
            step = Next::Respond(Response::refuse(Status::INTERNAL_ERROR, "no answer in time"));
        }
        io.step(handler, step, env.stamp, env)
    }
}

impl Streaming {
    /// Its quiet time is over: its handler's heartbeat.
    fn heartbeat_now(&mut self, io: &mut Io, env: &mut Env<'_>) {
        let handler: &dyn AnyHttpHandler = env.app.http_handler(self.handler);
        let data = &mut self.data;
        with_cx(&mut io.out, env, true, |cx| handler.heartbeat(data, cx));
    }

    /// Its `expires` came: its handler's last words, then the end.
    fn expire(mut self, io: &mut Io, env: &mut Env<'_>) -> State {
        let handler: &dyn AnyHttpHandler = env.app.http_handler(self.handler);
        let data = &mut self.data;
        with_cx(&mut io.out, env, true, |cx| handler.expired(data, cx));
        self.end(io, env)
    }

    /// The stream ends: its subscription goes back, and the connection closes.
    pub(super) fn end(self, io: &mut Io, env: &mut Env<'_>) -> State {
        env.actions.push(Action::Unsubscribe(self.sub));
        env.actions.extend(self.held.into_iter().map(Action::Unsubscribe));
        io.want = 0;
        State::closing(env.stamp)
    }
}

impl Wait {
    /// No answer within `request_timeout`: an HTTP handler says what that
    /// means; a WebSocket waiting for its subscription is refused (503).
    pub(super) fn deadline(self, wake: Wake, io: &mut Io, env: &mut Env<'_>) -> State {
        match self {
            Wait::Http(http) => http.deadline(wake, io, env),
            Wait::Upgrade { .. } => io.refuse_broker(HubError::Unavailable("it did not answer in time"), env),
        }
    }
}
