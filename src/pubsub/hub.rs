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
use super::message::Change;
use super::message::Message;
use super::presence::{EventRate, Member, Presence, PresenceStats};
use super::{
    Address, Answer, Broker, ChannelState, Found, Gap, HubError, HubSettings, Numbering, PresenceEvents, Query,
    Receipt, Request, Snapshot, Subscription, Via,
};
use crate::auth::glob_match;
use crate::protocol::MessageKind;
use mio::Waker;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
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
    /// A signal ([`Request::Signal`]) for every connection of the worker.
    Signal(Arc<[u8]>),
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
    /// Subscribers per transport ([`Via::ALL`]'s order).
    by_via: [u32; 3],
    /// Publishers' `Idempotency-Key`s and their receipts.
    keys: Seen,
    /// Its members, once one came.
    presence: Option<Box<Members>>,
}

/// A channel's members by client number, and its events this second.
#[derive(Debug, Default)]
struct Members {
    members: BTreeMap<u32, Member>,
    rate: EventRate,
}

impl Channel {
    /// A channel whose last id was `last_id` (0: a new name).
    fn new(name: Arc<str>, workers: usize, last_id: u64) -> Self {
        Channel {
            name,
            next_id: last_id + 1,
            history: VecDeque::new(),
            subscribers: vec![0; workers],
            by_via: [0; 3],
            keys: Seen::default(),
            presence: None,
        }
    }

    /// Hand a presence event to every worker with subscribers, if the
    /// second's events allow; counted either way.
    fn tell(&mut self, change: Change, member: &Member, hub: &LocalHub) {
        let Some(presence) = self.presence.as_mut() else {
            return;
        };
        // Seconds of the wall clock, as the Redis broker counts them: a
        // client that counts events per second sees the same windows.
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !presence.rate.take(second, hub.settings.presence.max_events_per_second) {
            hub.events_dropped.fetch_add(1, Relaxed);
            return;
        }
        hub.events_sent.fetch_add(1, Relaxed);
        let event = Arc::new(Message::presence(
            self.name.clone(),
            change,
            &member.json(),
            Instant::now(),
        ));
        for (worker, &n) in self.subscribers.iter().enumerate() {
            if n > 0 {
                hub.inboxes[worker].push(event.clone());
            }
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
    /// The last client number given to a member.
    clients: AtomicU32,
    events_sent: AtomicU64,
    events_dropped: AtomicU64,
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
            clients: AtomicU32::new(0),
            events_sent: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
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
        let mut msg = Message::new(c.next_id, c.name.clone(), kind, &payload, now);
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

    /// What `query` finds now: channels that have history or subscribers
    /// (a channel waiting for the sweep to forget it is not listed),
    /// their history trimmed first.
    pub fn query(&self, query: &Query, now: Instant) -> Found {
        let map = self.channels.read().unwrap_or_else(|e| e.into_inner());
        let state = |c: &Mutex<Channel>| {
            let mut c = lock(c);
            c.trim(&self.settings, now);
            let subscribers = c.subscribers.iter().map(|&n| n as usize).sum::<usize>();
            (subscribers > 0 || !c.history.is_empty()).then(|| ChannelState {
                name: c.name.to_string(),
                subscribers,
                by_via: c.by_via.map(|n| n as usize),
                last_id: c.last_id(),
                epoch_start: self.base,
                history: c.history.len(),
                first_kept: c.history.front().map(|m| m.id),
            })
        };
        let members = |name: &str| {
            map.get(name)
                .and_then(|c| lock(c).presence.as_ref().map(|p| p.members.clone()))
        };
        match query {
            Query::Channel(name) => Found::Channel(map.get(&**name).and_then(|c| state(c))),
            Query::Presence(name) => {
                Found::Presence(members(name).map_or_else(Vec::new, |m| m.into_values().collect()))
            }
            Query::PresenceStats(name) => {
                let stats = map.get(&**name).map_or_else(PresenceStats::default, |c| {
                    let c = lock(c);
                    c.presence
                        .as_ref()
                        .map_or_else(PresenceStats::default, |p| PresenceStats::of(p.members.values()))
                });
                Found::PresenceStats(stats)
            }
            Query::Channels { pattern, after, limit } => {
                let mut names: Vec<&Arc<str>> = map
                    .keys()
                    .filter(|n| after.as_deref().is_none_or(|a| &***n > a) && glob_match(pattern, n))
                    .collect();
                names.sort_unstable();
                let mut channels = Vec::with_capacity((*limit).min(names.len()));
                let mut more = false;
                for name in names {
                    let Some(found) = state(&map[name]) else { continue };
                    if channels.len() == *limit {
                        more = true;
                        break;
                    }
                    channels.push(found);
                }
                Found::Channels { channels, more }
            }
        }
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
        self.subscribe_present(channel, worker, since, None, Via::WebSocket, now)
    }

    /// [`subscribe`](Self::subscribe), the subscriber a member of the
    /// channel's presence as `presence` if given (refused, with nothing
    /// done, when the channel has `max_members`).
    pub fn subscribe_present(
        &self,
        channel: &str,
        worker: usize,
        since: Option<u64>,
        presence: Option<Box<Presence>>,
        via: Via,
        now: Instant,
    ) -> Result<(Subscription, Snapshot), HubError> {
        let c = self.channel(channel, true)?.ok_or(HubError::TooManyChannels)?;
        let mut c = lock(&c);
        c.trim(&self.settings, now);
        let mut joined = None;
        let sub = match presence {
            None => Subscription::new(c.name.clone(), worker),
            Some(presence) => {
                let members = c.presence.get_or_insert_with(Default::default);
                if members.members.len() >= self.settings.presence.max_members {
                    return Err(HubError::PresenceFull);
                }
                // Past 2^32 members the numbers wrap: skip 0 and the ones
                // in use (there are fewer of those than max_members).
                let client = loop {
                    let n = self.clients.fetch_add(1, Relaxed).wrapping_add(1);
                    if n != 0 && !members.members.contains_key(&n) {
                        break n;
                    }
                };
                let member = Member {
                    client: client.to_string().into(),
                    presence: *presence,
                };
                members.members.insert(client, member.clone());
                joined = Some(member);
                Subscription::member(c.name.clone(), worker, client)
            }
        };
        c.subscribers[worker] += 1;
        c.by_via[via as usize] += 1;
        let sub = sub.by(via);
        if let Some(member) = joined {
            // The joiner's worker too: the answer is in its inbox before
            // the event, so it hears of itself, as every member does.
            c.tell(Change::Join, &member, self);
        }
        Ok((sub, snapshot(&c, since, self.base)))
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
            Request::Subscribe {
                channel,
                since,
                presence,
                via,
            } => Answer::Subscribed(self.subscribe_present(&channel, from.worker, since, presence, via, now)),
            Request::Query(query) => Answer::Found(Ok(self.query(&query, now))),
            Request::Signal(payload) => {
                for inbox in self.inboxes.iter() {
                    inbox.command(Command::Signal(payload.clone()));
                }
                Answer::Signalled(Ok(()))
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
            let n = &mut c.by_via[subscription.via() as usize];
            *n = n.saturating_sub(1);
            let gone = subscription
                .client()
                .and_then(|client| c.presence.as_mut()?.members.remove(&client));
            if let Some(member) = gone {
                c.tell(Change::Leave, &member, self);
            }
        }
    }

    fn presence_events(&self) -> PresenceEvents {
        PresenceEvents {
            sent: self.events_sent.load(Relaxed),
            dropped: self.events_dropped.load(Relaxed),
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
#[path = "hub_tests.rs"]
mod tests;
