//! The server API's reads of channels in Redis ([`Query`]): which exist
//! (`wsr:channels`, the table every node keeps, [`super::scripts`]) and
//! each one's state, read by one script per channel. Nothing is written:
//! looking makes no channel and renews nothing.

use super::store::{counts_key, epoch_start, hub_error, keys, CHANNELS};
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

/// What `query` finds in Redis now.
pub(super) fn query(
    con: &mut redis::Connection,
    state: &redis::Script,
    members: &redis::Script,
    settings: &HubSettings,
    query: &Query,
) -> Result<Found, HubError> {
    let now = unix_ms();
    match query {
        Query::Presence(name) => super::presence::members(con, members, name).map(Found::Presence),
        Query::PresenceStats(name) => {
            let members = super::presence::members(con, members, name)?;
            Ok(Found::PresenceStats(PresenceStats::of(members.iter())))
        }
        Query::Channel(name) => {
            let until: Option<u64> = redis::cmd("ZSCORE")
                .arg(CHANNELS)
                .arg(&**name)
                .query(con)
                .map_err(|e| hub_error("state of", name, &e))?;
            if until.is_none_or(|until| until <= now) {
                return Ok(Found::Channel(None));
            }
            let found = channel_state(con, state, settings, name, now)?;
            Ok(Found::Channel(Some(found).filter(exists)))
        }
        Query::Channels { pattern, after, limit } => {
            // Bounded by `max_channels`, which the table holds over every node.
            let names: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(CHANNELS)
                .arg(format!("({now}"))
                .arg("+inf")
                .query(con)
                .map_err(|e| hub_error("list of", "channels", &e))?;
            let mut names: Vec<String> = names
                .into_iter()
                .filter(|n| after.as_deref().is_none_or(|a| n.as_str() > a) && glob_match(pattern, n))
                .collect();
            names.sort_unstable();
            let mut channels = Vec::with_capacity((*limit).min(names.len()));
            let mut more = false;
            for name in &names {
                // Listed while its lease lasts, though it may hold nothing
                // any more: what the local hub would list, no more.
                let found = channel_state(con, state, settings, name, now)?;
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
