//! Channels for the push server: publish, subscribe, history.
//!
//! ```text
//!  POST /pub/c on worker 1 ──► Broker::publish ──► channel c: id, history
//!                                                   └─► inbox of each worker with subscribers of c ─► Waker
//!  worker k wakes ──► drains its inbox ──► writes the shared bytes to its subscribers of c
//! ```
//!
//! The [`Broker`] trait is the seam between the reactor and where channels
//! live. [`LocalHub`] keeps them in this process (the default); a broker for
//! several nodes (e.g. over Redis) implements the same trait and still hands
//! messages to the workers through their [`Inbox`]es. The reactor owns the
//! inboxes (and the wakers in them) and lends them to the broker it is
//! started with ([`crate::reactor::start_with_broker`]).

pub mod hub;
pub mod message;

pub use hub::{Inbox, LocalHub};
pub use message::{Encoding, Message};

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
    /// Subscribers it was handed to.
    pub subscribers: usize,
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
    /// the channel's last id (as after a restart), or from before the server
    /// forgot the channel. It is dropped; `from..=to` are the ids of the
    /// channel's numbering that are gone, and what the history holds follows.
    pub reset: bool,
}

impl Gap {
    /// Ids `from..=to` were trimmed from the history.
    pub fn trimmed(from: u64, to: u64) -> Gap {
        Gap { from, to, reset: false }
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
}

/// Why the broker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubError {
    /// `[pubsub] max_channels` channels exist already.
    TooManyChannels,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::TooManyChannels => f.write_str("too many channels"),
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
}

/// Where channels live. Every method is called from worker threads.
///
/// The contract that makes delivery gap-free: a message published after
/// [`subscribe`](Broker::subscribe) returned (its id is above the snapshot's
/// `last_id`) is pushed to the subscriber's worker inbox, and messages of one
/// channel enter an inbox in id order.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Number and store a message and hand it to every subscribed worker.
    fn publish(&self, channel: &str, kind: MessageKind, payload: Box<[u8]>, now: Instant) -> Result<Receipt, HubError>;
    /// Count a subscriber on `worker` and return what it missed after `since`
    /// (`None`: only what comes next).
    fn subscribe(&self, channel: &str, worker: usize, since: Option<u64>, now: Instant) -> Result<Snapshot, HubError>;
    /// What the history holds after `since`, without subscribing.
    fn history(&self, channel: &str, since: Option<u64>, now: Instant) -> Result<Snapshot, HubError>;
    /// Undo one [`subscribe`](Broker::subscribe).
    fn unsubscribe(&self, channel: &str, worker: usize);
    /// Expire old history and forget channels with neither history nor subscribers.
    fn sweep(&self, now: Instant);
    /// Channels that exist now.
    fn channels(&self) -> usize;
}

/// The channel a request path's last segment names, or `None` if it names
/// none: the segment is percent-decoded first (RFC 3986 §2.1, §6.2.2.2:
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

/// Channel names: `[A-Za-z0-9_.:-]{1,128}`.
pub fn valid_channel(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
