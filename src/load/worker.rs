//! One load worker thread: its own `mio::Poll`, slab of clients, heap of
//! send times and figures. Workers share only the run's phase ([`Shared`])
//! and their live counters; the figures are merged after they finish.
//!
//! mio's rules as in the server's reactor, kept by the same
//! [`Driver`](crate::reactor::event_loop::Driver): sockets are read and
//! written until `WouldBlock`, stale tokens and spurious events are
//! harmless, and a socket is deregistered before its slab entry is
//! removed. Each client has
//! at most one live entry in the timer heap (`Client::armed`); entries that
//! no longer match are skipped when they come up.
//!
//! A worker goes through four phases: `Ramp` (open its connections at the
//! connect rate, wait until every connection of the run is open or has
//! failed), `Run` (the measurement window: messages flow), `Drain` (wait
//! for the echoes still in flight, at most `--timeout`; in subscribe mode
//! for the publisher to finish and every subscriber to have every accepted
//! message, at most twice `--timeout`), `Close` (close handshakes, at most
//! the close timeout). Then it drops what is left.
//!
//! In churn mode there is no ramp (the window is set from the start) and
//! each worker starts cycles on its [`Slots`] during `Run`: a new client
//! per cycle, in a new slab entry; when a cycle's client is removed its slot
//! is free again. `Drain` waits for the cycles in progress to finish.

use super::churn::Slots;
use super::client::{Client, Ctx, Life};
use super::stats::{histogram, Live, Stats};
use super::timer::Timer;
use super::{Mode, Plan, Shared};
use crate::reactor::buffer::BufferPool;
use crate::reactor::event_loop::{self, Driver, EventLoop, Ready};
use hdrhistogram::Histogram;
use mio::{Poll, Token};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The timerfd's token; client tokens are slab keys, far below.
const TIMER: Token = Token(usize::MAX - 1);
/// How often phases, the ramp and the stop flag are checked.
const TICK: Duration = Duration::from_millis(10);
/// How often time-outs are checked.
const TIMEOUT_CHECK: Duration = Duration::from_millis(100);
/// How often the progress line's figures are handed over.
const PUBLISH: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
enum Phase {
    Ramp,
    Run,
    Drain { until: Instant },
    Close { until: Instant },
}

/// `--observe`: how long the drain waits at least for messages still on
/// their way before it takes the best subscriber's count as the total.
const OBSERVE_GRACE: Duration = Duration::from_secs(1);

/// A load worker's state.
pub struct Worker {
    id: usize,
    timer: Timer,
    /// The poll and the slab of clients.
    clients: Driver<Client>,
    /// (due, slab key, client index): a min-heap of send times.
    timers: BinaryHeap<Reverse<(Instant, usize, usize)>>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    live: Arc<Live>,
    stats: Stats,
    interval: Histogram<u64>,
    pool: BufferPool,
    rng: u64,
    /// The next client index this worker opens.
    next: usize,
    /// Churn mode: this worker's slots.
    slots: Option<Slots>,
    phase: Phase,
    window: Option<(Instant, Instant)>,
    /// When phases, the ramp and the stop flag are next checked.
    next_tick: Instant,
    /// When time-outs are next checked.
    next_check: Instant,
    /// When the progress line's figures are next handed over.
    next_publish: Instant,
}

impl Worker {
    /// Worker `id` of the run.
    pub fn new(id: usize, plan: Arc<Plan>, shared: Arc<Shared>, live: Arc<Live>, seed: u64) -> io::Result<Self> {
        let poll = Poll::new()?;
        let timer = Timer::new(poll.registry(), TIMER)?;
        let slots = (plan.mode == Mode::Churn).then(|| Slots::new(id, plan.threads, plan.connections, Instant::now()));
        Ok(Worker {
            id,
            timer,
            clients: Driver::new(poll),
            timers: BinaryHeap::new(),
            pool: BufferPool::new(plan.buffer_size, 256),
            plan,
            shared,
            live,
            stats: Stats::default(),
            interval: histogram(),
            rng: seed,
            next: id,
            slots,
            phase: Phase::Ramp,
            window: None,
            next_tick: Instant::now(),
            next_check: Instant::now(),
            next_publish: Instant::now(),
        })
    }

    /// Run all phases; return this worker's figures.
    pub fn run(mut self) -> io::Result<Stats> {
        let now = Instant::now();
        self.next_tick = now;
        self.next_check = now + TIMEOUT_CHECK;
        self.next_publish = now + PUBLISH;
        event_loop::run(&mut self, 1024)?;
        self.finish();
        Ok(self.stats)
    }

    /// Move through the phases; true when the worker is done.
    fn advance(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Ramp => {
                if let Some(window) = self.shared.window() {
                    self.window = Some(window);
                    self.phase = Phase::Run;
                    // Every open client gets its first send time.
                    self.for_each(now, |_, _| Life::Alive);
                }
            }
            Phase::Run => {
                // A stop (Ctrl-C) may have moved the end closer.
                self.window = self.shared.window();
                if let Some((_, end)) = self.window.filter(|&(_, end)| now >= end) {
                    // A cycle due before the end starts even if this worker
                    // woke after it (a busy machine): it is charged from its
                    // due time, not dropped as never started.
                    if self.slots.is_some() {
                        self.start_cycles(now);
                    }
                    // The publisher may wait `timeout` for its last answers.
                    let drain = match self.plan.mode {
                        Mode::Subscribe => 2 * self.plan.timeout,
                        Mode::Echo | Mode::Connect | Mode::Churn => self.plan.timeout,
                    };
                    self.phase = Phase::Drain { until: end + drain };
                }
            }
            Phase::Drain { until } => {
                let drained = match self.plan.mode {
                    Mode::Subscribe if self.plan.publish.as_ref().is_some_and(|p| p.observe) => {
                        // No publisher here to say what was accepted: done
                        // once every subscriber has what the best one has,
                        // after a grace for what is still on its way.
                        let best = self.clients.iter().map(|(_, c)| c.received_unique()).max();
                        let all = self.shared.seen(best.unwrap_or(0));
                        let drain = 2 * self.plan.timeout;
                        now + drain >= until + OBSERVE_GRACE && self.clients.iter().all(|(_, c)| c.caught_up(all))
                    }
                    Mode::Subscribe => self
                        .shared
                        .accepted()
                        .is_some_and(|n| self.clients.iter().all(|(_, c)| c.caught_up(n))),
                    Mode::Echo | Mode::Connect => self.clients.iter().all(|(_, c)| c.in_flight() == 0),
                    // The cycles in progress finish (or time out).
                    Mode::Churn => self.clients.is_empty(),
                };
                if now >= until || drained {
                    self.phase = Phase::Close {
                        until: now + self.plan.close_timeout,
                    };
                    self.for_each(now, Client::begin_close);
                }
            }
            Phase::Close { until } => return self.clients.is_empty() || now >= until,
        }
        false
    }

    /// Ramp: open the connections that are due.
    fn open_due(&mut self, now: Instant) {
        let plan = self.plan.clone();
        while self.next < plan.connections && plan.connect.due(self.next) <= now {
            let index = self.next;
            self.next += plan.threads;
            self.stats.attempted += 1;
            let source = plan.source_for(index);
            let disruption = plan.scenario.disruption(index);
            let rcvbuf = disruption.as_ref().and_then(|d| d.slow()?.rcvbuf());
            let result = Client::connect(index, plan.target.addr, source, plan.tls.as_ref(), now, rcvbuf)
                .and_then(|c| self.add(c.with_disruption(disruption)));
            if let Err(e) = result {
                self.stats.errors.socket(&e);
                self.shared.resolve(false, now);
            }
        }
    }

    /// Churn mode: start the cycles that are due on the slots that are free.
    /// A connect that fails at once (EADDRNOTAVAIL when the ephemeral ports
    /// are used up, EMFILE...) is counted and rests its slot like any failure.
    fn start_cycles(&mut self, now: Instant) {
        let (plan, Some(window)) = (self.plan.clone(), self.window) else {
            return;
        };
        while let Some(start) = self
            .slots
            .as_mut()
            .and_then(|s| s.take(&plan, window, now, &mut self.stats))
        {
            self.stats.attempted += 1;
            let source = plan.source_for(start.index);
            let result = Client::connect(start.index, plan.target.addr, source, plan.tls.as_ref(), now, None)
                .and_then(|c| self.add(c.with_cycle(start.due)));
            if let Err(e) = result {
                self.stats.errors.socket(&e);
                self.stats.churn.failed += 1;
                if let Some(slots) = self.slots.as_mut() {
                    slots.free(now, true);
                }
            }
        }
    }

    /// Register a new client and give it a slab entry.
    fn add(&mut self, client: Client) -> io::Result<()> {
        let want = client.interest();
        self.clients.insert(client, want).map(drop).map_err(|(_, e)| e)
    }

    /// Run the clients whose send time has come.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((due, key, index))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            if client.index() != index || client.armed != Some(due) {
                continue;
            }
            client.armed = None;
            self.step(key, Instant::now(), Client::on_timer);
        }
    }

    /// Run `f` on client `key`, then settle it.
    fn step(&mut self, key: usize, now: Instant, f: impl FnOnce(&mut Client, &mut Ctx<'_>) -> Life) {
        let mut ctx = Ctx {
            plan: &self.plan,
            stats: &mut self.stats,
            interval: &mut self.interval,
            pool: &mut self.pool,
            rng: &mut self.rng,
            now,
            window: self.window,
        };
        // A stale token (client already gone) is ignored.
        let Some((registry, client)) = self.clients.with_registry(key) else {
            return;
        };
        let was_pending = client.pending();
        let mut life = f(client, &mut ctx);
        if life == Life::Redial {
            // The old socket goes out of the poll before its descriptor closes.
            event_loop::deregister(registry, client);
            let redialled = client.redial(&mut ctx).and_then(|connected| {
                if connected {
                    let want = client.interest();
                    event_loop::register(registry, client, Token(key), want)?;
                }
                Ok(())
            });
            life = match redialled {
                Ok(()) => Life::Alive,
                Err(e) => {
                    ctx.stats.errors.socket(&e);
                    Life::Dead
                }
            };
        }
        if was_pending && (life == Life::Dead || !client.pending()) {
            self.shared.resolve(client.opened(), now);
        }
        match life {
            Life::Dead => self.remove(key, now),
            Life::Alive | Life::Redial => self.settle(key, now),
        }
    }

    /// Update a live client's registration and its entry in the timer heap.
    fn settle(&mut self, key: usize, now: Instant) {
        let client = &self.clients[key];
        let want = client.interest();
        // A client between two connections has no socket in the poll.
        if !client.parked() && self.clients.settle(key, want).is_err() {
            if self.clients[key].pending() {
                self.shared.resolve(false, now);
            }
            self.remove(key, now);
            return;
        }
        let client = &mut self.clients[key];
        let wake = client.wake_at(&self.plan, self.window, now);
        if wake.is_some() && wake != client.armed {
            client.armed = wake;
            self.timers.push(Reverse((wake.unwrap_or(now), key, client.index())));
        }
    }

    fn remove(&mut self, key: usize, now: Instant) {
        // Deregistered before the slot can be reused (dropping closes the fd).
        let mut client = self.clients.remove(key);
        // Churn mode: the cycle is over, its slot free (after a rest if it failed).
        if let (Some(cycle), Some(slots)) = (client.cycle(), self.slots.as_mut()) {
            if !cycle.done() {
                self.stats.churn.failed += 1;
            }
            slots.free(now, !cycle.done());
        }
        client.release(&mut self.pool);
        // A slow reader's deliveries are its own figures, not reconciled.
        if let Some(order) = client.take_order().filter(|_| !client.slow()) {
            self.stats.orders.push(order);
        }
        if let Some(d) = client.take_disruption() {
            self.stats
                .scenario
                .finish(&d, self.window.map(|w| w.0), client.opened());
        }
        if client.opened() {
            self.shared.closed();
        }
    }

    /// Run `step` on every client (phase changes, time-outs).
    fn for_each(&mut self, now: Instant, step: fn(&mut Client, &mut Ctx<'_>) -> Life) {
        // Slab keys are below its capacity; removal during the walk is fine.
        for key in 0..self.clients.capacity() {
            if self.clients.contains(key) {
                self.step(key, now, step);
            }
        }
    }

    fn publish(&mut self) {
        self.live.publish(&self.stats, &mut self.interval);
    }

    /// The close timeout is over: drop what is left. A client still waiting
    /// for the answer to its close frame has timed out on it.
    fn finish(&mut self) {
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            // A slow reader may still be reading its backlog: its own figure.
            if self.clients[key].awaits_close() && !self.clients[key].slow() {
                self.stats.errors.timed_out.close += 1;
            }
            self.remove(key, Instant::now());
        }
        self.publish();
        log::debug!("load worker {} done", self.id);
    }
}

impl EventLoop for Worker {
    fn poll(&mut self) -> &mut Poll {
        self.clients.poll()
    }

    fn ready(&mut self, key: usize, ready: Ready) {
        // Each event its own time: a round trip is measured to its read.
        self.step(key, Instant::now(), |c, ctx| c.on_ready(ready, ctx));
    }

    fn own(&mut self, token: Token) {
        if token == TIMER {
            self.timer.fired();
        }
    }

    fn turn(&mut self) -> io::Result<Option<Duration>> {
        let now = Instant::now();
        if now >= self.next_tick {
            if self.advance(now) {
                return Ok(None);
            }
            self.next_tick = now + TICK;
        }
        match self.phase {
            Phase::Ramp if self.slots.is_none() => self.open_due(now),
            Phase::Run if self.slots.is_some() => self.start_cycles(now),
            _ => {}
        }
        self.fire_timers(now);
        if now >= self.next_check {
            self.for_each(now, Client::on_tick);
            self.next_check = now + TIMEOUT_CHECK;
        }
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + PUBLISH;
        }
        let mut wake = self.next_tick.min(self.next_check);
        if matches!(self.phase, Phase::Ramp) && self.slots.is_none() && self.next < self.plan.connections {
            wake = wake.min(self.plan.connect.due(self.next));
        }
        let now = Instant::now();
        let mut timeout = wake.saturating_duration_since(now);
        // Send times and paced cycles want better than poll's milliseconds.
        let cycle = match (&self.slots, self.window, self.phase) {
            (Some(slots), Some(window), Phase::Run) => slots.wake_at(&self.plan, window, now),
            _ => None,
        };
        let precise = self.timers.peek().map(|&Reverse((due, ..))| due);
        if let Some(due) = precise.into_iter().chain(cycle).min() {
            if due <= now {
                timeout = Duration::ZERO;
            } else if due < wake {
                self.timer.arm(due, now)?;
            }
        }
        Ok(Some(timeout))
    }
}
