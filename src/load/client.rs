//! One client connection in a load worker: a [`Transport`] (the socket, its
//! buffers, TLS) carrying a sans-IO [`Session`], driven by readiness and
//! timers, as `reactor::connection` drives the server's sessions.
//!
//! This is the only place a client's session meets its socket: waiting for
//! the connect, reading until `WouldBlock` into the buffers the session
//! consumes, writing what it queued, hanging up and dialling again for an
//! HTTP subscriber, and the interest from what both want. What the bytes
//! mean is the session's business.

use super::churn::Cycle;
pub use super::ctx::Ctx;
use super::plan::Plan;
use super::session::{Dead, Session, Step};
use super::subscribe::Order;
use super::transport::{Counted, Received, TlsTarget, Transport};
use crate::reactor::buffer::BufferPool;
use crate::reactor::event_loop::{Driven, Ready};
use mio::net::TcpStream;
use mio::Interest;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Whether a client lives on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Keep it.
    Alive,
    /// Deregister and drop it.
    Dead,
    /// Its socket is closed: deregister it, and [`Client::redial`].
    Redial,
}

/// One client connection.
pub struct Client {
    io: Transport,
    session: Session,
    /// What of the transport's wire bytes is already in the figures.
    counted: Counted,
    /// The time of this client's entry in the worker's timer heap.
    pub armed: Option<Instant>,
}

impl Client {
    /// Start connecting client `index` to `addr`, from `source` if given
    /// (`rcvbuf`: a slow reader's receive buffer, see [`Transport::slow_path`]).
    pub fn connect(
        index: usize,
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: Option<&TlsTarget>,
        now: Instant,
        rcvbuf: Option<usize>,
    ) -> io::Result<Client> {
        Ok(Client {
            io: Transport::connect_with(addr, source, tls, rcvbuf)?,
            session: Session::new(index, now),
            counted: Counted::default(),
            armed: None,
        })
    }

    /// Churn mode: this connection is one cycle, due at `due`.
    pub fn with_cycle(mut self, due: Instant) -> Client {
        self.session = self.session.with_cycle(due);
        self
    }

    /// Subscribe mode: this subscriber's part in the run's scenario.
    pub fn with_disruption(mut self, d: Option<super::scenario::Disruption>) -> Client {
        self.session = self.session.with_disruption(d);
        self
    }

    /// Its part in the scenario, once, as the client goes.
    pub fn take_disruption(&mut self) -> Option<super::scenario::Disruption> {
        self.session.take_disruption()
    }

    /// A slow reader.
    pub fn slow(&self) -> bool {
        self.session.slow()
    }

    /// Churn mode: this connection's cycle, if it is one.
    pub fn cycle(&self) -> Option<&Cycle> {
        self.session.cycle()
    }

    /// Index over the whole run.
    pub fn index(&self) -> usize {
        self.session.index()
    }

    /// Still connecting or in the opening handshake (over HTTP: not yet
    /// answered).
    pub fn pending(&self) -> bool {
        self.session.pending()
    }

    /// Between two connections: no socket to register.
    pub fn parked(&self) -> bool {
        self.session.parked()
    }

    /// Completed the opening handshake at some point.
    pub fn opened(&self) -> bool {
        self.session.opened()
    }

    /// Messages awaiting their echo.
    pub fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// Subscribe mode: has every one of the `accepted` messages, or will
    /// get no more (not open).
    pub fn caught_up(&self, accepted: u64) -> bool {
        self.session.caught_up(accepted)
    }

    /// Subscribe mode: distinct messages received so far.
    pub fn received_unique(&self) -> u64 {
        self.session.received_unique()
    }

    /// Subscribe mode: what this subscriber received (once, as it goes).
    pub fn take_order(&mut self) -> Option<Order> {
        self.session.take_order()
    }

    /// Sent its close frame and still waits for the server's.
    pub fn awaits_close(&self) -> bool {
        self.session.awaits_close()
    }

    /// Interest from state: writable while connecting (completion is a
    /// writable event) or while output is pending.
    pub fn interest(&self) -> Interest {
        if self.io.has_output() || self.session.connecting() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// When the next message is due, if one is and the pipeline has room.
    pub fn wake_at(&self, plan: &Plan, window: Option<(Instant, Instant)>, now: Instant) -> Option<Instant> {
        self.session.wake_at(plan, window, now)
    }

    /// Handle readiness. `ready.closed`: the peer has shut its side
    /// (`EPOLLRDHUP`), so reading must go on to the EOF.
    pub fn on_ready(&mut self, ready: Ready, ctx: &mut Ctx<'_>) -> Life {
        let step = (|| {
            if self.session.connecting() {
                match self.io.connected() {
                    Ok(true) => self.session.handle_connected(&mut self.io.bufs, ctx),
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(self.session.handle_error(&e, ctx)),
                }
            }
            if ready.writable {
                self.flush(ctx)?;
            }
            // A slow reader leaves what comes in the socket (edge-triggered:
            // it reads it all when it resumes).
            if ready.readable && self.session.reading(ctx.window, ctx.now) {
                self.read_all(ready.closed, ctx)?;
            }
            self.session.pump(&mut self.io.bufs, ctx);
            self.flush(ctx)
        })();
        self.life(step, ctx)
    }

    /// A timer fired: send what is due; a slow reader's pause is over;
    /// a reconnect storm drops the connection.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> Life {
        if self.session.redial_due(ctx.now) {
            return Life::Redial;
        }
        if self.session.storm_due(ctx) {
            // Parked: the worker hangs up, and dials again when it is due.
            return self.life(Ok(()), ctx);
        }
        let step = (|| {
            // Everything the pause left in the socket, to its end (if it
            // has one: between two connections there is nothing to read).
            if self.session.resume_due(ctx.window, ctx.now) && self.session.can_send() {
                self.read_all(true, ctx)?;
            }
            self.session.pump(&mut self.io.bufs, ctx);
            self.flush(ctx)
        })();
        self.life(step, ctx)
    }

    /// Check time-outs.
    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = self.session.handle_timeout(ctx);
        self.life(step, ctx)
    }

    /// The run is over: start the close handshake (§7.1.2, code 1000).
    pub fn begin_close(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = self
            .session
            .begin_close(&mut self.io.bufs, ctx)
            .and_then(|_| self.flush(ctx));
        self.life(step, ctx)
    }

    /// HTTP subscriber: close the connection, and open the next one if it
    /// is due (true: register the new socket), else at its time.
    pub fn redial(&mut self, ctx: &mut Ctx<'_>) -> io::Result<bool> {
        self.account(ctx);
        self.io.hang_up();
        self.io.bufs.release(ctx.pool);
        if self.session.handle_hung_up(ctx.now) > ctx.now {
            return Ok(false);
        }
        let plan = ctx.plan;
        let index = self.session.index();
        let rcvbuf = self.session.slow_rcvbuf();
        self.io = Transport::connect_with(plan.target.addr, plan.source_for(index), plan.tls.as_ref(), rcvbuf)?;
        self.counted = Counted::default();
        self.session.handle_redialed(ctx.now);
        Ok(true)
    }

    /// Give the buffers back to the pool (the client is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.io.bufs.release(pool);
    }

    fn life(&mut self, step: Step, ctx: &mut Ctx<'_>) -> Life {
        self.account(ctx);
        match step {
            Ok(()) if self.session.parked() => Life::Redial,
            Ok(()) => Life::Alive,
            Err(Dead) => {
                self.release(ctx.pool);
                Life::Dead
            }
        }
    }

    /// Add the bytes the socket carried since last time to the figures,
    /// once the window has begun.
    fn account(&mut self, ctx: &mut Ctx<'_>) {
        let wire = self.io.wire();
        if ctx.window.is_some() {
            ctx.stats.wire.bytes_in += wire.read - self.counted.read;
            ctx.stats.wire.bytes_out += wire.written - self.counted.written;
        }
        self.counted = wire;
    }

    /// Read until WouldBlock (mio's edge-triggered rule), processing as we go.
    fn read_all(&mut self, read_closed: bool, ctx: &mut Ctx<'_>) -> Step {
        loop {
            if self.io.bufs.has_input() {
                self.session.handle_input(&mut self.io.bufs, ctx)?;
            }
            match self.io.read_some(ctx.pool) {
                // A short read emptied the socket's queue: later bytes raise
                // a new edge, so the read that would only say WouldBlock is
                // skipped (a syscall per message, as in the server). Not
                // after the peer's FIN, which raises no further edge.
                Ok(Received::Bytes { short: true }) if !read_closed => {
                    self.session.handle_input(&mut self.io.bufs, ctx)?;
                    break;
                }
                Ok(Received::Bytes { .. }) => {}
                Ok(Received::Blocked) => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return self.session.handle_eof(ctx),
                Err(e) => return Err(self.session.handle_error(&e, ctx)),
            }
        }
        self.io.bufs.tidy(ctx.pool);
        Ok(())
    }

    /// Write what is queued (not before the connection exists).
    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Step {
        if !self.session.can_send() {
            return Ok(());
        }
        if let Err(e) = self.io.flush() {
            return Err(self.session.handle_error(&e, ctx));
        }
        self.io.bufs.tidy(ctx.pool);
        Ok(())
    }
}

impl Driven for Client {
    fn source(&mut self) -> &mut TcpStream {
        self.io.stream()
    }
    fn registered(&self) -> Interest {
        self.io.registered()
    }
    fn set_registered(&mut self, interest: Interest) {
        self.io.set_registered(interest);
    }
}
