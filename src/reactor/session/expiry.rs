//! A subscription's end (`expires`, a token's `exp`, given by its handler):
//! on the worker's clock, checked before every delivery and by the timers,
//! so that nothing of the topic goes out after it. What the end means to
//! the client is the handler's to say.

use super::{Action, Env, Session, State};
use crate::app::Wake;
use crate::config::MAX_TIMEOUT;
use crate::reactor::stamp::Stamp;
use std::time::Duration;

/// When a subscription ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expiry {
    /// The token's `exp`, in seconds since the Unix epoch.
    exp: u64,
    /// When to look again: `exp` on the worker's clock, or as far as a
    /// stamp can measure for a token that lasts longer.
    at: Stamp,
}

impl Expiry {
    /// An expiry at `exp` (Unix seconds), on the worker's clock of `env`.
    pub(super) fn new(exp: u64, env: &Env<'_>) -> Expiry {
        Expiry::from_clock(exp, env.date.secs(), env.stamp)
    }

    /// An expiry at `exp`, when it is `unix` seconds since the epoch and
    /// `now` on the worker's clock.
    pub(super) fn from_clock(exp: u64, unix: u64, now: Stamp) -> Expiry {
        let left = Duration::from_secs(exp.saturating_sub(unix));
        Expiry {
            exp,
            at: now.plus(left.min(MAX_TIMEOUT)),
        }
    }

    /// The next time the session must look.
    pub(super) fn at(&self) -> Stamp {
        self.at
    }

    /// Has `exp` come at `env`'s time? If not and the look was early (a
    /// token longer than a stamp measures), the next look is set.
    fn passed(&mut self, env: &Env<'_>) -> bool {
        if env.date.secs() >= self.exp {
            return true;
        }
        if !env.stamp.is_before(self.at) {
            *self = Expiry::new(self.exp, env);
        }
        false
    }
}

impl Session {
    /// End a subscription whose `expires` (a token's `exp`) has come; true
    /// if it ended. Each kind of handler says what that means to its client
    /// (the push server: a WebSocket closed with 4001, an `expired` event,
    /// a poll's 204).
    pub(super) fn expire(&mut self, env: &mut Env<'_>) -> bool {
        let expiry = match &mut self.state {
            State::Open(_) => return self.expire_topics(env),
            State::Parked { parked, .. } => parked.expiry.as_mut(),
            State::Stream { stream, .. } => stream.expiry.as_mut(),
            _ => None,
        };
        if !expiry.is_some_and(|e| e.passed(env)) {
            return false;
        }
        match &mut self.state {
            State::Stream { .. } => self.stream_expired(env),
            State::Parked { .. } => self.wake(Wake::Expired, env),
            _ => {}
        }
        true
    }

    /// An open WebSocket's topics whose end has come: each is taken out,
    /// given back, and its handler told (once the feed is gone, so that
    /// nothing of it is sent); true if any ended.
    fn expire_topics(&mut self, env: &mut Env<'_>) -> bool {
        let mut ended = false;
        loop {
            let State::Open(open) = &mut self.state else {
                return ended;
            };
            let Some(topics) = open.topics.as_mut() else {
                return ended;
            };
            let Some(i) = topics
                .feeds_mut()
                .iter_mut()
                .position(|f| f.expiry.as_mut().is_some_and(|e| e.passed(env)))
            else {
                return ended;
            };
            let sub = topics.remove_feed(i).sub;
            let channel = sub.channel().clone();
            env.actions.push(Action::Unsubscribe(sub));
            self.with_handler(env, |h, link, data| h.expired(link, data, &channel));
            ended = true;
        }
    }
}
