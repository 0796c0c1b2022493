//! Subscribe mode's publisher: its own thread and `mio::Poll`, posting to
//! `POST /pub/{channel}` over a few keep-alive HTTP/1.1 connections, the
//! *lanes*, with one request in flight on each.
//!
//! Message `k` is due at `start + k / rate` (`--rate` is the total). When
//! it is due it goes on the first idle lane; when every lane waits for an
//! answer it waits too, and its payload still carries the time it was due,
//! so subscribers charge that wait to the server (coordinated omission).
//! Messages still unsent when the window ends are not sent at all: the
//! report shows them as due but unsent, a publisher that fell behind.
//! Without `--rate` each lane posts the next message as soon as the last
//! one is answered, and the due time is the send time.
//!
//! A lane whose connection the server closes while it is idle (silently,
//! or with a 408 and `Connection: close`) connects again. A request that gets no answer (connection lost, `--timeout`) is
//! *unconfirmed*: it may or may not have been published.

use super::publish::{self, ResponseError};
use super::stats::{histogram, record, Errors};
use super::subscribe::{LaneOutcome, Stamp};
use super::timer::Timer;
use super::transport::{Received, Transport};
use super::{Plan, Shared};
use crate::protocol::MessageKind;
use crate::reactor::buffer::BufferPool;
use crate::reactor::event_loop::{self, EventLoop, Ready};
use hdrhistogram::Histogram;
use mio::{Interest, Poll, Token};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMER: Token = Token(usize::MAX - 1);
/// How often the window, time-outs and reconnects are checked.
const TICK: Duration = Duration::from_millis(10);
/// Wait before connecting a lane again after a failed connect.
const RETRY: Duration = Duration::from_millis(100);

/// What the publisher did, for the report.
#[derive(Debug, Clone)]
pub struct PublishOutcome {
    /// The HTTP connections posted over.
    pub publishers: usize,
    /// Each stream's sequence numbers (a lane's messages to one channel,
    /// [`super::plan::PublishPlan::streams`]): sent, rejected, unconfirmed.
    pub streams: Vec<LaneOutcome>,
    /// Messages due within the window (rate × window); `None` unpaced.
    pub due: Option<u64>,
    /// Ids of the accepted messages, with their channel's index in the
    /// plan's paths (each channel numbers its own), in the order the
    /// answers came.
    pub ids: Vec<(usize, u64)>,
    /// From a request's send to its answer.
    pub round_trip: Histogram<u64>,
    /// The fewest and most subscribers an accepted message went to.
    pub subscribers: Option<(u64, u64)>,
    /// Lane connections opened again after the server closed them.
    pub reconnects: u64,
    /// Publish errors (`publish_status`, `publish`).
    pub errors: Errors,
}

impl PublishOutcome {
    /// An accepted publish went to `n` subscribers.
    fn saw_subscribers(&mut self, n: u64) {
        let (lo, hi) = self.subscribers.unwrap_or((u64::MAX, 0));
        self.subscribers = Some((lo.min(n), hi.max(n)));
    }

    /// `--observe`: another process published over `lanes` lanes, in
    /// `streams` streams. What it sent is taken to be what any of this
    /// run's subscribers received, per stream; a message none of them got
    /// is not counted (the run that published knows how many it had
    /// accepted).
    pub fn observed(orders: &[super::subscribe::Order], streams: usize, lanes: usize) -> PublishOutcome {
        let mut reached = vec![0u64; streams];
        for order in orders {
            for (r, n) in reached.iter_mut().zip(order.reached()) {
                *r = (*r).max(n);
            }
        }
        PublishOutcome {
            publishers: lanes,
            streams: reached
                .into_iter()
                .map(|sent| LaneOutcome {
                    sent,
                    ..LaneOutcome::default()
                })
                .collect(),
            ..PublishOutcome::empty()
        }
    }

    /// Nothing published yet.
    fn empty() -> PublishOutcome {
        PublishOutcome {
            publishers: 0,
            streams: Vec::new(),
            due: None,
            ids: Vec::new(),
            round_trip: histogram(),
            subscribers: None,
            reconnects: 0,
            errors: Errors::default(),
        }
    }
}

enum State {
    /// Not connected; connect at `retry`.
    Down { retry: Instant },
    /// Non-blocking connect in progress.
    Connecting,
    /// Connected, nothing in flight.
    Idle,
    /// A request is in flight: lane sequence number `seq`, to channel
    /// `channel` (its index in the plan's paths), sent at `sent`.
    Waiting { seq: u64, channel: usize, sent: Instant },
}

struct Lane {
    io: Option<Transport>,
    state: State,
    since: Instant,
    /// The last id each channel gave this lane (ids are per channel).
    last_ids: Vec<Option<u64>>,
}

/// The publisher thread's state.
pub struct Publisher {
    poll: Poll,
    timer: Timer,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    pool: BufferPool,
    lanes: Vec<Lane>,
    /// What each stream (a lane's messages to one channel) came to.
    streams: Vec<LaneOutcome>,
    /// The next message's number in the schedule.
    next: u64,
    out: PublishOutcome,
}

impl Publisher {
    /// A publisher for `plan`, which must be in subscribe mode.
    pub fn new(plan: Arc<Plan>, shared: Arc<Shared>) -> io::Result<Publisher> {
        let poll = Poll::new()?;
        let timer = Timer::new(poll.registry(), TIMER)?;
        let lanes = plan.publish.as_ref().map_or(0, |p| p.lanes);
        let now = Instant::now();
        Ok(Publisher {
            poll,
            timer,
            pool: BufferPool::new(plan.buffer_size, lanes),
            lanes: (0..lanes)
                .map(|_| Lane {
                    io: None,
                    state: State::Down { retry: now },
                    since: now,
                    last_ids: vec![None; plan.publish.as_ref().map_or(1, |p| p.paths.len())],
                })
                .collect(),
            streams: vec![LaneOutcome::default(); plan.publish.as_ref().map_or(0, |p| p.streams())],
            plan,
            shared,
            next: 0,
            out: PublishOutcome::empty(),
        })
    }

    /// Publish through the window, wait for the last answers, and tell the
    /// subscribers' workers how many messages were accepted.
    pub fn run(mut self) -> io::Result<PublishOutcome> {
        let result = self.run_loop();
        let accepted = self.streams.iter().map(LaneOutcome::accepted).sum();
        self.shared.published(accepted);
        result?;
        self.out.publishers = self.lanes.len();
        self.out.streams = self.streams.clone();
        let mut ids = self.out.ids.clone();
        ids.sort_unstable();
        let duplicates = ids.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        if duplicates > 0 {
            *self.out.errors.publish.entry("duplicate_id").or_default() += duplicates;
        }
        Ok(self.out)
    }

    fn run_loop(&mut self) -> io::Result<()> {
        event_loop::run(self, 64)?;
        // Requests still unanswered are unconfirmed.
        for i in 0..self.lanes.len() {
            if let State::Waiting { seq, channel, .. } = self.lanes[i].state {
                let stream = self.stream(i, channel);
                self.streams[stream].unconfirmed.push(seq);
                *self.out.errors.publish.entry("timed_out").or_default() += 1;
            }
        }
        if let (Some(rate), Some((start, end))) = (self.rate(), self.shared.window()) {
            self.out.due = Some((rate * (end - start).as_secs_f64()).ceil() as u64);
        }
        Ok(())
    }

    /// The stream of lane `lane`'s messages to channel `channel`.
    fn stream(&self, lane: usize, channel: usize) -> usize {
        self.plan.publish.as_ref().map_or(0, |p| p.stream(lane, channel))
    }

    fn rate(&self) -> Option<f64> {
        self.plan.publish.as_ref().and_then(|p| p.rate)
    }

    /// When message `next` is due, if a lane is idle to take it.
    fn next_due(&self, (start, end): (Instant, Instant), now: Instant) -> Option<Instant> {
        if !self.lanes.iter().any(|l| matches!(l.state, State::Idle)) {
            return None;
        }
        let due = match self.rate() {
            Some(rate) => start + Duration::from_secs_f64(self.next as f64 / rate),
            None => now.max(start),
        };
        (due < end).then_some(due)
    }

    /// Send the messages that are due, each on the first idle lane.
    fn send_due(&mut self, start: Instant, end: Instant, now: Instant) {
        while let Some(due) = self.next_due((start, end), now).filter(|&due| due <= now) {
            let Some(i) = self.lanes.iter().position(|l| matches!(l.state, State::Idle)) else {
                break;
            };
            self.send(i, due, now);
        }
    }

    fn send(&mut self, i: usize, due: Instant, now: Instant) {
        let (Some(p), lane) = (self.plan.publish.as_ref(), &mut self.lanes[i]) else {
            return;
        };
        let Some(io) = lane.io.as_mut() else { return };
        // With several channels, each in turn.
        let channel = (self.next % p.paths.len() as u64) as usize;
        let stream = &mut self.streams[p.stream(i, channel)];
        let seq = stream.sent;
        let stamp = Stamp {
            lane: p.stream(i, channel),
            seq,
            scheduled_ns: self.plan.unix_ns(due),
            sent_ns: Some(self.plan.unix_ns(now)),
        };
        let size = self.plan.payload.len();
        let out = io.bufs.out(&mut self.pool);
        let text = self.plan.kind == MessageKind::Text;
        publish::write_head(out, &p.host, &p.paths[channel], size, text, &p.headers);
        if text {
            stamp.write_text(size, out);
        } else {
            stamp.write(size, out);
        }
        stream.sent += 1;
        lane.state = State::Waiting {
            seq,
            channel,
            sent: now,
        };
        lane.since = now;
        self.next += 1;
        self.after_io(i, now);
    }

    /// Time-outs, and connections to (re)open.
    fn check_lanes(&mut self, now: Instant, end: Option<Instant>) {
        for i in 0..self.lanes.len() {
            let waited = now.saturating_duration_since(self.lanes[i].since);
            match self.lanes[i].state {
                State::Down { retry } if retry <= now && end.is_none_or(|end| now < end) => self.connect(i, now),
                State::Connecting if waited >= self.plan.timeout => self.fail(i, "connect_timed_out", now),
                State::Waiting { .. } if waited >= self.plan.timeout => self.fail(i, "timed_out", now),
                _ => {}
            }
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let addr = self.plan.target.addr;
        let result = Transport::connect(addr, None, self.plan.tls.as_ref()).and_then(|mut io| {
            let want = io.registered();
            event_loop::register(self.poll.registry(), &mut io, Token(i), want)?;
            Ok(io)
        });
        let lane = &mut self.lanes[i];
        lane.since = now;
        match result {
            Ok(io) => {
                lane.io = Some(io);
                lane.state = State::Connecting;
            }
            Err(e) => {
                self.out.errors.publish_socket(&e);
                lane.state = State::Down { retry: now + RETRY };
            }
        }
    }

    fn on_ready(&mut self, i: usize, now: Instant) {
        let lane = &mut self.lanes[i];
        let Some(io) = lane.io.as_mut() else { return };
        if matches!(lane.state, State::Connecting) {
            match io.connected() {
                Ok(false) => return,
                Ok(true) => {
                    lane.state = State::Idle;
                    lane.since = now;
                }
                Err(e) => {
                    self.out.errors.publish_socket(&e);
                    return self.drop_connection(i, now);
                }
            }
        }
        if let Err(e) = io.flush() {
            return self.lost(i, &e, now);
        }
        let mut broken = None;
        loop {
            match io.read_some(&mut self.pool) {
                // Publishes are few: read on to WouldBlock, simply.
                Ok(Received::Bytes { .. }) => {}
                Ok(Received::Blocked) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        // A response may come with the end of the connection (a refusal
        // with `Connection: close`): read it before counting the loss.
        self.read_responses(i, now);
        if let Some(e) = broken.filter(|_| self.lanes[i].io.is_some()) {
            self.lost(i, &e, now);
        }
    }

    /// Handle the responses in lane `i`'s read buffer.
    fn read_responses(&mut self, i: usize, now: Instant) {
        loop {
            let lane = &mut self.lanes[i];
            let Some((rbuf, _)) = lane.io.as_mut().and_then(|io| io.bufs.buffers(&mut self.pool)) else {
                break;
            };
            let response = match publish::read_response(rbuf.filled()) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return self.fail(i, e.kind(), now),
            };
            let State::Waiting { seq, channel, sent } = lane.state else {
                // Our server answers a keep-alive connection left idle past
                // its request time-out with 408 and closes it: no request
                // was lost, so connect again like after a silent close.
                if response.status == 408 && response.close {
                    self.out.reconnects += 1;
                    return self.drop_connection(i, now);
                }
                return self.fail(i, "unsolicited_response", now);
            };
            record(&mut self.out.round_trip, now.saturating_duration_since(sent));
            let errors = &mut self.out.errors;
            let nchan = self.plan.publish.as_ref().is_some_and(|p| p.nchan);
            let body = &rbuf.filled()[response.body.clone()];
            if nchan && matches!(response.status, 201 | 202) {
                match publish::nchan_published(body) {
                    Some(n) => self.out.saw_subscribers(n),
                    None => *errors.publish.entry(ResponseError::Malformed.kind()).or_default() += 1,
                }
            } else if response.status == 200 && !nchan {
                match publish::published(body) {
                    Some(p) => {
                        let last_id = &mut lane.last_ids[channel];
                        if last_id.is_some_and(|last| p.id <= last) {
                            *errors.publish.entry("id_not_increasing").or_default() += 1;
                        }
                        *last_id = Some(p.id);
                        self.out.ids.push((channel, p.id));
                        self.out.saw_subscribers(p.subscribers);
                    }
                    None => *errors.publish.entry(ResponseError::Malformed.kind()).or_default() += 1,
                }
            } else {
                *errors.publish_status.entry(response.status).or_default() += 1;
                let stream = self.plan.publish.as_ref().map_or(0, |p| p.stream(i, channel));
                self.streams[stream].rejected.push(seq);
            }
            rbuf.consume(response.len());
            lane.state = State::Idle;
            lane.since = now;
            if response.close {
                return self.drop_connection(i, now);
            }
        }
        self.after_io(i, now);
    }

    /// The connection ended or broke: an idle lane just connects again; a
    /// request in flight is unconfirmed and the loss is counted.
    fn lost(&mut self, i: usize, e: &io::Error, now: Instant) {
        if matches!(self.lanes[i].state, State::Idle) && e.kind() == io::ErrorKind::UnexpectedEof {
            self.out.reconnects += 1;
            return self.drop_connection(i, now);
        }
        if matches!(self.lanes[i].state, State::Waiting { .. }) {
            self.out.errors.publish_socket(e);
        }
        self.drop_connection(i, now);
    }

    /// Count `kind` and drop the connection.
    fn fail(&mut self, i: usize, kind: &'static str, now: Instant) {
        *self.out.errors.publish.entry(kind).or_default() += 1;
        self.drop_connection(i, now);
    }

    fn drop_connection(&mut self, i: usize, now: Instant) {
        if let State::Waiting { seq, channel, .. } = self.lanes[i].state {
            let stream = self.stream(i, channel);
            self.streams[stream].unconfirmed.push(seq);
        }
        let lane = &mut self.lanes[i];
        if let Some(mut io) = lane.io.take() {
            event_loop::deregister(self.poll.registry(), &mut io);
            io.bufs.release(&mut self.pool);
        }
        let retry = if matches!(lane.state, State::Connecting) {
            now + RETRY
        } else {
            now
        };
        lane.state = State::Down { retry };
        lane.since = now;
    }

    /// Flush and set the interest from state: writable while connecting or
    /// while the request is not all written.
    fn after_io(&mut self, i: usize, now: Instant) {
        let lane = &mut self.lanes[i];
        let Some(io) = lane.io.as_mut() else { return };
        if !matches!(lane.state, State::Connecting) {
            if let Err(e) = io.flush() {
                return self.lost(i, &e, now);
            }
            io.bufs.tidy(&mut self.pool);
        }
        let want = if io.has_output() || matches!(lane.state, State::Connecting) {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if event_loop::reregister(self.poll.registry(), io, Token(i), want).is_err() {
            self.fail(i, "register", now);
        }
    }
}

/// The lanes are entries `0..lanes` of the poll; the timerfd is the loop's own.
impl EventLoop for Publisher {
    fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    fn ready(&mut self, key: usize, _: Ready) {
        if key < self.lanes.len() {
            self.on_ready(key, Instant::now());
        }
    }

    fn own(&mut self, token: Token) {
        if token == TIMER {
            self.timer.fired();
        }
    }

    fn turn(&mut self) -> io::Result<Option<Duration>> {
        let now = Instant::now();
        let window = self.shared.window();
        let end = window.map(|(_, end)| end);
        if let Some((start, end)) = window {
            if now >= end && self.lanes.iter().all(|l| !matches!(l.state, State::Waiting { .. })) {
                return Ok(None);
            }
            if now >= end + self.plan.timeout {
                return Ok(None);
            }
            self.send_due(start, end, now);
        }
        self.check_lanes(now, end);
        let mut timeout = TICK;
        if let Some(due) = window.and_then(|w| self.next_due(w, now)) {
            if due <= now {
                timeout = Duration::ZERO;
            } else if due < now + TICK {
                self.timer.arm(due, now)?;
            }
        }
        Ok(Some(timeout))
    }
}
