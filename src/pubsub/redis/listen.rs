//! The node's subscriptions: one Redis subscription per channel with
//! local subscribers, its messages handed to the workers' inboxes, and the
//! catch-up after an outage.

use super::nodes::Protocol;
use super::scripts;
use super::store::{keys, parse_published, snapshot, SIGNALS};
use super::{lock, Backoff, Control, Job, Listeners, Local, LINGER, POLL};
use crate::pubsub::{Command, Message};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Listens to the channels of shard `shard` (all of them, but under
/// Redis Cluster); a lost connection is made again (with backoff) and
/// every channel subscribed again.
pub(super) fn pubsub_thread(
    shard: usize,
    con: (redis::Connection, u64),
    control: mpsc::Receiver<Control>,
    local: Arc<Local>,
) {
    let mut con = Some(con);
    let mut backoff = Backoff::new();
    let mut again = false;
    let health = &local.shards[shard];
    loop {
        let Some((mut c, generation)) = con
            .take()
            .or_else(|| local.target.connect_shard(shard, Protocol::Push).ok())
        else {
            health.pubsub_up.store(false, Relaxed);
            pause(&mut backoff, &control, &local, shard);
            continue;
        };
        if again {
            local.counters.reconnects.fetch_add(1, Relaxed);
        }
        // The channels this master serves now, from the node's own list:
        // after a failover or a slot's move they need not be the ones the
        // last connection listened to.
        let mut topics: HashMap<String, Arc<str>> = lock(&local.channels)
            .keys()
            .filter(|name| local.shard_of(name) == Some(shard))
            .map(|name| (keys(name).2, name.clone()))
            .collect();
        let mut listening = Listening::new(&mut c, local.target.is_cluster());
        let began = Instant::now();
        let outcome = listen(shard, &mut listening, generation, &control, &local, &mut topics, again);
        if began.elapsed() >= STEADY {
            backoff = Backoff::new();
        }
        match outcome {
            Ok(()) => return,
            Err(e) => {
                log::warn!("redis pubsub: {e}; connecting again");
                health.pubsub_up.store(false, Relaxed);
                health.suspect.store(true, Relaxed);
                again = true;
                if began.elapsed() < STEADY {
                    // It failed as soon as it was made (a catch-up that
                    // fails, a subscribe refused): not again at once.
                    pause(&mut backoff, &control, &local, shard);
                }
            }
        }
    }
}

/// A subscription connection that lasted this long was a good one: the
/// next failure is retried at once.
const STEADY: Duration = Duration::from_secs(1);

/// Wait before connecting again: out the backoff, or until news of shard
/// `shard`'s master (a failover found) ends it at once. Subscribes wait
/// for no one meanwhile: they are refused.
fn pause(backoff: &mut Backoff, control: &mpsc::Receiver<Control>, local: &Local, shard: usize) {
    drain_refusing(control);
    let seen = local.target.generation(shard);
    backoff.wait_unless(|| local.target.generation(shard) != seen);
}

/// While there is no connection: subscribe requests fail at once.
pub(super) fn drain_refusing(control: &mpsc::Receiver<Control>) {
    while let Ok(c) = control.try_recv() {
        if let Control::Subscribe(_, ack) = c {
            let _ = ack.send(false);
        }
    }
}

/// A connection in subscribed mode, spoken to with the commands
/// themselves: `SUBSCRIBE`, or under Redis Cluster `SSUBSCRIBE` (sharded
/// pub/sub, which the redis crate's blocking client does not offer), and
/// what comes back read as RESP2 arrays.
struct Listening<'c> {
    con: &'c mut redis::Connection,
    subscribe: &'static str,
    unsubscribe: &'static str,
    /// Subscribes sent and not yet confirmed, by topic: whom to tell.
    acks: HashMap<String, Vec<Option<mpsc::Sender<bool>>>>,
    /// Unsubscribes sent and not yet confirmed, by topic.
    leaving: HashMap<String, u32>,
    /// When each subscribe not yet confirmed was sent, in order: Redis
    /// confirms them in the order they were sent.
    sent: VecDeque<Instant>,
}

/// What a subscribed connection hears.
enum Heard {
    /// A message on `topic`.
    Message(String, Vec<u8>),
    /// Nothing of note (a confirmation, a pong).
    Nothing,
}

impl<'c> Listening<'c> {
    fn new(con: &'c mut redis::Connection, cluster: bool) -> Self {
        let (subscribe, unsubscribe) = if cluster {
            ("SSUBSCRIBE", "SUNSUBSCRIBE")
        } else {
            ("SUBSCRIBE", "UNSUBSCRIBE")
        };
        Listening {
            con,
            subscribe,
            unsubscribe,
            acks: HashMap::new(),
            leaving: HashMap::new(),
            sent: VecDeque::new(),
        }
    }

    fn send(&mut self, command: &str, topic: &str) -> redis::RedisResult<()> {
        let packed = redis::cmd(command).arg(topic).get_packed_command();
        self.con.send_packed_command(&packed)
    }

    /// Listen to `topic` (a shard channel under Redis Cluster); `ack` is
    /// told once Redis confirms it.
    fn listen_to(&mut self, topic: &str, ack: Option<mpsc::Sender<bool>>) -> redis::RedisResult<()> {
        self.send(self.subscribe, topic)?;
        self.sent.push_back(Instant::now());
        self.acks.entry(topic.to_owned()).or_default().push(ack);
        Ok(())
    }

    /// Listen to `topic` with `SUBSCRIBE`, a cluster too (the signals,
    /// which every master passes on).
    fn listen_to_all(&mut self, topic: &str) -> redis::RedisResult<()> {
        self.send("SUBSCRIBE", topic)?;
        self.sent.push_back(Instant::now());
        self.acks.entry(topic.to_owned()).or_default().push(None);
        Ok(())
    }

    /// A subscribe has gone unconfirmed too long: its answer was an error
    /// (a `MOVED`, which the connection does not show, [`Protocol::Push`])
    /// or the connection is deaf.
    fn stuck(&self) -> bool {
        self.sent.front().is_some_and(|t| t.elapsed() >= super::IO_TIMEOUT)
    }

    fn stop(&mut self, topic: &str) -> redis::RedisResult<()> {
        self.send(self.unsubscribe, topic)?;
        *self.leaving.entry(topic.to_owned()).or_default() += 1;
        Ok(())
    }

    /// Every subscribe sent is confirmed.
    fn settled(&self) -> bool {
        self.acks.is_empty()
    }

    /// The next thing heard, within the connection's read timeout (`Err`
    /// with `is_timeout` when nothing came). Everything a subscription
    /// connection hears is a push ([`Protocol::Push`]); anything else is
    /// an error (a `MOVED` answer to a subscribe, say).
    fn hear(&mut self) -> redis::RedisResult<Heard> {
        let (kind, data) = match self.con.recv_response()? {
            redis::Value::Push { kind, data } => (kind, data),
            redis::Value::ServerError(e) => return Err(e.into()),
            other => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "a subscription connection heard what is not a push",
                    format!("{other:?}"),
                )))
            }
        };
        let mut data = data.into_iter();
        let topic = match data.next() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s,
            _ => String::new(),
        };
        match kind {
            redis::PushKind::Message | redis::PushKind::SMessage => {
                let payload = match data.next() {
                    Some(redis::Value::BulkString(b)) => b,
                    _ => Vec::new(),
                };
                Ok(Heard::Message(topic, payload))
            }
            redis::PushKind::Subscribe | redis::PushKind::SSubscribe => {
                if let Some(waiting) = self.acks.get_mut(&topic) {
                    if !waiting.is_empty() {
                        if let Some(ack) = waiting.remove(0) {
                            let _ = ack.send(true);
                        }
                    }
                    if waiting.is_empty() {
                        self.acks.remove(&topic);
                    }
                }
                self.sent.pop_front();
                Ok(Heard::Nothing)
            }
            redis::PushKind::Unsubscribe | redis::PushKind::SUnsubscribe => match self.leaving.get_mut(&topic) {
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        self.leaving.remove(&topic);
                    }
                    Ok(Heard::Nothing)
                }
                // Not asked for: the cluster moved the topic's slot to
                // another master (a failover, a resharding).
                None => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "redis let go of a channel: its slot moved",
                    topic,
                ))),
            },
            _ => Ok(Heard::Nothing),
        }
    }
}

/// Messages kept at most while the subscribes of a new connection are
/// confirmed (they are handed out after the catch-up).
const EARLY_MAX: usize = 100_000;

/// Serve the control queue and hand out messages until the connection
/// fails (`Err`) or the broker is dropped (`Ok`).
fn listen(
    shard: usize,
    sub: &mut Listening<'_>,
    generation: u64,
    control: &mpsc::Receiver<Control>,
    local: &Local,
    topics: &mut HashMap<String, Arc<str>>,
    catch_up: bool,
) -> redis::RedisResult<()> {
    sub.con.set_read_timeout(Some(POLL))?;
    sub.listen_to(&local.shards[shard].probe_topic, None)?;
    if shard == 0 {
        // Signals go to every master of a cluster: one shard listens.
        sub.listen_to_all(SIGNALS)?;
    }
    for topic in topics.keys() {
        sub.listen_to(topic, None)?;
    }
    // What arrives before every subscribe is confirmed waits until the
    // catch-up below is handed out: ids stay in order.
    let mut early = Vec::new();
    while !sub.settled() {
        if sub.stuck() || early.len() >= EARLY_MAX {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the subscribes were not confirmed in time",
            )));
        }
        match sub.hear() {
            Ok(Heard::Message(topic, payload)) => early.push((topic, payload)),
            Ok(Heard::Nothing) => {}
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
    // Listening again after an outage: what Redis stored meanwhile goes to
    // the subscribers first (what also comes live is skipped by their
    // cursors; what the history lost is a gap they are told of).
    if catch_up {
        replay_missed(local, shard, topics)?;
    }
    for (topic, payload) in early {
        heard(local, topics, &topic, &payload);
    }
    local.shards[shard].pubsub_up.store(true, Relaxed);
    let mut swept = Instant::now();
    let mut probe = Probe::new(swept);
    loop {
        if local.target.generation(shard) != generation {
            // The master changed: what this connection hears is no longer
            // published to.
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the redis master changed",
            )));
        }
        probe.due(Instant::now(), local, shard)?;
        if sub.stuck() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "a subscribe was not confirmed (the channel's slot moved?)",
            )));
        }
        if swept.elapsed() >= LINGER / 4 {
            swept = Instant::now();
            for name in idle_channels(local, swept, shard) {
                let (_, _, topic) = keys(&name);
                topics.remove(&topic);
                sub.stop(&topic)?;
            }
        }
        loop {
            match control.try_recv() {
                Ok(Control::Subscribe(name, ack)) => {
                    let (_, _, topic) = keys(&name);
                    sub.listen_to(&topic, Some(ack))?;
                    topics.insert(topic, name);
                }
                Ok(Control::Unsubscribe(name)) => {
                    let (_, _, topic) = keys(&name);
                    topics.remove(&topic);
                    sub.stop(&topic)?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        match sub.hear() {
            Ok(Heard::Message(topic, payload)) => {
                probe.heard(Instant::now());
                heard(local, topics, &topic, &payload);
            }
            Ok(Heard::Nothing) => probe.heard(Instant::now()),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
}

/// A message heard on `topic`: a signal for every worker, a presence event
/// or a message for this node's subscribers of its channel.
fn heard(local: &Local, topics: &HashMap<String, Arc<str>>, topic: &str, payload: &[u8]) {
    if topic == SIGNALS {
        // A signal from some node's API, for every worker of this one.
        let payload: Arc<[u8]> = payload.into();
        for inbox in local.inboxes.iter() {
            inbox.command(Command::Signal(payload.clone()));
        }
        return;
    }
    let Some(name) = topics.get(topic) else {
        return;
    };
    if let Some((change, member)) = super::presence::parse_event(payload) {
        let event = Message::presence(name.clone(), change, member, Instant::now());
        if let Some(l) = lock(&local.channels).get_mut(name) {
            hand_out(local, l, Arc::new(event));
        }
        return;
    }
    let Some((message, epoch)) = parse_published(name, payload) else {
        // Logged at 1, 2, 4, 8... so that a flood cannot flood the log.
        let n = local.counters.dropped.fetch_add(1, Relaxed) + 1;
        if n.is_power_of_two() {
            log::warn!("redis: a message on {topic} that is not wsreactor's, dropped ({n} so far)");
        }
        return;
    };
    local.counters.messages_in.fetch_add(1, Relaxed);
    if let Some(l) = lock(&local.channels).get_mut(name) {
        new_epoch_check(local, l, &message, epoch);
        hand_out(local, l, Arc::new(message));
    }
}

/// A subscription connection that has heard nothing for [`SILENCE`] is
/// asked to prove it is alive: the command connection publishes to this
/// node's own topic, and if that does not come back within
/// [`PROBE_TIMEOUT`], the connection is taken for wedged (a failover can
/// leave one open and deaf: centrifugo#1189) and made again, with the
/// catch-up from the history that follows any reconnect.
struct Probe {
    heard: Instant,
    sent: Option<Instant>,
}

/// Quiet this long, a subscription connection is probed.
const SILENCE: Duration = Duration::from_secs(3);
/// A probe not back after this long: the connection is made again.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Probe {
    fn new(now: Instant) -> Probe {
        Probe { heard: now, sent: None }
    }

    /// Anything from Redis (a probe's echo too) shows the connection works.
    fn heard(&mut self, now: Instant) {
        self.heard = now;
        self.sent = None;
    }

    /// Send a probe when due; `Err` when the last one never came back.
    fn due(&mut self, now: Instant, local: &Local, shard: usize) -> redis::RedisResult<()> {
        match self.sent {
            Some(at) if now.duration_since(at) >= PROBE_TIMEOUT => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the subscription connection did not hear its probe",
            ))),
            None if now.duration_since(self.heard) >= SILENCE => {
                self.sent = Some(now);
                let _ = lock(&local.shards[shard].jobs).send(Job::Probe);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The channels of shard `shard` whose last subscriber left more than
/// [`LINGER`] ago: no longer this node's.
fn idle_channels(local: &Local, now: Instant, shard: usize) -> Vec<Arc<str>> {
    let mut channels = lock(&local.channels);
    let idle: Vec<Arc<str>> = channels
        .values()
        .filter(|l| l.total() == 0 && l.idle_since.is_some_and(|t| now.duration_since(t) >= LINGER))
        .filter(|l| local.shard_of(&l.name) == Some(shard))
        .map(|l| l.name.clone())
        .collect();
    for name in &idle {
        channels.remove(name);
    }
    idle
}

/// A message of an epoch other than the one this node knows: Redis lost
/// the channel and made it again, numbered above every id it gave before.
/// Each subscriber's feed tells its client of the reset, by the message's
/// [`Message::epoch_start`]. Should the new numbering have begun below ids
/// this node delivered anyway (Redis's clock stepped back), it is raised
/// past them (by the command thread) so that later ids meet no cursor.
fn new_epoch_check(local: &Local, l: &mut Listeners, message: &Message, epoch: &[u8]) {
    let epoch = String::from_utf8_lossy(epoch);
    match &l.epoch {
        Some(known) if **known == *epoch => return,
        Some(_) if message.id <= l.delivered => {
            let raise = Job::Raise {
                channel: l.name.clone(),
                epoch: epoch.as_ref().into(),
                floor: l.delivered,
            };
            local.send_for(&l.name, raise);
        }
        _ => {}
    }
    l.epoch = Some(epoch.as_ref().into());
}

/// A message for this node's subscribers of its channel.
pub(super) fn hand_out(local: &Local, l: &mut Listeners, message: Arc<Message>) {
    for (worker, &n) in l.per_worker.iter().enumerate() {
        if n > 0 {
            local.inboxes[worker].push(message.clone());
        }
    }
    l.delivered = l.delivered.max(message.id);
    if l.pending > 0 && message.event.is_none() {
        l.buffer.push(message);
    }
}

/// Hand out, per channel, what the history holds after the last id this
/// node handed out, read together with the channel's epoch: if Redis lost
/// the channel meanwhile, what it holds now is all of the new numbering,
/// and its first message tells each subscriber of the reset, as a live one
/// would.
fn replay_missed(local: &Local, shard: usize, topics: &HashMap<String, Arc<str>>) -> redis::RedisResult<()> {
    let (mut con, _) = local.target.connect_shard(shard, Protocol::Replies)?;
    let read = redis::Script::new(&scripts::for_target(&scripts::read(), local.target.is_cluster()));
    let tables = &local.shards[shard].tables;
    for name in topics.values() {
        let Some(after) = lock(&local.channels).get(name).map(|l| l.delivered) else {
            continue;
        };
        let (missed, epoch) = match snapshot(&mut con, &read, (&local.settings, tables), name, Some(after), None) {
            Ok(read) => read,
            Err(e) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "catching up after a reconnect",
                    e.to_string(),
                )))
            }
        };
        let mut channels = lock(&local.channels);
        let Some(l) = channels.get_mut(name) else {
            continue;
        };
        if l.epoch.as_deref() == Some(epoch.as_str()) && missed.last_id < l.delivered {
            // Redis went back (an older snapshot): this numbering would
            // give again ids this node delivered. A new epoch after them.
            log::warn!(
                "redis lost the last ids of {name} ({} after {}): made a new epoch",
                missed.last_id,
                l.delivered
            );
            let raise = Job::Raise {
                channel: l.name.clone(),
                epoch: epoch.as_str().into(),
                floor: l.delivered,
            };
            local.send_for(&l.name, raise);
        }
        for message in missed.replay {
            if message.id > l.delivered || l.epoch.as_deref() != Some(epoch.as_str()) {
                new_epoch_check(local, l, &message, epoch.as_bytes());
                hand_out(local, l, message);
            }
        }
    }
    Ok(())
}
