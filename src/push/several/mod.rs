//! A request on several channels: `GET /sse?channel=a&channel=b` and
//! `GET /poll?channel=a&channel=b`. The channels are subscribed one after
//! another, the ones before held by the session ([`Context::hold`]), so
//! that nothing published to one of them while the next is subscribed is
//! lost; each keeps its own place. The request's cursor holds every
//! channel's: `a=5,b=7` (channel names hold no `=` and no `,`), given back
//! as `since` (or an event stream's `Last-Event-ID`), so a client resumes
//! all of them at once and can never take one channel's id for another's.

mod poll;
mod sse;

pub use poll::{PollSeveral, PollingSeveral};
pub use sse::{EventsSeveral, StreamingSeveral};

use super::cors;
use super::presence::member;
use super::query::query_values;
use super::{grant, subscribed, Response};
use crate::app::{Context, Request};
use crate::auth::request_token;
use crate::protocol::http::Status;
use crate::pubsub::message::gap_json;
use crate::pubsub::{
    channel_name, percent_decoded, valid_channel, Answer, Cursor, Gap, Message, Request as BrokerRequest, Snapshot,
    Subscription, Via,
};
use std::fmt::Write as _;
use std::sync::Arc;

/// Messages that may arrive for a request's first channels while it
/// subscribes the others, at most: past it the request is refused (503)
/// rather than holding more.
const MAX_PENDING: usize = 10_000;

/// One channel of the request, and where its client is in it.
pub struct Place {
    /// Its name.
    pub name: Box<str>,
    /// The last id the client has of it, from the request's cursor.
    since: Option<u64>,
    /// Set once subscribed: the last id given or known missed.
    pub cursor: Option<Cursor>,
    /// Who the client is in the channel's presence, if it keeps one and
    /// the request is a member ([`Several::members`]).
    presence: Option<crate::pubsub::Presence>,
}

/// The channels of a request on several, in the order it named them.
pub struct Several {
    /// Each channel's place.
    pub places: Vec<Place>,
    /// How many are subscribed: the next to subscribe, while fewer than all.
    pub subscribed: usize,
    /// Gaps the subscribes told, by channel, to tell first.
    told: Vec<(usize, Gap)>,
    /// What the subscribes replayed, then what came live meanwhile, each
    /// channel's in id order: given out through the places' cursors once
    /// every channel is subscribed.
    pending: Vec<Arc<Message>>,
    /// How many of them came live.
    live: usize,
    /// More than [`MAX_PENDING`] came live meanwhile.
    overflowed: bool,
    /// When the earliest private channel's token ends.
    pub expires: Option<u64>,
    /// The transport, for the broker's counts.
    via: Via,
}

impl Several {
    /// The channels `?channel=` names (each once, percent-decoded, at most
    /// `limit`), with their places from `cursor` (`a=5,b=7`), or why not.
    pub fn parse(query: Option<&str>, cursor: Option<&str>, limit: usize) -> Result<Several, String> {
        let mut places: Vec<Place> = Vec::new();
        for raw in query_values(query, "channel") {
            let name = channel_name(raw)
                .ok_or("channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)")?;
            if places.iter().any(|p| *p.name == *name) {
                return Err(format!("channel {name} is named twice"));
            }
            if places.len() == limit {
                return Err(format!(
                    "at most {limit} channels per request ([limits] max_channels_per_connection)"
                ));
            }
            places.push(Place {
                name: name.into(),
                since: None,
                cursor: None,
                presence: None,
            });
        }
        if places.is_empty() {
            return Err("name the channels: ?channel=a&channel=b (or one in the path: /sse/a)".to_owned());
        }
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            let bad = || {
                "since (or Last-Event-ID) is each channel's last id, as a=5,b=7, for channels of the request".to_owned()
            };
            // A client that encodes the query's values (URLSearchParams)
            // sends `a%3D5%2Cb%3D7`: decoded once, as a whole.
            let cursor = percent_decoded(cursor).ok_or_else(bad)?;
            for part in cursor.split(',') {
                let (name, id) = part.split_once('=').ok_or_else(bad)?;
                let id: u64 = id.parse().map_err(|_| bad())?;
                let name = Some(name).filter(|n| valid_channel(n)).ok_or_else(bad)?;
                let place = places.iter_mut().find(|p| *p.name == *name).ok_or_else(bad)?;
                if place.since.replace(id).is_some() {
                    return Err(bad());
                }
            }
        }
        Ok(Several {
            places,
            subscribed: 0,
            told: Vec::new(),
            pending: Vec::new(),
            live: 0,
            overflowed: false,
            expires: None,
            via: Via::WebSocket,
        })
    }

    /// What a request on several channels does first: the CORS layer, the
    /// method, its channels and cursor (`since`, or an event stream's
    /// `Last-Event-ID`), and a grant for each private one; else the answer.
    pub fn request(
        request: &Request<'_, '_>,
        cx: &mut Context<'_>,
        cursor: Option<&str>,
        via: Via,
    ) -> Result<(Several, cors::Headers), Response> {
        let cors = cors::layer(request, cx, "GET")?;
        let refuse = |r: Response| r.headers(cors.clone());
        if request.method() != "GET" {
            return Err(refuse(
                Response::refuse(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET"),
            ));
        }
        let limit = cx.settings().max_topics_per_connection;
        let mut several = Several::parse(request.query(), cursor, limit)
            .map_err(|why| refuse(Response::refuse(Status::BAD_REQUEST, &why)))?;
        several.via = via;
        for place in &several.places {
            if let Some(g) = grant(request, &place.name, cx).map_err(refuse)? {
                several.expires = Some(several.expires.map_or(g.exp, |e| e.min(g.exp)));
            }
        }
        Ok((several, cors))
    }

    /// Make the request a member of each of its channels that keeps
    /// presence, as its token says.
    pub fn members(&mut self, request: &Request<'_, '_>, cx: &Context<'_>) {
        let token = request_token(request.head());
        for place in &mut self.places {
            place.presence = member(cx.settings(), &place.name, token, cx.unix_time());
        }
    }

    /// The subscribe of the next channel, or `None` when all are subscribed.
    pub fn next_subscribe(&mut self) -> Option<BrokerRequest> {
        let place = self.places.get_mut(self.subscribed)?;
        Some(BrokerRequest::Subscribe {
            channel: place.name.clone(),
            since: place.since,
            presence: place.presence.take().map(Box::new),
            via: self.via,
        })
    }

    /// The next channel is subscribed, as `snapshot` says: its gap and
    /// what it replays wait their turn, and its cursor stands before
    /// them; `true` if channels are left to subscribe.
    pub fn subscribed(&mut self, snapshot: Snapshot) -> bool {
        let i = self.subscribed;
        if let Some(place) = self.places.get_mut(i) {
            // Before the replay, so that each replayed message moves it.
            let start = Snapshot {
                replay: Vec::new(),
                gap: None,
                last_id: snapshot.replay.first().map_or(snapshot.last_id, |m| m.id - 1),
                epoch_start: snapshot.replay.first().map_or(snapshot.epoch_start, |m| m.epoch_start),
            };
            place.cursor = Some(Cursor::new(&start));
            if let Some(gap) = snapshot.gap {
                self.told.push((i, gap));
            }
            self.pending.extend(snapshot.replay);
            self.subscribed += 1;
        }
        self.subscribed < self.places.len()
    }

    /// A message came live before every channel was subscribed: it waits
    /// with the replays (`false` if too many did).
    pub fn hold(&mut self, message: &Arc<Message>) -> bool {
        if self.live >= MAX_PENDING {
            self.overflowed = true;
        } else {
            self.live += 1;
            self.pending.push(message.clone());
        }
        !self.overflowed
    }

    /// Every channel is subscribed: the gaps told, then each message
    /// waiting through its channel's cursor (a gap it shows, then the
    /// message, with the cursor after it); `Err` when too many came
    /// meanwhile.
    pub fn drain(&mut self, mut each: impl FnMut(Item<'_>, &Several)) -> Result<(), ()> {
        if self.overflowed {
            return Err(());
        }
        for (i, gap) in std::mem::take(&mut self.told) {
            let name = self.places[i].name.clone();
            each(Item::Gap(&name, gap), self);
        }
        for message in std::mem::take(&mut self.pending) {
            self.give(&message, &mut each);
        }
        Ok(())
    }

    /// A message through its channel's cursor: nothing if the client has
    /// it, else the gap before it if any, then it.
    pub fn give(&mut self, message: &Arc<Message>, each: &mut impl FnMut(Item<'_>, &Several)) {
        if message.event.is_some() {
            each(Item::Event(message), self);
            return;
        }
        let Some(place) = self.place(&message.channel) else {
            return;
        };
        let Some(gap) = place.cursor.as_mut().and_then(|c| c.advance(message)) else {
            return;
        };
        if let Some(gap) = gap {
            each(Item::Gap(&message.channel, gap), self);
        }
        each(Item::Message(message), self);
    }

    /// The place of `channel`, if the request has it and it is subscribed.
    pub fn place(&mut self, channel: &str) -> Option<&mut Place> {
        self.places
            .iter_mut()
            .find(|p| *p.name == *channel)
            .filter(|p| p.cursor.is_some())
    }

    /// The cursor that resumes every channel: `a=5,b=7`.
    pub fn cursor(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.places.iter().enumerate() {
            let id = p.cursor.map(|c| c.last()).or(p.since).unwrap_or(0);
            let _ = write!(s, "{}{}={id}", if i > 0 { "," } else { "" }, p.name);
        }
        s
    }
}

/// What one subscribe's answer means for a request on several channels.
pub enum Step {
    /// Channels are left: this subscribe next (the answered one is held).
    Ask(BrokerRequest),
    /// The last one is subscribed: its subscription, and every channel's
    /// gap and what it missed are ready to be given ([`Several::drain`]).
    All(Subscription),
    /// Refused: the answer to send (what was held goes back with it).
    Refused(Response),
}

impl Several {
    /// One more subscribe answered.
    pub fn answered(&mut self, answer: Answer, cx: &mut Context<'_>) -> Step {
        let (sub, snapshot) = match subscribed(answer) {
            Ok(subscribed) => subscribed,
            Err(refused) => return Step::Refused(refused),
        };
        if !self.subscribed(snapshot) {
            return Step::All(sub);
        }
        cx.hold(sub);
        match self.next_subscribe() {
            Some(ask) => Step::Ask(ask),
            None => Step::Refused(Response::refuse(Status::INTERNAL_ERROR, "no channel left")),
        }
    }
}

/// The answer when more came while a request's channels were subscribed
/// than it may keep: refused, to be asked again.
pub fn overflowed() -> Response {
    let why = "too many messages came while its channels were subscribed: ask again";
    Response::refuse(Status::SERVICE_UNAVAILABLE, why).header("Retry-After", "1")
}

/// What a request on several channels gives its client, in order.
pub enum Item<'a> {
    /// Ids of `channel` it will not get.
    Gap(&'a str, Gap),
    /// A message, the cursor moved past it.
    Message(&'a Arc<Message>),
    /// A join or a leave.
    Event(&'a Arc<Message>),
}

/// An event stream's event on several channels: the combined cursor as
/// its `id`, the message in the `wsreactor.json` envelope as its `data`
/// (its channel and id in it).
pub fn sse_event(cursor: &str, message: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(cursor.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(message.encoded(crate::pubsub::Encoding::Envelope));
    out.extend_from_slice(b"\n\n");
}

/// An event stream's gap on several channels: `event: gap` with the
/// channel in its data.
pub fn sse_gap(channel: &str, gap: Gap) -> String {
    format!("event: gap\ndata: {}\n\n", gap_json(channel, gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_their_places_are_read_from_the_query_and_the_cursor() {
        let s = Several::parse(Some("channel=a&channel=b%3Ax&x=1"), Some("b:x=7,a=5"), 10).unwrap();
        let encoded = Several::parse(Some("channel=a&channel=b%3Ax"), Some("b%3Ax%3D7%2Ca%3D5"), 10).unwrap();
        assert_eq!(encoded.cursor(), "a=5,b:x=7");
        let got: Vec<(&str, Option<u64>)> = s.places.iter().map(|p| (&*p.name, p.since)).collect();
        assert_eq!(got, [("a", Some(5)), ("b:x", Some(7))]);
        assert_eq!(s.cursor(), "a=5,b:x=7");
        let s = Several::parse(Some("channel=a&channel=b"), Some("a=5"), 10).unwrap();
        assert_eq!(s.places[1].since, None);
        for (query, cursor) in [
            ("", None),
            ("channel=a&channel=a", None),
            ("channel=a%2Fb", None),
            ("channel=a&channel=b&channel=c", None),
            ("channel=a", Some("7")),
            ("channel=a", Some("b=7")),
            ("channel=a", Some("a=x")),
            ("channel=a", Some("a=1,a=2")),
            ("channel=a", Some("a=-1")),
        ] {
            assert!(Several::parse(Some(query), cursor, 2).is_err(), "{query} {cursor:?}");
        }
    }
}
