//! One worker: its own `mio::Poll`, SO_REUSEPORT listener, slab of
//! connections, buffer pool and waker. Workers share nothing on the hot path.
//!
//! mio's rules are followed to the letter: sockets are read and written until
//! `WouldBlock` (events are edge-triggered), spurious events are harmless,
//! events for tokens no longer in the slab are ignored, and a socket is out
//! of the poll before its slab entry is reused (closed at once, which takes
//! it out without an `epoll_ctl`). The poll, the slab and
//! (de)registration are the [`Driver`] that the load generator's loops use
//! too; what a readiness, a deadline or a message means stays here.

use super::buffer::BufferPool;
use super::connection::Connection;
use super::event_loop::{self, Driver, EventLoop, Ready};
use super::server_info::Server;
use super::session::{Access, Action, Delivered, Env, Life};
use super::settings::Settings;
use super::stamp::Stamp;
use super::subscribers::Subscribers;
use super::timers::TimerWheel;
use super::Shared;
use crate::app::App;
use crate::protocol::http::HttpDate;
use crate::protocol::websocket::ClosedBy;
use crate::pubsub::{Address, Answer, Broker, Command, Mail, Message};
use crate::stats::WorkerStats;
use accept::Deferred;
use mio::net::TcpListener;
use mio::{Interest, Poll, Token};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod accept;

/// The listener's token; connection tokens are slab keys, far below.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// The waker's token: shutdown, and messages in the worker's inbox.
pub const WAKER: Token = Token(usize::MAX - 2);
/// The TLS listener's token, when there is one beside the plain one.
pub const TLS_LISTENER: Token = Token(usize::MAX - 3);

/// How often worker 0 expires history and forgets idle channels.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A worker thread's state.
pub struct Worker {
    id: usize,
    listener: Option<TcpListener>,
    /// `[tls] bind`: a TLS listener beside the plain one.
    tls_listener: Option<TcpListener>,
    /// The poll (with the listeners and the waker) and the connections.
    conns: Driver<Connection>,
    pool: BufferPool,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    /// Every worker's counters, for `/metrics`.
    all_stats: Arc<[Arc<WorkerStats>]>,
    hub: Arc<dyn Broker>,
    /// What runs on the connections.
    app: Arc<App>,
    subscribers: Subscribers,
    /// The whole server, for the pages about it.
    server: Server,
    /// What the session of the current step asks of the broker.
    actions: Vec<Action>,
    /// A request went to the broker: its answer is in the inbox, to be
    /// handed out before the next poll.
    submitted: bool,
    /// The generation of the next connection admitted.
    next_generation: u32,
    /// Reused for inbox batches and the subscriber keys of one message.
    batch: Mail,
    /// Messages drained with this worker's own answers, delivered in the
    /// next iteration (see [`Worker::deliver_inbox`]).
    later: Vec<Arc<Message>>,
    keys: Vec<usize>,
    touched: Vec<usize>,
    next_sweep: Instant,
    /// What the connections' timer stamps count from.
    epoch: Instant,
    /// This loop iteration's time as a stamp, made once per iteration.
    stamp: Stamp,
    /// The same, as an instant (for the per-address limits' buckets).
    now: Instant,
    /// The `Date` of responses, made again when the second changes.
    date: HttpDate,
    /// Which connections have a timer due when ([`super::timers`]).
    timers: TimerWheel,
    /// Reused for the keys a tick finds due.
    due: Vec<usize>,
    /// Accepting is paused (descriptors exhausted) until this time.
    accept_paused_until: Option<Instant>,
    /// How often it was, for the log.
    accept_pauses: u64,
    /// With `[server] access_log`: each connection's current request (its
    /// method and path, when it began, whether it became a WebSocket).
    requests: std::collections::HashMap<usize, (Box<str>, Instant, bool)>,
    /// Set once shutdown began: the time by which to be done.
    stop_deadline: Option<Instant>,
    /// The waker fired this round: take the hand-offs and read the inbox.
    woken: bool,
    /// When the timers are next looked at, and how often.
    next_tick: Instant,
    tick: Duration,
    /// Accepted connections over a per-address limit, oldest first, to be
    /// admitted once earlier closes are read, or refused.
    deferred: VecDeque<Deferred>,
}

impl Worker {
    /// A worker owning `poll` (with the waker registered), its listener and the
    /// TLS listener beside it if any;
    /// its counters are `all_stats[id]`.
    pub fn new(
        id: usize,
        poll: Poll,
        (mut listener, mut tls_listener): (TcpListener, Option<TcpListener>),
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        all_stats: Arc<[Arc<WorkerStats>]>,
        hub: Arc<dyn Broker>,
    ) -> io::Result<Self> {
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        if let Some(l) = tls_listener.as_mut() {
            poll.registry().register(l, TLS_LISTENER, Interest::READABLE)?;
        }
        let settings_tick = settings.tick();
        let app = shared.app.clone();
        let server = Server {
            all_stats: all_stats.clone(),
            broker: hub.clone(),
            shared: shared.clone(),
        };
        Ok(Worker {
            id,
            listener: Some(listener),
            tls_listener,
            conns: Driver::new(poll),
            pool: BufferPool::new(settings.read_buffer_size, settings.buffer_pool_size),
            settings,
            shared,
            stats: all_stats[id].clone(),
            all_stats,
            hub,
            app,
            subscribers: Subscribers::default(),
            server,
            actions: Vec::new(),
            submitted: false,
            next_generation: 0,
            batch: Mail::default(),
            later: Vec::new(),
            keys: Vec::new(),
            touched: Vec::new(),
            next_sweep: Instant::now() + SWEEP_EVERY,
            epoch: Instant::now(),
            stamp: Stamp::default(),
            now: Instant::now(),
            date: HttpDate::default(),
            timers: TimerWheel::new(settings_tick, Stamp::default()),
            due: Vec::new(),
            accept_paused_until: None,
            accept_pauses: 0,
            requests: std::collections::HashMap::new(),
            stop_deadline: None,
            woken: false,
            next_tick: Instant::now(),
            tick: settings_tick,
            deferred: VecDeque::new(),
        })
    }

    /// Run the event loop until shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        log::debug!("worker {} running", self.id);
        self.next_tick = Instant::now() + self.tick;
        event_loop::run(&mut self, 1024)
    }

    fn env(&mut self, me: Address) -> (&mut Driver<Connection>, Env<'_>) {
        (
            &mut self.conns,
            Env {
                pool: &mut self.pool,
                settings: &self.settings,
                stats: &self.stats,
                server: &self.server,
                stamp: self.stamp,
                date: &self.date,
                actions: &mut self.actions,
                app: &self.app,
                me,
                per_ip: self.server.per_ip(),
                instant: self.now,
            },
        )
    }

    /// The wall clock, read once per loop iteration (a vDSO call); the
    /// text is made only when the second changed.
    fn refresh_date(&mut self) {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.date.secs() {
            self.date = HttpDate::from_unix(secs);
        }
    }

    /// Run one step of connection `key` (if it still exists), keep the
    /// per-transport gauges right, carry out what it asked of the broker,
    /// and settle it.
    fn step(&mut self, key: usize, now: Instant, f: impl FnOnce(&mut Connection, &mut Env<'_>) -> Life) {
        // A stale token (connection already gone) is ignored.
        let Some(from) = self.address(key) else {
            return;
        };
        let (conns, mut env) = self.env(from);
        let conn = &mut conns[key];
        let before = conn.kind();
        let life = f(conn, &mut env);
        let after = (life == Life::Alive).then(|| conn.kind());
        env.stats.moved(Some(before), after);
        self.carry_out(from, now);
        self.settle(key, life);
    }

    /// The address of connection `key`, if it exists.
    fn address(&self, key: usize) -> Option<Address> {
        let conn = self.conns.get(key)?;
        Some(Address {
            worker: self.id,
            key,
            generation: conn.generation(),
        })
    }

    /// Is `to` a connection of this worker that still exists?
    fn lives(&self, to: Address) -> bool {
        self.conns.get(to.key).is_some_and(|c| c.generation() == to.generation)
    }

    /// Do what a step's session asked: submit its requests (the answers
    /// come through the inbox) and end the subscriptions it gave back.
    #[inline]
    fn carry_out(&mut self, from: Address, now: Instant) {
        // Most steps (an echo, a delivery) ask nothing of the broker.
        if !self.actions.is_empty() {
            self.carry_out_actions(from, now);
        }
    }

    #[cold]
    fn carry_out_actions(&mut self, from: Address, now: Instant) {
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Submit(request) => {
                    self.submitted = true;
                    self.hub.submit(from, request, now);
                }
                Action::Unsubscribe(sub) => {
                    self.subscribers.remove(sub.channel(), from.key);
                    self.hub.unsubscribe(sub);
                }
                Action::Access(event) => self.access(from.key, event),
            }
        }
        self.actions = actions;
    }

    fn on_event(&mut self, key: usize, ready: Ready, now: Instant) {
        self.step(key, now, |conn, env| conn.on_ready(ready, env));
    }

    /// Hand the inbox's answers to their connections (one gone, or whose
    /// slot holds another by now, has its subscription given back), then
    /// every message to this worker's subscribers of its channel, then
    /// flush each connection that got something once.
    ///
    /// Messages wait for the next iteration (which polls without sleeping)
    /// unless `messages_now`: a publish answered on this worker's own
    /// thread puts its message in the inbox at once, and the publishes that
    /// arrive meanwhile join it, so a burst reaches each subscriber in one
    /// batch and one `sendmsg` (the wake-up a publish once cost did the
    /// same). An answer waits for no one.
    fn deliver_inbox(&mut self, now: Instant, messages_now: bool) {
        let mut batch = self.shared.inboxes[self.id].drain(std::mem::take(&mut self.batch));
        for command in batch.commands.drain(..) {
            match command {
                Command::Send { to, kind, payload } if self.lives(to) => {
                    self.step(to.key, now, |conn, env| conn.on_send(kind, &payload, env));
                }
                Command::Send { .. } => {}
                Command::Signal(payload) => {
                    // Every connection's handler reads it (an open
                    // WebSocket's): rare, and as cheap as a look each.
                    let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
                    for key in keys {
                        self.step(key, now, |conn, env| conn.on_signal(&payload, env));
                    }
                }
                Command::Submit(request) => {
                    // On nobody's behalf: the answer finds no connection.
                    let nobody = Address {
                        worker: self.id,
                        key: usize::MAX,
                        generation: 0,
                    };
                    self.submitted = true;
                    self.hub.submit(nobody, request, now);
                }
            }
        }
        for (to, answer) in batch.answers.drain(..) {
            let live = self.lives(to);
            match answer {
                Answer::Subscribed(Ok((sub, _))) if !live => self.hub.unsubscribe(sub),
                _ if !live => {}
                answer => {
                    if let Answer::Subscribed(Ok((sub, _))) = &answer {
                        self.subscribers.add(sub.channel(), to.key);
                    }
                    self.step(to.key, now, |conn, env| conn.on_answer(answer, env));
                }
            }
        }
        self.later.append(&mut batch.messages);
        self.batch = batch;
        if !messages_now {
            return;
        }
        let later = std::mem::take(&mut self.later);
        // One message (the usual turn): each subscriber's write goes out as
        // soon as it is queued, so that its output queue goes back to the
        // pool before the next subscriber takes one, and a fan-out to N
        // subscribers holds one queue, not N. Several: each connection's
        // share of them is written together once all are queued (corked).
        let at_once = later.len() == 1;
        for msg in &later {
            let mut keys = std::mem::take(&mut self.keys);
            self.subscribers.copy_into(&msg.channel, &mut keys);
            for &key in &keys {
                let Some(from) = self.address(key) else {
                    continue;
                };
                let (conns, mut env) = self.env(from);
                let conn = &mut conns[key];
                let before = conn.kind();
                let delivered = conn.deliver(msg, &mut env);
                env.stats.moved(Some(before), Some(conn.kind()));
                // A slow subscriber gives its subscription back.
                self.carry_out(from, now);
                if delivered == Delivered::Queued {
                    if at_once {
                        self.step(key, now, Connection::after_delivery);
                    } else {
                        self.touched.push(key);
                    }
                }
            }
            self.keys = keys;
        }
        self.later = later;
        self.later.clear();
        let touched = std::mem::take(&mut self.touched);
        for &key in &touched {
            self.step(key, now, Connection::after_delivery);
        }
        self.touched = touched;
        self.touched.clear();
    }

    /// After a step: drop a dead connection, or update its registration
    /// and, if its next deadline came earlier, file it there in the wheel
    /// (a later one waits for the entry it has).
    fn settle(&mut self, key: usize, life: Life) {
        match life {
            Life::Dead => self.remove(key),
            Life::Alive => {
                let conn = &mut self.conns[key];
                let deadline = conn.deadline(&self.settings);
                if deadline.is_before(conn.scheduled()) {
                    conn.set_scheduled(self.timers.insert(key, deadline));
                }
                let want = conn.interest(&self.settings);
                if self.conns.settle(key, want).is_err() {
                    self.remove(key);
                }
            }
        }
    }

    /// The access log (`[server] access_log`): one line per response, and
    /// per WebSocket session at its close.
    #[cold]
    fn access(&mut self, key: usize, event: Access) {
        let now = self.now;
        let peer = self
            .conns
            .get_mut(key)
            .and_then(|c| c.socket().peer_addr().ok())
            .map_or("-".to_owned(), |a| a.to_string());
        match event {
            Access::Request(line) => {
                self.requests.insert(key, (line, now, false));
            }
            Access::Response { status, bytes } => {
                let Some((line, since, upgraded)) = self.requests.get_mut(&key) else {
                    log::info!(target: "wsreactor::access", "{peer} \"-\" {status} - 0ms");
                    return;
                };
                let ms = now.saturating_duration_since(*since).as_millis();
                let bytes = bytes.map_or("-".to_owned(), |b| b.to_string());
                log::info!(target: "wsreactor::access", "{peer} \"{line}\" {status} {bytes} {ms}ms");
                *upgraded = status == 101;
            }
            Access::Closed(by) => self.access_closed(key, &peer, by),
        }
    }

    /// A WebSocket session ended: its line, with who closed it and how.
    fn access_closed(&mut self, key: usize, peer: &str, by: Option<ClosedBy>) {
        if let Some((line, since, true)) = self.requests.remove(&key) {
            let ms = self.now.saturating_duration_since(since).as_millis();
            let how = closed_how(by);
            log::info!(target: "wsreactor::access", "{peer} \"{line}\" websocket closed {how}, {ms}ms");
        }
    }

    fn remove(&mut self, key: usize) {
        if self.settings.access_log {
            let peer = self.conns[key]
                .socket()
                .peer_addr()
                .map_or("-".to_owned(), |a| a.to_string());
            self.access_closed(key, &peer, None);
        }
        // Dropped at the end of this function: closing the descriptor takes
        // it out of the poll, before anything else can take the slot.
        let mut conn = self.conns.remove_to_close(key);
        conn.release(&mut self.pool);
        while let Some(sub) = conn.take_subscription() {
            self.subscribers.remove(sub.channel(), key);
            self.hub.unsubscribe(sub);
        }
        if conn.counted() {
            self.shared.connections.fetch_sub(1, SeqCst);
        }
        self.shared.per_ip.give_back(conn.take_hold());
        self.stats.open.fetch_sub(1, Relaxed);
        // A descriptor came free: retry a paused accept now.
        if self.accept_paused_until.is_some() {
            self.accept_paused_until = Some(Instant::now());
        }
    }

    /// Run `step` on every connection (the shutdown), settling each;
    /// timers go through the wheel instead ([`Worker::on_tick`]).
    fn for_each(&mut self, now: Instant, step: fn(&mut Connection, &mut Env<'_>) -> Life) {
        // Slab keys are below its capacity; removal during the walk is fine.
        for key in 0..self.conns.capacity() {
            self.step(key, now, step);
        }
    }

    /// The connections whose deadline has come check their timers; the
    /// others are not visited (an idle connection costs nothing per tick).
    fn on_tick(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        let conns = &self.conns;
        self.timers
            .expire(self.stamp, |key| conns.get(key).map(Connection::scheduled), &mut due);
        for &key in &due {
            // Its wheel entry is spent: the step's settle files it again.
            if let Some(conn) = self.conns.get_mut(key) {
                conn.set_scheduled(self.stamp.far_after());
            }
            self.step(key, now, Connection::on_tick);
        }
        due.clear();
        self.due = due;
        if self.id == 0 && now >= self.next_sweep {
            self.hub.sweep(now);
            self.next_sweep = now + SWEEP_EVERY;
        }
    }

    /// Stop accepting, close every WebSocket with 1001, and give them the
    /// close timeout to finish.
    fn begin_shutdown(&mut self, now: Instant) {
        for mut listener in [self.listener.take(), self.tls_listener.take()].into_iter().flatten() {
            let _ = self.conns.registry().deregister(&mut listener);
        }
        self.stop_deadline = Some(now + self.settings.close_timeout);
        self.take_handoffs(now);
        // Stopping: the deferred are closed unanswered, as the backlog is.
        let gone = self.deferred.drain(..).count();
        self.shared.connections.fetch_sub(gone, SeqCst);
        self.for_each(now, Connection::on_shutdown);
    }
}

impl EventLoop for Worker {
    fn poll(&mut self) -> &mut Poll {
        self.conns.poll()
    }

    /// The round's time, once for all its events.
    fn woke(&mut self) {
        let now = Instant::now();
        self.now = now;
        self.stamp = Stamp::at(self.epoch, now);
        self.refresh_date();
    }

    fn ready(&mut self, key: usize, ready: Ready) {
        self.on_event(key, ready, self.now);
    }

    fn own(&mut self, token: Token) {
        match token {
            LISTENER => self.accept_from(self.now, false),
            TLS_LISTENER => self.accept_from(self.now, true),
            WAKER => self.woken = true,
            _ => {}
        }
    }

    fn turn(&mut self) -> io::Result<Option<Duration>> {
        let now = self.now;
        let woken = std::mem::take(&mut self.woken);
        if woken {
            self.take_handoffs(now);
        }
        // This round's closes are counted out: decide the deferred.
        if !self.deferred.is_empty() {
            self.recheck_deferred(now);
        }
        if self.stop_deadline.is_none() && self.shared.shutdown.load(SeqCst) {
            self.begin_shutdown(now);
        }
        if self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept(now);
        }
        if now >= self.next_tick {
            self.on_tick(now);
            self.next_tick = now + self.tick;
        }
        // Answers to what this round submitted, and messages; what they
        // make connections submit is answered in the next round.
        let overdue = !self.later.is_empty();
        if woken || self.submitted || overdue {
            self.submitted = false;
            self.deliver_inbox(now, woken || overdue);
        }
        if let Some(deadline) = self.stop_deadline {
            if self.conns.is_empty() || now >= deadline {
                log::debug!("worker {} stopped with {} connections left", self.id, self.conns.len());
                return Ok(None);
            }
        }
        let now = Instant::now();
        let mut timeout = self.next_tick.saturating_duration_since(now);
        // Answers or messages are waiting in the inbox: look at the
        // sockets without sleeping, then hand them out.
        if self.submitted || !self.later.is_empty() {
            timeout = Duration::ZERO;
        }
        if let Some(t) = self.accept_paused_until {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        if let Some(d) = self.deferred.front() {
            timeout = timeout.min(d.until.saturating_duration_since(now));
        }
        Ok(Some(timeout))
    }
}

/// The access log's account of a WebSocket's end: who sent the first close
/// frame and its code. The second frame usually echoes the first's code
/// (RFC 6455 §5.5.1), so the code alone does not say who closed.
fn closed_how(by: Option<ClosedBy>) -> String {
    let code = |c: Option<crate::protocol::CloseCode>| c.map_or("with no code".to_owned(), |c| format!("with {}", c.0));
    match by {
        Some(ClosedBy::Us(c)) => format!("by the server {}", code(c)),
        Some(ClosedBy::Peer(c)) => format!("by the peer {}", code(c)),
        None => "without a close frame (the connection ended)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloseCode;

    #[test]
    fn the_access_log_names_who_closed_first() {
        assert_eq!(
            closed_how(Some(ClosedBy::Us(Some(CloseCode(4001))))),
            "by the server with 4001"
        );
        assert_eq!(
            closed_how(Some(ClosedBy::Peer(Some(CloseCode(1000))))),
            "by the peer with 1000"
        );
        assert_eq!(closed_how(Some(ClosedBy::Peer(None))), "by the peer with no code");
        assert!(closed_how(None).starts_with("without a close frame"));
    }
}
