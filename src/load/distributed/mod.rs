//! One run spread over agents on several hosts, coordinated through Redis
//! (`--coordinator redis://HOST:PORT`): Redis is where the plan is posted
//! and the results collected, so that no cluster protocol of our own is
//! needed and any host that reaches Redis can take part.
//!
//! ```text
//!  coordinator: wsreactor load --coordinator URL --agents N ...   agent × N: wsreactor load agent --coordinator URL
//!   RPUSH jobs           N jobs: argv, slice, run id, expiry ───►  BLPOP jobs: one each
//!   LPOP  {run}:joined   ◄── its name, its clock against TIME ───  RPUSH {run}:joined
//!                                                                  ramps its slice; its window is held
//!   LPOP  {run}:ready    ◄── connections opened ─────────────────  RPUSH {run}:ready
//!   SET   {run}:start    Redis time + 1 s ───────────────────────►  GET: every window starts then
//!   publisher through the window (subscribe mode)
//!   SET   {run}:accepted messages accepted ──────────────────────►  GET: the drain waits for them
//!   LPOP  {run}:results  ◄── counters, orders, V2 histograms ─────  RPUSH {run}:results
//!   merge; reconcile with the publisher; one report
//! ```
//!
//! Every key is under `wsreactor:load:` and expires an hour after its last
//! write; a job carries its expiry (in Redis's clock), so that an agent
//! started later never runs a job its coordinator gave up on.
//!
//! Clocks: each side measures its offset from the Redis server's `TIME`
//! over the round trip with the least delay of several (the offset's error
//! is at most half that round trip), and the window's start is posted in
//! Redis's clock: each agent starts its window, and dates the publishes'
//! due times, at the same instant to within the two errors. The report
//! states each agent's offset from the coordinator and its bound.
//!
//! Whoever can write to the Redis can direct the agents' load: give them a
//! Redis of their own, with a password (`redis://:PASSWORD@HOST:PORT`).
//!
//! - `coordinator`: the run's side that posts and collects.
//! - `agent`: `wsreactor load agent`, the side that takes a job and runs it.
//! - `results`: one agent's figures on the wire: counters, orders and the
//!   histograms in HdrHistogram's V2 serialization.

pub mod agent;
pub mod coordinator;
mod results;

use redis::{Commands, Connection, RedisResult};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every key's prefix.
const PREFIX: &str = "wsreactor:load:";
/// How long a key outlives its last write.
const KEY_TTL_S: i64 = 3600;
/// Between the coordinator posting the window's start and the start: time
/// for every agent's loop (a turn every 50 ms) to read it.
const START_DELAY: Duration = Duration::from_secs(1);
/// Redis round trips a clock measure takes, keeping the quickest.
const CLOCK_SAMPLES: usize = 8;
/// A connection to Redis waits this long for a connect or an answer.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// The list the jobs are posted to.
fn jobs_key() -> String {
    format!("{PREFIX}jobs")
}

/// A key of run `run`.
fn run_key(run: &str, what: &str) -> String {
    format!("{PREFIX}run:{run}:{what}")
}

/// One of our messages as JSON (they always serialize).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("our messages serialize")
}

/// Open a connection to Redis at `url`, with time-outs.
fn connect(url: &str) -> RedisResult<Connection> {
    let client = redis::Client::open(url)?;
    let con = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    con.set_read_timeout(Some(REDIS_TIMEOUT))?;
    con.set_write_timeout(Some(REDIS_TIMEOUT))?;
    Ok(con)
}

/// Append `value` to the list `key` and keep the key an hour.
fn push(con: &mut Connection, key: &str, value: &str) -> RedisResult<()> {
    redis::pipe()
        .rpush(key, value)
        .ignore()
        .expire(key, KEY_TTL_S)
        .ignore()
        .query(con)
}

/// Set `key` to `value` for an hour.
fn set(con: &mut Connection, key: &str, value: &str) -> RedisResult<()> {
    con.set_ex(key, value, KEY_TTL_S as u64)
}

/// This process's clock against the Redis server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Redis's clock minus ours, µs.
    pub offset_us: i64,
    /// The round trip the offset was measured over, µs: the offset is
    /// right to within half of it.
    pub rtt_us: u64,
}

/// Microseconds since the Unix epoch by our clock.
fn unix_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

impl Clock {
    /// Measure it: `TIME` several times, keeping the quickest round trip.
    pub fn measure(con: &mut Connection) -> RedisResult<Clock> {
        let mut best: Option<Clock> = None;
        for _ in 0..CLOCK_SAMPLES {
            let sent = SystemTime::now();
            let (secs, micros): (i64, i64) = redis::cmd("TIME").query(con)?;
            let came = SystemTime::now();
            let (sent, came) = (unix_us(sent), unix_us(came));
            let sample = Clock::from_sample(sent, secs * 1_000_000 + micros, came);
            if best.is_none_or(|b| sample.rtt_us < b.rtt_us) {
                best = Some(sample);
            }
        }
        Ok(best.expect("CLOCK_SAMPLES is above 0"))
    }

    /// One round trip: sent at `sent`, Redis read its clock as `redis`,
    /// the answer came at `came` (µs; ours, Redis's, ours). Redis read its
    /// clock somewhere in between: the middle is the best guess.
    pub fn from_sample(sent: i64, redis: i64, came: i64) -> Clock {
        let rtt = (came - sent).max(0);
        Clock {
            offset_us: redis - (sent + rtt / 2),
            rtt_us: rtt as u64,
        }
    }

    /// Now, in Redis's clock (µs since the epoch).
    fn now_redis_us(&self) -> i64 {
        unix_us(SystemTime::now()) + self.offset_us
    }

    /// The instant of `redis_us` (Redis's clock) in ours, as an [`Instant`]
    /// (at most a day away: a time from Redis is a claim).
    fn instant_of(&self, redis_us: i64) -> Instant {
        const DAY_US: i64 = 86_400_000_000;
        let ahead = redis_us.saturating_sub(self.now_redis_us()).clamp(-DAY_US, DAY_US);
        let now = Instant::now();
        let d = Duration::from_micros(ahead.unsigned_abs());
        if ahead >= 0 {
            now + d
        } else {
            now.checked_sub(d).unwrap_or(now)
        }
    }
}

/// A run's part, posted by the coordinator for one agent to take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    /// The run's id.
    run: String,
    /// This part's place, 0 to `agents` - 1.
    index: usize,
    /// Agents in the run.
    agents: usize,
    /// Connections of this part.
    connections: usize,
    /// The coordinator's `load` flags, as given.
    args: Vec<String>,
    /// Past this (Redis's clock, µs), nobody waits for the part: not taken.
    expires_us: i64,
    /// Past this (Redis's clock, µs) without a window start, the agent
    /// gives its part up: the last agent may join at `expires_us` and
    /// then ramp.
    start_by_us: i64,
}

/// An agent took a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Joined {
    index: usize,
    name: String,
    clock: Clock,
}

/// An agent's ramp is done (or its part could not start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ready {
    index: usize,
    opened: usize,
    error: Option<String>,
}
