//! `GET /sse/{channel}` (WHATWG HTML §9.2, Server-Sent Events): a
//! `text/event-stream` that resumes after `Last-Event-ID`, or `?since`;
//! gaps are `gap` events, a token's end an `expired` event. In a channel
//! that keeps presence the stream is a member, and with `?join_leave=1`
//! it gets `join` and `leave` events (no `id:`, so that the cursor stays
//! the last message's).

use super::cors::Headers;
use super::presence::{join_leave, member};
use super::query::{query_u64, NotANumber};
use super::signal::end_stream;
use super::{broker_silent, channel_route, grant, subscribed};
use crate::app::{Context, Delivery, HttpHandler, Next, Request, Response, Wake};
use crate::auth::request_token;
use crate::protocol::http::Status;
use crate::pubsub::message::gap_object;
use crate::pubsub::{Answer, Cursor, Encoding, Gap, Message, Request as BrokerRequest, Via};
use crate::stats::Transport;
use std::sync::Arc;

/// The event-stream route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Events;

/// An event stream, from its head to its end.
pub struct Streaming {
    cors: Headers,
    /// Its channel.
    channel: Box<str>,
    /// Its user: the token's `sub`, if it came with a good token that
    /// has one (the server API's orders reach it by that).
    user: Option<Box<str>>,
    /// When the token of a private channel ends.
    expires: Option<u64>,
    /// Set once subscribed.
    cursor: Option<Cursor>,
    /// Its channel's join and leave events go out too.
    join_leave: bool,
}

impl HttpHandler for Events {
    type Data = Streaming;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<Streaming> {
        let (channel, cors) = match channel_route(request, cx, "GET") {
            Ok(start) => start,
            Err(answer) => return Next::Respond(answer),
        };
        let refuse = |response: Response| Next::Respond(response.headers(cors.clone()));
        // A reconnecting EventSource sends Last-Event-ID with its original
        // URL: the header is the newer cursor.
        let since = match request.header("last-event-id") {
            Ok(Some(v)) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Some)
                .ok_or(NotANumber),
            Ok(None) => query_u64(request.query(), "since"),
            Err(()) => Err(NotANumber),
        };
        let Ok(since) = since else {
            return refuse(Response::refuse(
                Status::BAD_REQUEST,
                "since and Last-Event-ID must be message ids",
            ));
        };
        let expires = match grant(request, &channel, cx) {
            Ok(grant) => grant.map(|g| g.exp),
            Err(refused) => return refuse(refused),
        };
        let join_leave = match join_leave(request.query()) {
            Ok(asked) => asked,
            Err(why) => return refuse(Response::refuse(Status::BAD_REQUEST, why)),
        };
        let token = request_token(request.head());
        let user = token
            .filter(|t| !t.is_empty())
            .and_then(|t| cx.settings().auth.user(t, cx.unix_time()).ok().flatten());
        let presence = member(cx.settings(), &channel, token, cx.unix_time());
        let data = Streaming {
            cors,
            channel: channel.as_str().into(),
            user: user.map(Into::into),
            expires,
            cursor: None,
            join_leave,
        };
        let request = BrokerRequest::Subscribe {
            channel: channel.into(),
            since,
            presence: presence.map(Box::new),
            via: Via::Sse,
        };
        Next::Ask { data, request }
    }

    /// The subscription is live: the head, the gap if any, what it
    /// missed, then live events.
    fn answer(&self, mut data: Streaming, answer: Answer, cx: &mut Context<'_>) -> Next<Streaming> {
        let (sub, snapshot) = match subscribed(answer) {
            Ok(subscribed) => subscribed,
            Err(refused) => return Next::Respond(refused.headers(data.cors)),
        };
        // The body runs until the connection closes.
        let mut head = Response::new(Status::OK)
            .header("Content-Type", "text/event-stream")
            .header("Cache-Control", "no-cache")
            .header("X-Accel-Buffering", "no")
            .headers(std::mem::take(&mut data.cors));
        if let Some(gap) = snapshot.gap {
            head = head.body(gap_event(gap));
        }
        for m in &snapshot.replay {
            head = head.shared(m.shared(Encoding::SseEvent));
        }
        cx.stats().count_delivered(Transport::Sse, snapshot.replay.len() as u64);
        data.cursor = Some(Cursor::new(&snapshot));
        Next::Stream {
            expires: data.expires,
            data,
            subscription: sub,
            head,
            heartbeat: cx.settings().pubsub.sse_heartbeat,
        }
    }

    fn deliver(&self, data: &mut Streaming, message: &Arc<Message>, cx: &mut Context<'_>) -> Delivery {
        if message.event.is_some() {
            if !data.join_leave {
                return Delivery::Skipped;
            }
            cx.write_shared(message.shared(Encoding::SseEvent));
            return Delivery::Taken;
        }
        let Some(gap) = data.cursor.as_mut().and_then(|c| c.advance(message)) else {
            return Delivery::Skipped;
        };
        if let Some(gap) = gap {
            cx.write(gap_event(gap).as_bytes());
        }
        cx.write_shared(message.shared(Encoding::SseEvent));
        Delivery::Taken
    }

    /// The broker did not answer the subscribe in time.
    fn wake(&self, data: Streaming, _: Wake, _: &mut Context<'_>) -> Next<Streaming> {
        Next::Respond(broker_silent().headers(data.cors))
    }

    /// A comment line (WHATWG HTML §9.2.6) keeps proxies from timing the
    /// stream out and reveals a vanished client.
    fn heartbeat(&self, _: &mut Streaming, cx: &mut Context<'_>) {
        cx.write(b": heartbeat\n\n");
    }

    /// The server API's order for its user: the stream ends, after an
    /// event that says why (`disconnected`, or `unsubscribed` for its
    /// channel).
    fn signal(&self, data: &mut Streaming, payload: &[u8], cx: &mut Context<'_>) -> Delivery {
        end_stream(data.user.as_deref(), payload, |c| *c == *data.channel, cx)
    }

    /// An event the page can listen for, to fetch a new token rather than
    /// let EventSource retry with the old one.
    fn expired(&self, _: &mut Streaming, cx: &mut Context<'_>) {
        cx.write(b"event: expired\ndata: token expired\n\n");
    }
}

/// An SSE event telling the client of a gap (the same object as the
/// JSON subprotocol's).
fn gap_event(gap: Gap) -> String {
    format!("event: gap\ndata: {}\n\n", gap_object(gap))
}
