//! `wsreactor load compare`: the same subscribe run over each transport in
//! turn, against one server, with the same subscribers, rate and message
//! size; repeated `rounds` times with the transports' order rotated each
//! round (so that none always runs first, on a cold server, or last), and
//! summarised by the median of each figure over the rounds. The k-th run,
//! counting from one, subscribes to channel `C.k`, so that no run sees
//! another's messages (nchan, whose cursorless subscriber starts from a
//! channel's oldest message in `benches/nchan/`, would).

use super::feed::Transport;
use super::report::Summary;
use super::{LoadError, Mode, Options};
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// One transport's figures: medians over the rounds (sums for the counts
/// of what went wrong).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `poll`, `longpoll`, `sse` or `ws`.
    pub transport: &'static str,
    /// Rounds run.
    pub rounds: usize,
    /// Deliveries per second of the window.
    pub deliveries_per_second: f64,
    /// Publish-to-receive latency from the scheduled time, microseconds.
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// See `p50_us`.
    pub p99_9_us: f64,
    /// Bytes read from the server per delivery.
    pub bytes_in_per_delivery: f64,
    /// Bytes written to the server per delivery.
    pub bytes_out_per_delivery: f64,
    /// HTTP requests per second.
    pub requests_per_second: f64,
    /// TCP connections established in the window.
    pub connects: f64,
    /// Server CPU per delivery, microseconds (with `--server-pid`).
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Server memory per subscriber, bytes (with `--server-pid`): the
    /// median of the runs that could tell it (see `server_reused`).
    pub server_rss_bytes_per_subscriber: Option<f64>,
    /// The same of the server's anonymous memory (heap and stacks, not
    /// its program's pages).
    pub server_rss_anon_bytes_per_subscriber: Option<f64>,
    /// Runs whose server had already grown its memory in an earlier run,
    /// so that its RSS said nothing of this run's subscribers.
    pub server_reused: usize,
    /// Accepted messages some subscriber never got, over all rounds.
    pub missing: u64,
    /// Messages received twice, over all rounds.
    pub duplicates: u64,
    /// Errors of any kind, over all rounds.
    pub errors: u64,
}

/// What `compare` found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// `wsreactor VERSION`.
    pub tool: String,
    /// The server's root.
    pub url: String,
    /// The channel's name: run `k` used `CHANNEL.k`.
    pub channel: String,
    /// Subscribers per run.
    pub subscribers: usize,
    /// Messages published per second.
    pub rate: Option<f64>,
    /// Payload bytes, and `text` or `binary`.
    pub size: usize,
    /// See `size`.
    pub kind: &'static str,
    /// Each run's window, seconds.
    pub duration_s: f64,
    /// Short polling's interval, seconds.
    pub poll_interval_s: f64,
    /// One row per transport, in the order asked.
    pub rows: Vec<Row>,
    /// Every run, in the order run.
    pub runs: Vec<Summary>,
    /// The command line, as given (the caller fills it in).
    pub command_line: Vec<String>,
}

/// Which run of a comparison, for the lines that tell its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAt {
    /// The round, from 1.
    pub round: usize,
    /// Rounds in all.
    pub rounds: usize,
    /// The run, from 1, over all rounds.
    pub run: usize,
    /// Runs in all.
    pub runs: usize,
    /// Its transport.
    pub transport: Transport,
}

impl std::fmt::Display for RunAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "round {}/{}, run {}/{}: {}",
            self.round,
            self.rounds,
            self.run,
            self.runs,
            self.transport.name()
        )
    }
}

/// What [`run`] tells as it goes: a comparison takes minutes, and without
/// a word between its runs it looks hung.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// The run starts.
    Start(RunAt),
    /// It is over, with this summary.
    Done(RunAt, &'a Summary),
}

/// A finished run in a few figures: `done in 10.4 s: 980 deliveries/s,
/// p99 1.23 ms` (and its errors, if any).
pub fn done_line(summary: &Summary) -> String {
    let mut line = format!(
        "done in {:.1} s: {:.0} deliveries/s, p99 {:.2} ms",
        summary.time.elapsed_s,
        summary.messages.per_second,
        summary.latency_us.p99 as f64 / 1000.0
    );
    if summary.errors.total > 0 {
        let _ = write!(line, ", {} errors", summary.errors.total);
    }
    line
}

/// The order of the transports in round `round`: rotated by one a round.
pub fn order(transports: &[Transport], round: usize) -> Vec<Transport> {
    let mut t = transports.to_vec();
    if !t.is_empty() {
        let by = round % t.len();
        t.rotate_left(by);
    }
    t
}

/// Run `base` (subscribe mode) over each of `transports`, `rounds` times,
/// stopping early once `stop` is set; `tell` hears each run start and end.
pub fn run(
    base: &Options,
    transports: &[Transport],
    rounds: usize,
    stop: &AtomicBool,
    tell: &mut dyn FnMut(Step<'_>),
) -> Result<Comparison, LoadError> {
    if rounds == 0 || transports.is_empty() {
        return Err(LoadError::Invalid("--rounds and --transports need at least one".into()));
    }
    let Some(channel) = base.channel.clone() else {
        return Err(LoadError::Invalid(
            "load compare needs --url http://HOST:PORT/ and --channel CHANNEL".into(),
        ));
    };
    let base = Options {
        mode: Mode::Subscribe,
        ..base.clone()
    };
    let mut runs = Vec::new();
    'rounds: for round in 0..rounds {
        for transport in order(transports, round) {
            if stop.load(Relaxed) {
                break 'rounds;
            }
            let o = Options {
                transport,
                channel: Some(format!("{channel}.{}", runs.len() + 1)),
                ..base.clone()
            };
            let at = RunAt {
                round: round + 1,
                rounds,
                run: runs.len() + 1,
                runs: rounds * transports.len(),
                transport,
            };
            tell(Step::Start(at));
            let mut summary = super::run_until(&o, stop)?;
            if !runs.is_empty() {
                // The same server as the run before: its memory grew then.
                if let Some(server) = summary.subscribe.as_mut().and_then(|s| s.transport.server.as_mut()) {
                    server.mark_reused();
                }
            }
            tell(Step::Done(at, &summary));
            runs.push((transport, summary));
        }
    }
    let rows = transports
        .iter()
        .map(|&t| {
            let mine: Vec<&Summary> = runs.iter().filter(|(r, _)| *r == t).map(|(_, s)| s).collect();
            row(t, &mine)
        })
        .collect();
    Ok(Comparison {
        tool: format!("wsreactor {}", env!("CARGO_PKG_VERSION")),
        url: base.url.clone(),
        channel,
        subscribers: base.connections,
        rate: base.rate,
        size: base.size,
        kind: match base.kind {
            crate::protocol::MessageKind::Text => "text",
            crate::protocol::MessageKind::Binary => "binary",
        },
        duration_s: base.duration.as_secs_f64(),
        poll_interval_s: base.poll_interval.as_secs_f64(),
        rows,
        runs: runs.into_iter().map(|(_, s)| s).collect(),
        command_line: Vec::new(),
    })
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when there are none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn row(transport: Transport, runs: &[&Summary]) -> Row {
    let med = |f: &dyn Fn(&Summary) -> f64| median(runs.iter().map(|s| f(s)).collect()).unwrap_or(0.0);
    let server = |f: &dyn Fn(&super::server_usage::ServerReport) -> f64| {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|s| s.subscribe.as_ref()?.transport.server.as_ref().map(f))
            .collect();
        median(values)
    };
    let wire = |s: &Summary| s.subscribe.as_ref().map(|s| s.transport.clone());
    let deliveries = |s: &Summary| s.subscribe.as_ref().map(|s| s.deliveries.clone());
    Row {
        transport: transport.name(),
        rounds: runs.len(),
        deliveries_per_second: med(&|s| s.messages.per_second),
        p50_us: med(&|s| s.latency_us.p50 as f64),
        p99_us: med(&|s| s.latency_us.p99 as f64),
        p99_9_us: med(&|s| s.latency_us.p99_9 as f64),
        bytes_in_per_delivery: med(&|s| wire(s).map_or(0.0, |w| w.bytes_in_per_delivery)),
        bytes_out_per_delivery: med(&|s| wire(s).map_or(0.0, |w| w.bytes_out_per_delivery)),
        requests_per_second: med(&|s| wire(s).map_or(0.0, |w| w.requests_per_second)),
        connects: med(&|s| wire(s).map_or(0.0, |w| w.connects as f64)),
        server_cpu_us_per_delivery: server(&|r| r.cpu_us_per_delivery),
        server_rss_bytes_per_subscriber: median(
            runs.iter()
                .filter_map(|s| s.subscribe.as_ref()?.transport.server?.rss_bytes_per_subscriber)
                .collect(),
        ),
        server_rss_anon_bytes_per_subscriber: median(
            runs.iter()
                .filter_map(|s| s.subscribe.as_ref()?.transport.server?.rss_anon_bytes_per_subscriber)
                .collect(),
        ),
        server_reused: runs
            .iter()
            .filter_map(|s| s.subscribe.as_ref()?.transport.server)
            .filter(|r| r.reused)
            .count(),
        missing: runs.iter().filter_map(|s| deliveries(s)).map(|d| d.missing).sum(),
        duplicates: runs.iter().filter_map(|s| deliveries(s)).map(|d| d.duplicates).sum(),
        errors: runs.iter().map(|s| s.errors.total).sum(),
    }
}

impl Comparison {
    /// The comparison as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let rate = self.rate.map_or("unpaced".to_owned(), |r| format!("{r}/s"));
        let _ = writeln!(
            s,
            "wsreactor load compare: {} channel {}, {} subscribers, {rate} of {} B {}, {} s a run, short polls every {} s",
            self.url, self.channel, self.subscribers, self.size, self.kind, self.duration_s, self.poll_interval_s
        );
        let rounds = self.rows.first().map_or(0, |r| r.rounds);
        let _ = writeln!(s, "medians of {rounds} round(s), transports interleaved\n");
        let _ = writeln!(
            s,
            "{:<10}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>12}{:>12}{:>9}",
            "transport",
            "deliver/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "B in/msg",
            "B out/msg",
            "req/s",
            "connects",
            "CPU µs/msg",
            "RSS B/sub",
            "errors"
        );
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        // A reused server's memory is no figure, and no 0 either.
        let rss = |r: &Row| match (r.server_rss_bytes_per_subscriber, r.server_reused) {
            (None, n) if n > 0 => "n/a*".to_owned(),
            (Some(b), n) if n > 0 => format!("{b:.0}*"),
            (v, _) => opt(v, 0),
        };
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<10}{:>12.1}{:>10.2}{:>10.2}{:>10.2}{:>10.0}{:>10.0}{:>10.1}{:>10.0}{:>12}{:>12}{:>9}",
                r.transport,
                r.deliveries_per_second,
                r.p50_us / 1000.0,
                r.p99_us / 1000.0,
                r.p99_9_us / 1000.0,
                r.bytes_in_per_delivery,
                r.bytes_out_per_delivery,
                r.requests_per_second,
                r.connects,
                opt(r.server_cpu_us_per_delivery, 2),
                rss(r),
                r.errors
            );
        }
        let reused: usize = self.rows.iter().map(|r| r.server_reused).sum();
        if reused > 0 {
            let runs: usize = self.rows.iter().map(|r| r.rounds).sum();
            let _ = write!(
                s,
                "\n* RSS B/sub: the server process was reused in {reused} of {runs} runs: it had served an earlier run\n  \
                 and its memory had grown then, so its RSS tells nothing of these runs' subscribers (it would read as\n  \
                 0 or as noise). n/a: no run could tell; a figure with *: the median of the runs that could. For this\n  \
                 column, start a server per run (benches/nchan.sh does).\n"
            );
        }
        let lost: u64 = self.rows.iter().map(|r| r.missing + r.duplicates).sum();
        if lost > 0 {
            let _ = writeln!(
                s,
                "\nmissing or duplicated deliveries: see errors (every run is in the JSON)"
            );
        }
        s
    }

    /// Write the comparison, every run included, as JSON.
    pub fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_order_and_medians_take_the_middle() {
        let all = Transport::ALL;
        assert_eq!(order(&all, 0), all.to_vec());
        assert_eq!(order(&all, 1)[0], all[1]);
        assert_eq!(order(&all, 4), all.to_vec());
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn a_run_is_named_by_round_run_and_transport() {
        let at = RunAt {
            round: 1,
            rounds: 3,
            run: 2,
            runs: 12,
            transport: Transport::Ws,
        };
        assert_eq!(at.to_string(), "round 1/3, run 2/12: ws");
    }

    fn row(transport: &'static str, rss: Option<f64>, reused: usize) -> Row {
        Row {
            transport,
            rounds: 2,
            deliveries_per_second: 1000.0,
            p50_us: 500.0,
            p99_us: 900.0,
            p99_9_us: 1000.0,
            bytes_in_per_delivery: 70.0,
            bytes_out_per_delivery: 0.0,
            requests_per_second: 0.0,
            connects: 0.0,
            server_cpu_us_per_delivery: Some(1.5),
            server_rss_bytes_per_subscriber: rss,
            server_rss_anon_bytes_per_subscriber: rss,
            server_reused: reused,
            missing: 0,
            duplicates: 0,
            errors: 0,
        }
    }

    fn comparison(rows: Vec<Row>) -> Comparison {
        Comparison {
            tool: "wsreactor".into(),
            url: "http://127.0.0.1:1/".into(),
            channel: "c".into(),
            subscribers: 10,
            rate: Some(10.0),
            size: 64,
            kind: "text",
            duration_s: 1.0,
            poll_interval_s: 1.0,
            rows,
            runs: Vec::new(),
            command_line: Vec::new(),
        }
    }

    /// A reused server's memory per subscriber is "n/a" with a footnote
    /// saying why, never a bare 0.
    #[test]
    fn a_reused_server_shows_no_memory_figure_and_says_why() {
        let table = comparison(vec![
            row("poll", Some(4100.0), 1),
            row("sse", None, 2),
            row("ws", Some(3000.0), 0),
        ])
        .table();
        let line = |t: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("{t} ")))
                .unwrap()
                .to_owned()
        };
        assert!(line("poll").contains(" 4100*"), "{table}");
        assert!(line("sse").contains(" n/a*"), "{table}");
        assert!(line("ws").contains(" 3000 ") && !line("ws").contains('*'), "{table}");
        assert!(table.contains("server process was reused in 3 of 6 runs"), "{table}");
        // A fresh server each run: no footnote.
        let fresh = comparison(vec![row("ws", Some(3000.0), 0)]).table();
        assert!(!fresh.contains("reused") && !fresh.contains("n/a"), "{fresh}");
    }
}
