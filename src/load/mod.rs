//! The load generator: `wsreactor load`, many WebSocket clients on a
//! hand-written mio reactor, speaking RFC 6455 through [`crate::protocol`].
//!
//! ```text
//!  run(options) ─► Plan ─► T × Worker (thread): Poll + timerfd + Slab<Client> + heap of send times
//!      │                     Client: Connecting ─► Handshake ─► Open ─► Closing  (or ─► Feed ⇄ Redial over HTTP)
//!      ├─ progress line (Live counters, interval histograms)
//!      └─ merge Stats ─► report::Summary ─► table / JSON / SVG
//! ```
//!
//! A run has four phases. Ramp: connection `i` opens at `i / connect_rate`
//! (`schedule`). When every connection is open or has failed, the
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
//! In churn mode (`churn`) `connections` is a number of slots, each
//! running cycles back to back: connect, handshake, one message and its
//! echo, close with 1000, the server's close and its TCP close; the window
//! starts at once (there is no ramp) and cycles per second are what is
//! measured. With `rate`, cycles start when due (`rate` per second in all)
//! and are timed from then.
//!
//! In subscribe mode the connections are subscribers of the push server's
//! channel `/ws/{channel}` (the channel is the URL's path) and send nothing;
//! a `publisher` thread posts to `/pub/{channel}` at `rate` messages per
//! second during the window, and each subscriber measures every message
//! from the time it was due to be published to its arrival (`subscribe`).
//! The drain then waits until every subscriber has every message the
//! server accepted (at most twice `timeout`), and the deliveries are
//! reconciled with what was accepted: missing, duplicates, out of order.
//! With `transport` other than `ws` the subscribers are HTTP clients
//! instead: an event stream (`/sse/{channel}`), long polls or short polls
//! (`/poll/{channel}`), each with its own cursor ([`feed`]); every client
//! counts the bytes its socket carried, so that the report can say what
//! each delivery cost on the wire.
//!
//! - [`Options`] what was asked, [`Plan`] the same checked and resolved,
//!   [`Shared`] the run's phase and window across threads.
//! - `session`: one connection's state machine, sans-IO (bytes and the
//!   time in; bytes to send, a wake-up and its fate out).
//! - `client`: its driver: a transport and a session.
//! - `churn`: churn mode's cycles, slots and figures.
//! - `echo`: echo mode's messages on one connection: due, in flight, answered.
//! - `subscribe`: subscribe mode's payload stamp and per-subscriber order.
//! - `publisher`: subscribe mode's publisher thread; [`publish`] its HTTP/1.1.
//! - [`feed`]: subscribe mode over SSE, long polls and short polls;
//!   [`response`] the HTTP/1.1 responses of both.
//! - [`compare`]: the transports side by side; [`server_usage`] the
//!   server's CPU and memory (`--server-pid`).
//! - `transport`: its socket (source address, non-blocking connect), TLS
//!   (the server's transport on rustls's client side) and buffers.
//! - `worker`: the event loop of one thread, on the server's
//!   `reactor::event_loop::Driver`.
//! - `schedule`: connect and message pacing.
//! - `timer`: sub-millisecond wake-ups for due messages.
//! - `stats`: HDR histograms and error counters.
//! - [`target`]: the `ws://` URL and `--source-ips`.
//! - [`report`]: the summary as a table and JSON, and the progress line.
//! - [`plot`]: the latency percentile chart (SVG).
//! - [`cli`]: `wsreactor load`'s flags and its run from start to exit status.

pub(crate) mod churn;
#[cfg(feature = "cli")]
pub mod cli;
pub(crate) mod client;
pub mod compare;
pub(crate) mod ctx;
#[cfg(feature = "redis")]
pub mod distributed;
pub(crate) mod echo;
pub mod fanout;
pub mod feed;
pub mod metrics;
mod options;
mod plan;
#[cfg(feature = "cli")]
pub mod plot;
pub mod publish;
pub(crate) mod publisher;
pub mod report;
pub mod response;
pub mod scenario;
pub(crate) mod schedule;
pub mod server_usage;
pub(crate) mod session;
mod shared;
pub(crate) mod stats;
pub(crate) mod subscribe;
pub mod target;
pub(crate) mod timer;
pub(crate) mod transport;
pub(crate) mod worker;

pub use options::{
    parse_header, CursorStyle, LoadError, Mode, Options, ReconnectStorm, Scenario, SlowReaders, Transport,
};
pub use plan::{Plan, PublishPlan};
use report::Summary;
pub use shared::Shared;
use stats::{histogram, Live, Stats};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use target::{parse_source_ips, Target};

/// Run the load as `options` say; return the summary.
pub fn run(options: &Options) -> Result<Summary, LoadError> {
    run_until(options, &AtomicBool::new(false))
}

/// As [`run`], ending the window early once `stop` is set (Ctrl-C).
pub fn run_until(options: &Options, stop: &AtomicBool) -> Result<Summary, LoadError> {
    Ok(run_part(options, stop, Role::Alone)?.summary(options))
}

/// A distributed run's messages to and from the other processes, passed
/// on by the run's loop (see `distributed`).
pub(crate) trait Relay {
    /// Each turn of the run's loop (about every 50 ms): pass on what the
    /// others said (the window's start, what was accepted, a stop) and
    /// what this process has to say.
    fn tick(&mut self, shared: &Shared, now: Instant) -> Result<(), LoadError>;
    /// Still waiting for the others (the coordinator for the agents).
    fn waiting(&self) -> bool;
    /// The shared clock minus this process's, µs: the payloads' times
    /// (the publisher's stamps, the subscribers' arrivals) are taken on
    /// the shared clock, so that a latency across hosts is not off by the
    /// hosts' difference.
    fn clock_offset_us(&self) -> i64;
}

/// What this process is in a run (only alone without the `redis` feature,
/// which distributed runs coordinate through).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Role<'a> {
    /// The whole run.
    Alone,
    /// An agent: its share of the connections, the window held for the
    /// coordinator to start, no publisher (the coordinator's is the run's).
    Agent(&'a mut dyn Relay),
    /// The coordinator: no connections of its own, the publisher, and the
    /// agents' results.
    Coordinator(&'a mut dyn Relay),
}

/// A run's figures before they are a summary.
pub(crate) struct Finished {
    pub plan: Arc<Plan>,
    pub stats: Stats,
    pub published: Option<publisher::PublishOutcome>,
    /// The window from the run's start.
    pub window: Option<(Duration, Duration)>,
    pub elapsed: Duration,
    pub peak: usize,
    pub series: Vec<report::Sample>,
    /// The server's usage before, at the window's start and at the end.
    usage: [Option<server_usage::Usage>; 3],
}

impl Finished {
    /// The run's summary.
    pub fn summary(self, options: &Options) -> Summary {
        let plan = self.plan;
        let mut summary = Summary::new(
            options,
            &plan,
            self.stats,
            self.published,
            self.window,
            self.elapsed,
            self.peak,
        );
        summary.series = self.series;
        if let (Some(pid), Some(sub)) = (options.server_pid, summary.subscribe.as_mut()) {
            if let [Some(before), Some(start), Some(end)] = self.usage {
                let d = &sub.deliveries;
                let report = server_usage::ServerReport::new(pid, before, start, end, d.received, d.subscribers);
                sub.transport.server = Some(report);
            }
        }
        summary
    }
}

/// Run this process's part of the load.
pub(crate) fn run_part(options: &Options, stop: &AtomicBool, mut role: Role<'_>) -> Result<Finished, LoadError> {
    let t0 = Instant::now();
    let mut plan = Plan::new(options, t0)?;
    if let Role::Agent(r) | Role::Coordinator(r) = &role {
        plan.t0_unix_ns = plan
            .t0_unix_ns
            .saturating_add_signed(r.clock_offset_us().saturating_mul(1000));
    }
    let plan = Arc::new(plan);
    let shared = Arc::new(match (&role, plan.mode) {
        (Role::Alone, Mode::Churn) => Shared::at_once(t0, options.duration),
        (Role::Alone, _) => Shared::new(t0, options.duration, plan.connections),
        _ => Shared::held(t0, options.duration, plan.connections),
    });
    let probe = |pid: Option<u32>| pid.and_then(server_usage::sample);
    let before = probe(options.server_pid);
    if let (Some(pid), None) = (options.server_pid, before) {
        return Err(LoadError::Invalid(format!(
            "--server-pid {pid}: no such process to read in /proc"
        )));
    }
    // Before any thread starts: a refusal leaves nothing running.
    let exporter = match options.metrics_bind {
        Some(addr) => Some(
            metrics::Exporter::start(addr)
                .map_err(|e| LoadError::Invalid(format!("--metrics-bind {addr}: cannot listen there: {e}")))?,
        ),
        None => None,
    };
    let mut at_start = None;
    let seed = t0.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    let mut lives = Vec::new();
    let mut handles = Vec::new();
    let workers = match role {
        Role::Coordinator(_) => 0,
        _ => plan.threads,
    };
    for id in 0..workers {
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
    let publisher = match (&plan.publish, &role) {
        (_, Role::Agent(_)) => None,
        (Some(p), _) if !p.observe => {
            let publisher = publisher::Publisher::new(plan.clone(), shared.clone())?;
            let spawned = std::thread::Builder::new()
                .name("load-publisher".into())
                .spawn(move || publisher.run());
            Some(spawned?)
        }
        _ => None,
    };
    let progress = report::Progress::new(plan.progress);
    let mut interval = histogram();
    // Every latency so far, for the metrics endpoint.
    let mut total = histogram();
    let mut last = (t0, 0u64, 0u64);
    let mut series = Vec::new();
    let mut stopped = false;
    loop {
        let relay = match &mut role {
            Role::Alone => None,
            Role::Agent(r) | Role::Coordinator(r) => Some(&mut **r),
        };
        let waiting = match relay {
            Some(r) => {
                if let Err(e) = r.tick(&shared, Instant::now()) {
                    // The others are gone or refused: end this part too,
                    // and let its threads close what they hold (within
                    // their drain and close time-outs) before going on.
                    shared.stop(Instant::now());
                    handles.into_iter().for_each(|h| drop(h.join()));
                    if let Some(h) = publisher {
                        drop(h.join());
                    }
                    return Err(e);
                }
                r.waiting()
            }
            None => false,
        };
        let finished = !waiting
            && handles.iter().all(|h| h.is_finished())
            && publisher.as_ref().is_none_or(|h| h.is_finished() || workers > 0);
        if !finished {
            std::thread::sleep(Duration::from_millis(50));
        }
        let now = Instant::now();
        if stop.load(Relaxed) && !stopped {
            stopped = true;
            shared.stop(now);
            // The line goes at once: what follows is the summary.
            progress.finish();
        }
        // The server's usage as the window opens (within a loop's 50 ms).
        if at_start.is_none() && shared.window().is_some_and(|(start, _)| now >= start) {
            at_start = probe(options.server_pid);
        }
        // One sample a second, and the last (shorter) one at the end.
        if now - last.0 >= Duration::from_secs(1) || (finished && now - last.0 >= Duration::from_millis(10)) {
            lives.iter().for_each(|l| l.take_interval(&mut interval));
            let received: u64 = lives.iter().map(|l| l.received.load(Relaxed)).sum();
            let errors: u64 = lives.iter().map(|l| l.errors.load(Relaxed)).sum();
            let rate = (received - last.1) as f64 / (now - last.0).as_secs_f64();
            let (phase, left) = match shared.window() {
                None => ("ramp", None),
                Some((start, _)) if now < start => ("ramp", None),
                Some((_, end)) if now < end => ("run", Some(end - now)),
                Some(_) => ("closing", None),
            };
            let open = shared.open_now();
            progress.update(phase, left, open, plan.connections, rate, &interval, errors);
            let quantile = |q| (!interval.is_empty()).then(|| interval.value_at_quantile(q));
            series.push(report::Sample {
                t_s: (now - t0).as_secs_f64(),
                phase,
                open,
                per_second: rate,
                p50_us: quantile(0.5),
                p99_us: quantile(0.99),
                errors: errors - last.2,
            });
            if let Some(exporter) = &exporter {
                let _ = total.add(&interval);
                let server = options
                    .server_pid
                    .and_then(|pid| Some((server_usage::sample(pid)?, metrics::open_fds(pid))));
                let figures = metrics::Figures {
                    phase,
                    target: plan.connections,
                    open,
                    received,
                    errors,
                    per_second: rate,
                    server,
                };
                exporter.update(metrics::page(&figures, &total));
            }
            interval.reset();
            last = (now, received, errors);
        }
        if finished {
            break;
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
        None => plan
            .publish
            .as_ref()
            .map(|p| publisher::PublishOutcome::observed(&stats.orders, p.streams(), p.lanes)),
    };
    let elapsed = t0.elapsed();
    let window = shared
        .window()
        .map(|(start, end)| (start - t0, end.min(t0 + elapsed) - t0));
    Ok(Finished {
        plan,
        stats,
        published,
        window,
        elapsed,
        peak: shared.peak_open(),
        series,
        usage: [before, at_start, probe(options.server_pid)],
    })
}
