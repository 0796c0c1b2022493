//! The Lua scripts the broker runs in Redis: each is atomic, so a
//! channel's numbering, history, fan-out and the bounded tables of
//! channels change together.
//!
//! Besides each channel's keys ([`super::store::keys`]), three keys are
//! global, so that the bounds hold over every node (and so the broker
//! needs one Redis, not a Redis Cluster):
//! - `wsr:channels`, a sorted set of the channels that exist (have
//!   history, or subscribers on some node), scored by the unix ms until
//!   which they do: `pubsub.max_channels` of them at most;
//! - `wsr:known`, a sorted set of the channels whose last id Redis keeps
//!   (a meta hash), scored by when it expires: at most `max_channels +
//!   id_memory_channels`, the oldest forgotten first;
//! - `wsr:floor`, the highest id a forgotten channel had: a channel Redis
//!   makes anew starts after it, so no forgotten channel's ids come back
//!   (the local hub's rule, [`crate::pubsub`]);
//! - `wsr:instance`, a token made with Redis's data, which every node
//!   learns at start: a node that finds it missing knows Redis lost its
//!   data, and sets `wsr:recovering` for [`super::store::RECOVERY_MS`],
//!   while which a channel Redis does not know is made only by a node that
//!   knows its last id (a knowing node makes its channels again as it
//!   reconnects); a publish by a node that knows none is refused (503), so
//!   that it cannot start a lost channel's numbering again at 1.

/// The error a script answers when `max_channels` channels exist.
pub(super) const FULL: &str = "WSRFULL";

/// The error a publish gets into a channel Redis does not know, from a
/// node that does not know it either, while Redis recovers from a loss.
pub(super) const RECOVERING: &str = "WSRRECOVERING";

/// Shared by the scripts: drop what has expired from the tables, and tell
/// whether `name` may exist (it does already, or there is room).
const PRELUDE: &str = r"
-- The token of Redis's data (made if missing); a node that knew one and
-- finds none has found a loss, and opens the recovery.
local function instance(key, flag, known, new, recovery)
  local current = redis.call('GET', key)
  if current then
    return current
  end
  redis.call('SET', key, new)
  if known ~= '' then
    redis.call('SET', flag, '1', 'PX', recovery)
  end
  return new
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
      redis.call('DEL', meta, 'wsr:{' .. old .. '}:stream')
    end
  end
end
";

/// Numbers, stores and publishes one message; returns `{id, epoch, nodes,
/// instance}`, or the error [`FULL`] or [`RECOVERING`]. KEYS: meta,
/// stream, `wsr:channels`, `wsr:known`, `wsr:floor`, `wsr:instance`,
/// `wsr:recovering`. ARGV: topic, kind, payload, new epoch, history size,
/// meta TTL (ms), stream TTL (ms), now (unix ms), the highest id the
/// publishing node knows of (where a new epoch's numbering starts after),
/// the channel's name, `max_channels`, `id_memory_channels`, the instance
/// the node knows, a new instance token, the recovery (ms).
pub(super) fn publish() -> String {
    PRELUDE.to_owned()
        + r"
local now = tonumber(ARGV[8])
local inst = instance(KEYS[6], KEYS[7], ARGV[13], ARGV[14], ARGV[15])
if not room(KEYS[3], ARGV[10], now, tonumber(ARGV[11])) then
  return redis.error_reply('WSRFULL too many channels')
end
-- Before the numbering: a name forgotten to make room raises the floor
-- that this channel, if new, starts after.
remember(KEYS[4], KEYS[5], ARGV[10], now, now + tonumber(ARGV[6]), tonumber(ARGV[11]) + tonumber(ARGV[12]))
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- A channel Redis does not know (new, or lost): a new epoch, numbered
  -- after the highest id the publishing node knows of and the floor;
  -- while Redis recovers from a loss, only by a node that knows one.
  if tonumber(ARGV[9]) == 0 and redis.call('EXISTS', KEYS[7]) == 1 then
    return redis.error_reply('WSRRECOVERING redis lost its data: its channels are being made again')
  end
  epoch = ARGV[4]
  local start = math.max(tonumber(ARGV[9]), tonumber(redis.call('GET', KEYS[5]) or '0'))
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  if start > tonumber(redis.call('HGET', KEYS[1], 'id') or '0') then
    redis.call('HSET', KEYS[1], 'id', start)
  end
end
local id = redis.call('HINCRBY', KEYS[1], 'id', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '0-' .. id, 'k', ARGV[2], 't', ARGV[8], 'p', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  redis.call('ZADD', KEYS[3], 'GT', now + tonumber(ARGV[7]), ARGV[10])
end
local nodes = redis.call('PUBLISH', ARGV[1], id .. ':' .. epoch .. ':' .. ARGV[2] .. ':' .. ARGV[3])
return {id, epoch, nodes, inst}
"
}

/// The last id, the epoch and the history after a cursor, read at once,
/// for a new subscriber: the channel then exists for `lease` ms at least
/// (the node renews it while it has subscribers, [`keep`]), or the error
/// [`FULL`]. KEYS: meta, stream, `wsr:channels`. ARGV: the cursor, "1" if
/// the client gave one (none: nothing to read; one above the last id: all
/// of it, as a reset), the channel's name, now (unix ms), `max_channels`,
/// the lease (ms; 0 for a read that subscribes no one, which neither
/// makes the channel nor is refused). Returns `{id, epoch, first, entries}`.
pub(super) fn read() -> String {
    PRELUDE.to_owned()
        + r"
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[6])
if lease > 0 then
  if not room(KEYS[3], ARGV[3], now, tonumber(ARGV[5])) then
    return redis.error_reply('WSRFULL too many channels')
  end
  redis.call('ZADD', KEYS[3], 'GT', now + lease, ARGV[3])
end
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
"
}

/// The channels a node has subscribers for exist `lease` ms more, and
/// their last ids are as fresh as if just used. KEYS: `wsr:channels`,
/// `wsr:known`. ARGV: until when each exists (unix ms), until when its id
/// is known, then the channels' names.
pub(super) const KEEP: &str = r"
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[i])
  redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[2], ARGV[i])
end
return #ARGV - 2
";

/// A channel whose state Redis lost, made again by a node that knew it:
/// a new epoch whose numbering goes on after the highest id the node
/// knows, so no client's cursor meets a reused id. KEYS: meta,
/// `wsr:known`, `wsr:instance`, `wsr:recovering`. ARGV: new epoch, the
/// highest known id, meta TTL (ms), the channel's name, now (unix ms), the
/// instance the node knows, a new instance token, the recovery (ms).
/// Returns `{made (1 or 0), instance}`.
pub(super) fn seed() -> String {
    PRELUDE.to_owned()
        + r"
local inst = instance(KEYS[3], KEYS[4], ARGV[6], ARGV[7], ARGV[8])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, inst}
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'id', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[5]) + tonumber(ARGV[3]), ARGV[4])
return {1, inst}
"
}

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
