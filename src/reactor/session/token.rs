//! Subscriber tokens on a session ([`crate::auth`]): a private channel's
//! subscription lasts until its token's `exp`, on every transport, unless
//! a WebSocket subscriber refreshes it by sending a newer token.
//!
//! When the token ends, a WebSocket subscriber is closed with
//! [`TOKEN_EXPIRED`] (4001), an event stream gets an `expired` event and ends, a
//! parked long poll answers 204 (its next poll is refused with 403). The
//! client's rule: fetch a new token, then reconnect with it; reconnecting
//! with the old one is refused.

use super::{Env, Io, Open, Session, State};
use crate::app::Wake;
use crate::auth::{Grant, TOKEN_EXPIRED};
use crate::config::MAX_TIMEOUT;
use crate::protocol::http::{RequestHead, Status};
use crate::protocol::CloseCode;
use crate::reactor::stamp::Stamp;
use serde::Deserialize;
use std::time::Duration;

/// When a subscription's token ends.
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
        let left = Duration::from_secs(exp.saturating_sub(env.date.secs()));
        Expiry {
            exp,
            at: env.stamp.plus(left.min(MAX_TIMEOUT)),
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

/// The longest refresh message read.
const MAX_REFRESH: usize = 8192;

/// A WebSocket subscriber's text message `{"token": "..."}`: a newer token
/// for its channel.
#[derive(Deserialize)]
struct Refresh<'a> {
    #[serde(borrow)]
    token: &'a str,
}

impl Open {
    /// A text message from a subscriber of a private channel: if it is a
    /// refresh, check the new token and extend the subscription (or close
    /// with 1008 and the reason). False: not a refresh, the handler's.
    pub(super) fn refresh(&mut self, payload: &[u8], out: &mut Vec<u8>, env: &Env<'_>) -> bool {
        let Some(feed) = self.feed.as_mut().filter(|f| f.expiry.is_some()) else {
            return false;
        };
        // A token is no longer than a request head may be; a larger
        // message is not parsed (it is the handler's, which drops it).
        let Some(refresh) = (payload.starts_with(b"{") && payload.len() <= MAX_REFRESH)
            .then(|| serde_json::from_slice::<Refresh<'_>>(payload).ok())
            .flatten()
        else {
            return false;
        };
        let channel = feed.sub.channel().clone();
        match env
            .settings
            .auth
            .subscribe(Some(refresh.token.as_bytes()), &channel, env.date.secs())
        {
            Ok(Some(grant)) => feed.expiry = Some(Expiry::new(grant.exp, env)),
            // The channel stopped being private: nothing to refresh.
            Ok(None) => {}
            Err(denied) => {
                self.close(CloseCode::POLICY_VIOLATION, &denied.to_string(), env.stamp, out);
            }
        }
        true
    }
}

impl Io {
    /// May this request subscribe to `channel`? `Ok(Some(grant))` for a
    /// private channel and a good token, `Ok(None)` for a public channel;
    /// else the 403 with the reason, before any answer head.
    pub(super) fn grant(
        &mut self,
        head: &RequestHead<'_, '_>,
        channel: &str,
        env: &mut Env<'_>,
    ) -> Result<Option<Grant>, State> {
        env.settings
            .auth
            .subscribe(crate::auth::request_token(head), channel, env.date.secs())
            .map_err(|denied| self.refuse(Status::FORBIDDEN, &[], &denied.to_string(), env))
    }
}

impl Session {
    /// End a subscription whose `expires` (a token's `exp`) has come; true
    /// if it ended. A WebSocket is closed with [`TOKEN_EXPIRED`]; a parked
    /// request and a stream are their handler's to end.
    pub(super) fn expire(&mut self, env: &mut Env<'_>) -> bool {
        let expiry = match &mut self.state {
            State::Open(open) => open.feed.as_mut().and_then(|f| f.expiry.as_mut()),
            State::Parked { parked, .. } => parked.expiry.as_mut(),
            State::Stream { stream, .. } => stream.expiry.as_mut(),
            _ => None,
        };
        if !expiry.is_some_and(|e| e.passed(env)) {
            return false;
        }
        match &mut self.state {
            State::Open(open) => {
                open.close(TOKEN_EXPIRED, "token expired", env.stamp, self.io.out.buf(env.pool));
                self.end_feed(env);
            }
            State::Stream { .. } => self.stream_expired(env),
            State::Parked { .. } => self.wake(Wake::Expired, env),
            _ => {}
        }
        true
    }
}
