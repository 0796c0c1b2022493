//! `GET /sse?channel=a&channel=b`: one event stream of several channels.
//! Each event's `id` is the cursor of all of them (`a=5,b=7`), which a
//! reconnecting `EventSource` sends back as `Last-Event-ID`; its `data` is
//! the message in the `wsreactor.json` envelope, its channel and id in it.
//! Gaps are `gap` events naming their channel; joins and leaves (with
//! `?join_leave=1`) and the end of a token are as on one channel.

use super::super::broker_silent;
use super::super::cors::Headers;
use super::super::presence::join_leave;
use super::super::signal::end_stream;
use super::{overflowed, sse_event, sse_gap, Item, Several, Step};
use crate::app::{Context, Delivery, HttpHandler, Next, Request, Response, Wake};
use crate::auth::request_token;
use crate::protocol::http::Status;
use crate::pubsub::{Answer, Encoding, Message, Via};
use crate::stats::Transport;
use std::sync::Arc;

/// The event-stream route on several channels (`/sse`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsSeveral;

/// An event stream on several channels, from its head to its end.
pub struct StreamingSeveral {
    cors: Headers,
    several: Several,
    /// Its user: the token's `sub` (the server API's orders reach it).
    user: Option<Box<str>>,
    join_leave: bool,
    /// Its head is out: events are written as they come.
    streaming: bool,
}

impl HttpHandler for EventsSeveral {
    type Data = StreamingSeveral;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<StreamingSeveral> {
        // A reconnecting EventSource sends Last-Event-ID with its original
        // URL: the header is the newer cursor.
        let cursor = match request.header("last-event-id") {
            Ok(Some(v)) => std::str::from_utf8(v).ok().map(str::trim).map(str::to_owned),
            Ok(None) => super::super::query::query_values(request.query(), "since")
                .last()
                .map(str::to_owned),
            Err(()) => None,
        };
        let (mut several, cors) = match Several::request(request, cx, cursor.as_deref(), Via::Sse) {
            Ok(start) => start,
            Err(answer) => return Next::Respond(answer),
        };
        let join_leave = match join_leave(request.query()) {
            Ok(asked) => asked,
            Err(why) => return Next::Respond(Response::refuse(Status::BAD_REQUEST, why).headers(cors)),
        };
        several.members(request, cx);
        let user = request_token(request.head())
            .filter(|t| !t.is_empty())
            .and_then(|t| cx.settings().auth.user(t, cx.unix_time()).ok().flatten());
        let Some(ask) = several.next_subscribe() else {
            return Next::Respond(Response::refuse(Status::BAD_REQUEST, "no channel").headers(cors));
        };
        let data = StreamingSeveral {
            cors,
            several,
            user: user.map(Into::into),
            join_leave,
            streaming: false,
        };
        Next::Ask { data, request: ask }
    }

    /// One more channel is subscribed: the next is asked for, this one
    /// held; with the last, the head, every channel's gap and what it
    /// missed, then live events.
    fn answer(&self, mut data: StreamingSeveral, answer: Answer, cx: &mut Context<'_>) -> Next<StreamingSeveral> {
        let sub = match data.several.answered(answer, cx) {
            Step::Ask(ask) => return Next::Ask { data, request: ask },
            Step::Refused(refused) => return Next::Respond(refused.headers(data.cors)),
            Step::All(sub) => sub,
        };
        let mut body = Vec::new();
        let mut delivered = 0;
        let join_leave = data.join_leave;
        let drained = data.several.drain(|item, several| {
            delivered += u64::from(matches!(item, Item::Message(_)));
            write(item, several, join_leave, &mut body);
        });
        if drained.is_err() {
            cx.unsubscribe(sub);
            return Next::Respond(overflowed().headers(data.cors));
        }
        // Every channel's place as the stream goes live: an `id` alone is
        // no event, but it is the stream's last event id (WHATWG HTML
        // §9.2.6), so a client that gets nothing before a reconnect
        // resumes from here and misses nothing published meanwhile.
        body.extend_from_slice(format!("id: {}\n\n", data.several.cursor()).as_bytes());
        cx.stats().count_delivered(Transport::Sse, delivered);
        // The body runs until the connection closes.
        let head = Response::new(Status::OK)
            .header("Content-Type", "text/event-stream")
            .header("Cache-Control", "no-cache")
            .header("X-Accel-Buffering", "no")
            .headers(std::mem::take(&mut data.cors))
            .body(body);
        data.streaming = true;
        Next::Stream {
            expires: data.several.expires,
            data,
            subscription: sub,
            head,
            heartbeat: cx.settings().pubsub.sse_heartbeat,
        }
    }

    fn deliver(&self, data: &mut StreamingSeveral, message: &Arc<Message>, cx: &mut Context<'_>) -> Delivery {
        if message.event.is_some() && !data.join_leave {
            return Delivery::Skipped;
        }
        if !data.streaming {
            // Before the head: kept, given out with it.
            data.several.hold(message);
            return Delivery::Taken;
        }
        let mut out = Vec::new();
        let join_leave = data.join_leave;
        data.several
            .give(message, &mut |item, several| write(item, several, join_leave, &mut out));
        if out.is_empty() {
            return Delivery::Skipped;
        }
        cx.write(&out);
        Delivery::Taken
    }

    /// The broker did not answer a subscribe in time.
    fn wake(&self, data: StreamingSeveral, _: Wake, _: &mut Context<'_>) -> Next<StreamingSeveral> {
        Next::Respond(broker_silent().headers(data.cors))
    }

    fn heartbeat(&self, _: &mut StreamingSeveral, cx: &mut Context<'_>) {
        cx.write(b": heartbeat\n\n");
    }

    /// The server API's order for its user: the stream ends after an event
    /// that says why (`disconnected`, or `unsubscribed` for one of its
    /// channels: the client asks again without it, from its cursor).
    fn signal(&self, data: &mut StreamingSeveral, payload: &[u8], cx: &mut Context<'_>) -> Delivery {
        let places = &data.several.places;
        end_stream(
            data.user.as_deref(),
            payload,
            |c| places.iter().any(|p| *p.name == *c),
            cx,
        )
    }

    fn expired(&self, _: &mut StreamingSeveral, cx: &mut Context<'_>) {
        cx.write(b"event: expired\ndata: token expired\n\n");
    }
}

/// One item as the stream writes it.
fn write(item: Item<'_>, several: &Several, join_leave: bool, out: &mut Vec<u8>) {
    match item {
        Item::Gap(channel, gap) => out.extend_from_slice(sse_gap(channel, gap).as_bytes()),
        Item::Message(m) => sse_event(&several.cursor(), m, out),
        Item::Event(m) if join_leave => out.extend_from_slice(m.encoded(Encoding::SseEvent)),
        Item::Event(_) => {}
    }
}
