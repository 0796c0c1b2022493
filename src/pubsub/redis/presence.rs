//! Presence in Redis, over every node: per channel `c`, `wsr:{c}:members`
//! (a hash: client id to the member's JSON) and `wsr:{c}:alive` (a sorted
//! set: client id to the unix ms until which its node vouches for it).
//!
//! A node renews its own members every third of `[presence] ttl`
//! ([`renew`]); a member whose node stopped (killed, cut off from Redis)
//! is listed no longer once its time is past, and the next script to
//! touch the channel takes it out and tells its leave. Join and leave
//! events go out on the channel's topic as `join:{member}` /
//! `leave:{member}`, at most `max_events_per_second` per channel and
//! second over every node (`wsr:{c}:events:SECOND`, counted by the
//! scripts); the rest are dropped and counted by the node that made them.

use super::store::{hub_error, keys};
use super::{unix_ms, Local};
use crate::pubsub::{Change, HubError, Member};
use std::sync::atomic::Ordering::Relaxed;

/// Lua shared by the scripts. KEYS: members, alive, this second's event
/// count. `tell` publishes an event if the second allows (1) or drops it
/// (0); `prune` takes out members past their time, telling their leaves.
const PRELUDE: &str = r"
local sent, dropped = 0, 0
-- Redis's clock, in ms: every node's members timed by one clock, so
-- that no node's clock being ahead prunes another's.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function tell(topic, limit, change, json)
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then
    redis.call('PEXPIRE', KEYS[3], 2000)
  end
  if n <= limit then
    redis.call('PUBLISH', topic, change .. ':' .. json)
    sent = sent + 1
  else
    dropped = dropped + 1
  end
end
local function prune(now, topic, limit)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, client in ipairs(gone) do
    local json = redis.call('HGET', KEYS[1], client)
    redis.call('HDEL', KEYS[1], client)
    redis.call('ZREM', KEYS[2], client)
    if json then
      tell(topic, limit, 'leave', json)
    end
  end
end
local function keep(ttl)
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  redis.call('PEXPIRE', KEYS[2], ttl * 2)
end
";

/// Adds one member unless the channel has `max_members`. ARGV: client,
/// member JSON, ttl (ms), max members, max events per second, topic.
/// Returns `{joined (1) or full (0), sent, dropped}`.
pub(super) fn join_script() -> String {
    format!(
        "{PRELUDE}{}",
        r"
local now, ttl, limit, topic = clock(), tonumber(ARGV[3]), tonumber(ARGV[5]), ARGV[6]
prune(now, topic, limit)
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return {0, sent, dropped}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
keep(ttl)
tell(topic, limit, 'join', ARGV[2])
return {1, sent, dropped}
"
    )
}

/// Takes one member out. ARGV: client, max events per second, topic.
/// Returns `{left (1) or was not there (0), sent, dropped}`.
pub(super) fn leave_script() -> String {
    format!(
        "{PRELUDE}{}",
        r"
local now, limit, topic = clock(), tonumber(ARGV[2]), ARGV[3]
local json = redis.call('HGET', KEYS[1], ARGV[1])
local left = 0
if json then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  tell(topic, limit, 'leave', json)
  left = 1
end
prune(now, topic, limit)
return {left, sent, dropped}
"
    )
}

/// Renews a node's members, then takes out the ones whose node stopped
/// renewing them. A member of the node's that was taken out meanwhile
/// (its renewal came late: Redis was away) is put back and its join told
/// again, so that no subscriber is left with a leave and no join. ARGV:
/// ttl (ms), max events per second, topic, then client and member JSON
/// pairs. Returns `{0, sent, dropped}`.
pub(super) fn renew_script() -> String {
    format!(
        "{PRELUDE}{}",
        r"
local now, ttl, limit, topic = clock(), tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 4, #ARGV, 2 do
  if redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    tell(topic, limit, 'join', ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
end
prune(now, topic, limit)
keep(ttl)
return {0, sent, dropped}
"
    )
}

/// Reads the members whose time is not past, changing nothing. KEYS:
/// members, alive. Returns their JSON.
pub(super) const READ: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
if #alive == 0 then
  return {}
end
local out = {}
-- In parts: unpack takes some thousands of values at most.
for i = 1, #alive, 1000 do
  local part = {}
  for j = i, math.min(i + 999, #alive) do
    part[#part + 1] = alive[j]
  end
  for _, json in ipairs(redis.call('HMGET', KEYS[1], unpack(part))) do
    if json then
      out[#out + 1] = json
    end
  end
end
return out
";

/// The keys of `channel`'s presence, for `second` (unix seconds).
pub(super) fn presence_keys(channel: &str, second: u64) -> [String; 3] {
    [
        format!("wsr:{{{channel}}}:members"),
        format!("wsr:{{{channel}}}:alive"),
        format!("wsr:{{{channel}}}:events:{second}"),
    ]
}

/// A script's keys and its first arguments, for `channel` now.
pub(super) fn call(script: &redis::Script, channel: &str) -> redis::Cmd {
    let second = unix_ms() / 1000;
    let mut call = redis::cmd("EVALSHA");
    call.arg(script.get_hash()).arg(3);
    for key in presence_keys(channel, second) {
        call.arg(key);
    }
    call
}

/// The channel's topic, where its events go out with its messages.
pub(super) fn topic(channel: &str) -> String {
    keys(channel).2
}

/// A presence event from the channel's topic (`join:{..}`/`leave:{..}`),
/// if the message is one.
pub(super) fn parse_event(raw: &[u8]) -> Option<(Change, &str)> {
    let (change, rest) = if let Some(rest) = raw.strip_prefix(b"join:") {
        (Change::Join, rest)
    } else {
        (Change::Leave, raw.strip_prefix(b"leave:")?)
    };
    let json = std::str::from_utf8(rest).ok()?;
    // Only what a member's JSON is: what reaches clients is checked here.
    Member::from_json(json).map(|_| (change, json))
}

/// The members `READ` found, those that read as members.
pub(super) fn members(
    con: &mut redis::Connection,
    read: &redis::Script,
    channel: &str,
) -> Result<Vec<Member>, HubError> {
    let [members, alive, _] = presence_keys(channel, 0);
    let found: Vec<String> = read
        .key(members)
        .key(alive)
        .invoke(con)
        .map_err(|e| hub_error("presence of", channel, &e))?;
    let mut members: Vec<Member> = found.iter().filter_map(|j| Member::from_json(j)).collect();
    members.sort_by(|a, b| a.client.cmp(&b.client));
    Ok(members)
}

/// The join and leave events a presence script sent and dropped
/// (`{_, sent, dropped}`), counted.
pub(super) fn count_events(local: &Local, value: redis::Value) {
    if let Ok((_, sent, dropped)) = redis::from_redis_value::<(u64, u64, u64)>(value) {
        local.counters.events_sent.fetch_add(sent, Relaxed);
        local.counters.events_dropped.fetch_add(dropped, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_member_is_read_as_an_event() {
        assert_eq!(
            parse_event(b"join:{\"client\":\"a-1\"}"),
            Some((Change::Join, "{\"client\":\"a-1\"}"))
        );
        assert_eq!(
            parse_event(b"leave:{\"client\":\"a-1\",\"user\":\"u\"}").map(|e| e.0),
            Some(Change::Leave)
        );
        assert_eq!(parse_event(b"join:{\"client\":1}"), None);
        assert_eq!(parse_event(b"join:junk"), None);
        assert_eq!(parse_event(b"7:tok-5:t:join:{}"), None);
    }
}
