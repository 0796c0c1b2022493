//! `GET /poll?channel=a&channel=b&since=a=5,b=7&wait=S`: a long (or,
//! with `wait=0`, short) poll of several channels. It answers with what
//! any of them holds after the cursor, or parks until one gets a message:
//! `{"messages":[{"id":6,"channel":"a","data":..},...],"cursor":"a=6,b=7",
//! "gaps":[{"channel":"b","gap":{..}}]}`, or `204` with `X-Cursor`. The
//! answer's `cursor` (never a number, so that no client takes it for one
//! channel's id) is the `since` of the next poll. A poll is not a member
//! of any channel's presence (see [`super::super::poll`]).

use super::super::broker_silent;
use super::super::cors::Headers;
use super::super::presence::join_leave;
use super::super::query::{query_u64, query_values};
use super::{overflowed, Item, Several, Step};
use crate::app::{Context, Delivery, HttpHandler, Next, Request, Response, Wake};
use crate::protocol::http::Status;
use crate::pubsub::message::gap_json;
use crate::pubsub::{Answer, Encoding, Message, Via};
use crate::stats::Transport;
use std::sync::Arc;
use std::time::Duration;

/// The long-poll route on several channels (`/poll`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PollSeveral;

/// A poll of several channels between its head and its answer.
pub struct PollingSeveral {
    cors: Headers,
    several: Several,
    /// `wait=S`, in milliseconds, capped by `poll_timeout`.
    wait_ms: Option<u64>,
    join_leave: bool,
    /// Every channel is subscribed: what comes is the answer's.
    live: bool,
    /// The answer being gathered.
    messages: Vec<Arc<Message>>,
    gaps: Vec<String>,
    events: Vec<Arc<Message>>,
}

impl PollingSeveral {
    /// Keep what a poll is given, for its answer.
    fn take(&mut self, items: Vec<Taken>) {
        for item in items {
            match item {
                Taken::Gap(json) => self.gaps.push(json),
                Taken::Message(m) => self.messages.push(m),
                Taken::Event(m) if self.join_leave => self.events.push(m),
                Taken::Event(_) => {}
            }
        }
    }

    fn anything(&self) -> bool {
        !(self.messages.is_empty() && self.gaps.is_empty() && self.events.is_empty())
    }
}

impl HttpHandler for PollSeveral {
    type Data = PollingSeveral;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<PollingSeveral> {
        let cursor = query_values(request.query(), "since").last();
        let (mut several, cors) = match Several::request(request, cx, cursor, Via::Poll) {
            Ok(start) => start,
            Err(answer) => return Next::Respond(answer),
        };
        let refuse = |why: &str| Next::Respond(Response::refuse(Status::BAD_REQUEST, why).headers(cors.clone()));
        let Ok(wait) = query_u64(request.query(), "wait") else {
            return refuse("wait must be a number of seconds");
        };
        let Ok(join_leave) = join_leave(request.query()) else {
            return refuse("join_leave must be 1 or 0");
        };
        let Some(ask) = several.next_subscribe() else {
            return refuse("no channel");
        };
        let cap = u64::try_from(cx.settings().pubsub.poll_timeout.as_millis()).unwrap_or(u64::MAX);
        let data = PollingSeveral {
            cors,
            several,
            wait_ms: wait.map(|w| w.saturating_mul(1000).min(cap)),
            join_leave,
            live: false,
            messages: Vec::new(),
            gaps: Vec::new(),
            events: Vec::new(),
        };
        Next::Ask { data, request: ask }
    }

    /// One more channel is subscribed: the next is asked for, this one
    /// held; with the last, an answer now if any channel had something,
    /// else the poll parks on all of them.
    fn answer(&self, mut data: PollingSeveral, answer: Answer, cx: &mut Context<'_>) -> Next<PollingSeveral> {
        let sub = match data.several.answered(answer, cx) {
            Step::Ask(ask) => return Next::Ask { data, request: ask },
            Step::Refused(refused) => return Next::Respond(refused.headers(data.cors)),
            Step::All(sub) => sub,
        };
        data.live = true;
        let mut items = Vec::new();
        let drained = data.several.drain(|item, _| items.push(Taken::of(item)));
        if drained.is_err() {
            cx.unsubscribe(sub);
            return Next::Respond(overflowed().headers(data.cors));
        }
        data.take(items);
        if data.anything() || data.wait_ms == Some(0) {
            cx.unsubscribe(sub);
            let response = if data.anything() {
                messages(data, cx)
            } else {
                nothing(data)
            };
            return Next::Respond(response);
        }
        let wait = data
            .wait_ms
            .map_or(cx.settings().pubsub.poll_timeout, Duration::from_millis);
        let expires = data.several.expires;
        Next::Park {
            data,
            subscription: sub,
            wait,
            expires,
        }
    }

    fn deliver(&self, data: &mut PollingSeveral, message: &Arc<Message>, _: &mut Context<'_>) -> Delivery {
        if message.event.is_some() && !data.join_leave {
            return Delivery::Skipped;
        }
        if !data.live {
            // Before every channel is subscribed: kept for the answer.
            data.several.hold(message);
            return Delivery::Taken;
        }
        let mut taken = Vec::new();
        data.several.give(message, &mut |item, _| taken.push(Taken::of(item)));
        if taken.is_empty() {
            return Delivery::Skipped;
        }
        data.take(taken);
        Delivery::Taken
    }

    fn wake(&self, data: PollingSeveral, wake: Wake, cx: &mut Context<'_>) -> Next<PollingSeveral> {
        let response = match (wake, data.live) {
            // The broker did not answer a subscribe in time.
            (_, false) => broker_silent().headers(data.cors),
            (Wake::Ready, true) => messages(data, cx),
            (Wake::Deadline | Wake::Expired, true) => nothing(data),
        };
        Next::Respond(response)
    }
}

/// What a poll took, owned (the channels are borrowed while they give it).
enum Taken {
    Gap(String),
    Message(Arc<Message>),
    Event(Arc<Message>),
}

impl Taken {
    fn of(item: Item<'_>) -> Taken {
        match item {
            Item::Gap(channel, gap) => Taken::Gap(gap_json(channel, gap)),
            Item::Message(m) => Taken::Message(m.clone()),
            Item::Event(m) => Taken::Event(m.clone()),
        }
    }
}

/// Nothing for a poll: 204 with `X-Cursor`, the `since` of the next.
fn nothing(data: PollingSeveral) -> Response {
    Response::new(Status::NO_CONTENT)
        .header("Cache-Control", "no-store")
        .header("X-Cursor", data.several.cursor())
        .headers(data.cors)
}

/// A poll's answer: its messages (each in the envelope, shared), the
/// cursor, the gaps, and the joins and leaves if it asked.
fn messages(data: PollingSeveral, cx: &mut Context<'_>) -> Response {
    cx.stats().count_delivered(Transport::Poll, data.messages.len() as u64);
    let mut response = Response::new(Status::OK)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .headers(data.cors)
        .body(&b"{\"messages\":["[..]);
    for (i, m) in data.messages.iter().enumerate() {
        if i > 0 {
            response = response.body(&b","[..]);
        }
        response = response.shared(m.shared(Encoding::Envelope));
    }
    let cursor = serde_json::to_string(&data.several.cursor()).unwrap_or_default();
    response = response.body(format!("],\"cursor\":{cursor},\"gaps\":[{}]", data.gaps.join(",")));
    if !data.events.is_empty() {
        response = response.body(&b",\"events\":["[..]);
        for (i, e) in data.events.iter().enumerate() {
            if i > 0 {
                response = response.body(&b","[..]);
            }
            response = response.shared(e.shared(Encoding::PollItem));
        }
        response = response.body(&b"]"[..]);
    }
    response.body(&b"}"[..])
}
