//! One worker: its own `mio::Poll`, SO_REUSEPORT listener, slab of
//! connections, buffer pool and waker. Workers share nothing on the hot path.
//!
//! mio's rules are followed to the letter: sockets are read and written until
//! `WouldBlock` (events are edge-triggered), spurious events are harmless,
//! events for tokens no longer in the slab are ignored, and a socket is
//! deregistered before its slab entry is removed.

use super::buffer::BufferPool;
use super::connection::{Connection, Ctx, Delivered, Life};
use super::settings::Settings;
use super::stamp::Stamp;
use super::subscribers::Subscribers;
use super::timers::TimerWheel;
use super::Shared;
use crate::protocol::http::{HttpDate, Status};
use crate::pubsub::{Broker, Message};
use crate::stats::WorkerStats;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The listener's token; connection tokens are slab keys, far below.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// The waker's token: shutdown, and messages in the worker's inbox.
pub const WAKER: Token = Token(usize::MAX - 2);

/// After EMFILE/ENFILE, how long to wait before accepting again, unless a
/// connection closes first. Without the pause an edge-triggered listener
/// with a full backlog would be retried in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often worker 0 expires history and forgets idle channels.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A worker thread's state.
pub struct Worker {
    id: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Connection>,
    pool: BufferPool,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    /// Every worker's counters, for `/metrics`.
    all_stats: Arc<[Arc<WorkerStats>]>,
    hub: Arc<dyn Broker>,
    subscribers: Subscribers,
    /// Reused for inbox batches and the subscriber keys of one message.
    batch: Vec<Arc<Message>>,
    keys: Vec<usize>,
    touched: Vec<usize>,
    next_sweep: Instant,
    /// What the connections' timer stamps count from.
    epoch: Instant,
    /// This loop iteration's time as a stamp, made once per iteration.
    stamp: Stamp,
    /// The `Date` of responses, made again when the second changes.
    date: HttpDate,
    /// Which connections have a timer due when ([`super::timers`]).
    timers: TimerWheel,
    /// Reused for the keys a tick finds due.
    due: Vec<usize>,
    /// Accepting is paused (descriptors exhausted) until this time.
    accept_paused_until: Option<Instant>,
    /// Set once shutdown began: the time by which to be done.
    stop_deadline: Option<Instant>,
}

impl Worker {
    /// A worker owning `poll` (with the waker registered) and `listener`;
    /// its counters are `all_stats[id]`.
    pub fn new(
        id: usize,
        poll: Poll,
        mut listener: TcpListener,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        all_stats: Arc<[Arc<WorkerStats>]>,
        hub: Arc<dyn Broker>,
    ) -> io::Result<Self> {
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let settings_tick = settings.tick();
        Ok(Worker {
            id,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            pool: BufferPool::new(settings.read_buffer_size, settings.buffer_pool_size),
            settings,
            shared,
            stats: all_stats[id].clone(),
            all_stats,
            hub,
            subscribers: Subscribers::default(),
            batch: Vec::new(),
            keys: Vec::new(),
            touched: Vec::new(),
            next_sweep: Instant::now() + SWEEP_EVERY,
            epoch: Instant::now(),
            stamp: Stamp::default(),
            date: HttpDate::default(),
            timers: TimerWheel::new(settings_tick, Stamp::default()),
            due: Vec::new(),
            accept_paused_until: None,
            stop_deadline: None,
        })
    }

    /// Run the event loop until shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let tick = self.settings.tick();
        let mut next_tick = Instant::now() + tick;
        log::debug!("worker {} running", self.id);
        loop {
            let now = Instant::now();
            let mut timeout = next_tick.saturating_duration_since(now);
            if let Some(t) = self.accept_paused_until {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.stamp = Stamp::at(self.epoch, now);
            self.refresh_date();
            let mut woken = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => woken = true,
                    Token(key) => {
                        // Errors and hang-ups surface through read/write.
                        let closed = event.is_read_closed() || event.is_error();
                        let readable = event.is_readable() || closed;
                        self.on_event(
                            key,
                            readable,
                            closed,
                            event.is_writable() || event.is_write_closed(),
                            now,
                        )
                    }
                }
            }
            if woken {
                self.take_handoffs(now);
                self.deliver_inbox(now);
            }
            if self.stop_deadline.is_none() && self.shared.shutdown.load(SeqCst) {
                self.begin_shutdown(now);
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            if now >= next_tick {
                self.on_tick(now);
                next_tick = now + tick;
            }
            if let Some(deadline) = self.stop_deadline {
                if self.conns.is_empty() || now >= deadline {
                    log::debug!("worker {} stopped with {} connections left", self.id, self.conns.len());
                    return Ok(());
                }
            }
        }
    }

    fn ctx(&mut self, now: Instant, key: usize) -> (&mut Slab<Connection>, Ctx<'_>) {
        (
            &mut self.conns,
            Ctx {
                pool: &mut self.pool,
                settings: &self.settings,
                stats: &self.stats,
                all_stats: &self.all_stats,
                hub: &*self.hub,
                subscribers: &mut self.subscribers,
                worker: self.id,
                key,
                now,
                stamp: self.stamp,
                date: &self.date,
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
    /// per-transport gauges right, and settle it.
    fn step(&mut self, key: usize, now: Instant, f: impl FnOnce(&mut Connection, &mut Ctx<'_>) -> Life) {
        let (conns, mut ctx) = self.ctx(now, key);
        // A stale token (connection already gone) is ignored.
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        let before = conn.transport();
        let life = f(conn, &mut ctx);
        let after = (life == Life::Alive).then(|| conn.transport());
        ctx.stats.moved(Some(before), after);
        self.settle(key, life);
    }

    fn on_event(&mut self, key: usize, readable: bool, closed: bool, writable: bool, now: Instant) {
        self.step(key, now, |conn, ctx| conn.on_ready(readable, closed, writable, ctx));
    }

    /// Hand every message in the inbox to this worker's subscribers of its
    /// channel, then flush each connection that got something once.
    fn deliver_inbox(&mut self, now: Instant) {
        let mut batch = self.shared.inboxes[self.id].drain(std::mem::take(&mut self.batch));
        for msg in &batch {
            let mut keys = std::mem::take(&mut self.keys);
            self.subscribers.copy_into(&msg.channel, &mut keys);
            for &key in &keys {
                let (conns, mut ctx) = self.ctx(now, key);
                let Some(conn) = conns.get_mut(key) else {
                    continue;
                };
                let before = conn.transport();
                let delivered = conn.deliver(msg, &mut ctx);
                ctx.stats.moved(Some(before), Some(conn.transport()));
                if delivered == Delivered::Queued {
                    self.touched.push(key);
                }
            }
            self.keys = keys;
        }
        batch.clear();
        self.batch = batch;
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
                if want != conn.registered() {
                    if self
                        .poll
                        .registry()
                        .reregister(conn.stream(), Token(key), want)
                        .is_err()
                    {
                        self.remove(key);
                        return;
                    }
                    conn.set_registered(want);
                }
            }
        }
    }

    fn remove(&mut self, key: usize) {
        let mut conn = self.conns.remove(key);
        // Deregister before the slot can be reused (dropping closes the fd).
        let _ = self.poll.registry().deregister(conn.stream());
        conn.release(&mut self.pool);
        if let Some(channel) = conn.channel() {
            self.hub.unsubscribe(channel, self.id);
            self.subscribers.remove(channel, key);
        }
        if conn.counted() {
            self.shared.connections.fetch_sub(1, SeqCst);
        }
        self.stats.open.fetch_sub(1, Relaxed);
        // A descriptor came free: retry a paused accept now.
        if self.accept_paused_until.is_some() {
            self.accept_paused_until = Some(Instant::now());
        }
    }

    /// Accept until WouldBlock.
    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let stream = match listener.accept() {
                Ok((stream, _addr)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    log::warn!("worker {}: accept paused: {e}", self.id);
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends concern one connection only.
                Err(e) => {
                    log::debug!("worker {}: accept: {e}", self.id);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            self.stats.accepted.fetch_add(1, Relaxed);
            let counted = self.take_connection_slot();
            match self.shared.handoff.target(self.id, &self.all_stats) {
                Some(to) if counted => self.shared.handoff.send(to, stream),
                _ => self.admit(stream, counted, now),
            }
        }
    }

    /// Take the connections other workers handed over ([`super::balance`]).
    fn take_handoffs(&mut self, now: Instant) {
        for stream in self.shared.handoff.take(self.id) {
            if self.stop_deadline.is_some() {
                // Stopping: no new connections here either.
                self.shared.connections.fetch_sub(1, SeqCst);
                continue;
            }
            self.admit(stream, true, now);
        }
    }

    /// Register an accepted connection and add it to the slab; `counted`:
    /// it holds a `max_connections` slot, else it is refused with a 503.
    fn admit(&mut self, stream: TcpStream, counted: bool, now: Instant) {
        let key = self.conns.vacant_key();
        let mut conn = if counted {
            Connection::new(stream, self.stamp, true)
        } else {
            self.stats.refused.fetch_add(1, Relaxed);
            let (_, mut ctx) = self.ctx(now, key);
            Connection::refused(stream, Status::SERVICE_UNAVAILABLE, &mut ctx)
        };
        let interest = conn.interest(&self.settings);
        conn.set_registered(interest);
        if self
            .poll
            .registry()
            .register(conn.stream(), Token(key), interest)
            .is_err()
        {
            conn.release(&mut self.pool);
            if counted {
                self.shared.connections.fetch_sub(1, SeqCst);
            }
            return;
        }
        self.stats.moved(None, Some(conn.transport()));
        let deadline = conn.deadline(&self.settings);
        conn.set_scheduled(self.timers.insert(key, deadline));
        self.conns.insert(conn);
        self.stats.open.fetch_add(1, Relaxed);
        if !counted {
            // Write the 503 now; the connection then drains and goes.
            self.on_event(key, false, false, true, now);
        }
    }

    /// Count a new connection against `max_connections` (process-wide);
    /// false if it is over the limit and must be refused.
    fn take_connection_slot(&mut self) -> bool {
        let max = self.settings.max_connections;
        let before = self.shared.connections.fetch_add(1, SeqCst);
        if max != 0 && before >= max {
            self.shared.connections.fetch_sub(1, SeqCst);
            return false;
        }
        true
    }

    /// Run `step` on every connection (the shutdown), settling each;
    /// timers go through the wheel instead ([`Worker::on_tick`]).
    fn for_each(&mut self, now: Instant, step: fn(&mut Connection, &mut Ctx<'_>) -> Life) {
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
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.stop_deadline = Some(now + self.settings.close_timeout);
        self.take_handoffs(now);
        self.for_each(now, Connection::on_shutdown);
    }
}
