//! Channels for the push server: publish, subscribe, history.
//!
//! ```text
//!  POST /pub/c on worker 1 ──► Request::Publish ──► Broker::submit ──► channel c: id, history
//!                                                     ├─► inbox of each worker with subscribers of c ─► Waker
//!                                                     └─► Answer::Published to worker 1's inbox, addressed to the connection
//!  worker k wakes ──► drains its inbox ──► answers to their connections, messages to its subscribers of c
//! ```
//!
//! The [`Broker`] trait is the seam between the reactor and where channels
//! live. It is asynchronous: a worker submits a [`Request`] for one of its
//! connections ([`Address`]) and the [`Answer`] comes back through the
//! worker's [`Inbox`], like the messages. [`LocalHub`] keeps channels in this
//! process (the default) and answers at once through the same path; a broker
//! for several nodes (e.g. over Redis) answers later. The reactor owns the
//! inboxes (and the wakers in them) and lends them to the broker it is
//! started with ([`crate::reactor::start_with_broker`]).

mod cursor;
pub mod hub;
pub mod idempotency;
pub mod message;
pub mod presence;
#[cfg(feature = "redis")]
pub mod redis;

pub use cursor::Cursor;
pub use hub::{Command, Inbox, LocalHub, Mail};
pub use message::{Change, Encoding, Message};
pub use presence::{Member, Presence, PresenceLimits, PresenceStats};

use crate::protocol::MessageKind;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The answer to an accepted publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The message's id in its channel.
    pub id: u64,
    /// Subscribers of the channel it was handed to: clients (WebSocket,
    /// event stream, parked long poll), counted over every node.
    pub subscribers: usize,
    /// A publish with an `Idempotency-Key` seen before: nothing was
    /// published now, and `id` and `subscribers` are the first publish's.
    pub duplicate: bool,
}

/// Ids a subscriber will not be given: told to it, never silently skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first id missed.
    pub from: u64,
    /// The last id missed; below `from` when no id of the channel's
    /// numbering is missing but `reset` is.
    pub to: u64,
    /// The subscriber's cursor is not one the server can vouch for: above
    /// the channel's last id, or of an earlier numbering (before a restart,
    /// or before the broker lost the channel). It is dropped; `from..=to`
    /// are the ids of the channel's numbering that are gone, and what the
    /// history holds follows.
    pub reset: bool,
}

impl Gap {
    /// Ids `from..=to` were trimmed from the history.
    pub fn trimmed(from: u64, to: u64) -> Gap {
        Gap { from, to, reset: false }
    }

    /// Where a subscriber whose cursor is `since` starts, by the rule every
    /// broker keeps, given the channel's last id, the first id its history
    /// still holds (`last_id + 1` when it holds none) and the id after which
    /// its current numbering began (`start`, its epoch's: 0 for a channel
    /// numbered from 1): the id after which it is given the history, and
    /// the gap it is told of, if any.
    pub fn resume(since: Option<u64>, last_id: u64, first_kept: u64, start: u64) -> (u64, Option<Gap>) {
        let (since, reset) = match since {
            // Only what comes next.
            None => (last_id, false),
            // A client that holds nothing: the numbering from its start.
            Some(0) => (start, false),
            // A cursor from the future (a restart, or a channel forgotten
            // past the id memory): not one of ours. Start it over from what
            // the history holds, and say so; staying silent would starve it
            // until the ids pass its cursor.
            Some(s) if s > last_id => (start, true),
            // A cursor from an earlier numbering (the broker lost the
            // channel and made it again, numbered above every id it gave
            // before): the same. The start itself is a cursor this
            // numbering gives (a quiet channel's last id, `X-Last-Id`).
            Some(s) if s < start => (start, true),
            Some(s) => (s, false),
        };
        let gap = (reset || since + 1 < first_kept).then(|| Gap {
            from: since + 1,
            to: first_kept - 1,
            reset,
        });
        (since, gap)
    }
}

/// What a new subscriber must be given before live messages.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Messages after the subscriber's cursor still in the history, in order.
    pub replay: Vec<Arc<Message>>,
    /// Ids after the cursor that it will not be given.
    pub gap: Option<Gap>,
    /// The channel's last id when the snapshot was taken: every later
    /// message reaches the subscriber through its worker's inbox.
    pub last_id: u64,
    /// The id after which the channel's current numbering began
    /// ([`Message::epoch_start`]).
    pub epoch_start: u64,
}

/// Why the broker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubError {
    /// `[pubsub] max_channels` channels exist already.
    TooManyChannels,
    /// The channel has `[presence] max_members` members: a subscribe
    /// asking for presence is refused (nothing was done).
    PresenceFull,
    /// Nothing was done: the broker cannot carry out requests now (a
    /// network broker's server is down or does not answer); why, in a
    /// few words.
    Unavailable(&'static str),
    /// A publish was handed to the broker's server and no answer came: it
    /// may have been carried out or not. Not a refusal: a publisher retries
    /// with the same `Idempotency-Key`, which publishes it at most once.
    Unconfirmed,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::TooManyChannels => f.write_str("too many channels"),
            HubError::PresenceFull => f.write_str("the channel's presence is full"),
            HubError::Unavailable(why) => write!(f, "the broker is unavailable: {why}"),
            HubError::Unconfirmed => f.write_str(
                "the broker did not confirm the publish in time: it may or may not have been published; \
                 retry with the same Idempotency-Key to publish it at most once",
            ),
        }
    }
}

impl std::error::Error for HubError {}

/// History and capacity limits (from `[pubsub]`; the defaults are the
/// configuration's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// Messages kept per channel.
    pub history_size: usize,
    /// Messages older than this leave the history.
    pub history_ttl: Duration,
    /// Channels that may exist at once.
    pub max_channels: usize,
    /// How long a forgotten channel's last id is remembered, so that its ids
    /// continue instead of starting again at 1.
    pub id_memory: Duration,
    /// How many forgotten channels' last ids are remembered at most (the
    /// oldest is forgotten first).
    pub id_memory_channels: usize,
    /// How long a publish's `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
    /// How many `Idempotency-Key`s are remembered per channel at most (the
    /// oldest is forgotten first).
    pub idempotency_keys: usize,
    /// Where the local hub's ids start (the Redis broker's always start
    /// after Redis's clock).
    pub numbering: Numbering,
    /// Members per channel and join and leave events per second.
    pub presence: PresenceLimits,
}

/// Where the local hub's ids start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numbering {
    /// After the clock when the hub starts, in microseconds since the Unix
    /// epoch (about 1.8e15 in 2027, exact as a JavaScript number until the
    /// year 2255): ids never go back across a restart, as long as no
    /// channel took a million publishes a second and the clock does not
    /// step back, so a client's cursor from an earlier process is below
    /// every id of this one and is told as a reset, never misread. What
    /// the server runs with.
    #[default]
    AfterClock,
    /// From 1 in every process: small ids, for tests that read them, and
    /// for an application that does not resume cursors across restarts.
    /// A cursor from an earlier process can then be misread.
    FromOne,
}

/// Which connection a request came from, and its answer goes to: the
/// worker, the connection's slab key and the generation of that slot. A
/// connection that is gone by the time its answer comes may have had its
/// slot reused; the generation tells the two apart, and the answer is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// The worker's index (and so its inbox).
    pub worker: usize,
    /// The connection's slab key in that worker.
    pub key: usize,
    /// Which use of that slab slot.
    pub generation: u32,
}

/// What a connection asks of the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Number and store a message and hand it to every subscriber.
    Publish {
        /// The channel.
        channel: Box<str>,
        /// Text or binary.
        kind: MessageKind,
        /// The message.
        payload: Box<[u8]>,
        /// The publisher's `Idempotency-Key`: a publish with a key seen
        /// within `pubsub.idempotency_ttl` is answered with the first
        /// one's receipt and not published again.
        idempotency_key: Option<Box<str>>,
    },
    /// Subscribe the connection and tell it what it missed after `since`
    /// (`None`: only what comes next).
    Subscribe {
        /// The channel.
        channel: Box<str>,
        /// The last id the client has.
        since: Option<u64>,
        /// Make the subscriber a member of the channel's presence, as
        /// this, for as long as the subscription lives.
        presence: Option<Box<Presence>>,
        /// How the subscriber receives: the broker counts each channel's
        /// subscribers per transport.
        via: Via,
    },
    /// Read what channels there are, changing nothing.
    Query(Query),
    /// Hand `payload` to every connection's handler on every node (this
    /// one too), for the application to read: a disconnect asked through
    /// the server API, say ([`crate::app::Handler::signal`]).
    Signal(Arc<[u8]>),
}

impl Request {
    /// A WebSocket's subscribe to `channel` after `since`, with no
    /// presence ([`Request::via`] says another transport).
    pub fn subscribe(channel: impl Into<Box<str>>, since: Option<u64>) -> Request {
        Request::Subscribe {
            channel: channel.into(),
            since,
            presence: None,
            via: Via::WebSocket,
        }
    }

    /// A subscribe by `via` (other requests as they are).
    pub fn via(mut self, via: Via) -> Request {
        if let Request::Subscribe { via: v, .. } = &mut self {
            *v = via;
        }
        self
    }
}

/// How a subscriber receives its channel's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Via {
    /// A WebSocket (one channel, or several with `wsreactor.mux`).
    #[default]
    WebSocket,
    /// A Server-Sent Events stream.
    Sse,
    /// A long poll, parked (or a short poll, for a moment).
    Poll,
}

impl Via {
    /// Every transport, in the order counts are kept.
    pub const ALL: [Via; 3] = [Via::WebSocket, Via::Sse, Via::Poll];

    /// Its name in the server API's answers.
    pub fn name(self) -> &'static str {
        match self {
            Via::WebSocket => "websocket",
            Via::Sse => "sse",
            Via::Poll => "poll",
        }
    }
}

/// Subscribers counted per transport ([`Via::ALL`]'s order).
pub type ByVia = [usize; 3];

/// What the server API asks the broker about channels: read only, and
/// looking makes no channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The channels that exist (have history or subscribers, on any
    /// node) whose names match `pattern` (`*` for any run of characters),
    /// in name order after `after`, at most `limit`.
    Channels {
        /// A glob of names.
        pattern: Box<str>,
        /// The last name of the page before.
        after: Option<Box<str>>,
        /// The most to answer with.
        limit: usize,
    },
    /// One channel's state, if it exists.
    Channel(Box<str>),
    /// A channel's members, in client id order.
    Presence(Box<str>),
    /// A channel's members counted.
    PresenceStats(Box<str>),
}

/// What a [`Query`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A page of channels, and whether more match after it.
    Channels {
        /// In name order.
        channels: Vec<ChannelState>,
        /// More match after the last of these.
        more: bool,
    },
    /// The channel, or `None` when it does not exist.
    Channel(Option<ChannelState>),
    /// Its members.
    Presence(Vec<Member>),
    /// Its members counted.
    PresenceStats(PresenceStats),
}

/// A channel as the broker holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    /// Its name.
    pub name: String,
    /// Clients subscribed to it, on every node.
    pub subscribers: usize,
    /// The same per transport, in [`Via::ALL`]'s order (a node of an
    /// older version counts in the total alone).
    pub by_via: ByVia,
    /// Its last id (the start of its numbering when it has none yet).
    pub last_id: u64,
    /// The id after which its current numbering began
    /// ([`Message::epoch_start`]).
    pub epoch_start: u64,
    /// Messages its history holds.
    pub history: usize,
    /// The first id its history holds.
    pub first_kept: Option<u64>,
}

/// A live subscription: the one handle of one subscriber. The broker makes
/// it when a subscribe succeeds; whoever holds it last gives it back to
/// [`Broker::unsubscribe`], once. Not `Clone`, so it cannot be counted twice.
#[derive(Debug, PartialEq, Eq)]
pub struct Subscription {
    channel: Arc<str>,
    worker: u16,
    via: Via,
    /// The broker's number of the member it makes, 0 for none: 32 bits,
    /// so that a subscription stays three words (one per channel of every
    /// connection); a broker that wraps skips the numbers still in use.
    client: u32,
}

impl Subscription {
    /// A subscriber of `channel` on `worker` (for brokers).
    pub fn new(channel: Arc<str>, worker: usize) -> Self {
        Subscription {
            channel,
            worker: worker as u16,
            via: Via::WebSocket,
            client: 0,
        }
    }

    /// The same, of a subscriber by `via` (for brokers).
    pub fn by(mut self, via: Via) -> Self {
        self.via = via;
        self
    }

    /// How its subscriber receives.
    pub fn via(&self) -> Via {
        self.via
    }

    /// A subscriber that is the member numbered `client` (not 0) of the
    /// channel's presence (for brokers).
    pub fn member(channel: Arc<str>, worker: usize, client: u32) -> Self {
        Subscription {
            channel,
            worker: worker as u16,
            via: Via::WebSocket,
            client,
        }
    }

    /// The broker's number of the member it is, if it is one.
    pub fn client(&self) -> Option<u32> {
        (self.client != 0).then_some(self.client)
    }

    /// The same subscription again, for the one place that must give back
    /// a handle its holder dropped (the session, after a handler's
    /// mistake): the original is gone by then.
    pub(crate) fn again(&self) -> Self {
        Subscription {
            channel: self.channel.clone(),
            worker: self.worker,
            via: self.via,
            client: self.client,
        }
    }

    /// The channel (the broker's shared copy of the name).
    pub fn channel(&self) -> &Arc<str> {
        &self.channel
    }

    /// The worker whose connection holds it.
    pub fn worker(&self) -> usize {
        usize::from(self.worker)
    }
}

/// The broker's answer to a [`Request`].
#[derive(Debug)]
pub enum Answer {
    /// To [`Request::Publish`].
    Published(Result<Receipt, HubError>),
    /// To [`Request::Subscribe`]: the handle, and what to give first.
    Subscribed(Result<(Subscription, Snapshot), HubError>),
    /// To [`Request::Query`].
    Found(Result<Found, HubError>),
    /// To [`Request::Signal`]: every node has it (`Ok`: the local hub's
    /// workers, or Redis took it for every node listening).
    Signalled(Result<(), HubError>),
}

/// Where channels live. Every method is called from worker threads.
///
/// The contract that makes delivery gap-free: the answer to a subscribe
/// enters the worker's inbox no later than any message published after the
/// snapshot was taken (its id is above the snapshot's `last_id`); every such
/// message is pushed to the subscriber's worker inbox; and messages of one
/// channel enter an inbox in id order.
///
/// And the one that lets a connection have several requests out: the
/// answers to one connection's requests of one kind (subscribes,
/// publishes, queries, signals) enter its inbox in the order they were
/// submitted (a refused subscribe names no channel; the session matches it
/// to its oldest subscribe out, a publish's or a query's answer to the
/// oldest of its kind). Answers of different kinds may pass each other:
/// the local hub answers at once, in order; the Redis broker's command
/// thread takes requests in order, but reads queries on a connection of
/// their own.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Take `request` from connection `from`; its [`Answer`] goes to
    /// `from.worker`'s inbox ([`Inbox::answer`]). Called on the thread of
    /// worker `from.worker`, which drains its inbox before it polls again,
    /// so an answer given during the call needs no wake
    /// ([`Inbox::answer_here`]).
    fn submit(&self, from: Address, request: Request, now: Instant);
    /// What the history holds after `since`, without subscribing.
    fn history(&self, channel: &str, since: Option<u64>, now: Instant) -> Result<Snapshot, HubError>;
    /// End a subscription the broker made.
    fn unsubscribe(&self, subscription: Subscription);
    /// Expire old history and forget channels with neither history nor subscribers.
    fn sweep(&self, now: Instant);
    /// Channels that exist now.
    fn channels(&self) -> usize;
    /// Whether the broker can carry out requests now (a network broker's
    /// server is reachable and answers), or why not. `/readyz` answers
    /// from it: it turns not ready no later than a publish would be refused.
    fn ready(&self) -> Result<(), &'static str> {
        Ok(())
    }
    /// A network broker's counters, for `/metrics` (the local hub has none).
    fn stats(&self) -> Option<BrokerStats> {
        None
    }
    /// Join and leave events this node sent, and dropped over the
    /// per-channel limit, so far.
    fn presence_events(&self) -> PresenceEvents {
        PresenceEvents::default()
    }
    /// A network broker's servers as last found, for `/readyz`,
    /// `/metrics` and the logs (the local hub has none).
    fn topology(&self) -> Option<BrokerTopology> {
        None
    }
}

/// What a network broker is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTopology {
    /// `redis` (one server), `sentinel` (a master found through
    /// sentinels) or `cluster` (a Redis Cluster's masters).
    pub kind: &'static str,
    /// The master's name under Sentinel, else empty.
    pub name: String,
    /// The masters' addresses (`host:port`) as last found.
    pub masters: Vec<String>,
    /// Times a master changed (a failover) since the node started.
    pub failovers: u64,
}

impl fmt::Display for BrokerTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masters = self.masters.join(", ");
        match self.kind {
            "sentinel" => write!(
                f,
                "redis master {masters} (\"{}\" through sentinel), {} failover(s) seen",
                self.name, self.failovers
            ),
            "cluster" => write!(
                f,
                "redis cluster masters {masters} ({} shard(s)), {} failover(s) seen",
                self.masters.len(),
                self.failovers
            ),
            kind => write!(f, "{kind} {masters}, {} failover(s) seen", self.failovers),
        }
    }
}

/// Join and leave events counted, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceEvents {
    /// Sent to the channel's subscribers.
    pub sent: u64,
    /// Dropped: the channel had sent `[presence] max_events_per_second`
    /// in that second.
    pub dropped: u64,
}

/// What a network broker counts, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BrokerStats {
    /// Both connections to the server are up.
    pub connected: bool,
    /// Connections to the server made again after one failed.
    pub reconnects: u64,
    /// Publishes the server carried out.
    pub publishes: u64,
    /// Their round trips, in all.
    pub publish_seconds: f64,
    /// Publishes refused because the server could not be reached (503).
    pub publish_errors: u64,
    /// Messages that came from the server for this node's subscribers.
    pub messages_in: u64,
    /// Messages from the server this node could not read, dropped.
    pub dropped: u64,
}

/// The channel a request path names after its route's prefix (all of
/// it: `a/b` names none), or `None` if it names none: it is percent-decoded first (RFC 3986 §2.1, §6.2.2.2:
/// `%3A` and `:` are the same character, and `encodeURIComponent` writes
/// the former), then checked with [`valid_channel`]. A bad escape, or one
/// that decodes to a character outside the name set (`%2F`), names nothing.
pub fn channel_name(segment: &str) -> Option<Cow<'_, str>> {
    let name = if segment.contains('%') {
        Cow::Owned(percent_decode(segment)?)
    } else {
        Cow::Borrowed(segment)
    };
    valid_channel(&name).then_some(name)
}

/// A glob of channel names as a request gives it (`?pattern=`):
/// percent-decoded as a channel name is, then 1 to 128 of `*` (any run of
/// characters) and the characters channel names are made of.
pub fn channel_pattern(raw: &str) -> Option<Cow<'_, str>> {
    let pattern = if raw.contains('%') {
        Cow::Owned(percent_decode(raw)?)
    } else {
        Cow::Borrowed(raw)
    };
    let ok = (1..=128).contains(&pattern.len())
        && pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-' | b'*'));
    ok.then_some(pattern)
}

/// A query value percent-decoded (RFC 3986 §2.1: `%2C` is `,`), as it
/// was sent when it has no `%`; `None` for a bad escape or a result that
/// is not UTF-8.
pub fn percent_decoded(raw: &str) -> Option<Cow<'_, str>> {
    if raw.contains('%') {
        percent_decode(raw).map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(raw))
    }
}

/// `%XX` escapes decoded; `None` for a `%` not followed by two hex digits or
/// a result that is not UTF-8 (no channel name could be either).
fn percent_decode(s: &str) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let (hi, lo) = (hex(bytes.next()?)?, hex(bytes.next()?)?);
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Channel names: `[A-Za-z0-9_.:-]{1,128}`, except `.` and `..`: a path
/// segment that is one of those is removed by URI normalization (RFC 3986
/// §5.2.4 and §6.2.2.3; `%2E` is `.` by §6.2.2.2), by browsers and
/// proxies, so `/sse/..` would not reach the server as that channel.
pub fn valid_channel(name: &str) -> bool {
    !matches!(name, "." | "..")
        && (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_of_an_earlier_numbering_is_a_reset_never_a_silent_skip() {
        // The channel's numbering began after 1000; ids 1001..=1005 exist,
        // the history holds 1003..=1005.
        let resume = |since| Gap::resume(since, 1005, 1003, 1000);
        let reset = |from, to| Some(Gap { from, to, reset: true });
        // Cursors from before the loss (below the start): reset, and all
        // the history is given.
        assert_eq!(resume(Some(4)), (1000, reset(1001, 1002)));
        assert_eq!(resume(Some(999)), (1000, reset(1001, 1002)));
        // The start is a cursor of this numbering (a quiet channel's last
        // id): no reset.
        assert_eq!(resume(Some(1000)), (1000, Some(Gap::trimmed(1001, 1002))));
        assert_eq!(Gap::resume(Some(1000), 1000, 1001, 1000), (1000, None));
        // From the future: the same.
        assert_eq!(resume(Some(1006)), (1000, reset(1001, 1002)));
        // Holding nothing: from the numbering's start, trimmed ids told.
        assert_eq!(resume(Some(0)), (1000, Some(Gap::trimmed(1001, 1002))));
        // A cursor of this numbering.
        assert_eq!(resume(Some(1001)), (1001, Some(Gap::trimmed(1002, 1002))));
        assert_eq!(resume(Some(1004)), (1004, None));
        assert_eq!(resume(None), (1005, None));
        // A numbering from 1 (start 0) is as before.
        assert_eq!(Gap::resume(Some(0), 5, 3, 0), (0, Some(Gap::trimmed(1, 2))));
        assert_eq!(Gap::resume(Some(9), 5, 6, 0), (0, reset(1, 5)));
    }

    #[test]
    fn channel_names() {
        assert!(valid_channel("news"));
        assert!(valid_channel("a.b:c-d_9"));
        assert!(valid_channel(&"x".repeat(128)));
        assert!(!valid_channel(""));
        assert!(!valid_channel(&"x".repeat(129)));
        assert!(!valid_channel("a/b"));
        assert!(!valid_channel("a b"));
        assert!(!valid_channel("é"));
        assert!(!valid_channel("."));
        assert!(!valid_channel(".."));
        assert!(valid_channel("..."));
        assert!(valid_channel(".a"));
    }

    #[test]
    fn channel_patterns() {
        assert_eq!(channel_pattern("news-*").as_deref(), Some("news-*"));
        assert_eq!(channel_pattern("%2A").as_deref(), Some("*"));
        assert_eq!(channel_pattern("a/b"), None);
        assert_eq!(channel_pattern(""), None);
        assert_eq!(channel_pattern("?"), None);
        assert_eq!(channel_pattern(&"*".repeat(129)), None);
    }

    #[test]
    fn channel_names_are_percent_decoded() {
        assert_eq!(channel_name("news").as_deref(), Some("news"));
        assert!(matches!(channel_name("news"), Some(Cow::Borrowed(_))));
        assert_eq!(channel_name("market%3Abtc").as_deref(), Some("market:btc"));
        assert_eq!(channel_name("market%3abtc").as_deref(), Some("market:btc"));
        assert_eq!(channel_name("%6E%65%77%73").as_deref(), Some("news"));
        // Decoded, the name must still be in the set.
        assert_eq!(channel_name("a%2Fb"), None);
        assert_eq!(channel_name("a%20b"), None);
        assert_eq!(channel_name("%C3%A9"), None);
        // Bad escapes name nothing.
        assert_eq!(channel_name("a%"), None);
        assert_eq!(channel_name("a%3"), None);
        assert_eq!(channel_name("a%zz"), None);
        assert_eq!(channel_name("%FF"), None);
        // The length limit applies to the decoded name.
        assert!(channel_name(&"%61".repeat(128)).is_some());
        assert_eq!(channel_name(&"%61".repeat(129)), None);
        assert_eq!(channel_name(""), None);
        assert_eq!(channel_name("%2E%2e"), None);
    }
}
