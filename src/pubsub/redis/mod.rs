//! A broker for several nodes: channels live in Redis, and every wsreactor
//! process that names the same Redis shares one id sequence and one
//! history per channel (Centrifugo's Redis engine is the model).
//!
//! ```text
//!  worker ─submit─► jobs (mpsc) ─► command thread ─Lua: HINCRBY id, XADD, PUBLISH─► Redis
//!                                        └─ Answer ─► Inbox of the asking worker (+ Waker)
//!  Redis ─PUBLISH wsr:{c}─► pubsub thread ─► Message ─► Inbox of each worker with subscribers of c
//! ```
//!
//! Redis is one server (`redis://`), a master found through Redis Sentinel
//! (`redis+sentinel://`), or a Redis Cluster (`redis+cluster://`): then
//! each master has a shard of the node's work (a command
//! thread and a pubsub thread of its own), channels go to the master of
//! their slot, and messages out by sharded pub/sub (`SPUBLISH`,
//! `SSUBSCRIBE`), so that a cluster's pub/sub grows with its masters
//! (the `topology` module).
//!
//! Per channel `c`, Redis holds `wsr:{c}:meta` (a hash: the last `id` and
//! the channel's `epoch`, `TOKEN-START`: a random token made with the
//! channel and the id its numbering starts after, from Redis's clock, so
//! that ids never go back even when Redis loses its data), `wsr:{c}:stream`
//! (the history, `XADD` with the id as the entry id, `MAXLEN
//! history_size`), `wsr:{c}:subs` (each node's count of the channel's
//! subscribers) and `wsr:{c}:idem`/`idemx` (publishers' idempotency keys);
//! messages go out on the topic `wsr:{c}`. The `{c}` hash tag keeps one
//! channel's keys in one Redis Cluster slot. A publish is one Lua script,
//! so numbering, history, fan-out and the idempotency key are atomic.
//!
//! A worker never waits for Redis: requests go to the command thread and
//! answers come back through the worker's inbox. The node holds one Redis
//! subscription per channel it has local subscribers for. A subscribe
//! counts the subscriber, makes sure the node listens to the channel,
//! reads the history after the cursor (atomically with the last id), and
//! merges in what arrived live meanwhile, so the new subscriber gets every
//! message once, in order (the contract of [`Broker`]).

mod cluster;
mod commands;
mod connection;
mod listen;
mod nodes;
mod numbering;
mod presence;
mod query;
mod replicas;
mod scripts;
mod sentinel;
mod slots;
mod store;
mod subscribe;
mod topology;
pub mod url;

use nodes::Protocol;

use super::{
    Address, Answer, Broker, BrokerStats, BrokerTopology, HubError, HubSettings, Inbox, Message, PresenceEvents,
    Request, Snapshot, Subscription, Via,
};
use crate::protocol::mask::xorshift64;
use commands::{command_thread, query_thread};
use listen::pubsub_thread;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a node goes on listening to a channel after its last local
/// subscriber left (a page reload, a reconnect) before it lets go.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// How long a subscribe waits for the node's Redis subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// What a request that never reached Redis is refused with (503).
const UNREACHABLE: HubError = HubError::Unavailable("redis is unreachable");

/// What a request for a channel no known master serves is refused with
/// (a Redis Cluster given a master after the node started).
const UNKNOWN_SHARD: HubError = HubError::Unavailable(
    "no redis master this node knows serves the channel's slot: restart the node to use a new one",
);

/// Connection and read timeouts towards Redis: a publish not answered
/// within it is answered `504` (its outcome unknown).
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A command waiting this long for Redis makes the node not ready: well
/// before [`IO_TIMEOUT`], so that `/readyz` says 503 no later than a
/// publish is refused.
const STALL: Duration = Duration::from_secs(1);

/// How long the pubsub thread blocks on a read before it looks at its
/// control queue.
const POLL: Duration = Duration::from_millis(20);

/// Channels in Redis ([`Broker`] for several nodes).
#[derive(Debug)]
pub struct RedisBroker {
    /// Per shard, its command thread's queue.
    jobs: Vec<mpsc::Sender<Job>>,
    /// The server API's reads go on a connection of their own, so that
    /// they never wait behind a flood of subscribes (a crowd joining a
    /// presence channel) on the command connection.
    queries: mpsc::Sender<Job>,
    local: Arc<Local>,
}

/// This node's subscribers, by channel, shared with the pubsub threads.
#[derive(Debug)]
struct Local {
    inboxes: Arc<[Inbox]>,
    channels: Mutex<HashMap<Arc<str>, Listeners>>,
    /// Per master: one, or under Redis Cluster one per master the cluster
    /// had when the node started ([`topology::Target::shards`]).
    shards: Vec<Shard>,
    settings: HubSettings,
    base: Instant,
    /// This node's token: its entry in each channel's subscriber counts.
    node: String,
    /// This node's presence members, by channel and client number: their
    /// JSON, renewed in Redis every third of `[presence] ttl`.
    members: Mutex<HashMap<Arc<str>, HashMap<u32, String>>>,
    /// The last client number given.
    clients: AtomicU32,
    /// For `/metrics`.
    counters: Counters,
    /// The Redis to connect to (found through sentinels or the cluster, if so).
    target: Arc<topology::Target>,
    /// `[pubsub] broker_replicas` and `broker_replicas_timeout`.
    durability: Durability,
}

/// One master's share of the node's work: its channels' commands go to
/// its command thread, their subscriptions to its pubsub thread.
#[derive(Debug)]
struct Shard {
    /// The command thread's queue (also for the pubsub thread's repairs).
    jobs: Mutex<mpsc::Sender<Job>>,
    /// The pubsub thread's queue.
    control: Mutex<mpsc::Sender<Control>>,
    /// The last command reached Redis, and the subscription connection is
    /// up: what `/readyz` reports, with `busy_since`.
    commands_up: AtomicBool,
    pubsub_up: AtomicBool,
    /// The subscription connection failed: the command connection, to the
    /// same Redis, is checked before its next publish.
    suspect: AtomicBool,
    /// When the command in flight was sent, in nanoseconds after `base`
    /// (0: none in flight).
    busy_since: AtomicU64,
    /// Channels whose subscriber count on this node changed since the
    /// command thread last told Redis.
    dirty: Mutex<HashSet<Arc<str>>>,
    /// This node's own topic on this master: published to when the
    /// subscription connection has been silent, to tell a quiet one from a
    /// wedged one.
    probe_topic: String,
    /// The keys of the tables that bound channels ([`scripts`]).
    tables: store::Tables,
}

/// How many replicas must hold a message before its publish is answered
/// 200 (`WAIT`), and how long to wait for them.
#[derive(Debug, Clone, Copy)]
struct Durability {
    replicas: u32,
    timeout: Duration,
}

impl Local {
    /// A command was sent to Redis (`true`) or answered (`false`), on the
    /// command connection of shard `main` (`None`: a connection whose
    /// state `/readyz` does not report, the server API's reads).
    fn busy_if(&self, main: Option<usize>, busy: bool) {
        let Some(shard) = main.and_then(|i| self.shards.get(i)) else {
            return;
        };
        let since = if busy {
            self.base.elapsed().as_nanos() as u64 | 1
        } else {
            0
        };
        shard.busy_since.store(since, Relaxed);
    }

    /// The command connection of shard `main` is up or not.
    fn up_if(&self, main: Option<usize>, up: bool) {
        if let Some(shard) = main.and_then(|i| self.shards.get(i)) {
            shard.commands_up.store(up, Relaxed);
        }
    }

    /// Why the broker cannot carry out requests now, if it cannot (any
    /// master's connections down, or a command of it stalled).
    fn not_ready(&self) -> Option<&'static str> {
        let now = self.base.elapsed().as_nanos() as u64;
        self.shards.iter().find_map(|shard| {
            let since = shard.busy_since.load(Relaxed);
            if since != 0 && now >= since + STALL.as_nanos() as u64 {
                Some("redis does not answer")
            } else if !shard.commands_up.load(Relaxed) {
                Some("redis is unreachable")
            } else if !shard.pubsub_up.load(Relaxed) {
                Some("redis is unreachable (the subscription connection is being made again)")
            } else {
                None
            }
        })
    }

    /// Every connection of every shard is up.
    fn connected(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.commands_up.load(Relaxed) && s.pubsub_up.load(Relaxed))
    }

    /// The shard whose master serves `channel` now (`None` under a
    /// cluster whose master for it the node does not know).
    fn shard_of(&self, channel: &str) -> Option<usize> {
        self.target.shard_of(channel)
    }

    /// Send `job` to the command thread of the shard serving `channel`.
    fn send_for(&self, channel: &str, job: Job) {
        if let Some(shard) = self.shard_of(channel).and_then(|i| self.shards.get(i)) {
            let _ = lock(&shard.jobs).send(job);
        }
    }

    /// The id of this node's member numbered `client`: unique over the
    /// nodes (the node's token before it).
    fn client_id(&self, client: u32) -> String {
        format!("{}-{client}", self.node)
    }

    /// This node's subscribers of `channel` changed in number: the command
    /// thread tells Redis soon (woken if it waits for nothing else).
    fn recount(&self, channel: &Arc<str>) {
        let Some(shard) = self.shard_of(channel).and_then(|i| self.shards.get(i)) else {
            return;
        };
        let mut dirty = lock(&shard.dirty);
        if dirty.is_empty() {
            let _ = lock(&shard.jobs).send(Job::Recount);
        }
        dirty.insert(channel.clone());
    }
}

/// What the broker counts ([`BrokerStats`]).
#[derive(Debug, Default)]
struct Counters {
    reconnects: AtomicU64,
    publishes: AtomicU64,
    publish_ns: AtomicU64,
    publish_errors: AtomicU64,
    messages_in: AtomicU64,
    dropped: AtomicU64,
    events_sent: AtomicU64,
    events_dropped: AtomicU64,
}

/// One channel's subscribers on this node.
#[derive(Debug)]
struct Listeners {
    name: Arc<str>,
    per_worker: Vec<u32>,
    /// The same per transport ([`crate::pubsub::Via::ALL`]'s order).
    by_via: [u32; 3],
    /// Subscribes in flight: live messages are kept for them in `buffer`.
    pending: u32,
    buffer: Vec<Arc<Message>>,
    /// The highest id handed to this node's inboxes: after an outage, the
    /// history after it is what this node's subscribers may have missed.
    delivered: u64,
    /// The channel's epoch as this node knows it: a message of another
    /// epoch means Redis lost the channel and made it again.
    epoch: Option<Box<str>>,
    /// When its last subscriber left: the node keeps listening for
    /// [`LINGER`], so a subscriber that reconnects at once finds it warm.
    idle_since: Option<Instant>,
}

impl Listeners {
    fn total(&self) -> u32 {
        self.per_worker.iter().sum::<u32>() + self.pending
    }

    /// This node's count as Redis keeps it after `count:until:`: its
    /// subscribers per transport, `ws:sse:poll`, the subscribes in flight
    /// counted as `pending` (the total counts them too).
    fn by_via(&self, pending: Via) -> String {
        let mut counts = self.by_via;
        counts[pending as usize] += self.pending;
        let [ws, sse, poll] = counts;
        format!("{ws}:{sse}:{poll}")
    }
}

enum Job {
    Request {
        from: Address,
        request: Request,
    },
    History {
        channel: Box<str>,
        since: Option<u64>,
        reply: mpsc::Sender<Result<Snapshot, HubError>>,
    },
    /// A new epoch of `channel` began below `floor`, the highest id this
    /// node delivered (Redis's clock stepped back): its numbering is to go
    /// on after it.
    Raise {
        channel: Arc<str>,
        epoch: Box<str>,
        floor: u64,
    },
    /// Publish to this node's probe topic.
    Probe,
    /// Take member `client` out of `channel`'s presence.
    Leave {
        channel: Arc<str>,
        client: String,
    },
    /// Tell Redis this node's subscriber counts that changed.
    Recount,
}

enum Control {
    Subscribe(Arc<str>, mpsc::Sender<bool>),
    Unsubscribe(Arc<str>),
}

impl RedisBroker {
    /// Connect to the Redis at `url` and start the broker's threads
    /// (commands, the server API's reads, and the node's subscriptions) for
    /// the workers' `inboxes`.
    ///
    /// A URL without a password takes the one in the environment variable
    /// [`PASSWORD_VAR`] (or in the file `WSREACTOR_REDIS_PASSWORD_FILE`
    /// names), if set, so that it shows in no config file and no
    /// `ps`. Messages name the URL with its password hidden.
    pub fn start(url: &str, settings: HubSettings, inboxes: Arc<[Inbox]>) -> Result<Self, String> {
        RedisBroker::start_with(url, RedisOptions::default(), settings, inboxes)
    }

    /// As [`RedisBroker::start`]; with a `rediss://` URL, the server's
    /// certificate is checked against `ca_pem` (PEM: the authority that
    /// signed it) instead of the system's roots.
    pub fn start_with_ca(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        settings: HubSettings,
        inboxes: Arc<[Inbox]>,
    ) -> Result<Self, String> {
        let options = RedisOptions {
            ca_pem,
            ..RedisOptions::default()
        };
        RedisBroker::start_with(url, options, settings, inboxes)
    }

    /// As [`RedisBroker::start`], with `options`. `url` is `redis://`,
    /// `rediss://` (TLS), or `redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`
    /// (`rediss+sentinel://` with TLS): the master the sentinels name,
    /// followed across failovers.
    pub fn start_with(
        url: &str,
        options: RedisOptions,
        settings: HubSettings,
        inboxes: Arc<[Inbox]>,
    ) -> Result<Self, String> {
        let shown = redacted(url);
        let fail = |e: redis::RedisError| format!("broker {shown}: {e}");
        let target = Arc::new(topology::Target::new(url, options.ca_pem, password_from_env).map_err(fail)?);
        let node = new_epoch();
        // Every connection is made before any thread starts: a Redis that
        // cannot be reached, or refuses the password, stops the node here.
        let mut first = Vec::new();
        for shard in 0..target.shards() {
            let commands = target.connect_shard(shard, Protocol::Replies).map_err(fail)?;
            let pubsub = target.connect_shard(shard, Protocol::Push).map_err(fail)?;
            first.push((commands, pubsub));
        }
        let mut reads = Vec::new();
        for shard in 0..target.shards() {
            reads.push(target.connect_shard(shard, Protocol::Replies).map_err(fail)?);
        }
        log::info!("broker: {}", target.topology());
        topology::Target::watch(&target).map_err(|e| e.to_string())?;
        let mut queues = Vec::new();
        let mut shards = Vec::new();
        for shard in 0..target.shards() {
            let (control_tx, control_rx) = mpsc::channel();
            let (jobs_tx, jobs_rx) = mpsc::channel();
            shards.push(Shard {
                jobs: Mutex::new(jobs_tx.clone()),
                control: Mutex::new(control_tx),
                commands_up: AtomicBool::new(true),
                pubsub_up: AtomicBool::new(true),
                suspect: AtomicBool::new(false),
                busy_since: AtomicU64::new(0),
                dirty: Mutex::new(HashSet::new()),
                probe_topic: target.probe_topic(shard, &new_epoch()),
                tables: target.tables(shard),
            });
            queues.push((jobs_tx, jobs_rx, control_rx));
        }
        let local = Arc::new(Local {
            inboxes,
            channels: Mutex::new(HashMap::new()),
            shards,
            settings,
            base: Instant::now(),
            node,
            members: Mutex::new(HashMap::new()),
            clients: AtomicU32::new(0),
            counters: Counters::default(),
            target,
            durability: Durability {
                replicas: options.replicas,
                timeout: options.replicas_timeout,
            },
        });
        let mut jobs = Vec::new();
        for (shard, ((jobs_tx, jobs_rx, control_rx), (commands, pubsub))) in queues.into_iter().zip(first).enumerate() {
            let worker_local = local.clone();
            std::thread::Builder::new()
                .name(format!("redis-commands-{shard}"))
                .spawn(move || command_thread(shard, commands, jobs_rx, worker_local))
                .map_err(|e| e.to_string())?;
            let listen_local = local.clone();
            std::thread::Builder::new()
                .name(format!("redis-pubsub-{shard}"))
                .spawn(move || pubsub_thread(shard, pubsub, control_rx, listen_local))
                .map_err(|e| e.to_string())?;
            jobs.push(jobs_tx);
        }
        let (queries, queries_rx) = mpsc::channel();
        let reads_local = local.clone();
        std::thread::Builder::new()
            .name("redis-queries".into())
            .spawn(move || query_thread(reads, queries_rx, reads_local))
            .map_err(|e| e.to_string())?;
        Ok(RedisBroker { jobs, queries, local })
    }
}

/// How a [`RedisBroker`] is started besides its URL.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// With TLS: the authority (PEM) the servers' certificates are checked
    /// against, instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// How many replicas must have a message (`WAIT`) before its publish
    /// is answered; 0 (the default): none, as soon as the master has it.
    pub replicas: u32,
    /// How long a publish waits for them (at most a second: the wait
    /// holds the master's command connection); then it is answered 503.
    pub replicas_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            ca_pem: None,
            replicas: 0,
            replicas_timeout: Duration::from_millis(500),
        }
    }
}

/// The environment variable a Redis password may come from.
pub const PASSWORD_VAR: &str = "WSREACTOR_REDIS_PASSWORD";

/// `info` with the password from the environment ([`PASSWORD_VAR`]) if
/// it has none.
fn password_from_env(info: redis::ConnectionInfo) -> redis::RedisResult<redis::ConnectionInfo> {
    if info.redis_settings().password().is_some() {
        return Ok(info);
    }
    let password = crate::config::secret_from_env(PASSWORD_VAR, "pubsub.broker")
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "password", e.to_string())))?;
    match password {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password.value);
            Ok(info.set_redis_settings(settings))
        }
        None => Ok(info),
    }
}

/// `url` with the password in its user information, if any, hidden.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let mut con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    // A server that wants a password (or another one) says so here, at
    // connect, not at the first publish.
    redis::cmd("PING").query::<String>(&mut con)?;
    Ok(con)
}

impl Broker for RedisBroker {
    fn submit(&self, from: Address, request: Request, _now: Instant) {
        let shard = match &request {
            Request::Publish { channel, .. } | Request::Subscribe { channel, .. } => self.local.shard_of(channel),
            // Signals go out on any master (a cluster passes them to all).
            Request::Signal(_) | Request::Query(_) => Some(0),
        };
        let to = match (&request, shard) {
            (Request::Query(_), _) => Some(&self.queries),
            (_, Some(shard)) => self.jobs.get(shard),
            (_, None) => None,
        };
        let Some(to) = to else {
            refuse(&self.local, from, &request);
            return;
        };
        if let Err(mpsc::SendError(Job::Request { from, request })) = to.send(Job::Request { from, request }) {
            // The command thread is gone: nothing can be answered by Redis.
            refuse(&self.local, from, &request);
        }
    }

    fn history(&self, channel: &str, since: Option<u64>, _now: Instant) -> Result<Snapshot, HubError> {
        let (reply, answer) = mpsc::channel();
        let job = Job::History {
            channel: channel.into(),
            since,
            reply,
        };
        let shard = self.local.shard_of(channel).ok_or(UNKNOWN_SHARD)?;
        self.jobs[shard].send(job).map_err(|_| UNREACHABLE)?;
        answer
            .recv_timeout(IO_TIMEOUT * 2)
            .map_err(|_| HubError::Unavailable("redis does not answer"))?
    }

    fn unsubscribe(&self, subscription: Subscription) {
        if let Some(client) = subscription.client() {
            let mut members = lock(&self.local.members);
            if let Some(of_channel) = members.get_mut(subscription.channel()) {
                of_channel.remove(&client);
                if of_channel.is_empty() {
                    members.remove(subscription.channel());
                }
            }
            let leave = Job::Leave {
                channel: subscription.channel().clone(),
                client: self.local.client_id(client),
            };
            self.local.send_for(subscription.channel(), leave);
        }
        let mut channels = lock(&self.local.channels);
        let Some(l) = channels.get_mut(subscription.channel()) else {
            return;
        };
        let n = &mut l.per_worker[subscription.worker()];
        *n = n.saturating_sub(1);
        let n = &mut l.by_via[subscription.via() as usize];
        *n = n.saturating_sub(1);
        self.local.recount(&l.name);
        if l.total() == 0 {
            // The pubsub thread lets go of it after the linger.
            l.idle_since = Some(Instant::now());
        }
    }

    fn sweep(&self, _now: Instant) {
        // Redis expires history and forgets channels (key TTLs).
    }

    fn channels(&self) -> usize {
        // The channels this node listens to; Redis holds the rest.
        lock(&self.local.channels).len()
    }

    fn ready(&self) -> Result<(), &'static str> {
        self.local.not_ready().map_or(Ok(()), Err)
    }

    fn stats(&self) -> Option<BrokerStats> {
        let c = &self.local.counters;
        Some(BrokerStats {
            connected: self.local.connected(),
            reconnects: c.reconnects.load(Relaxed),
            publishes: c.publishes.load(Relaxed),
            publish_seconds: c.publish_ns.load(Relaxed) as f64 / 1e9,
            publish_errors: c.publish_errors.load(Relaxed),
            messages_in: c.messages_in.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
        })
    }

    fn topology(&self) -> Option<BrokerTopology> {
        Some(self.local.target.topology())
    }

    fn presence_events(&self) -> PresenceEvents {
        let c = &self.local.counters;
        PresenceEvents {
            sent: c.events_sent.load(Relaxed),
            dropped: c.events_dropped.load(Relaxed),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answer a request the broker did not carry out: 503.
fn refuse(local: &Local, from: Address, request: &Request) {
    let e = UNREACHABLE;
    let answer = match request {
        Request::Publish { .. } => {
            local.counters.publish_errors.fetch_add(1, Relaxed);
            Answer::Published(Err(e))
        }
        Request::Subscribe { .. } => Answer::Subscribed(Err(e)),
        Request::Query(_) => Answer::Found(Err(e)),
        Request::Signal(_) => Answer::Signalled(Err(e)),
    };
    if let Some(inbox) = local.inboxes.get(from.worker) {
        inbox.answer(from, answer);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A channel's epoch token, made with it: different for every channel
/// Redis makes again after losing it.
fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    static MADE: AtomicU64 = AtomicU64::new(0);
    // The standard library's hasher keys come from the OS's randomness:
    // nodes started together (pid 1 in containers, the same millisecond)
    // still differ.
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut state =
        random ^ unix_ms().rotate_left(20) ^ (u64::from(std::process::id()) << 40) ^ MADE.fetch_add(1, Relaxed) | 1;
    format!("{:016x}", xorshift64(&mut state))
}

/// Waits before connecting again: from 250 ms, doubling up to 10 s, with
/// jitter so that nodes do not come back in step.
struct Backoff {
    next: Duration,
    state: u64,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: Duration::from_millis(250),
            state: unix_ms() | 1,
        }
    }

    /// Wait, or stop waiting as soon as `news` (checked every 50 ms).
    fn wait_unless(&mut self, news: impl Fn() -> bool) {
        let jitter = xorshift64(&mut self.state) % (self.next.as_millis() as u64 / 2 + 1);
        let until = Instant::now() + self.next / 2 + Duration::from_millis(jitter);
        while Instant::now() < until && !news() {
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        self.next = (self.next * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            redacted("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(redacted("rediss://bob:p@ss@h:1/2"), "rediss://bob:***@h:1/2");
        assert_eq!(redacted("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redacted("redis://h/0?x=a@b"), "redis://h/0?x=a@b");
    }
}
