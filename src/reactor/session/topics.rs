//! An open WebSocket's topics: the feeds it is subscribed to, and the
//! subscribes its handler sent that the broker has not answered yet
//! ([`crate::app::Conn::subscribe`]). Bounded by `[limits]
//! max_channels_per_connection`, subscribes still out counted, so that a
//! client cannot queue subscribes without end.
//!
//! An answer is matched to its subscribe by its channel when it brings a
//! subscription, and to the oldest subscribe out when it is a refusal
//! (which names no channel): the broker answers one connection's requests
//! in the order they were submitted ([`crate::pubsub::Broker`]).

use super::expiry::Expiry;
use super::{Action, Env, Session, State};
use crate::app::{Topic, TopicError};
use crate::protocol::MessageKind;
use crate::pubsub::message::gap_json;
use crate::pubsub::{valid_channel, Answer, Cursor, Encoding, Request, Snapshot, Subscription, Via};
use crate::stats::Transport;

/// A WebSocket's subscription to one topic.
#[derive(Debug)]
pub struct Feed {
    /// The broker's handle, given back when the feed ends.
    pub sub: Subscription,
    /// The last id given to the client (or known to be missed).
    pub(super) cursor: Cursor,
    /// How messages are put on this connection's wire.
    pub(super) encoding: Encoding,
    /// When the token of a private channel ends.
    pub(super) expiry: Option<Expiry>,
    /// The channel's join and leave events go out too (in the envelope).
    pub(super) join_leave: bool,
}

impl Feed {
    pub(super) fn new(sub: Subscription, snapshot: &Snapshot, encoding: Encoding) -> Self {
        Feed {
            sub,
            cursor: Cursor::new(snapshot),
            encoding,
            expiry: None,
            join_leave: false,
        }
    }
}

/// A WebSocket's subscriptions.
#[derive(Debug)]
pub(super) enum Topics {
    /// The one topic its upgrade subscribed it to, all it has (the
    /// `/ws/{channel}` subscriber): one allocation, as a feed alone took.
    One(Feed),
    /// Topics its handler subscribes and leaves at any time.
    Many {
        /// Live, in the order they became so.
        feeds: Vec<Feed>,
        /// Out to the broker, in the order they were sent.
        pending: Vec<Pending>,
    },
}

impl Default for Topics {
    fn default() -> Self {
        Topics::Many {
            feeds: Vec::new(),
            pending: Vec::new(),
        }
    }
}

/// A subscribe the broker has not answered.
#[derive(Debug)]
pub(super) struct Pending {
    topic: Topic,
    /// Given up by the handler: its answer is not told, and a subscription
    /// it brings goes back.
    cancelled: bool,
}

impl Topics {
    /// A WebSocket subscribed to one topic as it opened.
    pub(super) fn one(feed: Feed) -> Box<Topics> {
        Box::new(Topics::One(feed))
    }

    /// The live feeds.
    pub(super) fn feeds(&self) -> &[Feed] {
        match self {
            Topics::One(feed) => std::slice::from_ref(feed),
            Topics::Many { feeds, .. } => feeds,
        }
    }

    pub(super) fn feeds_mut(&mut self) -> &mut [Feed] {
        match self {
            Topics::One(feed) => std::slice::from_mut(feed),
            Topics::Many { feeds, .. } => feeds,
        }
    }

    /// The lists, made of the one topic if it was that: a handler
    /// subscribes, or a feed ends.
    fn many(&mut self) -> (&mut Vec<Feed>, &mut Vec<Pending>) {
        if let Topics::One(_) = self {
            if let Topics::One(feed) = std::mem::take(self) {
                *self = Topics::Many {
                    feeds: vec![feed],
                    pending: Vec::new(),
                };
            }
        }
        match self {
            Topics::Many { feeds, pending } => (feeds, pending),
            Topics::One(_) => unreachable!("made Many above"),
        }
    }

    fn pending(&self) -> &[Pending] {
        match self {
            Topics::One(_) => &[],
            Topics::Many { pending, .. } => pending,
        }
    }

    /// Take feed `i` out.
    pub(super) fn remove_feed(&mut self, i: usize) -> Feed {
        if let Topics::One(_) = self {
            // No list is made only to be emptied.
            if let Topics::One(feed) = std::mem::take(self) {
                return feed;
            }
        }
        self.many().0.remove(i)
    }

    /// Take the last feed out (the connection is going away).
    pub(super) fn pop_feed(&mut self) -> Option<Feed> {
        let n = self.feeds().len();
        (n > 0).then(|| self.remove_feed(n - 1))
    }

    /// The live feed of `channel`. A message's name is the broker's own
    /// copy, the one its subscriptions share: compared by address first.
    pub(super) fn feed_mut(&mut self, channel: &str) -> Option<&mut Feed> {
        let same = |f: &&mut Feed| std::ptr::eq(&**f.sub.channel(), channel) || **f.sub.channel() == *channel;
        self.feeds_mut().iter_mut().find(same)
    }

    /// Ask for `topic`: checked here, then the subscribe to submit.
    pub(super) fn ask(&mut self, mut topic: Topic, limit: usize) -> Result<Request, TopicError> {
        if !valid_channel(&topic.name) {
            return Err(TopicError::NotAChannel);
        }
        let name = topic.name.as_str();
        if self.feeds().iter().any(|f| **f.sub.channel() == *name)
            || self.pending().iter().any(|p| !p.cancelled && p.topic.name == name)
        {
            return Err(TopicError::AlreadySubscribed);
        }
        // Given-up subscribes still out count: subscribe and unsubscribe
        // in a loop must not queue requests at the broker without end.
        if self.feeds().len() + self.pending().len() >= limit {
            return Err(TopicError::TooMany(limit));
        }
        let request = Request::Subscribe {
            channel: name.into(),
            since: topic.since,
            presence: topic.presence.take(),
            via: Via::WebSocket,
        };
        self.many().1.push(Pending {
            topic,
            cancelled: false,
        });
        Ok(request)
    }

    /// End the feed of `topic` (its subscription, to give back) or give up
    /// its subscribe; `Err` if it has neither.
    pub(super) fn drop_topic(&mut self, topic: &str) -> Result<Option<Subscription>, ()> {
        if let Some(i) = self.feeds().iter().position(|f| **f.sub.channel() == *topic) {
            return Ok(Some(self.remove_feed(i).sub));
        }
        let Topics::Many { pending, .. } = self else {
            return Err(());
        };
        match pending.iter_mut().find(|p| !p.cancelled && p.topic.name == topic) {
            Some(p) => {
                p.cancelled = true;
                Ok(None)
            }
            None => Err(()),
        }
    }

    /// A subscribe of `topic` still out ends at `exp` once live.
    pub(super) fn expires_pending(&mut self, topic: &str, exp: u64) {
        let Topics::Many { pending, .. } = self else {
            return;
        };
        for p in pending.iter_mut().filter(|p| !p.cancelled && p.topic.name == topic) {
            p.topic.expires = Some(exp);
        }
    }

    /// The subscribe an answer with a subscription of `channel` answers:
    /// the first one out for it.
    fn answered(&mut self, channel: &str) -> Option<Pending> {
        let i = self.pending().iter().position(|p| p.topic.name == channel)?;
        Some(self.take_pending(i))
    }

    /// The subscribe a refusal answers: the oldest out.
    fn refused(&mut self) -> Option<Pending> {
        (!self.pending().is_empty()).then(|| self.take_pending(0))
    }

    /// Take subscribe `i` out; with none left out, the list's memory goes
    /// too (a connection holds it only while it subscribes).
    fn take_pending(&mut self, i: usize) -> Pending {
        let list = self.many().1;
        let pending = list.remove(i);
        if list.is_empty() {
            *list = Vec::new();
        }
        pending
    }

    /// A feed goes live: the list grows by exactly one, as a connection
    /// holds its feeds for as long as it lives.
    fn add_feed(&mut self, feed: Feed) {
        let feeds = self.many().0;
        feeds.reserve_exact(1);
        feeds.push(feed);
    }
}

impl Session {
    /// The broker's answer to a request the handler of an open WebSocket
    /// made: a publish's is told as it is; a subscription is told, then
    /// goes live (the handler's reply first, then the gap, what the history
    /// holds after its cursor, and live messages); one given up, or coming
    /// after our close, goes back untold.
    pub(super) fn open_answer(&mut self, answer: Answer, env: &mut Env<'_>) {
        let State::Open(open) = &mut self.state else {
            return;
        };
        match answer {
            Answer::Published(result) => {
                self.with_handler(env, |h, link, data| h.published(link, data, result));
            }
            Answer::Found(result) => {
                self.with_handler(env, |h, link, data| h.found(link, data, result));
            }
            // A WebSocket handler sends no signals.
            Answer::Signalled(_) => {}
            Answer::Subscribed(Err(e)) => {
                let Some(pending) = open.topics.as_mut().and_then(|t| t.refused()) else {
                    return;
                };
                if !pending.cancelled {
                    let name = pending.topic.name;
                    self.with_handler(env, |h, link, data| h.subscribed(link, data, &name, Err(e)));
                }
            }
            Answer::Subscribed(Ok((sub, snapshot))) => {
                let closing = open.ws.close_state().sent;
                let pending = open.topics.as_mut().and_then(|t| t.answered(sub.channel()));
                let topic = match pending {
                    Some(p) if !p.cancelled && !closing => p.topic,
                    _ => {
                        env.actions.push(Action::Unsubscribe(sub));
                        return;
                    }
                };
                self.go_live(topic, sub, snapshot, env);
            }
        }
    }

    /// A subscribe of an open WebSocket was answered with `sub`: the feed
    /// is in place before the handler hears of it (so that it may end it
    /// at once), and what the snapshot brings goes out after the handler's
    /// reply.
    fn go_live(&mut self, topic: Topic, sub: Subscription, snapshot: Snapshot, env: &mut Env<'_>) {
        let State::Open(open) = &mut self.state else {
            return;
        };
        let encoding = if topic.envelope {
            Encoding::JsonFrame
        } else {
            Encoding::Frame
        };
        let channel = sub.channel().clone();
        let mut feed = Feed::new(sub, &snapshot, encoding);
        feed.expiry = topic.expires.map(|exp| Expiry::new(exp, env));
        feed.join_leave = topic.join_leave && encoding == Encoding::JsonFrame;
        open.topics.get_or_insert_with(Box::default).add_feed(feed);
        self.with_handler(env, |h, link, data| h.subscribed(link, data, &channel, Ok(())));
        // A token that ended while the subscribe was out: nothing of the
        // topic goes out, not even its history.
        self.expire(env);
        let State::Open(open) = &mut self.state else {
            return;
        };
        let live = open.topics.as_mut().is_some_and(|t| t.feed_mut(&channel).is_some());
        if !live || open.ws.close_state().sent {
            return;
        }
        if let (Encoding::JsonFrame, Some(gap)) = (encoding, snapshot.gap) {
            let out = self.io.out.buf(env.pool);
            open.ws.send(MessageKind::Text, gap_json(&channel, gap).as_bytes(), out);
        }
        self.io.replay(&snapshot.replay, encoding, Transport::WebSocket, env);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn feed(name: &str) -> Feed {
        Feed::new(
            Subscription::new(Arc::from(name), 0),
            &Snapshot::default(),
            Encoding::JsonFrame,
        )
    }

    #[test]
    fn one_topic_becomes_a_list_only_when_it_must() {
        let mut t = *Topics::one(feed("a"));
        assert!(matches!(t, Topics::One(_)));
        assert!(t.feed_mut("a").is_some() && t.feed_mut("b").is_none());
        assert_eq!(t.ask(Topic::new("a"), 3), Err(TopicError::AlreadySubscribed));
        assert!(matches!(t, Topics::One(_)), "a refused ask changes nothing");
        assert!(t.ask(Topic::new("b"), 3).is_ok());
        assert!(matches!(&t, Topics::Many { feeds, pending } if feeds.len() == 1 && pending.len() == 1));
        let mut one = *Topics::one(feed("c"));
        assert_eq!(one.pop_feed().map(|f| f.sub.channel().to_string()), Some("c".into()));
        assert!(one.pop_feed().is_none() && one.feeds().is_empty());
        let mut one = *Topics::one(feed("d"));
        assert!(one.drop_topic("d").unwrap().is_some());
        assert_eq!(one.drop_topic("d"), Err(()));
    }

    #[test]
    fn subscribes_are_checked_bounded_and_matched() {
        let mut t = Topics::default();
        assert_eq!(t.ask(Topic::new("a/b"), 3), Err(TopicError::NotAChannel));
        assert!(matches!(t.ask(Topic::new("a"), 3), Ok(Request::Subscribe { .. })));
        assert_eq!(t.ask(Topic::new("a"), 3), Err(TopicError::AlreadySubscribed));
        t.add_feed(feed("b"));
        assert_eq!(t.ask(Topic::new("b"), 3), Err(TopicError::AlreadySubscribed));
        assert!(t.ask(Topic::new("c"), 3).is_ok());
        assert_eq!(t.ask(Topic::new("d"), 3), Err(TopicError::TooMany(3)));
        // Given up, a subscribe still counts until it is answered, and
        // cannot be given up twice.
        assert_eq!(t.drop_topic("c"), Ok(None));
        assert_eq!(t.drop_topic("c"), Err(()));
        assert_eq!(t.ask(Topic::new("d"), 3), Err(TopicError::TooMany(3)));
        // A refusal answers the oldest; a subscription, its channel's first.
        assert_eq!(t.answered("c").map(|p| p.cancelled), Some(true));
        assert_eq!(t.refused().map(|p| p.topic.name), Some("a".to_owned()));
        assert!(t.refused().is_none());
        assert!(t.drop_topic("b").unwrap().is_some());
        assert!(t.feeds().is_empty());
    }
}
