//! What a run tells: the live progress line, the end summary as a table,
//! and the same as JSON (the chart is [`super::plot`]).
//!
//! Latencies in the summary are in microseconds. The JSON fields:
//!
//! ```text
//! tool, started_at, command_line, url, mode, threads,
//! connections { target, attempted, opened, failed, peak_open },
//! time        { ramp_s, duration_s, measured_s, elapsed_s },
//! messages    { kind, size, pipeline, rate, rate_per_connection, sent, received, lost, per_second },
//! latency_from: "schedule" (with --rate) | "send" | "connect" (churn mode without --rate),
//! latency_us, service_us, connect_us, handshake_us:
//!             { count, min, mean, p50, p90, p99, p99_9, max },
//! errors      { total, refused, timed_out { connect, handshake, message, close },
//!               handshake_status { "404": n }, handshake_invalid { kind: n },
//!               close_codes { "1006": n }, protocol { kind: n }, echo { kind: n }, io { kind: n },
//!               publish_status { "500": n }, publish { kind: n }, delivery { kind: n } },
//! subscribe   null, or in subscribe mode:
//!             { channel, publish_url, publishers,
//!               published  { rate, due, sent, unsent, accepted, rejected, unconfirmed, per_second,
//!                            first_id, last_id, subscribers_min, subscribers_max, reconnects, fell_behind },
//!               deliveries { subscribers, expected, received, missing, duplicates, out_of_order,
//!                            complete_subscribers, per_second },
//!               publish_us { count, min, ... },
//!               transport  { transport, poll_interval_s, keep_alive, cursor, bytes_in, bytes_out,
//!                            bytes_in_per_delivery, bytes_out_per_delivery, requests, requests_per_second,
//!                            connects, connections_opened, reconnects,
//!                            server: null | { pid, cpu_s, cpu_us_per_delivery, rss_bytes,
//!                                             rss_bytes_per_subscriber (null when reused),
//!                                             rss_anon_bytes_per_subscriber (null when reused), reused } },
//!               fanout     { publishes, complete, incomplete, untracked, untracked_publishes, completion_us { count, min, ... } },
//!               slow_readers null | { share, pause_s, readers, dropped, dropped_by { "close 1013": n },
//!                            served_ms { min, p50, max }, received { min, p50, max },
//!                            latency_us, others_us, baseline_us (null: not run), p99_ratio },
//!               reconnect_storm null | { at_s, share, jitter_s, dropped, reconnected, caught_up,
//!                            not_caught_up, caught_up_us { count, min, ... }, all_caught_up_s, recovered } },
//! churn       null, or in churn mode:
//!             { slots, rate, due, started, unstarted, late, fell_behind, cycles, cycles_per_sec,
//!               completed_after_window, failed, server_kept_open, echo_us { count, min, ... } },
//! series      [ { t_s, phase, open, per_second, p50_us, p99_us, errors } ] one per second,
//! verdict     { passed, exit_code, failures: [ "..." ] },
//! agents      (a distributed run only) [ { index, name, connections, attempted, opened, peak_open,
//!               received, sent, errors, clock_offset_us, clock_error_us, latency_us { count, min, ... },
//!               latency_histogram: base64 of HdrHistogram V2 (deflate) } ]
//! ```
//!
//! In churn mode `latency_us` is the cycle time (connect to the server's
//! close frame) from the cycle's due time with `--rate`, else from its
//! connect; `service_us` from its connect; `cycles` counts the cycles
//! completed inside the window and `cycles_per_sec` is the figure;
//! `connections` counts every cycle's connection (`target` is the slots).
//!
//! In subscribe mode `latency_us` is from the time a message was due to be
//! published to its arrival at a subscriber, `service_us` from its actual
//! send (when `--size` is at least 24), `publish_us` the POST round trip;
//! `messages.sent` counts publishes, `messages.received` deliveries
//! (duplicates included) and `messages.lost` the missing ones. Deliveries
//! per second are over the window; those that arrive in the drain after it
//! count too. `fanout.completion_us` is, per accepted publish that every
//! subscriber received, the latest of its deliveries. With slow readers,
//! `latency_us`, the deliveries and the fan-out are the other subscribers'
//! (the slow ones' are in `slow_readers`).

mod agents;
mod progress;
mod scenario;
mod table;
mod verdict;
mod wire;

pub use agents::AgentReport;
pub use progress::Progress;
pub use scenario::{SlowReport, Spread, StormReport};
pub use verdict::{Thresholds, Verdict, EXIT_ERRORS, EXIT_INTERRUPTED, EXIT_THRESHOLD};
pub use wire::TransportReport;

use super::churn::ChurnReport;
use super::fanout::FanOutReport;
use super::publisher::PublishOutcome;
use super::stats::{Errors, Stats};
// Here too, where the report's fields have always named it.
pub use super::stats::Percentiles;
use super::subscribe::reconcile;
use super::{Mode, Options, Plan};
use crate::protocol::MessageKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The end-of-run summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `wsreactor VERSION`.
    pub tool: String,
    /// When the run began, UTC, RFC 3339.
    pub started_at: String,
    /// The command line, as given (the caller fills it in).
    pub command_line: Vec<String>,
    /// The target.
    pub url: String,
    /// `echo`, `connect`, `subscribe` or `churn`.
    pub mode: &'static str,
    /// Worker threads.
    pub threads: usize,
    /// Connection counts.
    pub connections: Connections,
    /// Where the time went.
    pub time: Timing,
    /// Message counts.
    pub messages: Messages,
    /// What latency is measured from: `schedule` (with a rate) or `send`.
    pub latency_from: &'static str,
    /// Round trips, from `latency_from`.
    pub latency_us: Percentiles,
    /// Round trips from the actual send.
    pub service_us: Percentiles,
    /// TCP connect times.
    pub connect_us: Percentiles,
    /// Upgrade request to 101.
    pub handshake_us: Percentiles,
    /// Errors by kind.
    pub errors: ErrorReport,
    /// Subscribe mode's publishing and deliveries.
    pub subscribe: Option<SubscribeReport>,
    /// Churn mode's cycles.
    pub churn: Option<ChurnReport>,
    /// Second by second: throughput, percentiles, open connections, errors
    /// (the caller, who sampled them, fills them in).
    pub series: Vec<Sample>,
    /// Whether the run passed (the caller judges it, see [`Summary::judge`]).
    pub verdict: Option<Verdict>,
    /// A distributed run (`--coordinator`): each agent's part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentReport>,
    /// The histograms behind `latency_us` and `service_us`, for the chart.
    #[serde(skip)]
    pub histograms: (Histogram<u64>, Histogram<u64>),
}

/// Connection counts.
#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// Asked for.
    pub target: usize,
    /// Tried.
    pub attempted: u64,
    /// Completed the opening handshake.
    pub opened: u64,
    /// Tried but never opened.
    pub failed: u64,
    /// Open at once, at most.
    pub peak_open: usize,
}

/// Where the time went, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// From the first connect to the start of the window.
    pub ramp_s: f64,
    /// The window asked for.
    pub duration_s: f64,
    /// The window as run (shorter after a stop or with nothing open).
    pub measured_s: f64,
    /// The whole run, closing included.
    pub elapsed_s: f64,
}

/// Message counts.
#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    /// `text` or `binary`.
    pub kind: &'static str,
    /// Payload bytes.
    pub size: usize,
    /// Messages in flight per connection at most.
    pub pipeline: usize,
    /// Messages per second asked for, over all connections (null: unpaced).
    pub rate: Option<f64>,
    /// The same per connection.
    pub rate_per_connection: Option<f64>,
    /// Sent.
    pub sent: u64,
    /// Received (echoes in echo mode).
    pub received: u64,
    /// Sent and never echoed.
    pub lost: u64,
    /// Received per second of the window.
    pub per_second: f64,
}

/// Subscribe mode: what was published and what the subscribers received.
#[derive(Debug, Clone, Serialize)]
pub struct SubscribeReport {
    /// The channel.
    pub channel: String,
    /// Where the publisher posted.
    pub publish_url: String,
    /// HTTP connections it posted over.
    pub publishers: usize,
    /// `--observe`: another process published; `published.accepted` is
    /// what any subscriber of this run received.
    pub observed: bool,
    /// The publisher's side.
    pub published: Published,
    /// The subscribers' side.
    pub deliveries: Deliveries,
    /// POST round trips: from a request's send to its answer.
    pub publish_us: Percentiles,
    /// How the subscribers received, and what it cost on the wire.
    pub transport: TransportReport,
    /// Per publish, until its last subscriber had it.
    pub fanout: FanOutReport,
    /// `--slow-readers`: what became of them and of the others.
    pub slow_readers: Option<SlowReport>,
    /// `--reconnect-storm`: how the subscribers came back.
    pub reconnect_storm: Option<StormReport>,
}

/// The publisher's side.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Messages per second asked for (null: as fast as answered).
    pub rate: Option<f64>,
    /// Due within the window: rate × window (null unpaced).
    pub due: Option<u64>,
    /// Sent.
    pub sent: u64,
    /// Due and never sent: the publisher fell behind (0 unpaced).
    pub unsent: u64,
    /// Answered 200 with an id.
    pub accepted: u64,
    /// Answered with another status (see errors.publish_status).
    pub rejected: u64,
    /// Never answered: published or not, nobody knows.
    pub unconfirmed: u64,
    /// Sent per second of the window.
    pub per_second: f64,
    /// The smallest and largest id answered.
    pub first_id: Option<u64>,
    /// See `first_id`.
    pub last_id: Option<u64>,
    /// The fewest subscribers an accepted message went to, as answered.
    pub subscribers_min: Option<u64>,
    /// The most.
    pub subscribers_max: Option<u64>,
    /// Connections opened again after the server closed an idle one.
    pub reconnects: u64,
    /// Over 1 % of the due messages never went.
    pub fell_behind: bool,
}

/// The subscribers' side.
#[derive(Debug, Clone, Serialize)]
pub struct Deliveries {
    /// Subscribers that opened.
    pub subscribers: u64,
    /// Accepted messages × subscribers.
    pub expected: u64,
    /// Messages received, duplicates included.
    pub received: u64,
    /// Accepted messages a subscriber never received, summed.
    pub missing: u64,
    /// Messages a subscriber received again.
    pub duplicates: u64,
    /// Messages a subscriber received after a later one of the same lane.
    pub out_of_order: u64,
    /// Subscribers that received every accepted message.
    pub complete_subscribers: u64,
    /// Received per second of the window.
    pub per_second: f64,
}

/// One second of the run, as the progress line saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds from the start of the run to the end of this sample.
    pub t_s: f64,
    /// `ramp`, `run`, `closing`.
    pub phase: &'static str,
    /// Connections open.
    pub open: usize,
    /// Messages received per second over the sample (echoes, deliveries,
    /// cycles' echoes).
    pub per_second: f64,
    /// Latency percentiles of the sample's messages, from `latency_from`
    /// (null: none arrived).
    pub p50_us: Option<u64>,
    /// See `p50_us`.
    pub p99_us: Option<u64>,
    /// Errors counted during the sample.
    pub errors: u64,
}

/// Errors with their total.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    /// All errors counted.
    pub total: u64,
    /// By kind.
    #[serde(flatten)]
    pub by_kind: Errors,
}

impl Summary {
    /// Build the summary from the merged figures. `window` is the
    /// measurement window as offsets from the start of the run.
    pub fn new(
        o: &Options,
        plan: &Plan,
        mut stats: Stats,
        published: Option<PublishOutcome>,
        window: Option<(Duration, Duration)>,
        elapsed: Duration,
        peak_open: usize,
    ) -> Summary {
        let (ramp, measured) = window.map_or((elapsed, Duration::ZERO), |(s, e)| (s, e.saturating_sub(s)));
        let per_second_of = |n: u64| {
            if measured.is_zero() {
                0.0
            } else {
                n as f64 / measured.as_secs_f64()
            }
        };
        let per_second = per_second_of(stats.received);
        let subscribe = published.map(|p| {
            let report = subscribe_report(plan, &mut stats, &p, measured, per_second_of);
            stats.errors.merge(&p.errors);
            report
        });
        let (sent, lost) = match &subscribe {
            Some(s) => (s.published.sent, s.deliveries.missing),
            None => (stats.sent, stats.sent.saturating_sub(stats.received)),
        };
        let paced = plan.schedule.is_some() || (plan.publish.is_some() && o.rate.is_some());
        let churn = (plan.mode == Mode::Churn).then(|| ChurnReport::new(plan, &stats.churn, measured));
        let observed = plan.publish.as_ref().is_some_and(|p| p.observe);
        let latency_from = match (paced || observed, plan.mode) {
            (true, _) => "schedule",
            (false, Mode::Churn) => "connect",
            (false, _) => "send",
        };
        Summary {
            tool: format!("wsreactor {}", env!("CARGO_PKG_VERSION")),
            started_at: crate::protocol::http::rfc3339(plan.t0_unix_ns / 1_000_000_000),
            command_line: Vec::new(),
            url: o.url.clone(),
            mode: plan.mode.name(),
            threads: plan.threads,
            connections: Connections {
                target: plan.connections,
                attempted: stats.attempted,
                opened: stats.opened,
                failed: stats.attempted - stats.opened,
                peak_open,
            },
            time: Timing {
                ramp_s: ramp.as_secs_f64(),
                duration_s: o.duration.as_secs_f64(),
                measured_s: measured.as_secs_f64(),
                elapsed_s: elapsed.as_secs_f64(),
            },
            messages: Messages {
                kind: match plan.kind {
                    MessageKind::Text => "text",
                    MessageKind::Binary => "binary",
                },
                size: plan.payload.len(),
                pipeline: plan.pipeline,
                rate: o.rate,
                rate_per_connection: o
                    .rate
                    .filter(|_| plan.mode == Mode::Echo)
                    .map(|r| r / plan.connections as f64),
                sent,
                received: stats.received,
                lost,
                per_second,
            },
            latency_from,
            latency_us: Percentiles::of(&stats.latency),
            service_us: Percentiles::of(&stats.service),
            connect_us: Percentiles::of(&stats.connect),
            handshake_us: Percentiles::of(&stats.handshake),
            errors: ErrorReport {
                total: stats.errors.total(),
                by_kind: stats.errors,
            },
            subscribe,
            churn,
            series: Vec::new(),
            verdict: None,
            agents: Vec::new(),
            histograms: (stats.latency, stats.service),
        }
    }

    /// Write the summary as JSON.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}

/// Reconcile the deliveries with what was published.
fn subscribe_report(
    plan: &Plan,
    stats: &mut Stats,
    p: &PublishOutcome,
    measured: Duration,
    per_second: impl Fn(u64) -> f64,
) -> SubscribeReport {
    let pp = plan.publish.as_ref();
    let r = reconcile(&stats.orders, &p.streams);
    let errors = &mut stats.errors;
    errors.delivery("missing", r.missing);
    errors.delivery("delivered_rejected", r.delivered_rejected);
    errors.delivery("unexpected", r.unexpected);
    let count = |k: &str| errors.delivery.get(k).copied().unwrap_or(0);
    let sent: u64 = p.streams.iter().map(|l| l.sent).sum();
    let accepted: u64 = p.streams.iter().map(|l| l.accepted()).sum();
    let unsent = p.due.map_or(0, |due| due.saturating_sub(sent));
    let subscribers = stats.orders.len() as u64;
    SubscribeReport {
        channel: pp.map_or(String::new(), |p| p.channel.clone()),
        publish_url: pp.map_or(String::new(), |p| {
            let scheme = if plan.tls.is_some() { "https" } else { "http" };
            // With several channels, the first (the others end in .1, .2 ...).
            format!("{scheme}://{}{}", p.host, p.paths[0])
        }),
        publishers: p.publishers,
        observed: pp.is_some_and(|p| p.observe),
        published: Published {
            rate: pp.and_then(|p| p.rate),
            due: p.due,
            sent,
            unsent,
            accepted,
            rejected: p.streams.iter().map(|l| l.rejected.len() as u64).sum(),
            unconfirmed: p.streams.iter().map(|l| l.unconfirmed.len() as u64).sum(),
            per_second: per_second(sent),
            // Of the first channel (with --channels-per-connection, each
            // channel numbers its own).
            first_id: p.ids.iter().filter(|(c, _)| *c == 0).map(|(_, id)| *id).min(),
            last_id: p.ids.iter().filter(|(c, _)| *c == 0).map(|(_, id)| *id).max(),
            subscribers_min: p.subscribers.map(|s| s.0),
            subscribers_max: p.subscribers.map(|s| s.1),
            reconnects: p.reconnects,
            fell_behind: p.due.is_some_and(|due| unsent * 100 > due),
        },
        deliveries: Deliveries {
            subscribers,
            expected: accepted * subscribers,
            received: stats.received,
            missing: r.missing,
            duplicates: count("duplicate"),
            out_of_order: count("out_of_order"),
            complete_subscribers: r.complete,
            per_second: per_second(stats.received),
        },
        publish_us: Percentiles::of(&p.round_trip),
        transport: TransportReport::new(
            plan,
            &stats.wire,
            stats.connect.len(),
            stats.received,
            measured.as_secs_f64(),
        ),
        fanout: stats.fanout.report(&p.streams, subscribers),
        slow_readers: plan.scenario.slow.map(|slow| {
            let others = Percentiles::of(&stats.latency);
            SlowReport::new(slow, &stats.scenario, Percentiles::of(&stats.slow_latency), others)
        }),
        reconnect_storm: plan
            .scenario
            .storm
            .map(|storm| StormReport::new(storm, &stats.scenario)),
    }
}
