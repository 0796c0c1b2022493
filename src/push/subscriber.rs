//! The push server's WebSocket subscriber at `/ws/{channel}`, and its
//! subscriber tokens ([`crate::auth`]): a private channel's subscription
//! lasts until its token's `exp`, unless the subscriber sends a newer
//! token (`{"token": "..."}`) first; then it is closed with
//! [`TOKEN_EXPIRED`] (4001). The client's rule: fetch a new token, then
//! send it or reconnect with it; reconnecting with the old one is refused.

use super::presence::{join_leave, member};
use super::query::query_u64;
use super::signal::{UserOrder, DISCONNECTED, UNSUBSCRIBED};
use crate::app::{Accept, Conn, Handler, Message, Refusal, Reply, Upgrade};
use crate::auth::{request_token, TOKEN_EXPIRED};
use crate::protocol::http::Status;
use crate::protocol::CloseCode;
use crate::pubsub::channel_name;
use serde::Deserialize;

/// The `wsreactor.json` subprotocol: messages in a JSON envelope, gaps told.
pub const JSON_PROTOCOL: &str = "wsreactor.json";

/// A channel's WebSocket subscriber at `/ws/{channel}?since=N` (the
/// channel is the whole rest of the path after the route, checked as the
/// HTTP routes check it, so `/ws/a/b` is a 400, not channel `b`): what it
/// missed after N, then every message published to the channel; with the
/// `wsreactor.json` subprotocol, messages in a JSON envelope with their
/// ids, and gaps told. What the subscriber sends is dropped, but for a
/// private channel's newer token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subscriber;

/// The longest refresh message read: a token is no longer than a request
/// head may be.
const MAX_REFRESH: usize = 8192;

/// A subscriber's text message `{"token": "..."}`: a newer token for its
/// channel.
#[derive(Deserialize)]
struct Refresh<'a> {
    #[serde(borrow)]
    token: &'a str,
}

/// A subscriber's user: its token's `sub`, if it came with a good token
/// that has one (the server API's orders reach it by that).
pub type SubscriberUser = Option<Box<str>>;

impl Handler for Subscriber {
    type Data = SubscriberUser;

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept<SubscriberUser>, Refusal> {
        // The whole rest, as `/pub/`, `/poll/` and `/sse/` take it: one
        // rule for every transport, refused before the 101.
        let Some(channel) = channel_name(upgrade.rest()) else {
            let why = "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)";
            return Err(Refusal::new(Status::BAD_REQUEST, why));
        };
        let since = query_u64(upgrade.query(), "since")
            .map_err(|_| Refusal::new(Status::BAD_REQUEST, "since must be a message id"))?;
        // A private channel opens with a token for it (`?token=`, all a
        // browser's WebSocket can send, or `Authorization: Bearer`).
        let token = request_token(upgrade.head());
        let auth = &upgrade.settings().auth;
        let grant = auth
            .subscribe(token, &channel, upgrade.unix_time())
            .map_err(|denied| Refusal::new(Status::FORBIDDEN, denied.to_string()))?;
        // A public channel ignores a token it does not need, good or not.
        let user = token
            .filter(|t| !t.is_empty())
            .and_then(|t| auth.user(t, upgrade.unix_time()).ok().flatten());
        // RFC 6455 §4.2.2 step 5: echo one of the offered subprotocols, or none.
        let envelope = upgrade.protocols().contains(&JSON_PROTOCOL);
        let join_leave = join_leave(upgrade.query()).map_err(|why| Refusal::new(Status::BAD_REQUEST, why))?;
        if join_leave && !envelope {
            let why = "join_leave needs the wsreactor.json subprotocol: bare frames carry published messages alone";
            return Err(Refusal::new(Status::BAD_REQUEST, why));
        }
        let mut accept = Accept::new().subscribe(&channel);
        if let Some(member) = member(upgrade.settings(), &channel, token, upgrade.unix_time()) {
            accept = accept.presence(member);
        }
        if join_leave {
            accept = accept.join_leave();
        }
        if let Some(since) = since {
            accept = accept.since(since);
        }
        if envelope {
            accept = accept.protocol(JSON_PROTOCOL).envelope();
        }
        if let Some(grant) = grant {
            accept = accept.expires(grant.exp);
        }
        Ok(accept.data(user.map(Into::into)))
    }

    /// A subscriber's own messages have nowhere to go, but for a newer
    /// token for a private channel: checked, it extends the subscription;
    /// refused, the connection is closed with 1008 and why.
    fn message(&self, conn: &mut Conn<'_, SubscriberUser>, message: Message<'_>) -> Reply {
        let Message::Text(text) = message else {
            return Reply::Done;
        };
        let Some(channel) = conn.topic().map(str::to_owned) else {
            return Reply::Done;
        };
        if !conn.has_expiry(&channel) || !text.starts_with('{') || text.len() > MAX_REFRESH {
            return Reply::Done;
        }
        let Ok(refresh) = serde_json::from_str::<Refresh<'_>>(text) else {
            return Reply::Done;
        };
        match conn
            .settings()
            .auth
            .subscribe(Some(refresh.token.as_bytes()), &channel, conn.unix_time())
        {
            Ok(Some(grant)) => conn.expires(&channel, grant.exp),
            // The channel stopped being private: nothing to refresh.
            Ok(None) => {}
            Err(denied) => conn.close(CloseCode::POLICY_VIOLATION, &denied.to_string()),
        }
        Reply::Done
    }

    fn expired(&self, conn: &mut Conn<'_, SubscriberUser>, _topic: &str) {
        conn.close(TOKEN_EXPIRED, "token expired");
    }

    /// The server API's order for its user: a disconnect, or the end of
    /// its one channel, closes it.
    fn signal(&self, conn: &mut Conn<'_, SubscriberUser>, payload: &[u8]) {
        let Some(user) = conn.data().as_deref() else {
            return;
        };
        match UserOrder::for_user(payload, user) {
            Some(UserOrder::Disconnect { .. }) => conn.close(DISCONNECTED, "disconnected by the server"),
            Some(UserOrder::Unsubscribe { channel, .. }) if conn.topic() == Some(channel.as_str()) => {
                conn.close(UNSUBSCRIBED, "unsubscribed by the server")
            }
            _ => {}
        }
    }
}
