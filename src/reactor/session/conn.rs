//! The handler's link to an open session (what a [`crate::app::Conn`]
//! sends through), and the calls into the handler.

use super::expiry::Expiry;
use super::topics::Topics;
use super::{Access, Action, Env, Flags, Open, Session, State};
use crate::app::{AnyHandler, ConnId, Link, Topic, TopicError, UserData};
use crate::protocol::http::HttpDate;
use crate::protocol::{CloseCode, MessageKind, WebSocket};
use crate::pubsub::{valid_channel, Address, Query, Request};
use crate::reactor::settings::Settings;
use crate::reactor::stamp::Stamp;

/// What a handler is lent while it is called.
pub(super) struct View<'a> {
    pub(super) ws: &'a mut WebSocket,
    /// Set to `now` when our close goes out ([`Open::close_sent`]).
    pub(super) last_input: &'a mut Stamp,
    /// Where the connection's own bytes go (the output's owned segment).
    pub(super) out: &'a mut Vec<u8>,
    pub(super) topics: &'a mut Option<Box<Topics>>,
    pub(super) lend: Lend<'a>,
}

/// What the worker lends every call of a WebSocket handler.
pub(super) struct Lend<'a> {
    pub(super) actions: &'a mut Vec<Action>,
    pub(super) me: Address,
    pub(super) now: Stamp,
    pub(super) settings: &'a Settings,
    pub(super) date: &'a HttpDate,
}

impl<'a> Lend<'a> {
    pub(super) fn of(env: &'a mut Env<'_>) -> (&'a mut crate::reactor::buffer::BufferPool, Lend<'a>) {
        let lend = Lend {
            actions: env.actions,
            me: env.me,
            now: env.stamp,
            settings: env.settings,
            date: env.date,
        };
        (env.pool, lend)
    }
}

impl Link for View<'_> {
    fn id(&self) -> ConnId {
        self.lend.me
    }

    fn send(&mut self, kind: MessageKind, payload: &[u8]) {
        // After our close frame nothing more may be sent (RFC 6455 §5.5.1).
        if !self.ws.close_state().sent {
            self.ws.send(kind, payload, self.out);
        }
    }

    fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]) -> Result<(), TopicError> {
        // One channel-name rule on every transport: what no route can name
        // is not made here either.
        if !valid_channel(topic) {
            return Err(TopicError::NotAChannel);
        }
        let request = Request::Publish {
            channel: topic.into(),
            kind,
            payload: payload.into(),
            idempotency_key: None,
        };
        self.lend.actions.push(Action::Submit(request));
        Ok(())
    }

    fn subscribe(&mut self, topic: Topic) -> Result<(), TopicError> {
        if self.ws.close_state().sent {
            return Err(TopicError::Closing);
        }
        let limit = self.lend.settings.max_topics_per_connection;
        let request = self.topics.get_or_insert_with(Box::default).ask(topic, limit)?;
        self.lend.actions.push(Action::Submit(request));
        Ok(())
    }

    fn query(&mut self, query: Query) -> Result<(), TopicError> {
        if self.ws.close_state().sent {
            return Err(TopicError::Closing);
        }
        self.lend.actions.push(Action::Submit(Request::Query(query)));
        Ok(())
    }

    fn unsubscribe(&mut self, topic: &str) -> bool {
        match self.topics.as_mut().map(|t| t.drop_topic(topic)) {
            Some(Ok(Some(sub))) => {
                self.lend.actions.push(Action::Unsubscribe(sub));
                true
            }
            Some(Ok(None)) => true,
            _ => false,
        }
    }

    fn close(&mut self, code: CloseCode, reason: &str) {
        if !self.ws.close_state().sent {
            self.ws.close(code, reason, self.out);
            *self.last_input = self.lend.now;
        }
    }

    fn topics(&self) -> Vec<&str> {
        let feeds = self.topics.as_ref().map_or(&[][..], |t| t.feeds());
        feeds.iter().map(|f| &**f.sub.channel()).collect()
    }

    fn expires(&mut self, topic: &str, exp: u64) {
        let (now, unix) = (self.lend.now, self.lend.date.secs());
        let Some(topics) = self.topics.as_mut() else {
            return;
        };
        match topics.feed_mut(topic) {
            Some(feed) => feed.expiry = Some(Expiry::from_clock(exp, unix, now)),
            // A subscribe still out ends then too, once it is live.
            None => topics.expires_pending(topic, exp),
        }
    }

    fn has_expiry(&self, topic: &str) -> bool {
        let feeds = self.topics.as_ref().map_or(&[][..], |t| t.feeds());
        feeds.iter().any(|f| **f.sub.channel() == *topic && f.expiry.is_some())
    }

    fn cursor(&self, topic: &str) -> Option<u64> {
        let feeds = self.topics.as_ref().map_or(&[][..], |t| t.feeds());
        feeds
            .iter()
            .find(|f| **f.sub.channel() == *topic)
            .map(|f| f.cursor.last())
    }

    fn settings(&self) -> &Settings {
        self.lend.settings
    }

    fn unix_time(&self) -> u64 {
        self.lend.date.secs()
    }
}

impl Open {
    /// This session's handler (its index in the app), the link to lend
    /// it, writing to `out`, and the connection's data.
    #[inline]
    pub(super) fn view<'a>(&'a mut self, out: &'a mut Vec<u8>, lend: Lend<'a>) -> (u16, View<'a>, &'a mut UserData) {
        let view = View {
            ws: &mut self.ws,
            last_input: &mut self.last_input,
            out,
            topics: &mut self.topics,
            lend,
        };
        (self.handler, view, &mut self.data)
    }
}

impl Session {
    /// Call the handler of an open session, lending it a view.
    pub(super) fn with_handler(
        &mut self,
        env: &mut Env<'_>,
        f: impl FnOnce(&dyn AnyHandler, &mut dyn Link, &mut UserData),
    ) {
        let State::Open(open) = &mut self.state else {
            return;
        };
        let app = env.app;
        let (pool, lend) = Lend::of(env);
        let (handler, mut view, data) = open.view(self.io.out.buf(pool), lend);
        f(app.handler(handler), &mut view, data);
    }

    /// Tell the handler the connection is closing (once).
    pub(super) fn tell_close(&mut self, code: Option<CloseCode>, env: &mut Env<'_>) {
        let started_by = match &mut self.state {
            State::Open(open) if !open.told_close => {
                open.told_close = true;
                open.ws.close_state().started_by
            }
            _ => return,
        };
        if env.settings.access_log {
            env.actions.push(Action::Access(Access::Closed(started_by)));
        }
        self.with_handler(env, |h, link, data| h.close(link, data, code));
    }

    /// The session just opened: its handler hears of it.
    pub(super) fn tell_opened(&mut self, env: &mut Env<'_>) {
        if self.io.flags.replace(Flags::JUST_OPENED, false) {
            self.with_handler(env, |h, link, data| h.opened(link, data));
        }
    }

    /// Output went below the limit again.
    pub(super) fn drained(&mut self, env: &mut Env<'_>) {
        self.with_handler(env, |h, link, data| h.drain(link, data));
    }

    /// A signal for every connection: an open WebSocket's handler reads
    /// it, or a stream's.
    pub fn handle_signal(&mut self, payload: &[u8], env: &mut Env<'_>) {
        match self.state {
            State::Open(_) => self.with_handler(env, |h, link, data| h.signal(link, data, payload)),
            State::Stream { .. } => self.stream_signal(payload, env),
            _ => {}
        }
    }

    /// A message for this connection from another thread
    /// ([`crate::app::Sender::send`]): sent if the WebSocket is open.
    pub fn handle_send(&mut self, kind: MessageKind, payload: &[u8], env: &mut Env<'_>) {
        self.with_handler(env, |_, link, _| link.send(kind, payload));
    }
}
