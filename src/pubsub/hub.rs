//! The in-process hub: every channel's sequence and history, and the
//! per-worker inboxes through which a publish on one worker reaches
//! subscribers on all of them.
//!
//! Locking: a publish holds its channel's mutex while it numbers the message,
//! appends it to the history and pushes it into the inbox of each worker that
//! has subscribers on the channel, and nothing else; no lock is held while any
//! socket is written. Numbering and inbox pushes under one lock keep each
//! inbox in id order per channel, which is what makes "no gap, no duplicate"
//! hold for a subscriber that joins while messages are in flight (see
//! [`Broker`] and [`Inbox`]).

use super::idempotency::Seen;
use super::message::Message;
use super::{Address, Answer, Broker, Gap, HubError, HubSettings, Numbering, Receipt, Request, Snapshot, Subscription};
use crate::protocol::MessageKind;
use mio::Waker;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// What an inbox holds: answers to this worker's connections, published
/// messages for its subscribers (per channel in id order), and commands
/// from other threads.
#[derive(Debug, Default)]
pub struct Mail {
    /// Broker answers, in the order they were given.
    pub answers: Vec<(Address, Answer)>,
    /// Messages for this worker's subscribers.
    pub messages: Vec<Arc<Message>>,
    /// What other threads asked this worker to do.
    pub commands: Vec<Command>,
}

impl Mail {
    /// Nothing in it.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.messages.is_empty() && self.commands.is_empty()
    }
}

/// Work another thread hands a worker (see [`crate::app::Sender`]).
#[derive(Debug)]
pub enum Command {
    /// Send a message to one of the worker's connections.
    Send {
        /// The connection.
        to: Address,
        /// Text or binary.
        kind: MessageKind,
        /// The message.
        payload: Box<[u8]>,
    },
    /// Submit a request to the broker on nobody's behalf (its answer is
    /// dropped).
    Submit(Request),
}

/// One worker's inbox: answers and messages for its connections, and the
/// waker that interrupts its `poll` when the inbox stops being empty.
///
/// The worker takes answers before messages from each batch it drains. A
/// message published after a subscribe's snapshot is pushed after that
/// subscribe's answer (the broker's contract), so it is in the same batch
/// or a later one, and the new subscriber, in place by then, gets it;
/// messages at or below the snapshot's last id are skipped by its cursor.
#[derive(Debug)]
pub struct Inbox {
    queue: Mutex<Mail>,
    waker: Arc<Waker>,
}

impl Inbox {
    /// An empty inbox that wakes its worker through `waker`.
    pub fn new(waker: Arc<Waker>) -> Self {
        Inbox {
            queue: Mutex::new(Mail::default()),
            waker,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mail> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a published message for this worker's subscribers.
    pub fn push(&self, msg: Arc<Message>) {
        let mut q = self.lock();
        let wake = q.is_empty();
        q.messages.push(msg);
        // One wake per batch: the worker swaps the whole queue out.
        if wake {
            let _ = self.waker.wake();
        }
    }

    /// Queue the answer to a request of connection `to`, from any thread.
    pub fn answer(&self, to: Address, answer: Answer) {
        let mut q = self.lock();
        let wake = q.is_empty();
        q.answers.push((to, answer));
        if wake {
            let _ = self.waker.wake();
        }
    }

    /// [`answer`](Self::answer) without waking: only on the worker's own
    /// thread, inside [`Broker::submit`], as the worker drains its inbox
    /// before it polls again.
    pub fn answer_here(&self, to: Address, answer: Answer) {
        self.lock().answers.push((to, answer));
    }

    /// Queue a command from another thread.
    pub fn command(&self, command: Command) {
        let mut q = self.lock();
        let wake = q.is_empty();
        q.commands.push(command);
        if wake {
            let _ = self.waker.wake();
        }
    }

    /// Take everything queued (in order), leaving `spare` (emptied) in its place.
    pub fn drain(&self, spare: Mail) -> Mail {
        debug_assert!(spare.is_empty());
        std::mem::replace(&mut *self.lock(), spare)
    }
}

#[derive(Debug)]
struct Channel {
    name: Arc<str>,
    next_id: u64,
    history: VecDeque<Arc<Message>>,
    /// Subscribers per worker; a publish goes to the inboxes of those > 0.
    subscribers: Vec<u32>,
    /// Publishers' `Idempotency-Key`s and their receipts.
    keys: Seen,
}

impl Channel {
    /// A channel whose last id was `last_id` (0: a new name).
    fn new(name: Arc<str>, workers: usize, last_id: u64) -> Self {
        Channel {
            name,
            next_id: last_id + 1,
            history: VecDeque::new(),
            subscribers: vec![0; workers],
            keys: Seen::default(),
        }
    }

    fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Drop messages past the size or age limit.
    fn trim(&mut self, settings: &HubSettings, now: Instant) {
        while self.history.len() > settings.history_size {
            self.history.pop_front();
        }
        while self
            .history
            .front()
            .is_some_and(|m| now.duration_since(m.published) > settings.history_ttl)
        {
            self.history.pop_front();
        }
        self.keys.expire(now, settings.idempotency_ttl);
    }

    /// Nothing to keep it for: no history, no subscriber, no key a
    /// publisher may retry with.
    fn idle(&self) -> bool {
        self.history.is_empty() && self.keys.is_empty() && self.subscribers.iter().all(|&n| n == 0)
    }
}

/// The last ids of forgotten channels: within one server's life a
/// channel's ids never repeat, so a client's cursor never names two
/// messages. Bounded in number (`id_memory_channels`, oldest dropped first)
/// and in age (`id_memory`). What leaves the memory raises `floor`, the
/// highest id any dropped name had: a name not remembered (new, or dropped)
/// starts after it, so even a channel forgotten past the memory never hands
/// out an id it gave before, and a client's old cursor on it falls below
/// the channel's first id, which the snapshot tells as a gap.
#[derive(Debug, Default)]
struct Retired {
    /// Name to (last id, the `seq` of its entry in `order`).
    last_ids: HashMap<Arc<str>, (u64, u64)>,
    /// Names in the order they were forgotten: (name, when, seq). An entry
    /// whose name was revived (or forgotten again later, under a newer seq)
    /// is stale and only waits its turn to leave; stale entries count
    /// against the bound too, so `order` and the map never outgrow it.
    order: VecDeque<(Arc<str>, Instant, u64)>,
    seq: u64,
    /// The highest last id of the names dropped from the memory.
    floor: u64,
}

impl Retired {
    fn remember(&mut self, name: Arc<str>, last_id: u64, now: Instant, settings: &HubSettings) {
        if last_id == 0 {
            return;
        }
        while !self.order.is_empty() && self.order.len() >= settings.id_memory_channels {
            self.pop_oldest();
        }
        if settings.id_memory_channels == 0 {
            self.floor = self.floor.max(last_id);
            return;
        }
        self.seq += 1;
        self.last_ids.insert(name.clone(), (last_id, self.seq));
        self.order.push_back((name, now, self.seq));
    }

    /// The id a channel named `name` continues from, taken out of the
    /// memory (the channel lives again): its own last id if remembered,
    /// else the floor (0 until a name was dropped).
    fn revive(&mut self, name: &str) -> u64 {
        self.last_ids.remove(name).map_or(self.floor, |(id, _)| id)
    }

    /// The same, leaving it remembered.
    fn get(&self, name: &str) -> u64 {
        self.last_ids.get(name).map_or(self.floor, |&(id, _)| id)
    }

    /// Forget what is older than `id_memory`.
    fn expire(&mut self, now: Instant, settings: &HubSettings) {
        while self
            .order
            .front()
            .is_some_and(|(_, at, _)| now.duration_since(*at) >= settings.id_memory)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((name, _, seq)) = self.order.pop_front() {
            if let Some(&(last_id, s)) = self.last_ids.get(&name) {
                if s == seq {
                    self.last_ids.remove(&name);
                    self.floor = self.floor.max(last_id);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.last_ids.len()
    }
}

/// The default broker: channels in this process.
#[derive(Debug)]
pub struct LocalHub {
    settings: HubSettings,
    /// Every id this hub gives is above it ([`Numbering`]).
    base: u64,
    channels: RwLock<HashMap<Arc<str>, Arc<Mutex<Channel>>>>,
    /// Lock order: `channels`, then `retired`.
    retired: Mutex<Retired>,
    /// The workers' inboxes, owned by the reactor.
    inboxes: Arc<[Inbox]>,
}

impl LocalHub {
    /// A hub delivering to one inbox per worker, in worker order, whose
    /// ids start where `settings.numbering` says.
    pub fn new(settings: HubSettings, inboxes: Arc<[Inbox]>) -> Self {
        let base = match settings.numbering {
            Numbering::AfterClock => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            Numbering::FromOne => 0,
        };
        LocalHub {
            settings,
            base,
            channels: RwLock::new(HashMap::new()),
            retired: Mutex::new(Retired {
                floor: base,
                ..Retired::default()
            }),
            inboxes,
        }
    }

    /// The channel, created if `create` (and the channel limit allows).
    fn channel(&self, name: &str, create: bool) -> Result<Option<Arc<Mutex<Channel>>>, HubError> {
        if let Some(c) = self.channels.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(Some(c.clone()));
        }
        if !create {
            return Ok(None);
        }
        let mut map = self.channels.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(name) {
            return Ok(Some(c.clone()));
        }
        if map.len() >= self.settings.max_channels {
            return Err(HubError::TooManyChannels);
        }
        let last_id = self.retired().revive(name);
        let name: Arc<str> = name.into();
        let c = Arc::new(Mutex::new(Channel::new(name.clone(), self.inboxes.len(), last_id)));
        map.insert(name, c.clone());
        Ok(Some(c))
    }

    fn retired(&self) -> std::sync::MutexGuard<'_, Retired> {
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgotten channels whose last id is still remembered.
    pub fn remembered(&self) -> usize {
        self.retired().len()
    }
}

fn lock(c: &Mutex<Channel>) -> std::sync::MutexGuard<'_, Channel> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalHub {
    /// Number and store a message and hand it to every subscribed worker.
    pub fn publish(
        &self,
        channel: &str,
        kind: MessageKind,
        payload: Box<[u8]>,
        now: Instant,
    ) -> Result<Receipt, HubError> {
        self.publish_once(channel, kind, payload, None, now)
    }

    /// [`publish`](Self::publish), at most once per `idempotency_key`
    /// while it is remembered: a key seen before gets the first receipt,
    /// marked [`Receipt::duplicate`], and nothing is published.
    pub fn publish_once(
        &self,
        channel: &str,
        kind: MessageKind,
        payload: Box<[u8]>,
        idempotency_key: Option<&str>,
        now: Instant,
    ) -> Result<Receipt, HubError> {
        let c = self.channel(channel, true)?.ok_or(HubError::TooManyChannels)?;
        let mut c = lock(&c);
        let ttl = self.settings.idempotency_ttl;
        if let Some(seen) = idempotency_key.and_then(|k| c.keys.get(k, now, ttl)) {
            return Ok(seen);
        }
        let mut msg = Message::new(c.next_id, c.name.clone(), kind, payload, now);
        msg.epoch_start = self.base;
        let msg = Arc::new(msg);
        c.next_id += 1;
        let mut subscribers = 0;
        for (worker, &n) in c.subscribers.iter().enumerate() {
            if n > 0 {
                subscribers += n as usize;
                self.inboxes[worker].push(msg.clone());
            }
        }
        let id = msg.id;
        if self.settings.history_size > 0 {
            c.history.push_back(msg);
        }
        c.trim(&self.settings, now);
        let receipt = Receipt {
            id,
            subscribers,
            duplicate: false,
        };
        if let Some(key) = idempotency_key {
            c.keys.insert(key, receipt, now, self.settings.idempotency_keys);
        }
        Ok(receipt)
    }

    /// Count a subscriber on `worker` and return its handle and what it
    /// missed after `since` (`None`: only what comes next).
    pub fn subscribe(
        &self,
        channel: &str,
        worker: usize,
        since: Option<u64>,
        now: Instant,
    ) -> Result<(Subscription, Snapshot), HubError> {
        let c = self.channel(channel, true)?.ok_or(HubError::TooManyChannels)?;
        let mut c = lock(&c);
        c.trim(&self.settings, now);
        c.subscribers[worker] += 1;
        Ok((
            Subscription::new(c.name.clone(), worker),
            snapshot(&c, since, self.base),
        ))
    }
}

impl Broker for LocalHub {
    /// Answers at once, on the caller's thread: the subscribe's answer is
    /// queued before the submitting worker can drain any message published
    /// after its snapshot.
    fn submit(&self, from: Address, request: Request, now: Instant) {
        let answer = match request {
            Request::Publish {
                channel,
                kind,
                payload,
                idempotency_key,
            } => Answer::Published(self.publish_once(&channel, kind, payload, idempotency_key.as_deref(), now)),
            Request::Subscribe { channel, since } => {
                Answer::Subscribed(self.subscribe(&channel, from.worker, since, now))
            }
        };
        self.inboxes[from.worker].answer_here(from, answer);
    }

    fn history(&self, channel: &str, since: Option<u64>, now: Instant) -> Result<Snapshot, HubError> {
        let Some(c) = self.channel(channel, false)? else {
            // Not created by looking: as the channel would be, empty.
            let last_id = self.retired().get(channel);
            let c = Channel::new(channel.into(), 0, last_id);
            return Ok(snapshot(&c, since, self.base));
        };
        let mut c = lock(&c);
        c.trim(&self.settings, now);
        Ok(snapshot(&c, since, self.base))
    }

    fn unsubscribe(&self, subscription: Subscription) {
        if let Ok(Some(c)) = self.channel(subscription.channel(), false) {
            let mut c = lock(&c);
            let n = &mut c.subscribers[subscription.worker()];
            *n = n.saturating_sub(1);
        }
    }

    fn sweep(&self, now: Instant) {
        let mut map = self.channels.write().unwrap_or_else(|e| e.into_inner());
        let mut retired = self.retired();
        retired.expire(now, &self.settings);
        map.retain(|name, c| {
            let mut c = lock(c);
            c.trim(&self.settings, now);
            let idle = c.idle();
            if idle {
                retired.remember(name.clone(), c.last_id(), now, &self.settings);
            }
            !idle
        });
    }

    fn channels(&self) -> usize {
        self.channels.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// What a subscriber starting after `since` must be given first. The
/// process's numbering began after `base`: a cursor at or below it is of an
/// earlier process, a reset; one below the first kept id, a gap.
fn snapshot(c: &Channel, since: Option<u64>, base: u64) -> Snapshot {
    let last_id = c.last_id();
    let first_kept = c.history.front().map_or(c.next_id, |m| m.id);
    let (since, gap) = Gap::resume(since, last_id, first_kept, base);
    let skip = c.history.partition_point(|m| m.id <= since);
    Snapshot {
        replay: c.history.iter().skip(skip).cloned().collect(),
        gap,
        last_id,
        epoch_start: base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hub(history: usize, workers: usize) -> (LocalHub, mio::Poll, Arc<[Inbox]>) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let inboxes: Arc<[Inbox]> = (0..workers).map(|_| Inbox::new(waker.clone())).collect();
        let settings = HubSettings {
            history_size: history,
            history_ttl: Duration::from_secs(3600),
            max_channels: 100,
            id_memory: Duration::from_secs(3600),
            id_memory_channels: 100,
            idempotency_ttl: Duration::from_secs(300),
            idempotency_keys: 100,
            numbering: Numbering::FromOne,
        };
        (LocalHub::new(settings, inboxes.clone()), poll, inboxes)
    }

    fn publish(h: &LocalHub, text: &str) -> Receipt {
        h.publish("c", MessageKind::Text, text.as_bytes().into(), Instant::now())
            .unwrap()
    }

    #[test]
    fn ids_start_at_one_and_count_subscribers() {
        let (h, _p, inboxes) = hub(10, 2);
        assert_eq!(
            publish(&h, "a"),
            Receipt {
                id: 1,
                subscribers: 0,
                duplicate: false
            }
        );
        let (a, _) = h.subscribe("c", 1, None, Instant::now()).unwrap();
        let (b, _) = h.subscribe("c", 1, None, Instant::now()).unwrap();
        assert_eq!(
            publish(&h, "b"),
            Receipt {
                id: 2,
                subscribers: 2,
                duplicate: false
            }
        );
        // Only the worker with subscribers gets it, once.
        assert!(inboxes[0].drain(Mail::default()).is_empty());
        let got = inboxes[1].drain(Mail::default()).messages;
        assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
        assert_eq!((a.channel().as_ref(), a.worker()), ("c", 1));
        h.unsubscribe(a);
        h.unsubscribe(b);
        assert_eq!(publish(&h, "c").subscribers, 0);
    }

    #[test]
    fn snapshot_replays_after_since_and_reports_gaps() {
        let (h, _p, _i) = hub(3, 1);
        for i in 0..5 {
            publish(&h, &i.to_string());
        }
        // History holds 3, 4, 5.
        let s = h.history("c", Some(3), Instant::now()).unwrap();
        assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [4, 5]);
        assert_eq!((s.gap, s.last_id), (None, 5));
        let s = h.history("c", Some(0), Instant::now()).unwrap();
        assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(s.gap, Some(Gap::trimmed(1, 2)));
        let s = h.history("c", Some(5), Instant::now()).unwrap();
        assert!(s.replay.is_empty() && s.gap.is_none());
        let s = h.history("c", None, Instant::now()).unwrap();
        assert!(s.replay.is_empty() && s.gap.is_none() && s.last_id == 5);
        // Unknown channel: empty, and not created by looking.
        assert_eq!(h.history("other", Some(0), Instant::now()).unwrap().last_id, 0);
        assert_eq!(h.channels(), 1);
    }

    #[test]
    fn history_expires_by_age_and_idle_channels_are_swept() {
        let (mut h, _p, _i) = hub(10, 1);
        h.settings.history_ttl = Duration::from_millis(50);
        let t0 = Instant::now();
        h.publish("c", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
        let s = h.history("c", Some(0), t0 + Duration::from_millis(100)).unwrap();
        assert!(s.replay.is_empty());
        assert_eq!(s.gap, Some(Gap::trimmed(1, 1)));
        h.sweep(t0 + Duration::from_millis(100));
        assert_eq!(h.channels(), 0);
    }

    #[test]
    fn a_forgotten_channel_keeps_its_last_id_within_bounds() {
        let (mut h, _p, _i) = hub(0, 1);
        h.settings.id_memory_channels = 2;
        h.settings.id_memory = Duration::from_secs(60);
        let t0 = Instant::now();
        for name in ["a", "a", "b", "c"] {
            h.publish(name, MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
            // One sweep each, so they are forgotten in that order.
            h.sweep(t0);
        }
        assert_eq!((h.channels(), h.remembered()), (0, 2));
        // "a" was the oldest and is gone, but its last id (2) is the floor:
        // a cursor on it stays a cursor, and nothing is numbered 1 or 2 again.
        let s = h.history("a", Some(2), t0).unwrap();
        assert_eq!((s.last_id, s.gap), (2, None));
        let r = h.publish("a", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
        assert_eq!(r.id, 3);
        // A cursor from before the floor is a gap, not silence.
        let s = h.history("a", Some(1), t0).unwrap();
        assert_eq!(s.gap, Some(Gap::trimmed(2, 3)));
        // "c" goes on from 1, and is not remembered while it lives.
        assert_eq!(h.history("c", Some(1), t0).unwrap().gap, None);
        let r = h.publish("c", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
        assert_eq!((r.id, h.remembered()), (2, 1));
        // Forgotten again, then the memory's age runs out: the floor holds.
        h.sweep(t0);
        h.sweep(t0 + Duration::from_secs(61));
        assert_eq!(h.remembered(), 0);
        let r = h.publish("b", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
        assert_eq!(r.id, 4);
        // A name never seen starts after the floor too.
        let r = h.publish("new", MessageKind::Text, b"x".as_slice().into(), t0).unwrap();
        assert_eq!(r.id, 4);
    }

    #[test]
    fn the_memory_stays_bounded_when_one_name_churns() {
        let (mut h, _p, _i) = hub(0, 1);
        h.settings.id_memory_channels = 4;
        let t0 = Instant::now();
        for i in 1..=100u64 {
            let r = h
                .publish("churn", MessageKind::Text, b"x".as_slice().into(), t0)
                .unwrap();
            assert_eq!(r.id, i);
            h.sweep(t0);
        }
        let retired = h.retired();
        assert!(retired.order.len() <= 4 && retired.last_ids.len() == 1);
    }

    #[test]
    fn a_cursor_beyond_the_last_id_is_a_reset_gap() {
        let (h, _p, _i) = hub(10, 1);
        publish(&h, "a");
        publish(&h, "b");
        let (sub, s) = h.subscribe("c", 0, Some(7), Instant::now()).unwrap();
        h.unsubscribe(sub);
        assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            s.gap,
            Some(Gap {
                from: 1,
                to: 0,
                reset: true
            })
        );
        assert_eq!(s.last_id, 2);
        // The last id itself is a cursor we gave: nothing to tell.
        let (_, s) = h.subscribe("c", 0, Some(2), Instant::now()).unwrap();
        assert!(s.gap.is_none() && s.replay.is_empty());
        // An unknown channel, a cursor from a previous life.
        let s = h.history("fresh", Some(3), Instant::now()).unwrap();
        assert_eq!(
            s.gap,
            Some(Gap {
                from: 1,
                to: 0,
                reset: true
            })
        );
    }

    #[test]
    fn a_key_publishes_once_and_keeps_an_otherwise_idle_channel() {
        let (mut h, _p, inboxes) = hub(0, 1);
        h.settings.idempotency_ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let (sub, _) = h.subscribe("c", 0, None, t0).unwrap();
        let send = |key, at| h.publish_once("c", MessageKind::Text, b"x".as_slice().into(), key, at);
        let first = send(Some("k"), t0).unwrap();
        assert_eq!((first.id, first.subscribers, first.duplicate), (1, 1, false));
        let again = send(Some("k"), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((again.id, again.subscribers, again.duplicate), (1, 1, true));
        assert_eq!(send(Some("other"), t0).unwrap().id, 2);
        assert_eq!(send(None, t0).unwrap().id, 3);
        let got = inboxes[0].drain(Mail::default()).messages;
        assert_eq!(
            got.iter().map(|m| m.id).collect::<Vec<_>>(),
            [1, 2, 3],
            "the retry published nothing"
        );
        // No history, no subscriber: the keys alone keep the channel.
        h.unsubscribe(sub);
        h.sweep(t0 + Duration::from_secs(2));
        assert_eq!(h.channels(), 1);
        assert!(send(Some("k"), t0 + Duration::from_secs(3)).unwrap().duplicate);
        h.sweep(t0 + Duration::from_secs(61));
        assert_eq!(h.channels(), 0);
    }

    #[test]
    fn a_new_hub_numbers_after_the_clock_and_a_cursor_from_before_it_is_a_reset() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (old, _p, _i) = hub(10, 1);
        let settings = HubSettings {
            numbering: Numbering::AfterClock,
            ..old.settings.clone()
        };
        let now_us = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64
        };
        let before = now_us();
        let h = LocalHub::new(settings, Arc::from([Inbox::new(waker)]));
        let first = h
            .publish("c", MessageKind::Text, b"x".as_slice().into(), Instant::now())
            .unwrap();
        assert!(
            first.id > before && first.id <= now_us() + 1,
            "{} after {before}",
            first.id
        );
        // A client back from an earlier process with cursor 4, below this
        // numbering: told, and given the history.
        let (sub, s) = h.subscribe("c", 0, Some(4), Instant::now()).unwrap();
        h.unsubscribe(sub);
        assert_eq!(s.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);
        assert_eq!(
            s.gap,
            Some(Gap {
                from: first.id,
                to: first.id - 1,
                reset: true
            })
        );
        assert_eq!((s.epoch_start, s.replay[0].epoch_start), (first.id - 1, first.id - 1));
        // Holding nothing is no reset.
        let s = h.history("c", Some(0), Instant::now()).unwrap();
        assert!(s.gap.is_none() && s.replay.len() == 1);
    }

    #[test]
    fn channel_limit_refuses_new_channels() {
        let (mut h, _p, _i) = hub(10, 1);
        h.settings.max_channels = 1;
        publish(&h, "a");
        let err = h.publish("d", MessageKind::Text, b"x".as_slice().into(), Instant::now());
        assert_eq!(err, Err(HubError::TooManyChannels));
        assert!(h.subscribe("d", 0, None, Instant::now()).is_err());
        assert_eq!(publish(&h, "b").id, 2);
    }

    #[test]
    fn submit_answers_through_the_inbox_of_the_asking_worker() {
        let (h, _p, inboxes) = hub(10, 2);
        let from = Address {
            worker: 1,
            key: 7,
            generation: 3,
        };
        let subscribe = Request::Subscribe {
            channel: "c".into(),
            since: Some(0),
        };
        publish(&h, "before");
        h.submit(from, subscribe, Instant::now());
        let publish = Request::Publish {
            channel: "c".into(),
            kind: MessageKind::Text,
            payload: b"after".as_slice().into(),
            idempotency_key: None,
        };
        h.submit(from, publish, Instant::now());
        assert!(inboxes[0].drain(Mail::default()).is_empty());
        let mail = inboxes[1].drain(Mail::default());
        let [(to_sub, Answer::Subscribed(Ok((sub, snapshot)))), (to_pub, Answer::Published(Ok(receipt)))] =
            <[_; 2]>::try_from(mail.answers).unwrap()
        else {
            panic!("a subscribe and a publish answer, in order");
        };
        assert_eq!((to_sub, to_pub), (from, from));
        assert_eq!(snapshot.replay.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
        assert_eq!(snapshot.last_id, 1);
        assert_eq!(
            receipt,
            Receipt {
                id: 2,
                subscribers: 1,
                duplicate: false
            }
        );
        assert_eq!(mail.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [2]);
        h.unsubscribe(sub);
        assert_eq!(self::publish(&h, "gone").subscribers, 0);
    }
}
