//! The node's subscriptions: one Redis subscription per channel with
//! local subscribers, its messages handed to the workers' inboxes, and the
//! catch-up after an outage.

use super::scripts;
use super::store::{keys, parse_published, snapshot, SIGNALS};
use super::{lock, Backoff, Control, Job, Listeners, Local, LINGER, POLL};
use crate::pubsub::{Command, Message};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Listens to the node's channels; a lost connection is made again (with
/// backoff) and every channel subscribed again.
pub(super) fn pubsub_thread(con: (redis::Connection, u64), control: mpsc::Receiver<Control>, local: Arc<Local>) {
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut con = Some(con);
    let mut backoff = Backoff::new();
    let mut again = false;
    loop {
        let Some((mut c, generation)) = con.take().or_else(|| local.target.connect().ok()) else {
            local.pubsub_up.store(false, Relaxed);
            // Subscribes wait for no one meanwhile: they are refused.
            drain_refusing(&control);
            // A sentinel's news of a new master ends the wait at once.
            let seen = local.target.generation();
            backoff.wait_unless(|| local.target.generation() != seen);
            continue;
        };
        backoff = Backoff::new();
        if again {
            local.counters.reconnects.fetch_add(1, Relaxed);
        }
        match listen(&mut c, generation, &control, &local, &mut topics, again) {
            Ok(()) => return,
            Err(e) => {
                log::warn!("redis pubsub: {e}; connecting again");
                local.pubsub_up.store(false, Relaxed);
                local.suspect.store(true, Relaxed);
                again = true;
            }
        }
    }
}

/// While there is no connection: subscribe requests fail at once.
pub(super) fn drain_refusing(control: &mpsc::Receiver<Control>) {
    while let Ok(c) = control.try_recv() {
        if let Control::Subscribe(_, ack) = c {
            let _ = ack.send(false);
        }
    }
}

/// Serve the control queue and hand out messages until the connection
/// fails (`Err`) or the broker is dropped (`Ok`).
pub(super) fn listen(
    con: &mut redis::Connection,
    generation: u64,
    control: &mpsc::Receiver<Control>,
    local: &Local,
    topics: &mut HashMap<String, Arc<str>>,
    catch_up: bool,
) -> redis::RedisResult<()> {
    let mut pubsub = con.as_pubsub();
    pubsub.set_read_timeout(Some(POLL))?;
    pubsub.subscribe(&local.probe_topic)?;
    pubsub.subscribe(SIGNALS)?;
    for topic in topics.keys() {
        pubsub.subscribe(topic)?;
    }
    // Listening again after an outage: what Redis stored meanwhile goes to
    // the subscribers first (what also comes live is skipped by their
    // cursors; what the history lost is a gap they are told of).
    if catch_up {
        replay_missed(local, topics)?;
    }
    local.pubsub_up.store(true, Relaxed);
    let mut swept = Instant::now();
    let mut probe = Probe::new(swept);
    loop {
        if local.target.generation() != generation {
            // A sentinel announced a new master: what this connection
            // hears is no longer published to.
            return Err(redis::RedisError::from((redis::ErrorKind::Io, "the redis master changed")));
        }
        probe.due(Instant::now(), local)?;
        if swept.elapsed() >= LINGER / 4 {
            swept = Instant::now();
            for name in idle_channels(local, swept) {
                let (_, _, topic) = keys(&name);
                topics.remove(&topic);
                pubsub.unsubscribe(&topic)?;
            }
        }
        loop {
            match control.try_recv() {
                Ok(Control::Subscribe(name, ack)) => {
                    let (_, _, topic) = keys(&name);
                    let result = pubsub.subscribe(&topic);
                    let _ = ack.send(result.is_ok());
                    result?;
                    topics.insert(topic, name);
                }
                Ok(Control::Unsubscribe(name)) => {
                    let (_, _, topic) = keys(&name);
                    topics.remove(&topic);
                    pubsub.unsubscribe(&topic)?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e),
        };
        probe.heard(Instant::now());
        if msg.get_channel_name() == SIGNALS {
            // A signal from some node's API, for every worker of this one.
            if let Ok(payload) = msg.get_payload::<Vec<u8>>() {
                let payload: Arc<[u8]> = payload.into();
                for inbox in local.inboxes.iter() {
                    inbox.command(Command::Signal(payload.clone()));
                }
            }
            continue;
        }
        let Some(name) = topics.get(msg.get_channel_name()) else {
            continue;
        };
        let parsed = msg.get_payload::<Vec<u8>>().ok();
        if let Some((change, member)) = parsed.as_deref().and_then(super::presence::parse_event) {
            let event = Message::presence(name.clone(), change, member, Instant::now());
            if let Some(l) = lock(&local.channels).get_mut(name) {
                hand_out(local, l, Arc::new(event));
            }
            continue;
        }
        let Some((message, epoch)) = parsed.as_deref().and_then(|raw| parse_published(name, raw)) else {
            // Logged at 1, 2, 4, 8... so that a flood cannot flood the log.
            let n = local.counters.dropped.fetch_add(1, Relaxed) + 1;
            if n.is_power_of_two() {
                log::warn!(
                    "redis: a message on {} that is not wsreactor's, dropped ({n} so far)",
                    msg.get_channel_name()
                );
            }
            continue;
        };
        local.counters.messages_in.fetch_add(1, Relaxed);
        if let Some(l) = lock(&local.channels).get_mut(name) {
            new_epoch_check(local, l, &message, epoch);
            hand_out(local, l, Arc::new(message));
        }
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
    fn due(&mut self, now: Instant, local: &Local) -> redis::RedisResult<()> {
        match self.sent {
            Some(at) if now.duration_since(at) >= PROBE_TIMEOUT => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the subscription connection did not hear its probe",
            ))),
            None if now.duration_since(self.heard) >= SILENCE => {
                self.sent = Some(now);
                let _ = lock(&local.jobs).send(Job::Probe);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The channels whose last subscriber left more than [`LINGER`] ago: no
/// longer this node's.
fn idle_channels(local: &Local, now: Instant) -> Vec<Arc<str>> {
    let mut channels = lock(&local.channels);
    let idle: Vec<Arc<str>> = channels
        .values()
        .filter(|l| l.total() == 0 && l.idle_since.is_some_and(|t| now.duration_since(t) >= LINGER))
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
            let _ = lock(&local.jobs).send(raise);
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
pub(super) fn replay_missed(local: &Local, topics: &HashMap<String, Arc<str>>) -> redis::RedisResult<()> {
    let (mut con, _) = local.target.connect()?;
    let read = redis::Script::new(&scripts::read());
    for name in topics.values() {
        let Some(after) = lock(&local.channels).get(name).map(|l| l.delivered) else {
            continue;
        };
        let (missed, epoch) = match snapshot(&mut con, &read, &local.settings, name, Some(after), None) {
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
            let _ = lock(&local.jobs).send(raise);
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
