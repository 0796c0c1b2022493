//! One worker: its own `mio::Poll`, SO_REUSEPORT listener, slab of
//! connections, buffer pool and waker. Workers share nothing on the hot path.
//!
//! mio's rules are followed to the letter: sockets are read and written until
//! `WouldBlock` (events are edge-triggered), spurious events are harmless,
//! events for tokens no longer in the slab are ignored, and a socket is
//! deregistered before its slab entry is removed.

use super::buffer::BufferPool;
use super::connection::{Connection, Ctx, Life};
use super::settings::Settings;
use super::stats::WorkerStats;
use super::Shared;
use crate::protocol::http::Status;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The listener's token; connection tokens are slab keys, far below.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// The waker's token (shutdown and, later, cross-worker messages).
pub const WAKER: Token = Token(usize::MAX - 2);

/// After EMFILE/ENFILE, how long to wait before accepting again, unless a
/// connection closes first. Without the pause an edge-triggered listener
/// with a full backlog would be retried in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
    /// Accepting is paused (descriptors exhausted) until this time.
    accept_paused_until: Option<Instant>,
    /// Set once shutdown began: the time by which to be done.
    stop_deadline: Option<Instant>,
}

impl Worker {
    /// A worker owning `poll` (with the waker registered) and `listener`.
    pub fn new(
        id: usize,
        poll: Poll,
        mut listener: TcpListener,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        stats: Arc<WorkerStats>,
    ) -> io::Result<Self> {
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Worker {
            id,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            pool: BufferPool::new(settings.read_buffer_size, settings.buffer_pool_size),
            settings,
            shared,
            stats,
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
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(key) => {
                        // Errors and hang-ups surface through read/write.
                        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                        self.on_event(key, readable, event.is_writable() || event.is_write_closed(), now)
                    }
                }
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

    fn ctx(&mut self, now: Instant) -> (&mut Slab<Connection>, Ctx<'_>) {
        (
            &mut self.conns,
            Ctx {
                pool: &mut self.pool,
                settings: &self.settings,
                stats: &self.stats,
                now,
            },
        )
    }

    fn on_event(&mut self, key: usize, readable: bool, writable: bool, now: Instant) {
        let (conns, mut ctx) = self.ctx(now);
        // A stale token (connection already gone) is ignored.
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        let life = conn.on_ready(readable, writable, &mut ctx);
        self.settle(key, life);
    }

    /// After a step: drop a dead connection, or update its registration.
    fn settle(&mut self, key: usize, life: Life) {
        match life {
            Life::Dead => self.remove(key),
            Life::Alive => {
                let conn = &mut self.conns[key];
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
            let mut conn = if counted {
                Connection::new(stream, now, true)
            } else {
                self.stats.refused.fetch_add(1, Relaxed);
                let (_, mut ctx) = self.ctx(now);
                Connection::refused(stream, Status::SERVICE_UNAVAILABLE, &mut ctx)
            };
            let interest = conn.interest(&self.settings);
            conn.set_registered(interest);
            let entry = self.conns.vacant_entry();
            let key = entry.key();
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
                continue;
            }
            entry.insert(conn);
            self.stats.open.fetch_add(1, Relaxed);
            if !counted {
                // Write the 503 now; the connection then drains and goes.
                self.on_event(key, false, true, now);
            }
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

    /// Run `step` on every connection (timers, shutdown), settling each.
    fn for_each(&mut self, now: Instant, step: fn(&mut Connection, &mut Ctx<'_>) -> Life) {
        // Slab keys are below its capacity; removal during the walk is fine.
        for key in 0..self.conns.capacity() {
            let (conns, mut ctx) = self.ctx(now);
            if let Some(conn) = conns.get_mut(key) {
                let life = step(conn, &mut ctx);
                self.settle(key, life);
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.for_each(now, Connection::on_tick);
    }

    /// Stop accepting, close every WebSocket with 1001, and give them the
    /// close timeout to finish.
    fn begin_shutdown(&mut self, now: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.stop_deadline = Some(now + self.settings.close_timeout);
        self.for_each(now, Connection::on_shutdown);
    }
}
