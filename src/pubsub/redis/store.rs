//! What the broker keeps in Redis and how it reads it back: the keys of a
//! channel, the publish and read scripts, history entries and published
//! messages as wsreactor messages.

use super::unix_ms;
use crate::protocol::MessageKind;
use crate::pubsub::{Gap, HubError, HubSettings, Message, Snapshot};
use std::sync::Arc;
use std::time::Instant;

/// Numbers, stores and publishes one message; returns `{id, epoch, nodes}`.
/// KEYS: meta, stream. ARGV: topic, kind, payload, new epoch, history
/// size, meta TTL (ms), stream TTL (ms), now (unix ms), the highest id the
/// publishing node knows of (where a new epoch's numbering starts after).
pub(super) const PUBLISH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- A channel Redis does not know (new, or lost): a new epoch, numbered
  -- after the highest id the publishing node knows of.
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  local known = tonumber(redis.call('HGET', KEYS[1], 'id') or '0')
  if tonumber(ARGV[9]) > known then
    redis.call('HSET', KEYS[1], 'id', ARGV[9])
  end
end
local id = redis.call('HINCRBY', KEYS[1], 'id', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '0-' .. id, 'k', ARGV[2], 't', ARGV[8], 'p', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
local nodes = redis.call('PUBLISH', ARGV[1], id .. ':' .. epoch .. ':' .. ARGV[2] .. ':' .. ARGV[3])
return {id, epoch, nodes}
";

/// The last id, the epoch and the history after a cursor, read at once.
/// KEYS: meta, stream. ARGV: the cursor, and "1" if the client gave one
/// (none: nothing to read; one above the last id: all of it, as a reset).
/// Returns `{id, epoch, first, entries}`.
pub(super) const READ: &str = r"
local id = tonumber(redis.call('HGET', KEYS[1], 'id') or '0')
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
local after = tonumber(ARGV[1])
if ARGV[2] == '0' then
  after = id
elseif after > id then
  after = 0
end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. after, '+')
return {id, epoch, first, entries}
";

pub(super) fn keys(channel: &str) -> (String, String, String) {
    (
        format!("wsr:{{{channel}}}:meta"),
        format!("wsr:{{{channel}}}:stream"),
        format!("wsr:{{{channel}}}"),
    )
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
/// last id is reset; ids trimmed from the history are a gap).
pub(super) fn snapshot(
    con: &mut redis::Connection,
    read: &redis::Script,
    settings: &HubSettings,
    channel: &str,
    since: Option<u64>,
) -> Result<(Snapshot, String), HubError> {
    let (meta, stream, _) = keys(channel);
    let (last_id, epoch, first, entries): (u64, String, Vec<Entry>, Vec<Entry>) = read
        .key(meta)
        .key(stream)
        .arg(since.unwrap_or(0))
        .arg(if since.is_some() { "1" } else { "0" })
        .invoke(con)
        .map_err(|e| {
            log::warn!("redis history of {channel}: {e}");
            HubError::Unavailable
        })?;
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
    let (since, gap) = Gap::resume(since, last_id, first_kept);
    let replay = entries
        .iter()
        .filter(|e| fresh(e))
        .filter_map(|e| {
            let id = entry_id(&e.0)?;
            (id > since).then(|| {
                let kind = field(e, b"k").map_or(MessageKind::Binary, tag_kind);
                let payload = field(e, b"p").unwrap_or_default();
                Arc::new(Message::new(id, name.clone(), kind, payload.into(), now))
            })
        })
        .collect();
    Ok((Snapshot { replay, gap, last_id }, epoch))
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
    let id = parse_u64(parts.next()?)?;
    let epoch = parts.next()?;
    let kind = tag_kind(parts.next()?);
    let payload = parts.next()?;
    Some((
        Message::new(id, name.clone(), kind, payload.into(), Instant::now()),
        epoch,
    ))
}

/// A channel whose state Redis lost, made again by a node that knew it:
/// a new epoch whose numbering goes on after the highest id the node
/// knows, so no client's cursor meets a reused id. KEYS: meta. ARGV: new
/// epoch, the highest known id, meta TTL (ms). Returns 1 if it made it.
pub(super) const SEED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'id', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// After a node saw a new epoch start below ids it had delivered: the
/// numbering of that epoch goes on after them. KEYS: meta. ARGV: the
/// epoch, the highest id the node delivered.
pub(super) const RAISE: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  local id = tonumber(redis.call('HGET', KEYS[1], 'id') or '0')
  if id < tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'id', ARGV[2])
  end
end
return 1
";
