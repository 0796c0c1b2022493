//! The `load` subcommand's command line: its flags (clap), what they
//! mean as [`Options`](super::Options), and a run from start to exit
//! status. Only with the `cli` feature; `src/main.rs` hands [`LoadCmd`]
//! to [`run`].
//!
//! Bad options are usage errors (status [`ConfigError::EXIT_STATUS`], as
//! clap's); errors met during a run are counted in the summary and change
//! the status only past `--max-errors` (see [`report::Verdict`]).

use super::{report, CursorStyle, LoadError, Mode, Transport};
use crate::config::{ConfigError, PUBLISH_TOKEN_VAR};
use crate::protocol::MessageKind;
use clap::{Args, Subcommand, ValueEnum};
use log::warn;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// `load` runs one load; `load compare` one per transport, in rounds.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadCmd {
    #[command(subcommand)]
    compare: Option<LoadSub>,
    #[command(flatten)]
    args: LoadArgs,
}

#[derive(Debug, Subcommand)]
enum LoadSub {
    /// Subscribe mode over each transport in turn (short polling, long
    /// polling, SSE, WebSocket) against one server, with the same
    /// subscribers, rate and size, in --rounds rounds (the order rotated
    /// each round); prints the medians side by side. Payloads are text
    /// unless --binary (SSE and polls would carry binary as base64). Needs
    /// --channel: run k subscribes to CHANNEL.k. --mode and --transport
    /// are compare's to set.
    #[command(
        after_help = "e.g. wsreactor load compare --url http://127.0.0.1:9001/ --channel bench --connections 1000 \
--rate 10 --size 64 --duration 10s --rounds 3 --server-pid $(pgrep -n wsreactor) --plot compare.svg"
    )]
    Compare(Box<CompareArgs>),
    /// Take parts of distributed runs from a coordinator's Redis and run
    /// them: one agent per host (or network namespace), started before or
    /// after the run (`wsreactor load --coordinator URL --agents N ...`).
    /// Prints one JSON line per part, its own figures.
    #[command(after_help = "e.g. wsreactor load agent --coordinator redis://10.0.0.1:6379 --name host-a")]
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// The coordinator's Redis: redis://HOST:PORT (redis://:PASSWORD@HOST:PORT
    /// with a password, rediss:// over TLS).
    #[arg(long, value_name = "redis://HOST:PORT")]
    coordinator: String,
    /// This agent's name in the report (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Exit after this many parts (default: serve parts until stopped).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,
}

/// A job's flags, parsed as the command line's would be.
#[derive(Debug, clap::Parser)]
#[command(name = "load")]
struct JobFlags {
    #[command(flatten)]
    args: LoadArgs,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Runs per transport; the table gives the medians.
    #[arg(long, value_name = "N", default_value_t = 3)]
    rounds: usize,
    /// The transports to compare, in this order (comma separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "poll,longpoll,sse,ws")]
    transports: Vec<TransportArg>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    /// WebSocket: /ws/CHANNEL.
    Ws,
    /// Server-Sent Events: /sse/CHANNEL, resuming with Last-Event-ID.
    Sse,
    /// Long polling: /poll/CHANNEL?since=N, each poll waiting for messages.
    Longpoll,
    /// Short polling: /poll/CHANNEL?since=N&wait=0 every --poll-interval.
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CursorArg {
    /// ?since=N from each poll's last_id or X-Last-Id.
    Wsreactor,
    /// nchan's: If-None-Match / If-Modified-Since from Etag / Last-Modified.
    Nchan,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Send messages, await each echo, measure the round trip.
    Echo,
    /// Open and hold connections; measure connect and handshake time.
    Connect,
    /// Subscribe every connection to the push server's channel (--url
    /// ws://HOST:PORT/ws/CHANNEL), publish to it over HTTP at --rate and
    /// measure each delivery.
    Subscribe,
    /// New connections back to back: --connections slots, each running
    /// cycles of connect, handshake, one echo and a close (1000); measure
    /// cycles per second and cycle time (--rate: cycles per second in all).
    Churn,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Latency is measured from each message's scheduled time when --rate is given \
(coordinated omission), from its actual send otherwise. Errors (refused, timed out, handshake status, \
close codes, protocol errors) are counted and reported; they never stop the run. Ctrl-C ends the \
measurement early and still prints the summary."
)]
struct LoadArgs {
    /// The server: ws://HOST[:PORT][/PATH] (or wss://). In subscribe mode
    /// ws://HOST:PORT/ws/CHANNEL (the channel is taken from the path), or
    /// http://HOST:PORT/ (or https://) with --channel.
    // An Option that clap still requires, so that `load compare` (which
    // has its own) can leave the parent's empty.
    #[arg(long, value_name = "URL", required = true)]
    url: Option<String>,
    /// What each connection does.
    #[arg(long, value_enum, default_value_t = ModeArg::Echo)]
    mode: ModeArg,
    /// Connections to open (no limit of our own below the descriptor limit).
    /// In churn mode: cycles in progress at once.
    #[arg(long, value_name = "N", default_value_t = 100)]
    connections: usize,
    /// New connections per second during the ramp, 0 for all at once.
    #[arg(long, value_name = "R", default_value_t = 1000.0)]
    connect_rate: f64,
    /// Worker threads, 0 for one per core.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Length of the measurement, which starts once every connection is
    /// open or has failed (in churn mode, at once) (e.g. 10s, 1m).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Payload bytes per message.
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    size: usize,
    /// Send text messages.
    #[arg(long, conflicts_with = "binary")]
    text: bool,
    /// Send binary messages (the default).
    #[arg(long)]
    binary: bool,
    /// Messages per second in TOTAL over all connections (each sends
    /// R/connections per second). Without it each connection sends as fast
    /// as its echoes come back. In subscribe mode: messages published per
    /// second (without it, as fast as the publishes are answered). In churn
    /// mode: cycles started per second in total (without it, each slot
    /// starts its next cycle as soon as the last one ends).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Messages in flight per connection at most.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pipeline: usize,
    /// Subscribe mode: how the subscribers receive the channel.
    #[arg(long, value_enum, default_value_t = TransportArg::Ws)]
    transport: TransportArg,
    /// Subscribe mode: the channel, with --url http://HOST:PORT/ (else it
    /// is the URL's path, /ws/CHANNEL).
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// Subscribe mode over WebSocket: each connection subscribes to K
    /// channels, CHANNEL.0 to CHANNEL.K-1, with the wsreactor.mux
    /// subprotocol at /ws, and the publisher posts to each in turn: the
    /// cost of a subscription apart from that of a connection.
    #[arg(long, value_name = "K")]
    channels_per_connection: Option<usize>,
    /// Short polling: from one poll's start to the next (e.g. 1s, 250ms).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Polls reuse their connection (on), or each opens its own and asks
    /// for Connection: close (off).
    #[arg(long, value_enum, value_name = "on|off", default_value_t = OnOff::On)]
    keep_alive: OnOff,
    /// Whose poll cursor to follow: wsreactor's since, or nchan's
    /// Etag/Last-Modified.
    #[arg(long, value_enum, default_value_t = CursorArg::Wsreactor)]
    cursor: CursorArg,
    /// Subscribe mode: the server's process id; its CPU per delivery and
    /// memory per subscriber go in the report (read from /proc).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Churn mode: close as soon as the 101 comes, sending no message: for
    /// a server that does not echo, such as the push server's subscriber at
    /// /ws/CHANNEL (in a presence channel each cycle is a join and a leave).
    #[arg(long)]
    close_on_open: bool,
    /// Subscribe mode: keep-alive HTTP connections the publisher posts
    /// over, one request in flight on each.
    #[arg(long, value_name = "N", default_value_t = 4)]
    publishers: usize,
    /// Subscribe mode: subscribe only; another `load` process publishes
    /// to the channel (give its --publishers). Payload times are wall
    /// clock, so latency is measured across processes on one machine;
    /// `accepted` is then what any subscriber of this run saw.
    #[arg(long)]
    observe: bool,
    /// Local addresses to connect from, in turn: 127.0.0.1-127.0.0.32 or a
    /// comma-separated list (each gives its own ~28,000 ephemeral ports).
    #[arg(long, value_name = "IPS", value_parser = super::parse_source_ips)]
    // Spelled out so clap takes the parsed list as one value.
    source_ips: Option<::std::vec::Vec<IpAddr>>,
    /// wss://: accept any server certificate, for self-signed test
    /// certificates (the server is not authenticated).
    #[arg(long)]
    insecure: bool,
    /// Connect, handshake and echo time-out; also how long to wait for the
    /// last echoes.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write a latency percentile chart (SVG) to this file, and the
    /// run second by second beside it (FILE-over-time.svg); `load compare`
    /// writes its chart of the transports there.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress line (there is none either when stderr is not a
    /// terminal), and no line per run from `load compare`.
    #[arg(long)]
    quiet: bool,
    /// A header for every opening handshake and publish, as 'Name: value'
    /// (repeatable), e.g. --header 'Authorization: Bearer TOKEN'.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'", value_parser = super::parse_header)]
    headers: Vec<(String, String)>,
    /// Subscribe mode: publish with `Authorization: Bearer TOKEN`, for a
    /// server with a publish token (or the environment variable
    /// WSREACTOR_PUBLISH_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    publish_token: Option<String>,
    /// Subscribe mode: this share of the subscribers (e.g. 10%) stop
    /// reading their socket when the window opens, for --slow-reader-pause;
    /// the report says what the server did to them (dropped, how, after
    /// how long, what they had received) and gives the other subscribers'
    /// latency beside a run without slow readers (--slow-reader-baseline).
    #[arg(long, value_name = "P%", value_parser = parse_share)]
    slow_readers: Option<f64>,
    /// How long each slow reader stops reading (default: the whole
    /// window); then it reads what waits.
    #[arg(long, value_name = "D", value_parser = parse_duration, requires = "slow_readers")]
    slow_reader_pause: Option<Duration>,
    /// A slow reader's socket receive buffer (SO_RCVBUF), e.g. 65536: what
    /// a client's network path holds, instead of the megabytes a loopback
    /// socket grows to (default: the system's).
    #[arg(long, value_name = "BYTES", requires = "slow_readers")]
    slow_reader_rcvbuf: Option<usize>,
    /// With --slow-readers, first run the same load without them, for the
    /// others' latency side by side (on), or not (off).
    #[arg(long, value_enum, value_name = "on|off", default_value_t = OnOff::On, requires = "slow_readers")]
    slow_reader_baseline: OnOff,
    /// Subscribe mode: AT into the window (e.g. 5s) the subscribers
    /// (--reconnect-share of them) drop their connections at once and
    /// connect again with their cursors (a WebSocket's last id with the
    /// wsreactor.json subprotocol, an event stream's Last-Event-ID, a
    /// poll's since); the report gives the time until every one has caught
    /// up and the messages recovered. AT plus --reconnect-jitter must end
    /// inside --duration.
    #[arg(long, value_name = "AT", value_parser = parse_duration)]
    reconnect_storm: Option<Duration>,
    /// The share of subscribers the storm drops (default 100%).
    #[arg(long, value_name = "P%", value_parser = parse_share, requires = "reconnect_storm")]
    reconnect_share: Option<f64>,
    /// Each dropped subscriber reconnects after a delay uniform below D
    /// (default 0: all at once).
    #[arg(long, value_name = "D", value_parser = parse_duration, requires = "reconnect_storm")]
    reconnect_jitter: Option<Duration>,
    /// Serve the run's own figures for Prometheus at ADDR (GET /metrics,
    /// e.g. 127.0.0.1:9464) while it runs: connections, deliveries, errors,
    /// a latency histogram, and with --server-pid the server's CPU, memory
    /// and descriptors.
    #[arg(long, value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,
    /// Spread the run over agents through this Redis: each host runs
    /// `wsreactor load agent --coordinator URL`; the plan is posted there
    /// and the results collected, for one report of all (latency from the
    /// agents' histograms added together). The publisher runs here. Needs
    /// --agents.
    #[arg(long, value_name = "redis://HOST:PORT", requires = "agents")]
    coordinator: Option<String>,
    /// With --coordinator: agents to spread the connections over.
    #[arg(long, value_name = "N", requires = "coordinator")]
    agents: Option<usize>,
    /// With --coordinator: how long to wait for every agent to take its part.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    agents_wait: Duration,
    /// Fail (exit 3) when more errors than this were counted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_errors: u64,
    /// Fail (exit 4) when the latency's p99 is over this (e.g. 5ms).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    max_p99: Option<Duration>,
    /// Fail (exit 4) when the latency's p99.9 is over this.
    #[arg(long = "max-p99.9", value_name = "D", value_parser = parse_duration)]
    max_p99_9: Option<Duration>,
    /// Fail (exit 4) when the rate is under this: echoes/s, deliveries/s
    /// (subscribe), cycles/s (churn), connections opened/s (connect).
    #[arg(long, value_name = "R")]
    min_rate: Option<f64>,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Transport {
        match t {
            TransportArg::Ws => Transport::Ws,
            TransportArg::Sse => Transport::Sse,
            TransportArg::Longpoll => Transport::LongPoll,
            TransportArg::Poll => Transport::Poll,
        }
    }
}

/// A share as a percentage, `10%` or `10` (above 0, at most 100).
fn parse_share(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
    if p > 0.0 && p <= 100.0 {
        Ok(p / 100.0)
    } else {
        Err(format!("{s:?} must be above 0% and at most 100%"))
    }
}

/// A duration as people type it: `10s`, `1m30s`, `250ms`, or a bare number
/// of seconds (`5`, `0.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 1m30s, 250ms, or seconds: 5)"))
}

impl LoadArgs {
    fn options(&self) -> super::Options {
        super::Options {
            url: self.url.clone().unwrap_or_default(),
            mode: match self.mode {
                ModeArg::Echo => Mode::Echo,
                ModeArg::Connect => Mode::Connect,
                ModeArg::Subscribe => Mode::Subscribe,
                ModeArg::Churn => Mode::Churn,
            },
            connections: self.connections,
            connect_rate: self.connect_rate,
            threads: self.threads,
            duration: self.duration,
            size: self.size,
            kind: if self.text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            },
            rate: self.rate,
            publishers: self.publishers,
            observe: self.observe,
            pipeline: self.pipeline,
            source_ips: self.source_ips.clone().unwrap_or_default(),
            insecure: self.insecure,
            timeout: self.timeout,
            progress: !self.quiet && std::io::stderr().is_terminal(),
            headers: self.headers.clone(),
            publish_token: self
                .publish_token
                .clone()
                .or_else(|| std::env::var(PUBLISH_TOKEN_VAR).ok().filter(|t| !t.is_empty())),
            transport: self.transport.into(),
            channel: self.channel.clone(),
            channels_per_connection: self.channels_per_connection,
            poll_interval: self.poll_interval,
            keep_alive: self.keep_alive == OnOff::On,
            cursor: match self.cursor {
                CursorArg::Wsreactor => CursorStyle::Wsreactor,
                CursorArg::Nchan => CursorStyle::Nchan,
            },
            server_pid: self.server_pid,
            close_on_open: self.close_on_open,
            scenario: super::Scenario {
                slow: self.slow_readers.map(|share| super::SlowReaders {
                    share,
                    pause: self.slow_reader_pause.unwrap_or(self.duration),
                    rcvbuf: self.slow_reader_rcvbuf,
                }),
                storm: self.reconnect_storm.map(|at| super::ReconnectStorm {
                    at,
                    share: self.reconnect_share.unwrap_or(1.0),
                    jitter: self.reconnect_jitter.unwrap_or(Duration::ZERO),
                }),
            },
            metrics_bind: self.metrics_bind,
        }
    }

    fn thresholds(&self) -> report::Thresholds {
        report::Thresholds {
            max_errors: self.max_errors,
            max_p99: self.max_p99,
            max_p99_9: self.max_p99_9,
            min_rate: self.min_rate,
        }
    }
}

/// Run `load` (or `load compare`) as `cmd` says: the summary on stdout,
/// its exit status.
pub fn run(cmd: LoadCmd) -> ExitCode {
    match cmd {
        LoadCmd {
            compare: Some(LoadSub::Compare(args)),
            ..
        } => compare_command(*args),
        LoadCmd {
            compare: Some(LoadSub::Agent(args)),
            ..
        } => agent_command(args),
        LoadCmd { args, .. } => load_command(args),
    }
}

/// The `load` flags of this command line, for a distributed run's agents.
fn load_flags() -> Vec<String> {
    agents_flags(std::env::args().skip_while(|a| a != "load").skip(1))
}

/// Of a coordinator's `load` flags, those its agents run with: not the
/// publishing token nor the coordinator's URL (secrets have no place in
/// Redis, and agents do not publish), nor what is the coordinator's own
/// (its agents, its output files).
fn agents_flags(args: impl Iterator<Item = String>) -> Vec<String> {
    const OWN: [&str; 6] = [
        "--publish-token",
        "--coordinator",
        "--agents",
        "--agents-wait",
        "--json",
        "--plot",
    ];
    let mut flags = Vec::new();
    let mut args = args;
    while let Some(a) = args.next() {
        if OWN.contains(&a.as_str()) {
            args.next();
        } else if !OWN.iter().any(|f| a.starts_with(&format!("{f}="))) {
            flags.push(a);
        }
    }
    flags
}

/// This host's name, for an agent's default name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "agent".into())
}

#[cfg(feature = "redis")]
fn agent_command(args: AgentArgs) -> ExitCode {
    use clap::Parser;
    if let Err(err) = crate::sys::raise_fd_limit() {
        warn!("could not raise the open file limit: {err}");
    }
    let stop = stop_on_signals();
    let o = super::distributed::agent::AgentOptions {
        url: args.coordinator,
        name: args
            .name
            .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id())),
        runs: args.runs,
    };
    let parse = |flags: &[String]| {
        let argv = std::iter::once("load".to_owned()).chain(flags.iter().cloned());
        JobFlags::try_parse_from(argv)
            .map(|j| j.args.options())
            .map_err(|e| e.to_string().lines().next().unwrap_or("bad flags").to_owned())
    };
    match super::distributed::agent::serve(&o, &parse, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => load_failed("wsreactor load agent", err),
    }
}

#[cfg(not(feature = "redis"))]
fn agent_command(_: AgentArgs) -> ExitCode {
    eprintln!("wsreactor load agent: this build has no Redis (the `redis` feature)");
    ExitCode::from(ConfigError::EXIT_STATUS)
}

/// What every load run sets up first: the descriptor limit, and Ctrl-C
/// (the first one ends the measurement and still reports; a second one
/// exits at once).
fn load_setup(options: &super::Options) -> Arc<AtomicBool> {
    match crate::sys::raise_fd_limit() {
        Ok(limit) if (limit as usize) < options.connections + 64 => {
            warn!("open file limit {limit} is below --connections {}", options.connections)
        }
        Ok(_) => {}
        Err(err) => warn!("could not raise the open file limit: {err}"),
    }
    stop_on_signals()
}

/// Ctrl-C and SIGTERM: the first sets the flag, a second exits at once.
fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone());
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    stop
}

/// `load compare`: the table of medians, and the JSON and chart if asked.
fn compare_command(args: CompareArgs) -> ExitCode {
    if args.load.coordinator.is_some() {
        eprintln!("wsreactor load compare: --coordinator is for one run (wsreactor load)");
        return ExitCode::from(ConfigError::EXIT_STATUS);
    }
    let mut options = args.load.options();
    options.mode = Mode::Subscribe;
    if !args.load.binary {
        options.kind = MessageKind::Text;
    }
    let stop = load_setup(&options);
    let transports: Vec<Transport> = args.transports.iter().map(|&t| t.into()).collect();
    let mut tell = |step: super::compare::Step<'_>| tell_run(step, args.load.quiet, options.progress);
    let mut comparison = match super::compare::run(&options, &transports, args.rounds, &stop, &mut tell) {
        Ok(c) => c,
        Err(err) => return load_failed("wsreactor load compare", err),
    };
    comparison.command_line = std::env::args().collect();
    print!("{}", comparison.table());
    let mut status = 0;
    if let Some(path) = &args.load.json {
        if let Err(err) = comparison.write_json(path) {
            eprintln!("wsreactor load compare: cannot write {}: {err}", path.display());
            status = 1;
        }
    }
    if let Some(path) = &args.load.plot {
        match super::plot::compare_svg(&comparison, path) {
            Ok(()) => eprintln!("wsreactor load compare: chart in {}", path.display()),
            Err(err) => {
                eprintln!("wsreactor load compare: no chart written to {}: {err}", path.display());
                status = 1;
            }
        }
    }
    // Anything lost, duplicated or failed fails the comparison, as it
    // would fail a single run (--max-errors).
    let errors: u64 = comparison.rows.iter().map(|r| r.errors).sum();
    if errors > args.load.max_errors {
        eprintln!(
            "wsreactor load compare: {errors} errors (more than --max-errors {})",
            args.load.max_errors
        );
        status = status.max(report::EXIT_ERRORS);
    }
    if stop.load(Relaxed) {
        status = report::EXIT_INTERRUPTED;
    }
    ExitCode::from(status)
}

/// A line per run of `load compare` on stderr, terminal or not (a run
/// takes its --duration and more, and a comparison minutes): with the
/// progress line, one when the run starts and one when it ends, around
/// the progress line; else one line, begun at the start and ended with
/// the figures, so that a log shows which run is under way.
fn tell_run(step: super::compare::Step<'_>, quiet: bool, progress: bool) {
    use super::compare::{done_line, Step};
    use std::io::Write;
    if quiet {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = match step {
        Step::Start(at) if progress => writeln!(err, "wsreactor load compare: {at}"),
        Step::Start(at) => write!(err, "wsreactor load compare: {at} ... "),
        Step::Done(at, summary) if progress => writeln!(err, "wsreactor load compare: {at} {}", done_line(summary)),
        Step::Done(_, summary) => writeln!(err, "{}", done_line(summary)),
    };
    let _ = err.flush();
}

/// A run that could not be made: options refused are a configuration
/// error (2), anything else a failure (1).
fn load_failed(who: &str, err: LoadError) -> ExitCode {
    match err {
        LoadError::Invalid(why) => {
            eprintln!("{who}: {why}");
            ExitCode::from(ConfigError::EXIT_STATUS)
        }
        err => {
            eprintln!("{who}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn load_command(args: LoadArgs) -> ExitCode {
    let options = args.options();
    let stop = load_setup(&options);
    // Slow readers: the same load without them first, for the side by side.
    let baseline = match options.scenario.slow {
        Some(_) if args.slow_reader_baseline == OnOff::On && args.coordinator.is_some() => {
            return load_failed(
                "wsreactor load",
                LoadError::Invalid(
                    "--coordinator runs one load: add --slow-reader-baseline off (and run the baseline as its own run)"
                        .into(),
                ),
            );
        }
        Some(_) if args.slow_reader_baseline == OnOff::On => {
            let mut without = options.clone();
            without.scenario.slow = None;
            without.metrics_bind = None;
            eprintln!("wsreactor load: the run without slow readers first");
            match super::run_until(&without, &stop) {
                Ok(summary) => Some(summary),
                Err(err) => return load_failed("wsreactor load", err),
            }
        }
        _ => None,
    };
    let run = match (&args.coordinator, args.agents) {
        (Some(url), Some(agents)) => distributed(&options, url, agents, args.agents_wait, &stop),
        _ => super::run_until(&options, &stop),
    };
    let mut summary = match run {
        Ok(summary) => summary,
        Err(err) => return load_failed("wsreactor load", err),
    };
    if let (Some(b), Some(slow)) = (
        &baseline,
        summary.subscribe.as_mut().and_then(|s| s.slow_readers.as_mut()),
    ) {
        slow.set_baseline(b.latency_us);
    }
    summary.command_line = std::env::args().collect();
    let verdict = summary.judge(&args.thresholds(), stop.load(Relaxed));
    summary.verdict = Some(verdict.clone());
    print!("{}", summary.table());
    let mut status = verdict.exit_code;
    if let Some(path) = &args.json {
        if let Err(err) = summary.write_json(path) {
            eprintln!("wsreactor load: cannot write {}: {err}", path.display());
            status = status.max(1);
        }
    }
    if let Some(path) = &args.plot {
        match super::plot::write_svg(&summary, path) {
            Ok(charts) => {
                let names: Vec<String> = charts.iter().map(|p| p.display().to_string()).collect();
                let charts = if names.len() == 1 { "chart" } else { "charts" };
                eprintln!("wsreactor load: {charts} in {}", names.join(" and "));
            }
            Err(err) => {
                eprintln!("wsreactor load: no chart written to {}: {err}", path.display());
                status = status.max(1);
            }
        }
    }
    ExitCode::from(status)
}

/// A run spread over agents (`--coordinator`).
#[cfg(feature = "redis")]
fn distributed(
    options: &super::Options,
    url: &str,
    agents: usize,
    join_wait: Duration,
    stop: &AtomicBool,
) -> Result<super::report::Summary, LoadError> {
    let c = super::distributed::coordinator::Coordination {
        url: url.to_owned(),
        agents,
        join_wait,
        args: load_flags(),
    };
    super::distributed::coordinator::run(options, &c, stop)
}

#[cfg(not(feature = "redis"))]
fn distributed(
    _: &super::Options,
    _: &str,
    _: usize,
    _: Duration,
    _: &AtomicBool,
) -> Result<super::report::Summary, LoadError> {
    Err(LoadError::Invalid(
        "--coordinator: this build has no Redis (the `redis` feature)".into(),
    ))
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
