//! `GET /poll/{channel}?since=N&wait=S`: long polling, and short polling
//! with `wait=0`. The poll subscribes, then answers at once with what the
//! history holds after N, or parks until a publish or its wait is over
//! (then `204` with `X-Last-Id`, the cursor to ask from next). With
//! `?join_leave=1` a parked poll is answered by a join or leave too, in an
//! `events` array apart from the `messages`.

use super::cors::Headers;
use super::presence::join_leave;
use super::query::query_u64;
use super::{broker_silent, channel_route, grant, message_list, subscribed};
use crate::app::{Context, Delivery, HttpHandler, Next, Request, Response, Wake};
use crate::protocol::http::Status;
use crate::pubsub::{Answer, Cursor, Encoding, Message, Request as BrokerRequest, Via};
use crate::stats::Transport;
use std::sync::Arc;
use std::time::Duration;

/// The long-poll route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Poll;

/// A poll between its head and its answer.
pub struct Polling {
    cors: Headers,
    /// `wait=S`, in milliseconds, capped by `poll_timeout`.
    wait_ms: Option<u64>,
    /// When the token of a private channel ends.
    expires: Option<u64>,
    /// Set once subscribed: the last id given (or known missed).
    cursor: Option<Cursor>,
    /// The answer being gathered, and whether ids were missed (and
    /// whether the cursor asked from was not vouched for).
    messages: Vec<Arc<Message>>,
    gap: bool,
    reset: bool,
    /// Join and leave events go in the answer too (`?join_leave=1`), and
    /// those that came while it was parked.
    join_leave: bool,
    events: Vec<Arc<Message>>,
}

impl HttpHandler for Poll {
    type Data = Polling;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<Polling> {
        let (channel, cors) = match channel_route(request, cx, "GET") {
            Ok(start) => start,
            Err(answer) => return Next::Respond(answer),
        };
        let settings = cx.settings();
        let refuse = |response: Response| Next::Respond(response.headers(cors.clone()));
        let Ok(since) = query_u64(request.query(), "since") else {
            return refuse(Response::refuse(Status::BAD_REQUEST, "since must be a message id"));
        };
        // `wait=S`: park at most S seconds (capped by poll_timeout); `wait=0`
        // is a short poll, answered at once.
        let Ok(wait) = query_u64(request.query(), "wait") else {
            return refuse(Response::refuse(
                Status::BAD_REQUEST,
                "wait must be a number of seconds",
            ));
        };
        let Ok(join_leave) = join_leave(request.query()) else {
            return refuse(Response::refuse(Status::BAD_REQUEST, "join_leave must be 1 or 0"));
        };
        let expires = match grant(request, &channel, cx) {
            Ok(grant) => grant.map(|g| g.exp),
            Err(refused) => return refuse(refused),
        };
        let cap = u64::try_from(settings.pubsub.poll_timeout.as_millis()).unwrap_or(u64::MAX);
        let data = Polling {
            cors,
            wait_ms: wait.map(|w| w.saturating_mul(1000).min(cap)),
            expires,
            cursor: None,
            messages: Vec::new(),
            gap: false,
            reset: false,
            join_leave,
            events: Vec::new(),
        };
        // A poll is not a member of the channel's presence: between its
        // requests it is subscribed to nothing, and a member for the span
        // of each would be a join and a leave per poll.
        let request = BrokerRequest::subscribe(channel, since).via(Via::Poll);
        Next::Ask { data, request }
    }

    /// The subscription is live: park until a publish or the wait is
    /// over, or answer now with what the history had.
    fn answer(&self, mut data: Polling, answer: Answer, cx: &mut Context<'_>) -> Next<Polling> {
        let (sub, snapshot) = match subscribed(answer) {
            Ok(subscribed) => subscribed,
            Err(refused) => return Next::Respond(refused.headers(data.cors)),
        };
        data.cursor = Some(Cursor::new(&snapshot));
        if snapshot.replay.is_empty() && snapshot.gap.is_none() {
            if data.wait_ms == Some(0) {
                // A short poll with nothing new: 204 and the cursor, now.
                cx.unsubscribe(sub);
                return Next::Respond(nothing(data));
            }
            let wait = data
                .wait_ms
                .map_or(cx.settings().pubsub.poll_timeout, Duration::from_millis);
            let expires = data.expires;
            return Next::Park {
                data,
                subscription: sub,
                wait,
                expires,
            };
        }
        cx.unsubscribe(sub);
        data.messages = snapshot.replay;
        data.gap = snapshot.gap.is_some();
        data.reset = snapshot.gap.is_some_and(|g| g.reset);
        Next::Respond(messages(data, cx))
    }

    fn deliver(&self, data: &mut Polling, message: &Arc<Message>, _: &mut Context<'_>) -> Delivery {
        if message.event.is_some() {
            if !data.join_leave {
                return Delivery::Skipped;
            }
            data.events.push(message.clone());
            return Delivery::Taken;
        }
        let Some(gap) = data.cursor.as_mut().and_then(|c| c.advance(message)) else {
            return Delivery::Skipped;
        };
        data.gap |= gap.is_some();
        data.reset |= gap.is_some_and(|g| g.reset);
        data.messages.push(message.clone());
        Delivery::Taken
    }

    fn wake(&self, data: Polling, wake: Wake, cx: &mut Context<'_>) -> Next<Polling> {
        let response = match (wake, &data.cursor) {
            // The broker did not answer the subscribe in time.
            (_, None) => broker_silent().headers(data.cors),
            (Wake::Ready, Some(_)) => messages(data, cx),
            // Its wait is over, or its token ended: nothing (a poll with
            // an ended token is refused with 403 next time).
            (Wake::Deadline | Wake::Expired, Some(_)) => nothing(data),
        };
        Next::Respond(response)
    }
}

/// Nothing for a poll (its wait is over, or it was a short poll): 204
/// with `X-Last-Id`, the cursor to ask from next, so that a client that
/// polled without `since` misses nothing published before its next poll.
fn nothing(data: Polling) -> Response {
    let cursor = data.cursor.map_or(0, |c| c.last());
    Response::new(Status::NO_CONTENT)
        .header("Cache-Control", "no-store")
        .header("X-Last-Id", cursor.to_string())
        .headers(data.cors)
}

/// A poll's answer: its gathered messages, each in its shared poll form,
/// the cursor, and whether ids were missed.
fn messages(data: Polling, cx: &mut Context<'_>) -> Response {
    let last_id = data.cursor.map_or(0, |c| c.last());
    let reset = if data.reset { ",\"reset\":true" } else { "" };
    let mut response = message_list(&data.messages).headers(data.cors);
    cx.stats().count_delivered(Transport::Poll, data.messages.len() as u64);
    if !data.events.is_empty() {
        // Apart from the messages: every item there has an id, and none here.
        response = response.body(&b"],\"events\":["[..]);
        for (i, e) in data.events.iter().enumerate() {
            if i > 0 {
                response = response.body(&b","[..]);
            }
            response = response.shared(e.shared(Encoding::PollItem));
        }
    }
    response.body(format!("],\"last_id\":{last_id},\"gap\":{}{reset}}}", data.gap))
}
