//! One connection in a worker's slab: a [`Transport`] carrying the bytes
//! of a sans-IO [`Session`], driven by readiness; plain TCP or TLS
//! ([`Stream`]), chosen by the listener it came from.
//!
//! This is the only place a session meets its socket: reading until
//! `WouldBlock` into the session's buffer, writing its output, shutting the
//! write side when it says so, and computing the readiness interest from
//! what both want. What the bytes mean is the session's business.

use super::balance::Accepted;
use super::buffer::BufferPool;
use super::event_loop::{Driven, Ready};
use super::output::Output;
use super::per_ip::Hold;
use super::session::{Dead, Delivered, End, Env, Life, Session, Step};
use super::settings::Settings;
use super::stamp::Stamp;
use super::tls::Tls;
use super::transport::{Tcp, Transport};
use crate::protocol::http::Status;
use crate::protocol::MessageKind;
use crate::pubsub::{Answer, Message, Subscription};
use crate::stats::Transport as Kind;
use mio::net::TcpStream;
use mio::Interest;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A connection: its transport, its session, and the worker's records of it.
#[derive(Debug)]
pub struct Connection<T = Stream> {
    transport: T,
    session: Session,
    /// The interest currently registered with the poll.
    registered: Interest,
    /// Which use of its slab slot this is (answers are addressed with it).
    generation: u32,
    /// Counts against `max_connections` (a rejected connection does not).
    counted: bool,
    /// When the worker's timer wheel will next look at this connection
    /// ([`deadline`](Self::deadline) or earlier).
    scheduled: Stamp,
}

impl Connection {
    /// A freshly accepted connection, registered for reading: TLS when
    /// `tls` is given. It counts against `max_connections`, and its session
    /// keeps its per-address hold; if it cannot be served the hold comes
    /// back with the error.
    pub fn new(
        accepted: Accepted,
        tls: Option<&Arc<rustls::ServerConfig>>,
        now: Stamp,
        generation: u32,
    ) -> Result<Self, (Hold, io::Error)> {
        let Accepted { stream, hold, .. } = accepted;
        let transport = match tls {
            Some(config) => match Tls::new(stream, config) {
                Ok(tls) => Stream::Tls(Box::new(tls)),
                Err(e) => return Err((hold, e)),
            },
            None => Stream::Tcp(Tcp::new(stream)),
        };
        let session = Session::holding(now, hold);
        Ok(Connection::over(transport, session, true, generation, now))
    }

    /// An accepted connection refused with `status` before anything is read
    /// (over `max_connections`, or a client over its per-address limits):
    /// the answer is queued and the connection closes. Over plain TCP even
    /// on a TLS listener: a refusal costs no handshake.
    pub fn refused(stream: TcpStream, status: Status, why: &str, generation: u32, env: &mut Env<'_>) -> Self {
        Connection::over(
            Stream::Tcp(Tcp::new(stream)),
            Session::refused(status, why, env),
            false,
            generation,
            env.stamp,
        )
    }
}

impl<T: Transport> Connection<T> {
    fn over(transport: T, session: Session, counted: bool, generation: u32, now: Stamp) -> Self {
        Connection {
            transport,
            session,
            registered: Interest::READABLE,
            generation,
            counted,
            scheduled: now.far_after(),
        }
    }

    /// The socket, for (de)registration.
    #[inline]
    pub fn socket(&mut self) -> &mut TcpStream {
        self.transport.socket()
    }

    /// Does this connection count against `max_connections`?
    #[inline]
    pub fn counted(&self) -> bool {
        self.counted
    }

    /// What it holds under the per-address limits, to be given back
    /// ([`PerIp::give_back`](super::per_ip::PerIp::give_back)); it holds
    /// nothing after.
    pub fn take_hold(&mut self) -> Hold {
        self.session.take_hold()
    }

    /// Which use of its slab slot this is.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// What this connection is, for the per-transport gauges.
    #[inline]
    pub fn kind(&self) -> Kind {
        self.session.transport()
    }

    /// Take the subscription out (the connection is going away).
    pub fn take_subscription(&mut self) -> Option<Subscription> {
        self.session.take_subscription()
    }

    /// The interest the transport and the session want now.
    #[inline]
    pub fn interest(&mut self, settings: &Settings) -> Interest {
        let wants_read = self.session.wants_read(settings);
        let has_output = !self.session.output().is_empty();
        self.transport.interest(wants_read, has_output)
    }

    /// Handle readiness. `ready.closed`: the peer has shut its side
    /// (`EPOLLRDHUP`), so reading must go on to the EOF.
    pub fn on_ready(&mut self, ready: Ready, env: &mut Env<'_>) -> Life {
        let step = (|| {
            let was_blocked = !self.session.wants_read(env.settings);
            if ready.writable {
                self.flush(env)?;
            }
            // Also read when backpressure just lifted: bytes left in the
            // socket then raise no new readable edge.
            if ready.readable || (was_blocked && self.session.wants_read(env.settings)) {
                self.read_all(ready.closed, env)?;
            }
            self.after_io()
        })();
        self.life(step, env)
    }

    /// The session's next deadline.
    #[inline]
    pub fn deadline(&self, s: &Settings) -> Stamp {
        self.session.deadline(s)
    }

    /// When the timer wheel holds this connection for.
    #[inline]
    pub fn scheduled(&self) -> Stamp {
        self.scheduled
    }

    /// Record when the timer wheel holds this connection for.
    #[inline]
    pub fn set_scheduled(&mut self, at: Stamp) {
        self.scheduled = at;
    }

    /// Check timeouts; called when the connection's deadline comes.
    pub fn on_tick(&mut self, env: &mut Env<'_>) -> Life {
        let step = self.session.handle_timeout(env).and_then(|_| self.settle_output(env));
        self.life(step, env)
    }

    /// The server is stopping (see [`Session::handle_server_shutdown`]).
    pub fn on_shutdown(&mut self, env: &mut Env<'_>) -> Life {
        let step = self
            .session
            .handle_server_shutdown(env)
            .and_then(|_| self.settle_output(env));
        self.life(step, env)
    }

    /// The broker answered this connection.
    pub fn on_answer(&mut self, answer: Answer, env: &mut Env<'_>) -> Life {
        self.session.handle_answer(answer, env);
        let step = self.settle_output(env);
        self.life(step, env)
    }

    /// A signal for every connection ([`crate::pubsub::Request::Signal`]).
    pub fn on_signal(&mut self, payload: &[u8], env: &mut Env<'_>) -> Life {
        self.session.handle_signal(payload, env);
        let step = self.settle_output(env);
        self.life(step, env)
    }

    /// A message for this connection from another thread.
    pub fn on_send(&mut self, kind: MessageKind, payload: &[u8], env: &mut Env<'_>) -> Life {
        self.session.handle_send(kind, payload, env);
        let step = self.settle_output(env);
        self.life(step, env)
    }

    /// A message from the worker's inbox for this connection's channel.
    pub fn deliver(&mut self, msg: &Arc<Message>, env: &mut Env<'_>) -> Delivered {
        // A batch of deliveries queues before it flushes: before calling
        // the subscriber slow, give the socket what it will take now.
        if self.session.output().len() > env.settings.write_buffer_limit && self.flush(env).is_err() {
            // Dead: the flush after the batch finds out again and drops it.
            return Delivered::Nothing;
        }
        self.session.handle_delivery(msg, env)
    }

    /// After a batch of deliveries: answer a poll that got messages, flush.
    pub fn after_delivery(&mut self, env: &mut Env<'_>) -> Life {
        self.session.handle_deliveries_done(env);
        let step = self.settle_output(env);
        self.life(step, env)
    }

    /// Give the buffers back to the pool (the connection is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.session.release(pool);
    }

    fn life(&mut self, step: Step, env: &mut Env<'_>) -> Life {
        match step {
            Ok(()) => Life::Alive,
            Err(Dead) => {
                self.session.handle_gone(env);
                self.release(env.pool);
                Life::Dead
            }
        }
    }

    /// After a step that did not start from the socket: input the session
    /// held back is processed (and the socket read, as no edge will come
    /// for it), and the output flushed.
    fn settle_output(&mut self, env: &mut Env<'_>) -> Step {
        if self.session.poll_resume() {
            self.read_all(false, env)?;
        }
        self.flush(env)?;
        self.after_io()
    }

    /// Read until WouldBlock (mio's edge-triggered rule), processing as we go.
    fn read_all(&mut self, read_closed: bool, env: &mut Env<'_>) -> Step {
        let mut drained = false;
        loop {
            // Bytes kept from before (backpressure, or a partial frame).
            if self.session.has_input() {
                self.session.handle_input(env);
                self.flush(env)?;
            }
            if drained || !self.session.wants_read(env.settings) {
                break;
            }
            let spare = self.session.receive_buffer(env.pool);
            let room = spare.len();
            match self.transport.read(spare) {
                Ok(0) => return Err(Dead),
                Ok(n) => {
                    // A short read emptied the socket's queue: bytes that
                    // arrive later raise a new edge, so the read that would
                    // only say WouldBlock is skipped (a syscall per message).
                    // Not when the peer has half-closed: its EOF raises no
                    // further edge and must be read now.
                    drained = n < room && !read_closed && !self.transport.more_to_read();
                    self.session.handle_received(n, env);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Dead),
            }
        }
        self.session.input_paused(env.pool);
        Ok(())
    }

    /// Write until WouldBlock or done.
    fn flush(&mut self, env: &mut Env<'_>) -> Step {
        while !self.session.output().is_empty() {
            match self.transport.write(self.session.output(), env.pool) {
                Ok(0) => return Err(Dead),
                Ok(n) => {
                    env.stats.bytes_out.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Dead),
            }
        }
        // What the transport holds of its own (TLS records).
        match self.transport.flush_pending() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(Dead),
        }
        self.session.handle_flushed(env);
        Ok(())
    }

    /// After I/O: once the session has said its last word, shut the write
    /// side and linger, or close now (dropped as dead: the descriptor's
    /// close sends the FIN after the bytes written).
    fn after_io(&mut self) -> Step {
        match self.session.poll_end() {
            None => Ok(()),
            Some(End::Close) if self.transport.closes_at_once() => Err(Dead),
            Some(_) => self.transport.shutdown_write().map_err(|_| Dead),
        }
    }
}

/// What a connection is carried over: plain TCP or TLS, chosen by the
/// listener it came from.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(Tcp),
    /// TLS (boxed: rustls's state is large, and most connections are plain).
    Tls(Box<Tls>),
}

impl Transport for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(t) => t.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    #[inline]
    fn write(&mut self, out: &mut Output, pool: &mut BufferPool) -> io::Result<usize> {
        match self {
            Stream::Tcp(t) => t.write(out, pool),
            Stream::Tls(t) => t.write(out, pool),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(t) => t.shutdown_write(),
            Stream::Tls(t) => t.shutdown_write(),
        }
    }

    fn closes_at_once(&self) -> bool {
        match self {
            Stream::Tcp(t) => t.closes_at_once(),
            Stream::Tls(t) => t.closes_at_once(),
        }
    }

    #[inline]
    fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(t) => t.flush_pending(),
            Stream::Tls(t) => t.flush_pending(),
        }
    }

    #[inline]
    fn more_to_read(&self) -> bool {
        match self {
            Stream::Tcp(t) => t.more_to_read(),
            Stream::Tls(t) => t.more_to_read(),
        }
    }

    #[inline]
    fn socket(&mut self) -> &mut TcpStream {
        match self {
            Stream::Tcp(t) => t.socket(),
            Stream::Tls(t) => t.socket(),
        }
    }

    #[inline]
    fn interest(&self, wants_read: bool, has_output: bool) -> Interest {
        match self {
            Stream::Tcp(t) => t.interest(wants_read, has_output),
            Stream::Tls(t) => t.interest(wants_read, has_output),
        }
    }
}

impl<T: Transport> Driven for Connection<T> {
    #[inline]
    fn source(&mut self) -> &mut TcpStream {
        self.transport.socket()
    }
    #[inline]
    fn registered(&self) -> Interest {
        self.registered
    }
    #[inline]
    fn set_registered(&mut self, interest: Interest) {
        self.registered = interest;
    }
}
