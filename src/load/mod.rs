//! The load generator: `wsreactor load`, many WebSocket clients on a
//! hand-written mio reactor, speaking RFC 6455 through [`crate::protocol`].
//!
//! ```text
//!  run(options) ─► Plan ─► T × Worker (thread): Poll + timerfd + Slab<Client> + heap of send times
//!      │                     Client: Connecting ─► Handshake ─► Open ─► Closing
//!      ├─ progress line (Live counters, interval histograms)
//!      └─ merge Stats ─► report::Summary ─► table / JSON / SVG
//! ```
//!
//! A run has four phases. Ramp: connection `i` opens at `i / connect_rate`
//! ([`schedule`]). When every connection is open or has failed, the
//! measurement window begins (shared by all workers) and lasts `duration`:
//! in echo mode each connection sends messages and measures the round trip
//! of each echo, in connect mode it holds its connection. Then the workers
//! wait for the echoes still in flight (at most `timeout`), close every
//! connection with 1000 (RFC 6455 §7.1.2) and stop.
//!
//! `rate` is the total over all connections; each connection sends
//! `rate / connections` per second. With it, latency is measured from the
//! time each message was due (coordinated omission); without it, each
//! connection keeps `pipeline` messages in flight and latency is measured
//! from the actual send.
//!
//! In churn mode ([`churn`]) `connections` is a number of slots, each
//! running cycles back to back: connect, handshake, one message and its
//! echo, close with 1000, the server's close and its TCP close; the window
//! starts at once (there is no ramp) and cycles per second are what is
//! measured. With `rate`, cycles start when due (`rate` per second in all)
//! and are timed from then.
//!
//! In subscribe mode the connections are subscribers of the push server's
//! channel `/ws/{channel}` (the channel is the URL's path) and send nothing;
//! a [`publisher`] thread posts to `/pub/{channel}` at `rate` messages per
//! second during the window, and each subscriber measures every message
//! from the time it was due to be published to its arrival ([`subscribe`]).
//! The drain then waits until every subscriber has every message the
//! server accepted (at most twice `timeout`), and the deliveries are
//! reconciled with what was accepted: missing, duplicates, out of order.
//!
//! - [`client`]: one connection's state machine.
//! - [`churn`]: churn mode's cycles, slots and figures.
//! - [`echo`]: echo mode's messages on one connection: due, in flight, answered.
//! - [`subscribe`]: subscribe mode's payload stamp and per-subscriber order.
//! - [`publisher`]: subscribe mode's publisher thread; [`publish`] its HTTP/1.1.
//! - [`transport`]: its socket (source address, non-blocking connect) and buffers.
//! - [`worker`]: the event loop of one thread.
//! - [`schedule`]: connect and message pacing.
//! - [`timer`]: sub-millisecond wake-ups for due messages.
//! - [`stats`]: HDR histograms and error counters.
//! - [`target`]: the `ws://` URL and `--source-ips`.
//! - [`report`]: the summary as a table and JSON, and the progress line.
//! - [`plot`]: the latency percentile chart (SVG).

pub mod churn;
pub mod client;
pub mod echo;
pub mod plot;
pub mod publish;
pub mod publisher;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod subscribe;
pub mod target;
pub mod timer;
pub mod transport;
pub mod worker;

use crate::protocol::{MessageKind, ReadLimits};
use report::Summary;
use schedule::{ConnectSchedule, MessageSchedule};
use stats::{histogram, Live, Stats};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use target::{parse_source_ips, Target};

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send messages, await each echo, measure the round trip.
    Echo,
    /// Open and hold connections; measure connect and handshake time.
    Connect,
    /// Subscribe to a channel of the push server, publish to it over HTTP
    /// and measure each delivery from the time it was due to be published.
    Subscribe,
    /// New connections back to back on `connections` slots, each doing a
    /// handshake, one echo and a close; measure cycles per second.
    Churn,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Connect => "connect",
            Mode::Subscribe => "subscribe",
            Mode::Churn => "churn",
        }
    }
}

/// What to run. See the module docs for what each knob means.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://HOST[:PORT][/PATH]`.
    pub url: String,
    /// What each connection does.
    pub mode: Mode,
    /// Connections to open; in churn mode, cycles in progress at once.
    pub connections: usize,
    /// New connections per second during the ramp; 0 opens all at once.
    pub connect_rate: f64,
    /// Worker threads; 0 for one per core.
    pub threads: usize,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Payload bytes per message.
    pub size: usize,
    /// Text or binary messages.
    pub kind: MessageKind,
    /// Messages per second over all connections (published per second in
    /// subscribe mode, cycles started per second in churn mode); `None`
    /// for a closed loop.
    pub rate: Option<f64>,
    /// Subscribe mode: HTTP connections the publisher posts over.
    pub publishers: usize,
    /// Messages in flight per connection at most.
    pub pipeline: usize,
    /// Local addresses to connect from, in turn; empty lets the kernel pick.
    pub source_ips: Vec<IpAddr>,
    /// Connect, handshake and echo time-out; also bounds the drain.
    pub timeout: Duration,
    /// Draw the live progress line on stderr.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: "ws://127.0.0.1:9001/".into(),
            mode: Mode::Echo,
            connections: 100,
            connect_rate: 1000.0,
            threads: 0,
            duration: Duration::from_secs(10),
            size: 32,
            kind: MessageKind::Binary,
            rate: None,
            publishers: 4,
            pipeline: 1,
            source_ips: Vec::new(),
            timeout: Duration::from_secs(10),
            progress: false,
        }
    }
}

/// Why a run could not start or finish.
#[derive(Debug)]
pub enum LoadError {
    /// The options are unusable (a usage error).
    Invalid(String),
    /// The generator itself failed (threads, poll).
    Io(std::io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Invalid(why) => f.write_str(why),
            LoadError::Io(e) => write!(f, "load generator failed: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<std::io::Error> for LoadError {
    fn from(e: std::io::Error) -> Self {
        LoadError::Io(e)
    }
}

/// Subscribe mode's publishing, resolved.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// The channel, from the URL's `/ws/{channel}`.
    pub channel: String,
    /// `/pub/{channel}`.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// HTTP connections to post over.
    pub lanes: usize,
    /// Messages per second in all; `None` posts as fast as answers come.
    pub rate: Option<f64>,
}

impl PublishPlan {
    fn new(o: &Options, target: &Target) -> Result<PublishPlan, String> {
        let path = target.path.split('?').next().unwrap_or_default();
        let channel = path
            .strip_prefix("/ws/")
            .filter(|c| valid_channel(c))
            .ok_or("subscribe mode needs --url ws://HOST:PORT/ws/CHANNEL (CHANNEL: 1 to 128 of A-Z a-z 0-9 _ . : -)")?;
        if o.publishers == 0 || o.publishers > subscribe::MAX_LANES {
            return Err(format!("--publishers must be 1 to {}", subscribe::MAX_LANES));
        }
        if o.size < subscribe::HEADER || o.kind == MessageKind::Text {
            return Err(format!(
                "subscribe mode publishes binary payloads of at least {} bytes",
                subscribe::HEADER
            ));
        }
        Ok(PublishPlan {
            channel: channel.to_string(),
            path: format!("/pub/{channel}"),
            host: target.host.clone(),
            lanes: o.publishers,
            rate: o.rate,
        })
    }
}

/// A channel name the push server takes: `[A-Za-z0-9_.:-]{1,128}`.
fn valid_channel(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Options resolved for the workers, shared read-only.
#[derive(Debug)]
pub struct Plan {
    /// The run's epoch: published payloads carry times relative to it.
    pub t0: Instant,
    /// Where to connect.
    pub target: Target,
    /// What each connection does.
    pub mode: Mode,
    /// Connections over the whole run.
    pub connections: usize,
    /// Worker threads.
    pub threads: usize,
    /// Messages in flight per connection at most.
    pub pipeline: usize,
    /// Send times when paced. In churn mode, cycle start times, with the
    /// workers in place of connections: cycle `k` of worker `w` is due at
    /// `offset(w, k)`, so that the run's cycles are due one every `1 / rate`.
    pub schedule: Option<MessageSchedule>,
    /// Connect times.
    pub connect: ConnectSchedule,
    /// Connect, handshake, echo and drain time-out.
    pub timeout: Duration,
    /// How long a close handshake and the server's EOF may take.
    pub close_timeout: Duration,
    /// Limits for what the server sends.
    pub read_limits: ReadLimits,
    /// Text or binary.
    pub kind: MessageKind,
    /// The message payload.
    pub payload: Vec<u8>,
    /// Source addresses, in turn.
    pub source_ips: Vec<IpAddr>,
    /// Size of the workers' pooled buffers.
    pub buffer_size: usize,
    /// Feed the progress line.
    pub progress: bool,
    /// Subscribe mode's publishing.
    pub publish: Option<PublishPlan>,
}

impl Plan {
    fn new(o: &Options, t0: Instant) -> Result<Plan, LoadError> {
        let invalid = |why: &str| Err(LoadError::Invalid(why.into()));
        if o.connections == 0 || o.pipeline == 0 {
            return invalid("--connections and --pipeline must be at least 1");
        }
        let positive = |r: f64| r > 0.0 && r.is_finite();
        if o.rate.is_some_and(|r| !positive(r)) || o.connect_rate.is_nan() || o.connect_rate < 0.0 {
            return invalid("--rate must be above 0 and --connect-rate at least 0");
        }
        if o.size > 1 << 30 {
            return invalid("--size is at most 1 GiB");
        }
        let target = Target::parse(&o.url).map_err(LoadError::Invalid)?;
        if o.source_ips.iter().any(|ip| ip.is_ipv4() != target.addr.is_ipv4()) {
            return invalid("--source-ips must be of the same family as the target");
        }
        let publish = match o.mode {
            Mode::Subscribe => Some(PublishPlan::new(o, &target).map_err(LoadError::Invalid)?),
            Mode::Echo | Mode::Connect | Mode::Churn => None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if o.threads == 0 { cores } else { o.threads }.min(o.connections);
        let payload = match o.kind {
            MessageKind::Text => (0..o.size).map(|i| b'a' + (i % 26) as u8).collect(),
            MessageKind::Binary => (0..o.size).map(|i| (i * 31 + 7) as u8).collect(),
        };
        let defaults = ReadLimits::default();
        Ok(Plan {
            t0,
            target,
            mode: o.mode,
            connections: o.connections,
            threads,
            pipeline: o.pipeline,
            schedule: o.rate.and_then(|r| match o.mode {
                Mode::Echo => Some(MessageSchedule::new(r, o.connections)),
                Mode::Churn => Some(MessageSchedule::new(r, threads)),
                Mode::Connect | Mode::Subscribe => None,
            }),
            connect: ConnectSchedule::new(t0, o.connect_rate),
            timeout: o.timeout,
            close_timeout: o.timeout.min(Duration::from_secs(2)),
            read_limits: ReadLimits {
                max_frame_size: defaults.max_frame_size.max(o.size),
                max_message_size: defaults.max_message_size.max(o.size),
            },
            kind: o.kind,
            payload,
            source_ips: o.source_ips.clone(),
            buffer_size: (o.size + 14).clamp(4096, 1 << 16),
            progress: o.progress,
            publish,
        })
    }

    /// The source address for connection `index`.
    pub fn source_for(&self, index: usize) -> Option<IpAddr> {
        (!self.source_ips.is_empty()).then(|| self.source_ips[index % self.source_ips.len()])
    }
}

/// Margin between the last connection resolving and the window's start,
/// so every worker sees the start before its first message is due.
const START_MARGIN: Duration = Duration::from_millis(20);

/// The run's phase, shared by the workers.
#[derive(Debug)]
pub struct Shared {
    t0: Instant,
    duration: Duration,
    /// Connections neither open nor failed yet.
    unresolved: AtomicUsize,
    /// Connections that completed the opening handshake.
    opened: AtomicUsize,
    /// Connections open now, and the most at once.
    open: AtomicUsize,
    peak_open: AtomicUsize,
    /// The window, in nanoseconds after `t0`; `u64::MAX` until decided.
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    /// Subscribe mode: messages the server accepted, once the publisher is
    /// done; `u64::MAX` until then.
    published: AtomicU64,
}

impl Shared {
    fn new(t0: Instant, duration: Duration, connections: usize) -> Self {
        Shared {
            t0,
            duration,
            unresolved: AtomicUsize::new(connections),
            opened: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            peak_open: AtomicUsize::new(0),
            start_ns: AtomicU64::new(u64::MAX),
            end_ns: AtomicU64::new(u64::MAX),
            published: AtomicU64::new(u64::MAX),
        }
    }

    /// Churn mode: no ramp to wait for, the window starts at once (after
    /// the margin that lets every worker see it first).
    fn at_once(t0: Instant, duration: Duration) -> Self {
        let shared = Shared::new(t0, duration, 0);
        let start = shared.nanos(t0 + START_MARGIN);
        shared.start_ns.store(start, Release);
        shared
            .end_ns
            .store(start.saturating_add(duration.as_nanos() as u64), Release);
        shared
    }

    /// `t` in nanoseconds since the run's epoch.
    pub fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// A connection opened or failed. The last one decides the window;
    /// with none open there is nothing to measure and the window is empty.
    pub fn resolve(&self, opened: bool, now: Instant) {
        if opened {
            self.opened.fetch_add(1, AcqRel);
            let open = self.open.fetch_add(1, AcqRel) + 1;
            self.peak_open.fetch_max(open, AcqRel);
        }
        // Churn mode resolves connections all run long, with none counted.
        let left = self.unresolved.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
        if left == Ok(1) {
            let start = self.nanos(now + START_MARGIN);
            let length = if self.opened.load(Acquire) == 0 {
                0
            } else {
                self.duration.as_nanos() as u64
            };
            self.end_ns.fetch_min(start.saturating_add(length), AcqRel);
            let _ = self.start_ns.compare_exchange(u64::MAX, start, AcqRel, Acquire);
        }
    }

    /// The publisher is done: the server accepted `accepted` messages.
    pub fn published(&self, accepted: u64) {
        self.published.store(accepted.min(u64::MAX - 1), Release);
    }

    /// Messages the server accepted, once the publisher is done.
    pub fn accepted(&self) -> Option<u64> {
        Some(self.published.load(Acquire)).filter(|&n| n != u64::MAX)
    }

    /// An open connection is gone.
    pub fn closed(&self) {
        self.open.fetch_sub(1, AcqRel);
    }

    /// End the window now (or start an empty one).
    pub fn stop(&self, now: Instant) {
        let now = self.nanos(now);
        self.end_ns.fetch_min(now, AcqRel);
        let _ = self.start_ns.compare_exchange(u64::MAX, now, AcqRel, Acquire);
    }

    /// The measurement window (start, end), once decided.
    pub fn window(&self) -> Option<(Instant, Instant)> {
        let start = self.start_ns.load(Acquire);
        if start == u64::MAX {
            return None;
        }
        let end = self.end_ns.load(Acquire).max(start);
        Some((
            self.t0 + Duration::from_nanos(start),
            self.t0 + Duration::from_nanos(end),
        ))
    }
}

/// Run the load as `options` say; return the summary.
pub fn run(options: &Options) -> Result<Summary, LoadError> {
    run_until(options, &AtomicBool::new(false))
}

/// As [`run`], ending the window early once `stop` is set (Ctrl-C).
pub fn run_until(options: &Options, stop: &AtomicBool) -> Result<Summary, LoadError> {
    let t0 = Instant::now();
    let plan = Arc::new(Plan::new(options, t0)?);
    let shared = Arc::new(match plan.mode {
        Mode::Churn => Shared::at_once(t0, options.duration),
        _ => Shared::new(t0, options.duration, plan.connections),
    });
    let seed = t0.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    let mut lives = Vec::new();
    let mut handles = Vec::new();
    for id in 0..plan.threads {
        let live = Arc::new(Live::default());
        lives.push(live.clone());
        let seed = seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let worker = worker::Worker::new(id, plan.clone(), shared.clone(), live, seed)?;
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{id}"))
                .spawn(move || worker.run())?,
        );
    }
    let publisher = match plan.publish {
        Some(_) => {
            let publisher = publisher::Publisher::new(plan.clone(), shared.clone())?;
            let spawned = std::thread::Builder::new()
                .name("load-publisher".into())
                .spawn(move || publisher.run());
            Some(spawned?)
        }
        None => None,
    };
    let progress = report::Progress::new(plan.progress);
    let mut interval = histogram();
    let mut last = (t0, 0u64);
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if stop.load(Relaxed) {
            shared.stop(now);
        }
        if now - last.0 >= Duration::from_secs(1) {
            lives.iter().for_each(|l| l.take_interval(&mut interval));
            let received: u64 = lives.iter().map(|l| l.received.load(Relaxed)).sum();
            let errors: u64 = lives.iter().map(|l| l.errors.load(Relaxed)).sum();
            let rate = (received - last.1) as f64 / (now - last.0).as_secs_f64();
            let phase = match shared.window() {
                None => "ramp",
                Some((start, _)) if now < start => "ramp",
                Some((_, end)) if now < end => "run",
                Some(_) => "closing",
            };
            let open = shared.open.load(Relaxed);
            progress.update(phase, open, plan.connections, rate, &interval, errors);
            interval.reset();
            last = (now, received);
        }
    }
    progress.finish();
    let mut stats = Stats::default();
    for h in handles {
        let worker_stats = h.join().map_err(|_| std::io::Error::other("load worker panicked"))??;
        stats.merge(&worker_stats);
    }
    let published = match publisher {
        Some(h) => Some(
            h.join()
                .map_err(|_| std::io::Error::other("load publisher panicked"))??,
        ),
        None => None,
    };
    let elapsed = t0.elapsed();
    let window = shared
        .window()
        .map(|(start, end)| (start - t0, end.min(t0 + elapsed) - t0));
    let peak = shared.peak_open.load(Acquire);
    Ok(Summary::new(options, &plan, stats, published, window, elapsed, peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_waits_for_every_connection_then_lasts_the_duration() {
        let t0 = Instant::now();
        let shared = Shared::new(t0, Duration::from_secs(5), 3);
        shared.resolve(true, t0);
        shared.resolve(false, t0);
        assert_eq!(shared.window(), None);
        let last = t0 + Duration::from_secs(1);
        shared.resolve(true, last);
        let (start, end) = shared.window().unwrap();
        assert_eq!(start, last + START_MARGIN);
        assert_eq!(end - start, Duration::from_secs(5));
        assert_eq!(shared.peak_open.load(Relaxed), 2);
        // A stop ends it early.
        shared.stop(start + Duration::from_secs(2));
        assert_eq!(shared.window().unwrap().1 - start, Duration::from_secs(2));
    }

    #[test]
    fn churn_has_its_window_at_once_and_connections_do_not_move_it() {
        let t0 = Instant::now();
        let shared = Shared::at_once(t0, Duration::from_secs(3));
        let (start, end) = shared.window().unwrap();
        assert_eq!((start, end - start), (t0 + START_MARGIN, Duration::from_secs(3)));
        for _ in 0..3 {
            shared.resolve(true, t0 + Duration::from_secs(1));
            shared.closed();
        }
        shared.resolve(false, t0 + Duration::from_secs(2));
        assert_eq!(shared.window(), Some((start, end)));
        assert_eq!(shared.peak_open.load(Relaxed), 1);
    }

    #[test]
    fn nothing_open_means_an_empty_window() {
        let t0 = Instant::now();
        let shared = Shared::new(t0, Duration::from_secs(5), 2);
        shared.resolve(false, t0);
        shared.resolve(false, t0);
        let (start, end) = shared.window().unwrap();
        assert_eq!(start, end);
    }

    #[test]
    fn plans_refuse_bad_options() {
        let t0 = Instant::now();
        let subscribe = Options {
            mode: Mode::Subscribe,
            url: "ws://127.0.0.1:9001/ws/news".into(),
            ..Options::default()
        };
        let bad = [
            Options {
                mode: Mode::Subscribe,
                ..Options::default()
            },
            Options {
                url: "ws://127.0.0.1:9001/ws/a b".into(),
                ..subscribe.clone()
            },
            Options {
                size: 15,
                ..subscribe.clone()
            },
            Options {
                kind: MessageKind::Text,
                ..subscribe.clone()
            },
            Options {
                publishers: 0,
                ..subscribe.clone()
            },
            Options {
                connections: 0,
                ..Options::default()
            },
            Options {
                rate: Some(0.0),
                ..Options::default()
            },
            Options {
                url: "wss://127.0.0.1/".into(),
                ..Options::default()
            },
        ];
        for o in bad {
            assert!(matches!(Plan::new(&o, t0), Err(LoadError::Invalid(_))), "{o:?}");
        }
        let plan = Plan::new(&Options::default(), t0).unwrap();
        assert_eq!(plan.payload.len(), 32);
        let plan = Plan::new(
            &Options {
                url: "ws://127.0.0.1:9001/ws/a.b:C-9_?since=3".into(),
                rate: Some(10.0),
                ..subscribe
            },
            t0,
        )
        .unwrap();
        let publish = plan.publish.unwrap();
        assert_eq!(
            (publish.channel.as_str(), publish.path.as_str()),
            ("a.b:C-9_", "/pub/a.b:C-9_")
        );
        assert_eq!(publish.lanes, 4);
        // Subscribers send nothing: no per-connection schedule.
        assert!(plan.schedule.is_none());
    }
}
