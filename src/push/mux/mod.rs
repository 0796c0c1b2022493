//! Several channels on one WebSocket: the `wsreactor.mux` subprotocol at
//! `/ws` (no channel in the path). The client sends commands as JSON
//! text, each with an `id` of its choosing (a whole number), and every
//! command is answered once, `{"reply":ID,"ok":true}` or
//! `{"reply":ID,"error":"why"}` (`"reply":null` when the command had no
//! readable id); a refused command changes nothing.
//!
//! | command | does |
//! | --- | --- |
//! | `{"id":1,"subscribe":"c","since":N,"token":"T","join_leave":true}` | subscribe to `c` (`since`, `token` and `join_leave` optional): what `c` holds after N, then live (and, with `join_leave`, its presence's join and leave events) |
//! | `{"id":2,"unsubscribe":"c"}` | nothing more of `c` |
//! | `{"id":3,"publish":"c","data":V,"token":"T"}` | publish `V`'s JSON text to `c`; answered with `"message_id"` |
//! | `{"id":4,"refresh":"T"}` | a newer token, for the private channels subscribed and what comes next |
//! | `{"id":5,"presence":"c"}`, `{"id":6,"presence_stats":"c"}` | a subscribed channel's members (`"members":[...]` in the reply), or their count (`"clients"`, `"users"`) |
//!
//! The server sends, besides replies, each message of a subscribed
//! channel as `{"id":N,"channel":"c","data":...}` (the `wsreactor.json`
//! envelope, so each channel has its own cursor: the last `id` seen of
//! it), `{"channel":"c","gap":{"from":A,"to":B}}` before what follows ids
//! it will not get, and `{"channel":"c","unsubscribed":"why"}` when the
//! server ends a subscription (its token expired). In a channel that keeps
//! presence (`[presence] channels`) the subscriber is a member (its
//! token's `sub` and `info`), and with `join_leave` it gets
//! `{"channel":"c","join":{"client":..,"user":..,"info":..}}` and `"leave"`.
//!
//! A private channel ([`crate::auth`]) needs a token that grants it: the
//! subscribe's own `token`, else the connection's (`?token=` or
//! `Authorization: Bearer` on the upgrade, or the last `refresh`). Its
//! subscription ends at the token's `exp` unless a `refresh` extends it
//! first. Publishing needs a token with the `pub` scope that grants the
//! channel, public or private. A connection holds at most `[limits]
//! max_channels_per_connection` channels.

use super::presence::{keeps_presence, member};
use super::signal::{UserOrder, DISCONNECTED};
use crate::app::{Accept, Conn, Handler, Message, Refusal, Reply, Topic, TopicError, Upgrade};
use crate::auth::request_token;
use crate::auth::Denied;
use crate::protocol::http::Status;
use crate::pubsub::{valid_channel, Found, HubError, Member, Query, Receipt};
use std::collections::VecDeque;
use wire::{notice, ok, refused, Command, Verb};

mod wire;

/// The `wsreactor.mux` subprotocol: several channels, commands and replies.
pub const MUX_PROTOCOL: &str = "wsreactor.mux";

/// The longest token kept with a connection: no longer than a request
/// head may be.
const MAX_TOKEN: usize = 8192;

/// Publishes one connection may have out to the broker at once; more are
/// refused until answers come.
const MAX_PUBLISHING: usize = 256;

/// Presence reads out to the broker from one connection, at most.
const MAX_QUERYING: usize = 16;

/// The multiplexed subscriber at `/ws` ([`MUX_PROTOCOL`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mux;

/// What a multiplexed connection keeps: its token, and the commands
/// waiting for the broker.
#[derive(Debug, Default)]
pub struct Muxing {
    /// The connection's token: the upgrade's, or the last refresh.
    token: Option<Box<str>>,
    /// Its user: the token's `sub`, if it has one.
    user: Option<Box<str>>,
    /// Subscribes out to the broker: the channel, and the command's id.
    /// And whether it had no `since` (its reply gives the cursor to
    /// resume from, `last_id`).
    subscribing: Vec<(Box<str>, u64, bool)>,
    /// Publishes out, the command ids in the order they were made (the
    /// broker answers in that order).
    publishing: VecDeque<u64>,
    /// Presence reads out, the command ids in the order they were made.
    querying: VecDeque<u64>,
}

impl Handler for Mux {
    type Data = Muxing;

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept<Muxing>, Refusal> {
        // RFC 6455 §4.2.2 step 5: a server speaks a subprotocol only when
        // the client offered it; a client that did not would misread
        // every reply.
        if !upgrade.protocols().contains(&MUX_PROTOCOL) {
            let why = "/ws speaks the wsreactor.mux subprotocol: offer it in Sec-WebSocket-Protocol (one channel: /ws/{channel})";
            return Err(Refusal::new(Status::BAD_REQUEST, why));
        }
        let token = match request_token(upgrade.head()).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) if t.len() > MAX_TOKEN => return Err(Refusal::new(Status::BAD_REQUEST, "the token is too long")),
            Some(t) => match std::str::from_utf8(t) {
                Ok(t) => Some(t),
                Err(_) => return Err(Refusal::new(Status::BAD_REQUEST, "the token is not a JWT")),
            },
        };
        // A connection's token is checked as it opens: a bad one is a 403
        // now, not a surprise at its first subscribe. Its `sub` is the
        // connection's user.
        let user = match token {
            None => None,
            Some(t) => match upgrade.settings().auth.user(t.as_bytes(), upgrade.unix_time()) {
                Ok(user) => user,
                Err(denied) => return Err(Refusal::new(Status::FORBIDDEN, token_refused(&denied))),
            },
        };
        let data = Muxing {
            token: token.map(Into::into),
            user: user.map(Into::into),
            ..Muxing::default()
        };
        Ok(Accept::new().protocol(MUX_PROTOCOL).data(data))
    }

    fn message(&self, conn: &mut Conn<'_, Muxing>, message: Message<'_>) -> Reply {
        let Message::Text(text) = message else {
            conn.send_text(&refused(None, "commands are JSON text"));
            return Reply::Done;
        };
        let value = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            Ok(_) => {
                conn.send_text(&refused(None, "a command is a JSON object"));
                return Reply::Done;
            }
            Err(e) => {
                conn.send_text(&refused(None, &format!("not JSON: {e}")));
                return Reply::Done;
            }
        };
        let Some(id) = value.get("id").and_then(serde_json::Value::as_u64) else {
            conn.send_text(&refused(None, "every command needs an id: a whole number"));
            return Reply::Done;
        };
        let verb = match serde_json::from_value::<Command>(value) {
            Ok(command) => command.verb(),
            Err(_) => Err(
                "unknown command: use subscribe, unsubscribe, publish, refresh, presence or presence_stats (and their fields)",
            ),
        };
        let reply = match verb {
            Ok(verb) => run(conn, id, verb),
            Err(why) => Some(refused(Some(id), why)),
        };
        if let Some(reply) = reply {
            conn.send_text(&reply);
        }
        Reply::Done
    }

    fn subscribed(&self, conn: &mut Conn<'_, Muxing>, topic: &str, result: Result<(), HubError>) {
        let subscribing = &mut conn.data().subscribing;
        let Some(i) = subscribing.iter().position(|(c, ..)| **c == *topic) else {
            return;
        };
        let (_, id, from_now) = subscribing.swap_remove(i);
        if subscribing.is_empty() {
            // Held only while subscribes are out.
            subscribing.shrink_to_fit();
        }
        // A subscribe with no `since` starts after the channel's last id:
        // the cursor a client resumes from if it gets nothing before a
        // reconnect.
        let reply = match (result, conn.cursor(topic).filter(|_| from_now)) {
            (Ok(()), Some(last)) => ok(id, &format!(",\"last_id\":{last}")),
            (Ok(()), None) => ok(id, ""),
            (Err(e), _) => refused(Some(id), &e.to_string()),
        };
        conn.send_text(&reply);
    }

    fn published(&self, conn: &mut Conn<'_, Muxing>, result: Result<Receipt, HubError>) {
        let publishing = &mut conn.data().publishing;
        let Some(id) = publishing.pop_front() else {
            return;
        };
        if publishing.is_empty() {
            publishing.shrink_to_fit();
        }
        let reply = match result {
            Ok(receipt) => ok(id, &format!(",\"message_id\":{}", receipt.id)),
            Err(e) => refused(Some(id), &e.to_string()),
        };
        conn.send_text(&reply);
    }

    /// A presence read answered: `"members":[...]`, or `"clients"` and
    /// `"users"`, in its reply.
    fn found(&self, conn: &mut Conn<'_, Muxing>, result: Result<Found, HubError>) {
        let querying = &mut conn.data().querying;
        let Some(id) = querying.pop_front() else {
            return;
        };
        if querying.is_empty() {
            querying.shrink_to_fit();
        }
        let reply = match result {
            Ok(Found::Presence(members)) => {
                let list: Vec<String> = members.iter().map(Member::json).collect();
                ok(id, &format!(",\"members\":[{}]", list.join(",")))
            }
            Ok(Found::PresenceStats(stats)) => {
                ok(id, &format!(",\"clients\":{},\"users\":{}", stats.clients, stats.users))
            }
            Ok(_) => refused(Some(id), "the broker answered another query"),
            Err(e) => refused(Some(id), &e.to_string()),
        };
        conn.send_text(&reply);
    }

    /// The server API's order for this connection's user, if it is one.
    fn signal(&self, conn: &mut Conn<'_, Muxing>, payload: &[u8]) {
        let Some(user) = conn.data().user.as_deref() else {
            return;
        };
        match UserOrder::for_user(payload, user) {
            Some(UserOrder::Disconnect { .. }) => conn.close(DISCONNECTED, "disconnected by the server"),
            Some(UserOrder::Unsubscribe { channel, .. }) => {
                let live = conn.topics().contains(&channel.as_str());
                if conn.unsubscribe(&channel) {
                    // A subscribe still out is answered; a live channel's
                    // end is told.
                    answer_given_up(conn, &channel, "unsubscribed by the server");
                    if live {
                        conn.send_text(&notice(&channel, "by the server"));
                    }
                }
            }
            None => {}
        }
    }

    /// A private channel's token ended: that channel only, told; the client
    /// subscribes again with a newer token and its cursor.
    fn expired(&self, conn: &mut Conn<'_, Muxing>, topic: &str) {
        conn.send_text(&notice(topic, "token expired"));
    }
}

/// A subscribe to `channel` still out was given up: its command is
/// answered now, with `why`.
fn answer_given_up(conn: &mut Conn<'_, Muxing>, channel: &str, why: &str) {
    let subscribing = &mut conn.data().subscribing;
    if let Some(i) = subscribing.iter().position(|(c, ..)| **c == *channel) {
        let (_, id, _) = subscribing.swap_remove(i);
        conn.send_text(&refused(Some(id), why));
    }
}

/// Why a connection's token is refused: as for a channel, but for a
/// server with no secret, which takes no token at all.
fn token_refused(denied: &Denied) -> String {
    match denied {
        Denied::NoSecret => "the server has no token secret: it takes no tokens".to_owned(),
        other => other.to_string(),
    }
}

/// Carry out a checked command: its reply now, or `None` when the broker
/// answers it later.
fn run(conn: &mut Conn<'_, Muxing>, id: u64, verb: Verb) -> Option<String> {
    match verb {
        Verb::Subscribe {
            channel,
            since,
            token,
            join_leave,
        } => subscribe(conn, id, channel, since, token, join_leave),
        Verb::Unsubscribe(channel) => {
            if !conn.unsubscribe(&channel) {
                return Some(refused(Some(id), "not subscribed to this channel"));
            }
            // A subscribe still out is answered now: it will not be live.
            answer_given_up(conn, &channel, "unsubscribed before it was live");
            Some(ok(id, ""))
        }
        Verb::Publish { channel, data, token } => publish(conn, id, channel, data, token),
        Verb::Refresh(token) => Some(refresh(conn, id, token)),
        Verb::Presence { channel, stats } => presence(conn, id, channel, stats),
    }
}

/// A channel's presence, for a connection subscribed to it (as Centrifugo
/// asks: who may see a channel's messages may see who else does).
fn presence(conn: &mut Conn<'_, Muxing>, id: u64, channel: String, stats: bool) -> Option<String> {
    if !keeps_presence(conn.settings(), &channel) {
        return Some(refused(Some(id), "the channel keeps no presence ([presence] channels)"));
    }
    if !conn.topics().contains(&channel.as_str()) {
        return Some(refused(Some(id), "not subscribed to this channel"));
    }
    if conn.data().querying.len() >= MAX_QUERYING {
        return Some(refused(Some(id), "too many presence reads out: wait for their replies"));
    }
    let query = if stats {
        Query::PresenceStats(channel.into())
    } else {
        Query::Presence(channel.into())
    };
    match conn.query(query) {
        Ok(()) => {
            conn.data().querying.push_back(id);
            None
        }
        Err(e) => Some(refused(Some(id), &e.to_string())),
    }
}

fn subscribe(
    conn: &mut Conn<'_, Muxing>,
    id: u64,
    channel: String,
    since: Option<u64>,
    token: Option<String>,
    join_leave: bool,
) -> Option<String> {
    if !valid_channel(&channel) {
        return Some(refused(Some(id), &TopicError::NotAChannel.to_string()));
    }
    let token = match command_token(conn, token) {
        Ok(token) => token,
        Err(why) => return Some(refused(Some(id), &why)),
    };
    let grant = conn
        .settings()
        .auth
        .subscribe(token.as_deref().map(str::as_bytes), &channel, conn.unix_time());
    let grant = match grant {
        Ok(grant) => grant,
        Err(denied) => return Some(refused(Some(id), &denied.to_string())),
    };
    let mut topic = Topic::new(&channel).envelope();
    if let Some(since) = since {
        topic = topic.since(since);
    }
    if let Some(grant) = grant {
        topic = topic.expires(grant.exp);
    }
    let token = token.as_deref().map(str::as_bytes);
    if let Some(member) = member(conn.settings(), &channel, token, conn.unix_time()) {
        topic = topic.presence(member);
    }
    if join_leave {
        topic = topic.join_leave();
    }
    match conn.subscribe(topic) {
        Ok(()) => {
            conn.data().subscribing.push((channel.into(), id, since.is_none()));
            None
        }
        Err(e) => Some(refused(Some(id), &e.to_string())),
    }
}

fn publish(
    conn: &mut Conn<'_, Muxing>,
    id: u64,
    channel: String,
    data: serde_json::Value,
    token: Option<String>,
) -> Option<String> {
    if !valid_channel(&channel) {
        return Some(refused(Some(id), &TopicError::NotAChannel.to_string()));
    }
    if conn.data().publishing.len() >= MAX_PUBLISHING {
        return Some(refused(Some(id), "too many publishes out: wait for their replies"));
    }
    let token = match command_token(conn, token) {
        Ok(token) => token,
        Err(why) => return Some(refused(Some(id), &why)),
    };
    let Some(token) = token else {
        return Some(refused(Some(id), "publishing needs a token with the pub scope"));
    };
    if let Err(denied) = conn
        .settings()
        .auth
        .publish(token.as_bytes(), &channel, conn.unix_time())
    {
        return Some(refused(Some(id), &denied.to_string()));
    }
    let text = data.to_string();
    match conn.publish(&channel, Message::Text(&text)) {
        Ok(()) => {
            conn.data().publishing.push_back(id);
            None
        }
        Err(e) => Some(refused(Some(id), &e.to_string())),
    }
}

/// A newer token: every private channel subscribed must be granted by it
/// (else nothing changes, and the reply names the first that is not);
/// then each lasts until its `exp`, and later commands use it.
fn refresh(conn: &mut Conn<'_, Muxing>, id: u64, token: String) -> String {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return refused(Some(id), "the token is empty or too long");
    }
    let user = match token_user(conn, &token) {
        Ok(user) => user,
        Err(why) => return refused(Some(id), &why),
    };
    // The private channels: live ones with an end, and subscribes still
    // out (which go live with the end given now).
    let pending: Vec<String> = conn.data().subscribing.iter().map(|(c, ..)| c.to_string()).collect();
    let auth = &conn.settings().auth;
    let mut private: Vec<String> = pending.into_iter().filter(|c| auth.is_private(c)).collect();
    private.extend(
        conn.topics()
            .into_iter()
            .filter(|t| conn.has_expiry(t))
            .map(str::to_owned),
    );
    let mut grants = Vec::with_capacity(private.len());
    for channel in &private {
        match conn
            .settings()
            .auth
            .subscribe(Some(token.as_bytes()), channel, conn.unix_time())
        {
            Ok(Some(grant)) => grants.push(grant.exp),
            // No longer private: it needs no token.
            Ok(None) => grants.push(u64::MAX),
            Err(denied) => return refused(Some(id), &format!("{channel}: {denied}")),
        }
    }
    for (channel, exp) in private.iter().zip(grants) {
        conn.expires(channel, exp);
    }
    let data = conn.data();
    data.token = Some(token.into());
    if data.user.is_none() {
        data.user = user.map(Into::into);
    }
    ok(id, "")
}

/// The user a token names, checked against the connection's: a token
/// names the connection's user or none; a connection without a user takes
/// the first one a command's token names (so that no token reaches past
/// the server API's orders for its user). `Err`: why not.
fn token_user(conn: &mut Conn<'_, Muxing>, token: &str) -> Result<Option<String>, String> {
    let user = conn
        .settings()
        .auth
        .user(token.as_bytes(), conn.unix_time())
        .map_err(|denied| token_refused(&denied))?;
    match (conn.data().user.as_deref(), user.as_deref()) {
        (Some(have), Some(named)) if have != named => {
            Err("the token names another user than the connection's".to_owned())
        }
        _ => Ok(user),
    }
}

/// The token a command uses: its own, checked as [`token_user`] (its
/// user, if the connection had none, is the connection's from now on),
/// else the connection's.
fn command_token(conn: &mut Conn<'_, Muxing>, token: Option<String>) -> Result<Option<String>, String> {
    let Some(token) = token else {
        return Ok(conn.data().token.as_deref().map(str::to_owned));
    };
    let user = token_user(conn, &token)?;
    let data = conn.data();
    if data.user.is_none() {
        data.user = user.map(Into::into);
    }
    Ok(Some(token))
}
