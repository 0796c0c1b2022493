//! What the broker keeps in Redis and how it reads it back: the keys of a
//! channel, the publish and read scripts, history entries and published
//! messages as wsreactor messages.

use super::{unix_ms, UNREACHABLE};
use crate::protocol::MessageKind;
use crate::pubsub::{Gap, HubError, HubSettings, Message, Snapshot};
use std::sync::Arc;
use std::time::Instant;

/// The keys of the tables that bound channels ([`super::scripts`]): one
/// set for a Redis (a master and its replicas), one per master under
/// Redis Cluster, each in a slot of its master's (a script may touch keys
/// of several slots of one master: `allow-cross-slot-keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tables {
    /// The channels that exist (`wsr:channels`).
    pub(super) channels: String,
    /// The channels whose last id is kept (`wsr:known`).
    pub(super) known: String,
    /// The highest id a forgotten channel had (`wsr:floor`).
    pub(super) floor: String,
}

impl Tables {
    /// The tables of one Redis: `wsr:channels`, `wsr:known`, `wsr:floor`.
    pub(super) fn global() -> Tables {
        Tables {
            channels: "wsr:channels".into(),
            known: "wsr:known".into(),
            floor: "wsr:floor".into(),
        }
    }

    /// A cluster master's, in `slot` (one it serves).
    pub(super) fn in_slot(slot: u16) -> Tables {
        let tag = super::slots::tag(slot);
        Tables {
            channels: format!("wsr:{{{tag}}}:channels"),
            known: format!("wsr:{{{tag}}}:known"),
            floor: format!("wsr:{{{tag}}}:floor"),
        }
    }
}
/// The topic signals go out on to every node ([`crate::pubsub::Request::Signal`]).
pub(super) const SIGNALS: &str = "wsr:signal";

/// How long a subscribe keeps its channel in `wsr:channels`; a node
/// renews the channels it has subscribers for every third of it.
pub(super) const LEASE_MS: u64 = 60_000;

/// The error a script answers when `max_channels` channels exist
/// ([`super::scripts`]).
pub(super) const FULL: &str = "WSRFULL";

/// A script's error as the broker's: [`FULL`] is
/// `max_channels`; anything else the broker being unavailable, saying why
/// as Redis did (its full text goes to the log).
pub(super) fn hub_error(what: &str, channel: &str, e: &redis::RedisError) -> HubError {
    if e.code() == Some(FULL) {
        return HubError::TooManyChannels;
    }
    log::warn!("redis {what} {channel}: {e}");
    if e.is_timeout() {
        return HubError::Unavailable("redis does not answer");
    }
    match e.code() {
        Some("READONLY") => HubError::Unavailable("redis is a read-only replica"),
        Some("OOM") => HubError::Unavailable("redis is out of memory"),
        Some("NOAUTH" | "WRONGPASS" | "NOPERM") => HubError::Unavailable("redis refused this node's credentials"),
        Some("LOADING") => HubError::Unavailable("redis is loading its data"),
        Some("BUSY") => HubError::Unavailable("redis is busy with a script"),
        Some("CLUSTERDOWN") => {
            HubError::Unavailable("the redis cluster is down (a master failed, no replica took its place yet)")
        }
        Some("TRYAGAIN" | "MOVED" | "ASK") => HubError::Unavailable("the redis cluster is moving the channel's slot"),
        Some(_) => HubError::Unavailable("redis refused the request"),
        None => UNREACHABLE,
    }
}

pub(super) fn keys(channel: &str) -> (String, String, String) {
    (
        format!("wsr:{{{channel}}}:meta"),
        format!("wsr:{{{channel}}}:stream"),
        format!("wsr:{{{channel}}}"),
    )
}

/// A channel's subscriber counts, per node (`node: count:until`).
pub(super) fn counts_key(channel: &str) -> String {
    format!("wsr:{{{channel}}}:subs")
}

/// A channel's idempotency keys (`key: id:subscribers`) and their order
/// (a sorted set by expiry).
pub(super) fn idempotency_keys(channel: &str) -> (String, String) {
    (format!("wsr:{{{channel}}}:idem"), format!("wsr:{{{channel}}}:idemx"))
}

/// The id after which an epoch's numbering began: its `TOKEN-START`
/// ([`super::scripts`]); 0 for none or one of another form. Below 2^53,
/// as every id is.
pub(super) fn epoch_start(epoch: &[u8]) -> u64 {
    epoch
        .rsplit(|&b| b == b'-')
        .next()
        .filter(|_| epoch.contains(&b'-'))
        .and_then(parse_u64)
        .filter(|&start| start < 1 << 53)
        .unwrap_or(0)
}

pub(super) fn kind_tag(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "t",
        MessageKind::Binary => "b",
    }
}

pub(super) fn tag_kind(tag: &[u8]) -> MessageKind {
    if tag == b"t" {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

pub(super) type Entry = (String, Vec<Vec<u8>>);

/// What a subscriber starting after `since` must be given first (the
/// local hub's rules: no cursor, only what comes next; a cursor above the
/// last id is reset; ids trimmed from the history are a gap; a cursor of
/// an earlier epoch is reset). A subscribe (`lease`: this node's token,
/// its count of the channel's subscribers, the new one included, and that
/// count per transport, `ws:sse:poll`) holds the
/// channel in `wsr:channels` for [`LEASE_MS`]; a read alone does not.
pub(super) fn snapshot(
    con: &mut redis::Connection,
    read: &redis::Script,
    (settings, tables): (&HubSettings, &Tables),
    channel: &str,
    since: Option<u64>,
    lease: Option<(&str, u32, &str)>,
) -> Result<(Snapshot, String), HubError> {
    let (meta, stream, _) = keys(channel);
    let (node, count, by_via) = lease.unwrap_or(("", 0, ""));
    let (last_id, epoch, first, entries): (u64, String, Vec<Entry>, Vec<Entry>) = read
        .key(meta)
        .key(stream)
        .key(counts_key(channel))
        .arg(since.unwrap_or(0))
        .arg(if since.is_some() { "1" } else { "0" })
        .arg(channel)
        .arg(unix_ms())
        .arg(settings.max_channels)
        .arg(if lease.is_some() { LEASE_MS } else { 0 })
        .arg(node)
        .arg(count)
        .arg(by_via)
        .arg(&tables.channels)
        .invoke(con)
        .map_err(|e| hub_error("history of", channel, &e))?;
    let epoch_start = epoch_start(epoch.as_bytes());
    let oldest = unix_ms().saturating_sub(settings.history_ttl.as_millis() as u64);
    let name: Arc<str> = channel.into();
    let now = Instant::now();
    let fresh = |e: &Entry| field(e, b"t").and_then(parse_u64).is_some_and(|t| t >= oldest);
    let first_kept = first
        .iter()
        .chain(entries.iter())
        .find(|e| fresh(e))
        .and_then(|e| entry_id(&e.0))
        .unwrap_or(last_id + 1);
    let (since, gap) = Gap::resume(since, last_id, first_kept, epoch_start);
    let replay = entries
        .iter()
        .filter(|e| fresh(e))
        .filter_map(|e| {
            let id = entry_id(&e.0)?;
            (id > since).then(|| {
                let kind = field(e, b"k").map_or(MessageKind::Binary, tag_kind);
                let payload = field(e, b"p").unwrap_or_default();
                let mut message = Message::new(id, name.clone(), kind, payload, now);
                message.epoch_start = epoch_start;
                Arc::new(message)
            })
        })
        .collect();
    let snapshot = Snapshot {
        replay,
        gap,
        last_id,
        epoch_start,
    };
    Ok((snapshot, epoch))
}

pub(super) fn entry_id(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

pub(super) fn field<'e>(e: &'e Entry, name: &[u8]) -> Option<&'e [u8]> {
    e.1.chunks(2)
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv.get(1))
        .map(Vec::as_slice)
}

pub(super) fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A message from the channel's topic (`id:epoch:kind:payload`), and its epoch.
pub(super) fn parse_published<'r>(name: &Arc<str>, raw: &'r [u8]) -> Option<(Message, &'r [u8])> {
    let mut parts = raw.splitn(4, |&b| b == b':');
    // Ids start at 1: a 0 is not one of ours.
    let id = parse_u64(parts.next()?).filter(|&id| id > 0)?;
    let epoch = parts.next()?;
    let kind = tag_kind(parts.next()?);
    let payload = parts.next()?;
    let mut message = Message::new(id, name.clone(), kind, payload, Instant::now());
    message.epoch_start = epoch_start(epoch);
    Some((message, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_names_where_its_numbering_starts() {
        assert_eq!(epoch_start(b"9f3c0a1b2c3d4e5f-1796601600000000"), 1_796_601_600_000_000);
        // An epoch of an older version (a token alone), or junk: from 1.
        assert_eq!(epoch_start(b"9f3c0a1b2c3d4e5f"), 0);
        assert_eq!(epoch_start(b"x-y"), 0);
        assert_eq!(epoch_start(b""), 0);
        assert_eq!(epoch_start(b"t-18446744073709551615"), 0);
    }

    #[test]
    fn a_message_not_of_ours_is_not_read() {
        let name: Arc<str> = "c".into();
        let (m, epoch) = parse_published(&name, b"7:tok-5:t:hi:there").unwrap();
        assert_eq!(
            (m.id, m.epoch_start, epoch, m.payload()),
            (7, 5, &b"tok-5"[..], &b"hi:there"[..])
        );
        assert!(parse_published(&name, b"0:tok-5:t:x").is_none());
        assert!(parse_published(&name, b"junk").is_none());
    }
}
