//! The server API's reads of channels in Redis ([`Query`]): which exist
//! (`wsr:channels`, the table every node keeps, one per master under
//! Redis Cluster, [`super::scripts`]) and
//! each one's state, read by one script per channel. Nothing is written:
//! looking makes no channel and renews nothing.

use super::store::{counts_key, epoch_start, hub_error, keys, Tables};
use super::unix_ms;
use crate::auth::glob_match;
use crate::pubsub::{ChannelState, Found, HubError, HubSettings, PresenceStats, Query};

/// Lua: one channel's state. KEYS: meta, stream, subscriber counts
/// ([`super::scripts::COUNT`]). ARGV: now (unix ms), the oldest a kept
/// message may be (unix ms: older ones are past `history_ttl` and given to
/// no one, though the stream still holds them). Returns `{id, epoch,
/// kept, first kept entry id, subscribers, and those per transport:
/// WebSocket, SSE, poll}`.
pub(super) const STATE: &str = r"
local now = tonumber(ARGV[1])
local oldest = tonumber(ARGV[2])
local meta = redis.call('HMGET', KEYS[1], 'id', 'epoch')
local subscribers, ws, sse, poll = 0, 0, 0, 0
local counts = redis.call('HGETALL', KEYS[3])
for i = 1, #counts, 2 do
  -- count:until, then per transport (ws:sse:poll) from newer nodes.
  local count, untl = string.match(counts[i + 1], '^(%d+):(%d+)')
  if count and tonumber(untl) >= now then
    subscribers = subscribers + tonumber(count)
    local w, s, p = string.match(counts[i + 1], '^%d+:%d+:(%d+):(%d+):(%d+)$')
    if w then
      ws, sse, poll = ws + tonumber(w), sse + tonumber(s), poll + tonumber(p)
    end
  end
end
-- The stream is in the order of publishing: what is past its age is a
-- prefix of it. Without a numbering (the meta hash is gone) what it holds
-- is given to no one (the read script's rule): nothing is kept.
local kept = 0
if meta[2] then
  kept = redis.call('XLEN', KEYS[2])
end
local first = ''
local from = '-'
while kept > 0 and first == '' do
  local batch = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 64)
  if #batch == 0 then
    break
  end
  for _, e in ipairs(batch) do
    local t = 0
    for j = 1, #e[2], 2 do
      if e[2][j] == 't' then
        t = tonumber(e[2][j + 1]) or 0
      end
    end
    if t >= oldest then
      first = e[1]
      break
    end
    kept = kept - 1
  end
  from = '(' .. batch[#batch][1]
end
return {meta[1] or '0', meta[2] or '', kept, first, subscribers, ws, sse, poll}
";

/// The connections a query reads on: one per master ([`super::Shard`]).
pub(super) trait Shards {
    /// How many masters.
    fn count(&self) -> usize;
    /// The master serving `channel`.
    fn shard_of(&self, channel: &str) -> Option<usize>;
    /// Master `shard`'s tables.
    fn tables(&self, shard: usize) -> &Tables;
    /// A connection to master `shard`.
    fn con(&mut self, shard: usize) -> Result<&mut redis::Connection, HubError>;
    /// The read on master `shard`'s connection failed: not to be used again.
    fn failed(&mut self, shard: usize);
}

/// What `query` finds in Redis now.
pub(super) fn query(
    shards: &mut dyn Shards,
    state: &redis::Script,
    members: &redis::Script,
    settings: &HubSettings,
    query: &Query,
) -> Result<Found, HubError> {
    let now = unix_ms();
    // Read on the master serving `name`; a failed read's connection is
    // not used again (a late answer must not be read as the next one's).
    fn on<T>(
        shards: &mut dyn Shards,
        name: &str,
        read: impl FnOnce(&mut redis::Connection, &Tables) -> Result<T, HubError>,
    ) -> Result<T, HubError> {
        let shard = shards.shard_of(name).ok_or(super::UNKNOWN_SHARD)?;
        let tables = shards.tables(shard).clone();
        let found = read(shards.con(shard)?, &tables);
        if matches!(found, Err(HubError::Unavailable(_))) {
            shards.failed(shard);
        }
        found
    }
    match query {
        Query::Presence(name) => on(shards, name, |con, _| {
            super::presence::members(con, members, name).map(Found::Presence)
        }),
        Query::PresenceStats(name) => on(shards, name, |con, _| {
            let members = super::presence::members(con, members, name)?;
            Ok(Found::PresenceStats(PresenceStats::of(members.iter())))
        }),
        Query::Channel(name) => on(shards, name, |con, tables| {
            let until: Option<u64> = redis::cmd("ZSCORE")
                .arg(&tables.channels)
                .arg(&**name)
                .query(con)
                .map_err(|e| hub_error("state of", name, &e))?;
            if until.is_none_or(|until| until <= now) {
                return Ok(Found::Channel(None));
            }
            let found = channel_state(con, state, settings, name, now)?;
            Ok(Found::Channel(Some(found).filter(exists)))
        }),
        Query::Channels { pattern, after, limit } => {
            // Every master's table: bounded by `max_channels` each, which
            // the table holds over every node.
            let mut names: Vec<String> = Vec::new();
            for shard in 0..shards.count() {
                let tables = shards.tables(shard).clone();
                let listed: Result<Vec<String>, HubError> = redis::cmd("ZRANGEBYSCORE")
                    .arg(&tables.channels)
                    .arg(format!("({now}"))
                    .arg("+inf")
                    .query(shards.con(shard)?)
                    .map_err(|e| hub_error("list of", "channels", &e));
                match listed {
                    Ok(listed) => names.extend(listed),
                    Err(e) => {
                        shards.failed(shard);
                        return Err(e);
                    }
                }
            }
            let mut names: Vec<String> = names
                .into_iter()
                .filter(|n| after.as_deref().is_none_or(|a| n.as_str() > a) && glob_match(pattern, n))
                .collect();
            names.sort_unstable();
            names.dedup();
            let mut channels = Vec::with_capacity((*limit).min(names.len()));
            let mut more = false;
            for name in &names {
                // Listed while its lease lasts, though it may hold nothing
                // any more: what the local hub would list, no more.
                let found = on(shards, name, |con, _| channel_state(con, state, settings, name, now))?;
                if !exists(&found) {
                    continue;
                }
                if channels.len() == *limit {
                    more = true;
                    break;
                }
                channels.push(found);
            }
            Ok(Found::Channels { channels, more })
        }
    }
}

/// A channel exists while it has history or subscribers.
fn exists(state: &ChannelState) -> bool {
    state.history > 0 || state.subscribers > 0
}

fn channel_state(
    con: &mut redis::Connection,
    state: &redis::Script,
    settings: &HubSettings,
    name: &str,
    now: u64,
) -> Result<ChannelState, HubError> {
    let (meta, stream, _) = keys(name);
    let oldest = now.saturating_sub(settings.history_ttl.as_millis() as u64);
    type State = (String, String, u64, String, u64, u64, u64, u64);
    let (id, epoch, kept, first, subscribers, ws, sse, poll): State = state
        .key(meta)
        .key(stream)
        .key(counts_key(name))
        .arg(now)
        .arg(oldest)
        .invoke(con)
        .map_err(|e| hub_error("state of", name, &e))?;
    Ok(ChannelState {
        name: name.to_owned(),
        subscribers: subscribers as usize,
        by_via: [ws, sse, poll].map(|n| n as usize),
        last_id: id.parse().unwrap_or(0),
        epoch_start: epoch_start(epoch.as_bytes()),
        history: kept as usize,
        first_kept: super::store::entry_id(&first),
    })
}
