//! The Lua scripts the broker runs in Redis: each is atomic, so a
//! channel's numbering, history, fan-out and the bounded tables of
//! channels change together.
//!
//! Besides each channel's keys ([`super::store::keys`]), three tables
//! bound the channels over every node ([`super::store::Tables`]): one set
//! per Redis, or under Redis Cluster one per master (in a slot of its
//! own: the bounds then hold per master, `max_channels` on each):
//! - `wsr:channels`, a sorted set of the channels that exist (have
//!   history, or subscribers on some node), scored by the unix ms until
//!   which they do: `pubsub.max_channels` of them at most;
//! - `wsr:known`, a sorted set of the channels whose last id Redis keeps
//!   (a meta hash), scored by when it expires: at most `max_channels +
//!   id_memory_channels`, the oldest forgotten first;
//! - `wsr:floor`, the highest id a forgotten channel had: a channel Redis
//!   makes anew starts after it (the local hub's rule, [`crate::pubsub`]).
//!
//! Ids never go back, even when Redis loses its data (restarted empty,
//! flushed, a key evicted) and no node remembers a channel: a channel
//! Redis makes anew (a new epoch) starts its numbering after Redis's clock
//! in microseconds ([`CLOCK`]), above every id any channel was given
//! before, as long as no channel took more than a million publishes a
//! second (one Redis runs far fewer scripts than that). The epoch,
//! `TOKEN-START`, carries that start: a cursor below it is of an earlier
//! numbering, and its client is told of the reset
//! ([`crate::pubsub::Gap::resume`]); no cursor can be misread as one of the
//! new numbering. Redis back from an older snapshot keeps the channel at
//! an older last id: a node that delivered ids past it makes a new epoch
//! when it publishes ([`publish`]) or listens again ([`raise`]).

/// `script` as the broker's Redis runs it. Under Redis Cluster a script
/// may touch keys of several slots of its master (a channel's keys in its
/// slot, its master's tables in another: the `allow-cross-slot-keys` flag,
/// Redis 7), and publishes by sharded pub/sub (`SPUBLISH`: a message goes
/// to the channel's shard only, where `PUBLISH` would go to every node).
pub(super) fn for_target(script: &str, cluster: bool) -> String {
    if !cluster {
        return script.to_owned();
    }
    format!(
        "#!lua flags=allow-cross-slot-keys\n{}",
        script.replace("redis.call('PUBLISH', ", "redis.call('SPUBLISH', ")
    )
}

/// A script that only reads, as the broker's Redis runs it: under Redis
/// Cluster flagged so (`no-writes`), so that a master out of memory still
/// runs it (a flagged script that may write is refused there).
pub(super) fn for_reading(script: &str, cluster: bool) -> String {
    if !cluster {
        return script.to_owned();
    }
    format!("#!lua flags=no-writes\n{script}")
}

/// Lua: the id a new epoch starts after, from Redis's clock (`TIME`, the
/// same for every node whatever their clocks say): microseconds since the
/// Unix epoch, about 1.8e15 in 2027, and exact as a Lua number (below 2^53
/// until the year 2255) and as a JSON number in a browser.
const CLOCK: &str = r"
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
";

/// Shared by the scripts: drop what has expired from the tables, and tell
/// whether `name` may exist (it does already, or there is room).
const PRELUDE: &str = r"
-- A whole number as digits: Lua writes numbers past 14 digits with an
-- exponent ('..' and tostring), which no id may be.
local function int(n)
  return string.format('%.0f', n)
end
local function room(live, name, now, max)
  redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
  if redis.call('ZSCORE', live, name) then
    return true
  end
  return redis.call('ZCARD', live) < max
end
-- Remember that `name` has a meta hash until `expires`; past the bound,
-- forget the oldest names, their ids raising the floor.
local function remember(known, floor, name, now, expires, bound)
  redis.call('ZREMRANGEBYSCORE', known, '-inf', now)
  if redis.call('ZADD', known, expires, name) == 1 then
    while redis.call('ZCARD', known) > bound do
      local old = redis.call('ZPOPMIN', known)[1]
      local meta = 'wsr:{' .. old .. '}:meta'
      local id = tonumber(redis.call('HGET', meta, 'id') or '0')
      if id > tonumber(redis.call('GET', floor) or '0') then
        redis.call('SET', floor, id)
      end
      redis.call('DEL', meta, 'wsr:{' .. old .. '}:stream', 'wsr:{' .. old .. '}:idem',
        'wsr:{' .. old .. '}:idemx', 'wsr:{' .. old .. '}:subs')
    end
  end
end
";

/// Numbers, stores and publishes one message; returns `{id, epoch,
/// subscribers, duplicate}`, or the error [`super::store::FULL`]. With an idempotency key
/// already remembered for the channel, nothing is published and the first
/// publish's id and subscribers come back with `duplicate` 1.
///
/// KEYS (all in the channel's slot): meta, stream, the channel's
/// idempotency keys (a hash: key to `id:subscribers`) and their order (a
/// sorted set by expiry), its subscriber counts (a hash: node to
/// `count:until`, [`counts`]). ARGV: topic, kind, payload, new epoch token,
/// history size, meta TTL (ms), stream TTL (ms), now (unix ms), the highest
/// id the publishing node knows of (a new epoch starts after it too), the
/// channel's name, `max_channels`, `id_memory_channels`, the idempotency key
/// (empty: none), its TTL (ms), the keys kept per channel, then the tables
/// (`wsr:channels`, `wsr:known`, `wsr:floor`: arguments, not keys, since
/// under Redis Cluster they are in another slot of the same master, and a
/// script's declared keys must share one slot).
pub(super) fn publish() -> String {
    PRELUDE.to_owned()
        + CLOCK
        + r"
local CHANNELS, KNOWN, FLOOR = ARGV[16], ARGV[17], ARGV[18]
local now = tonumber(ARGV[8])
local function subscribers()
  local n = 0
  local counts = redis.call('HGETALL', KEYS[5])
  for i = 1, #counts, 2 do
    -- count:until, then per transport (ws:sse:poll) from newer nodes.
    local count, untl = string.match(counts[i + 1], '^(%d+):(%d+)')
    if count and tonumber(untl) >= now then
      n = n + tonumber(count)
    else
      redis.call('HDEL', KEYS[5], counts[i])
    end
  end
  return n
end
local key = ARGV[13]
if key ~= '' then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
  for _, old in ipairs(expired) do
    redis.call('ZREM', KEYS[4], old)
    redis.call('HDEL', KEYS[3], old)
  end
  local seen = redis.call('HGET', KEYS[3], key)
  local fresh = tonumber(redis.call('ZSCORE', KEYS[4], key) or '0') > now
  if seen and fresh then
    local id, n = string.match(seen, '^(%d+):(%d+)$')
    -- A write, so that a WAIT after this (broker_replicas) waits for the
    -- replicas to have everything the master has, the first publish too:
    -- Redis's WAIT counts the connection's own last write.
    redis.call('PEXPIRE', KEYS[3], ARGV[14])
    return {tonumber(id), redis.call('HGET', KEYS[1], 'epoch') or '', tonumber(n), 1}
  end
end
if not room(CHANNELS, ARGV[10], now, tonumber(ARGV[11])) then
  return redis.error_reply('WSRFULL too many channels')
end
-- Before the numbering: a name forgotten to make room raises the floor
-- that this channel, if new, starts after.
remember(KNOWN, FLOOR, ARGV[10], now, now + tonumber(ARGV[6]), tonumber(ARGV[11]) + tonumber(ARGV[12]))
local epoch = redis.call('HGET', KEYS[1], 'epoch')
-- Redis went back (an older snapshot): the publishing node delivered ids
-- past the channel's last one. Its numbering cannot go on: a new epoch.
if epoch and tonumber(redis.call('HGET', KEYS[1], 'id') or '0') < tonumber(ARGV[9]) then
  epoch = nil
end
if not epoch then
  -- A channel Redis does not know (new, lost, or gone back): a new epoch,
  -- numbered above every id given before (the clock), the highest id the
  -- publishing node knows of and the floor.
  local start = math.max(clock(), tonumber(ARGV[9]), tonumber(redis.call('GET', FLOOR) or '0'))
  epoch = ARGV[4] .. '-' .. int(start)
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'id', int(start))
end
local id = redis.call('HINCRBY', KEYS[1], 'id', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '0-' .. int(id), 'k', ARGV[2], 't', ARGV[8], 'p', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  redis.call('ZADD', CHANNELS, 'GT', now + tonumber(ARGV[7]), ARGV[10])
end
redis.call('PUBLISH', ARGV[1], int(id) .. ':' .. epoch .. ':' .. ARGV[2] .. ':' .. ARGV[3])
local n = subscribers()
if key ~= '' and tonumber(ARGV[15]) > 0 then
  redis.call('HSET', KEYS[3], key, int(id) .. ':' .. int(n))
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[14]), key)
  while redis.call('ZCARD', KEYS[4]) > tonumber(ARGV[15]) do
    local old = redis.call('ZPOPMIN', KEYS[4])[1]
    redis.call('HDEL', KEYS[3], old)
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[14])
  redis.call('PEXPIRE', KEYS[4], ARGV[14])
end
return {id, epoch, n, 0}
"
}

/// The last id, the epoch and the history after a cursor, read at once,
/// for a new subscriber: the channel then exists for `lease` ms at least
/// (the node renews it while it has subscribers, [`keep`]), or the error
/// [`super::store::FULL`]. KEYS: meta, stream, the subscriber counts ([`counts`]). ARGV:
/// the cursor, "1" if the client gave one (none: nothing to read; one
/// above the last id: all of it, as a reset), the channel's name, now
/// (unix ms), `max_channels`, the lease (ms; 0 for a read that subscribes
/// no one, which neither makes the channel nor is refused), for a
/// subscribe this node's token, its subscriber count with the new one and
/// that per transport, then `wsr:channels` (an argument: under Redis
/// Cluster it is in another slot of the master).
/// Returns `{id, epoch, first, entries}`.
pub(super) fn read() -> String {
    PRELUDE.to_owned()
        + r"
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[6])
if lease > 0 then
  if not room(ARGV[10], ARGV[3], now, tonumber(ARGV[5])) then
    return redis.error_reply('WSRFULL too many channels')
  end
  redis.call('ZADD', ARGV[10], 'GT', now + lease, ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[7], ARGV[8] .. ':' .. int(now + lease) .. ':' .. ARGV[9])
  redis.call('PEXPIRE', KEYS[3], lease)
end
local id = tonumber(redis.call('HGET', KEYS[1], 'id') or '0')
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
if epoch == '' then
  -- No numbering (the meta hash is gone): what a stream still holds is of
  -- a numbering no one can place.
  return {0, '', {}, {}}
end
local after = tonumber(ARGV[1])
if ARGV[2] == '0' then
  after = id
elseif after > id then
  after = 0
end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. int(after), '+')
return {id, epoch, first, entries}
"
}

/// The channels a node has subscribers for exist `lease` ms more, their
/// last ids are as fresh as if just used, and the node's subscriber count
/// of each is set. No KEYS (the channels' keys are of many slots, of one
/// master under Redis Cluster). ARGV: `wsr:channels`, `wsr:known`, until
/// when each exists (unix ms), until when its id is known, the node's
/// token, the lease (ms), then triples of a channel's name, the node's
/// count of it and that count per transport (`ws:sse:poll`).
pub(super) const KEEP: &str = r"
for i = 7, #ARGV, 3 do
  local name = ARGV[i]
  redis.call('ZADD', ARGV[1], 'GT', ARGV[3], name)
  redis.call('ZADD', ARGV[2], 'XX', 'GT', ARGV[4], name)
  local counts = 'wsr:{' .. name .. '}:subs'
  redis.call('HSET', counts, ARGV[5], ARGV[i + 1] .. ':' .. ARGV[3] .. ':' .. ARGV[i + 2])
  redis.call('PEXPIRE', counts, ARGV[6])
end
return (#ARGV - 6) / 3
";

/// This node's subscriber count of one channel changed: set it (0: the
/// node's entry goes). KEYS: the channel's counts (a hash: node token to
/// `count:until:ws:sse:poll`, `until` in unix ms, past which the publish
/// script drops it: a node that died without a word stops counting after
/// one lease; then the count per transport). ARGV: the node's token, its
/// count, until when (unix ms), the lease (ms), the count per transport
/// (`ws:sse:poll`).
pub(super) const COUNT: &str = r"
if ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
";

/// A node delivered ids past the channel's last one (Redis came back from
/// an older snapshot, or its clock stepped back under a new epoch): the
/// channel goes on as a new epoch after the clock and those ids, so that
/// every subscriber is told and no cursor meets a reused id again. KEYS:
/// meta. ARGV: the epoch seen, the highest id the node delivered, a new
/// epoch token.
pub(super) fn raise() -> String {
    PRELUDE.to_owned()
        + CLOCK
        + r"
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  local id = tonumber(redis.call('HGET', KEYS[1], 'id') or '0')
  if id < tonumber(ARGV[2]) then
    local start = int(math.max(clock(), tonumber(ARGV[2])))
    redis.call('HSET', KEYS[1], 'id', start, 'epoch', ARGV[3] .. '-' .. start)
  end
end
return 1
"
}

/// The scripts, loaded as the broker's Redis runs them.
pub(super) struct Scripts {
    pub(super) publish: redis::Script,
    pub(super) read: redis::Script,
    pub(super) raise: redis::Script,
    pub(super) keep: redis::Script,
    pub(super) count: redis::Script,
    pub(super) state: redis::Script,
    pub(super) join: redis::Script,
    pub(super) leave: redis::Script,
    pub(super) renew: redis::Script,
    pub(super) members: redis::Script,
}

impl Scripts {
    /// As the broker's Redis runs them ([`for_target`], [`for_reading`]).
    pub(super) fn new(cluster: bool) -> Scripts {
        let script = |text: &str| redis::Script::new(&for_target(text, cluster));
        let reading = |text: &str| redis::Script::new(&for_reading(text, cluster));
        Scripts {
            publish: script(&publish()),
            read: script(&read()),
            raise: script(&raise()),
            keep: script(KEEP),
            count: script(COUNT),
            state: reading(super::query::STATE),
            join: script(&super::presence::join_script()),
            leave: script(&super::presence::leave_script()),
            renew: script(&super::presence::renew_script()),
            members: reading(super::presence::READ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_a_cluster_every_script_publishes_to_its_shard() {
        let all = [
            publish(),
            read(),
            raise(),
            KEEP.to_owned(),
            COUNT.to_owned(),
            super::super::presence::join_script(),
            super::super::presence::leave_script(),
            super::super::presence::renew_script(),
        ];
        for script in &all {
            let cluster = for_target(script, true);
            assert!(cluster.starts_with("#!lua flags=allow-cross-slot-keys\n"));
            assert!(
                !cluster.contains("'PUBLISH'") && !cluster.contains("\"PUBLISH\""),
                "{cluster}"
            );
            assert_eq!(for_target(script, false), *script);
        }
        assert!(for_target(&publish(), true).contains("redis.call('SPUBLISH', "));
    }
}
