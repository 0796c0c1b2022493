//! One TCP connection's life as a state machine, driven by readiness.
//!
//! ```text
//!  accept ─► Handshake ──101──► Open ──close handshake done / failure──► Closing ──EOF/timeout──► (dropped)
//!               │                 ▲                                        ▲
//!               └─ plain HTTP ────┴── error status (400/404/405/426/431) ──┘
//! ```
//!
//! `Handshake` reads an HTTP/1.1 request head; `Open` runs the WebSocket
//! endpoint (the close handshake is tracked per direction inside it);
//! `Closing` flushes what is queued, shuts the write side and reads until the
//! peer's EOF, so a final status or close frame is not destroyed by a reset
//! (RFC 6455 §7.1.1: the server closes the TCP connection first).
//!
//! Buffers are borrowed from the worker's pool only while bytes are in flight.

use super::buffer::{BufferPool, ReadBuf, WriteBuf};
use super::settings::Settings;
use super::stats::WorkerStats;
use crate::http::{route, Route};
use crate::protocol::deflate::{negotiate, DeflateParams};
use crate::protocol::handshake::{validate_upgrade, write_switching_protocols};
use crate::protocol::http::{write_response, HeadScanner, RequestHead, Status, MAX_HEADERS};
use crate::protocol::{CloseCode, Event, MessageKind, Read as FrameRead, WebSocket};
use mio::net::TcpStream;
use mio::Interest;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// What the worker lends a connection while it handles an event.
pub struct Ctx<'a> {
    /// The worker's buffers.
    pub pool: &'a mut BufferPool,
    /// Limits and timeouts.
    pub settings: &'a Settings,
    /// The worker's counters.
    pub stats: &'a WorkerStats,
    /// The time the current loop iteration began.
    pub now: Instant,
}

/// Whether the connection lives on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Keep it.
    Alive,
    /// Deregister and drop it.
    Dead,
}

/// Shorthand for "stop here, the connection is finished".
type Step = Result<(), Dead>;

/// The connection is finished (EOF, I/O error, or timeout).
#[derive(Debug)]
pub struct Dead;

#[derive(Debug)]
enum State {
    /// Reading an HTTP request head (RFC 9112 §2).
    Handshake { scanner: HeadScanner },
    /// WebSocket open (RFC 6455 §4.2.2 step 5 done). `pinged`: a keep-alive
    /// ping is out since the last input.
    Open { ws: Box<WebSocket>, pinged: bool },
    /// Last bytes queued: flush, shut the write side (`shut`), read to EOF.
    Closing { shut: bool },
}

/// A connection and its buffers.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    state: State,
    rbuf: Option<ReadBuf>,
    wbuf: Option<WriteBuf>,
    /// When the state began (Handshake, Closing) or our close was sent (Open).
    since: Instant,
    last_input: Instant,
    /// Since when pending output has been over the limit.
    over_limit_since: Option<Instant>,
    /// Bytes needed together at the front of the read buffer (frame or head).
    want: usize,
    /// The interest currently registered with the poll.
    registered: Interest,
    /// Counts against `max_connections` (a rejected connection does not).
    counted: bool,
}

impl Connection {
    /// A freshly accepted connection, registered for reading.
    pub fn new(stream: TcpStream, now: Instant, counted: bool) -> Self {
        Connection {
            stream,
            state: State::Handshake {
                scanner: HeadScanner::default(),
            },
            rbuf: None,
            wbuf: None,
            since: now,
            last_input: now,
            over_limit_since: None,
            want: 0,
            registered: Interest::READABLE,
            counted,
        }
    }

    /// An accepted connection refused with `status` before anything is read
    /// (over `max_connections`): the answer is queued and the connection closes.
    pub fn refused(stream: TcpStream, status: Status, ctx: &mut Ctx<'_>) -> Self {
        let mut conn = Connection::new(stream, ctx.now, false);
        conn.respond(status, &[], b"", true, ctx);
        conn
    }

    /// The socket, for (de)registration.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Does this connection count against `max_connections`?
    pub fn counted(&self) -> bool {
        self.counted
    }

    /// The interest registered with the poll.
    pub fn registered(&self) -> Interest {
        self.registered
    }

    /// Record what was registered.
    pub fn set_registered(&mut self, interest: Interest) {
        self.registered = interest;
    }

    /// Interest from state (rustls's `event_set`): readable while input is
    /// wanted, writable only while output is pending.
    pub fn interest(&self, settings: &Settings) -> Interest {
        match (self.wants_read(settings), self.has_output()) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        }
    }

    /// Handle readiness.
    pub fn on_ready(&mut self, readable: bool, writable: bool, ctx: &mut Ctx<'_>) -> Life {
        let step = (|| {
            let was_blocked = !self.wants_read(ctx.settings);
            if writable {
                self.flush(ctx)?;
            }
            // Also read when backpressure just lifted: bytes left in the
            // socket then raise no new readable edge.
            if readable || (was_blocked && self.wants_read(ctx.settings)) {
                self.read_all(ctx)?;
            }
            self.after_io()
        })();
        self.life(step, ctx)
    }

    /// Check timeouts; called every tick.
    pub fn on_tick(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = self.check_timers(ctx);
        self.life(step, ctx)
    }

    /// The server is stopping: close WebSockets with 1001 (RFC 6455 §7.4.1),
    /// drop connections still in the handshake.
    pub fn on_shutdown(&mut self, ctx: &mut Ctx<'_>) -> Life {
        let step = match &mut self.state {
            State::Handshake { .. } => Err(Dead),
            State::Open { ws, .. } if !ws.close_state().sent => {
                let out = self.wbuf.get_or_insert_with(|| WriteBuf::take(ctx.pool)).out();
                ws.close(CloseCode::GOING_AWAY, "server shutting down", out);
                self.since = ctx.now;
                self.flush(ctx).and_then(|_| self.after_io())
            }
            State::Open { .. } | State::Closing { .. } => Ok(()),
        };
        self.life(step, ctx)
    }

    /// Give the buffers back to the pool (the connection is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        if let Some(r) = self.rbuf.take() {
            r.give(pool);
        }
        if let Some(w) = self.wbuf.take() {
            w.give(pool);
        }
    }

    fn life(&mut self, step: Step, ctx: &mut Ctx<'_>) -> Life {
        match step {
            Ok(()) => Life::Alive,
            Err(Dead) => {
                self.release(ctx.pool);
                Life::Dead
            }
        }
    }

    fn has_output(&self) -> bool {
        self.wbuf.as_ref().is_some_and(|w| !w.is_empty())
    }

    /// Backpressure: a peer that does not read its output is not read from.
    fn wants_read(&self, settings: &Settings) -> bool {
        self.wbuf.as_ref().map_or(0, |w| w.pending().len()) <= settings.write_buffer_limit
    }

    /// Read until WouldBlock (mio's edge-triggered rule), processing as we go.
    fn read_all(&mut self, ctx: &mut Ctx<'_>) -> Step {
        loop {
            // Bytes kept from before (backpressure, or a partial frame).
            if self.rbuf.as_ref().is_some_and(|r| !r.is_empty()) {
                self.process(ctx);
                self.flush(ctx)?;
            }
            if !self.wants_read(ctx.settings) {
                break;
            }
            let mut rbuf = self.rbuf.take().unwrap_or_else(|| ReadBuf::take(ctx.pool));
            let result = self.stream.read(rbuf.spare(self.want));
            match result {
                Ok(0) => {
                    rbuf.give(ctx.pool);
                    return Err(Dead);
                }
                Ok(n) => {
                    rbuf.filled_by(n);
                    ctx.stats.bytes_in.fetch_add(n as u64, Relaxed);
                    self.last_input = ctx.now;
                    if let State::Open { pinged, .. } = &mut self.state {
                        *pinged = false;
                    }
                    self.rbuf = Some(rbuf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rbuf = Some(rbuf);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.rbuf = Some(rbuf),
                Err(_) => {
                    rbuf.give(ctx.pool);
                    return Err(Dead);
                }
            }
        }
        if let Some(r) = self.rbuf.take_if(|r| r.is_empty()) {
            r.give(ctx.pool);
        }
        Ok(())
    }

    /// Consume what the read buffer holds, according to the state.
    fn process(&mut self, ctx: &mut Ctx<'_>) {
        loop {
            let more = match self.state {
                State::Handshake { .. } => self.process_head(ctx),
                State::Open { .. } => {
                    self.process_frames(ctx);
                    false
                }
                State::Closing { .. } => {
                    // Input after our last word is read only to reach EOF.
                    if let Some(r) = self.rbuf.as_mut() {
                        r.consume(r.len());
                    }
                    false
                }
            };
            // A head was consumed: pipelined bytes (frames after the 101,
            // or the next keep-alive request) are handled now, not on the
            // next readiness edge, which may never come.
            if !more || self.rbuf.as_ref().is_none_or(|r| r.is_empty()) {
                return;
            }
        }
    }

    /// Handshake: find the end of the head, then route it. True when a
    /// head was consumed and what follows it must be processed too.
    fn process_head(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let State::Handshake { scanner } = &mut self.state else {
            return false;
        };
        let Some(rbuf) = self.rbuf.as_mut() else {
            return false;
        };
        let limit = ctx.settings.max_request_head;
        self.want = limit;
        // Every method token starts with a letter (RFC 9110 §9.1); anything
        // else (a TLS ClientHello, binary noise) is refused at once instead
        // of waiting for a blank line that will never come.
        if rbuf.filled().first().is_some_and(|b| !b.is_ascii_alphabetic()) {
            return self.refuse(Status::BAD_REQUEST, &[], "not an HTTP/1.1 request".into(), ctx);
        }
        let head_len = match scanner.scan(rbuf.filled(), limit) {
            Ok(None) => return false,
            Ok(Some(n)) => n,
            Err(e) => return self.refuse(e.status(), &[], e.to_string(), ctx),
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = match RequestHead::parse(&rbuf.filled()[..head_len], &mut headers) {
            Ok(head) => head,
            Err(e) => return self.refuse(e.status(), &[], e.to_string(), ctx),
        };
        let wbuf = self.wbuf.get_or_insert_with(|| WriteBuf::take(ctx.pool));
        match route(head.path()) {
            Route::Echo => match validate_upgrade(&head) {
                Ok(upgrade) => {
                    let mut ws = WebSocket::server(ctx.settings.read_limits);
                    let deflate = &ctx.settings.deflate;
                    let params = deflate
                        .enabled
                        .then(|| negotiate(&upgrade.extensions, deflate))
                        .flatten();
                    let extension = params.as_ref().map(DeflateParams::response_header);
                    if let Some(params) = &params {
                        ws = ws.with_deflate(params, deflate.min_size);
                    }
                    write_switching_protocols(wbuf.out(), &upgrade, None, extension.as_deref());
                    // The upgrade hands its leftover bytes to the next state.
                    rbuf.consume(head_len);
                    self.state = State::Open {
                        ws: Box::new(ws),
                        pinged: false,
                    };
                    self.want = 0;
                    ctx.stats.upgrades.fetch_add(1, Relaxed);
                    true
                }
                Err(e) => {
                    log::debug!("handshake refused: {e}");
                    self.refuse(e.status(), e.headers(), e.to_string(), ctx)
                }
            },
            Route::Health if head.method != "GET" => {
                self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET")], "use GET".into(), ctx)
            }
            Route::Health => {
                // Keep-alive unless asked otherwise or a body would follow.
                let close = head.wants_close()
                    || head.single("content-length").ok().flatten().is_some_and(|v| v != b"0")
                    || head.values("transfer-encoding").next().is_some();
                rbuf.consume(head_len);
                self.respond(Status::OK, &[("Content-Type", "text/plain")], b"ok\n", close, ctx);
                if !close {
                    self.since = ctx.now;
                }
                !close
            }
            Route::NotFound => self.refuse(Status::NOT_FOUND, &[], "no such endpoint".into(), ctx),
        }
    }

    /// Answer a refused request and close; nothing after it is processed.
    fn refuse(&mut self, status: Status, headers: &[(&str, &str)], why: String, ctx: &mut Ctx<'_>) -> bool {
        ctx.stats.handshake_errors.fetch_add(1, Relaxed);
        let mut all: Vec<(&str, &str)> = vec![("Content-Type", "text/plain")];
        all.extend_from_slice(headers);
        let body = format!("{} {}: {why}\n", status.0, status.reason());
        self.respond(status, &all, body.as_bytes(), true, ctx);
        false
    }

    /// Queue a plain HTTP response; with `close`, move to Closing.
    fn respond(&mut self, status: Status, headers: &[(&str, &str)], body: &[u8], close: bool, ctx: &mut Ctx<'_>) {
        let wbuf = self.wbuf.get_or_insert_with(|| WriteBuf::take(ctx.pool));
        write_response(wbuf.out(), status, headers, body, close);
        if close {
            self.enter_closing(ctx.now);
        }
    }

    /// Open: parse frames, echo messages, until input runs out or the peer
    /// must read before we go on.
    fn process_frames(&mut self, ctx: &mut Ctx<'_>) {
        let State::Open { ws, .. } = &mut self.state else {
            return;
        };
        let (Some(rbuf), wbuf) = (self.rbuf.as_mut(), &mut self.wbuf) else {
            return;
        };
        let wbuf = wbuf.get_or_insert_with(|| WriteBuf::take(ctx.pool));
        while !rbuf.is_empty() && wbuf.pending().len() <= ctx.settings.write_buffer_limit {
            match ws.read(rbuf.filled_mut(), wbuf.out()) {
                Ok(FrameRead::Incomplete { frame_len }) => {
                    self.want = frame_len.unwrap_or(0);
                    break;
                }
                Ok(FrameRead::Frame { consumed, event }) => {
                    if let Some(Event::Message(kind, payload)) = event {
                        ctx.stats.messages_in.fetch_add(1, Relaxed);
                        echo(ws, kind, &payload, wbuf.out(), ctx.stats);
                    }
                    rbuf.consume(consumed);
                    self.want = 0;
                }
                Err(e) => {
                    log::debug!("protocol error: {e}");
                    ctx.stats.protocol_errors.fetch_add(1, Relaxed);
                    ws.fail(&e, wbuf.out());
                    rbuf.consume(rbuf.len());
                    break;
                }
            }
        }
        if ws.is_closed() {
            self.enter_closing(ctx.now);
        }
    }

    fn enter_closing(&mut self, now: Instant) {
        self.state = State::Closing { shut: false };
        self.since = now;
        self.want = 0;
    }

    /// Write until WouldBlock or done; give the buffer back when drained.
    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let Some(wbuf) = self.wbuf.as_mut() else {
            return Ok(());
        };
        while !wbuf.is_empty() {
            match self.stream.write(wbuf.pending()) {
                Ok(0) => return Err(Dead),
                Ok(n) => {
                    wbuf.advance(n);
                    ctx.stats.bytes_out.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Dead),
            }
        }
        if wbuf.pending().len() > ctx.settings.write_buffer_limit {
            self.over_limit_since.get_or_insert(ctx.now);
        } else {
            self.over_limit_since = None;
        }
        if let Some(w) = self.wbuf.take_if(|w| w.is_empty()) {
            w.give(ctx.pool);
        }
        Ok(())
    }

    /// After I/O: once Closing has flushed, shut the write side.
    fn after_io(&mut self) -> Step {
        if let State::Closing { shut: shut @ false } = &mut self.state {
            if self.wbuf.is_none() {
                self.stream.shutdown(Shutdown::Write).map_err(|_| Dead)?;
                *shut = true;
            }
        }
        Ok(())
    }

    fn check_timers(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let s = ctx.settings;
        let now = ctx.now;
        if self
            .over_limit_since
            .is_some_and(|t| now.duration_since(t) >= s.write_stall)
        {
            ctx.stats.slow_consumers.fetch_add(1, Relaxed);
            return Err(Dead);
        }
        match &mut self.state {
            State::Handshake { .. } if now.duration_since(self.since) >= s.handshake_timeout => {
                ctx.stats.handshake_errors.fetch_add(1, Relaxed);
                self.respond(Status::REQUEST_TIMEOUT, &[], b"", true, ctx);
                self.flush(ctx)?;
                self.after_io()
            }
            State::Handshake { .. } => Ok(()),
            State::Open { ws, .. } if ws.close_state().sent => {
                // §7.1.1: the peer had its chance to answer our close.
                if now.duration_since(self.since) >= s.close_timeout {
                    Err(Dead)
                } else {
                    Ok(())
                }
            }
            State::Open { ws, pinged } => {
                let quiet = now.duration_since(self.last_input);
                let idle = quiet >= s.idle_timeout;
                if !idle && (*pinged || quiet < s.idle_timeout / 2) {
                    return Ok(());
                }
                let out = self.wbuf.get_or_insert_with(|| WriteBuf::take(ctx.pool)).out();
                if idle {
                    ws.close(CloseCode::GOING_AWAY, "idle timeout", out);
                    self.since = now;
                } else {
                    // Half the idle time without input: a pong proves the peer alive.
                    ws.send_ping(b"", out);
                    *pinged = true;
                }
                self.flush(ctx)
            }
            State::Closing { .. } if now.duration_since(self.since) >= s.close_timeout => Err(Dead),
            State::Closing { .. } => Ok(()),
        }
    }
}

/// The echo endpoint: send each complete message back whole, same type.
fn echo(ws: &mut WebSocket, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>, stats: &WorkerStats) {
    if !ws.close_state().sent {
        ws.send(kind, payload, out);
        stats.messages_out.fetch_add(1, Relaxed);
    }
}
