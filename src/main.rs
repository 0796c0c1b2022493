//! The `wsreactor` command line.
//!
//! `wsreactor load` runs the load generator ([`wsreactor::load`]) and prints
//! its summary; bad options are usage errors (status 2) too, while errors met
//! during a run are counted in the summary and do not change the status.
//!
//! `wsreactor serve` loads the configuration (a TOML file, or the built-in
//! defaults when there is none), applies the flags on top, validates the
//! result once, raises the descriptor limit and runs the reactor. A bad
//! configuration is a usage error: one line on stderr and exit status 2, the
//! same status clap uses for bad flags, so scripts can tell it from a server
//! that failed while running (status 1).

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use log::{info, warn};
use wsreactor::config::{secret_from_env, BrokerKind, Config, ConfigError, Origins};
use wsreactor::load::{self, CursorStyle, LoadError, Mode, Transport};
use wsreactor::protocol::MessageKind;

/// An RFC 6455 WebSocket server on a hand-written mio reactor.
#[derive(Debug, Parser)]
#[command(name = "wsreactor", version)]
struct Cli {
    /// Log lines as text, or as one JSON object each for log shippers
    /// (`ts`, `level`, `target`, `msg`). RUST_LOG sets the level (default
    /// info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--config PATH`, for the subcommands that read a configuration.
#[derive(Debug, Args)]
struct ConfigArg {
    /// TOML configuration file; without it the built-in defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

// Subcommands rather than flags on the top level, so the load generator can
// arrive as `wsreactor load` beside `serve`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the WebSocket server.
    Serve(ServeArgs),
    /// Load a WebSocket server with many connections and measure it.
    Load(Box<LoadCmd>),
    /// Check a configuration (the file, the environment's secrets, the
    /// certificates it names): exit 0 if the server would start with it,
    /// 2 with the reason if not.
    CheckConfig(ConfigArg),
    /// Print the effective configuration as TOML, every key with its value
    /// (defaults filled in); the output is a configuration file that
    /// changes nothing. Secrets from the environment are not shown.
    PrintConfig(ConfigArg),
    /// Print a shell completion script, e.g.
    /// `wsreactor completions bash > /etc/bash_completion.d/wsreactor`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff), e.g. `wsreactor man | man -l -`.
    Man,
}

#[derive(Debug, Default, Args)]
struct ServeArgs {
    /// TOML configuration file; without it the built-in defaults are used
    /// (config/wsreactor.toml lists them).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on: 0.0.0.0:9001, [::1]:9001, localhost:9001
    /// (overrides server.bind; default 127.0.0.1:9001).
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    bind: Option<SocketAddr>,
    /// Worker threads, 0 for one per core (overrides server.threads;
    /// default 0).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Connections open at once, 0 for no limit of our own (overrides
    /// server.max_connections; default 0).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Token that `POST /pub/...` must carry as `Authorization: Bearer
    /// <token>` (overrides pubsub.publish_token and the environment
    /// variable WSREACTOR_PUBLISH_TOKEN, which keeps it out of `ps`).
    #[arg(long, value_name = "TOKEN")]
    publish_token: Option<String>,
    /// Where channels live: `local` (this process) or a Redis URL,
    /// `redis://HOST:PORT/DB`, shared by every node that names it
    /// (overrides pubsub.broker; default local).
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// One log line per HTTP response and WebSocket session: client,
    /// method and path (never the query), status or close code, bytes,
    /// time (sets server.access_log; default off).
    #[arg(long)]
    access_log: bool,
    /// PEM certificate chain: with --tls-key, the listener speaks TLS
    /// (wss://, https://) (overrides tls.cert).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<String>,
    /// PEM private key of --tls-cert (overrides tls.key).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<String>,
}

/// `load` runs one load; `load compare` one per transport, in rounds.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct LoadCmd {
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
    Compare(CompareArgs),
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
    #[arg(long, value_name = "IPS", value_parser = load::parse_source_ips)]
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
    /// Also write a latency percentile chart (SVG) to this file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress line (there is none either when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// A header for every opening handshake and publish, as 'Name: value'
    /// (repeatable), e.g. --header 'Authorization: Bearer TOKEN'.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'", value_parser = load::parse_header)]
    headers: Vec<(String, String)>,
    /// Subscribe mode: publish with `Authorization: Bearer TOKEN`, for a
    /// server with a publish token (or the environment variable
    /// WSREACTOR_PUBLISH_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    publish_token: Option<String>,
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

/// `--bind`: an address, or a host name and port resolved now (the first
/// address it has).
fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?} ({e}); expected HOST:PORT, e.g. 127.0.0.1:9001 or [::1]:9001"))?;
    addrs.next().ok_or_else(|| format!("{s:?} resolves to no address"))
}

impl ServeArgs {
    /// `serve --config PATH` and nothing else.
    fn from_config(config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            config,
            ..ServeArgs::default()
        }
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
    fn options(&self) -> load::Options {
        load::Options {
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
            poll_interval: self.poll_interval,
            keep_alive: self.keep_alive == OnOff::On,
            cursor: match self.cursor {
                CursorArg::Wsreactor => CursorStyle::Wsreactor,
                CursorArg::Nchan => CursorStyle::Nchan,
            },
            server_pid: self.server_pid,
        }
    }

    fn thresholds(&self) -> load::report::Thresholds {
        load::report::Thresholds {
            max_errors: self.max_errors,
            max_p99: self.max_p99,
            max_p99_9: self.max_p99_9,
            min_rate: self.min_rate,
        }
    }
}

/// The environment variable the publish token may come from.
const PUBLISH_TOKEN_VAR: &str = "WSREACTOR_PUBLISH_TOKEN";

/// Exit status for a configuration the server refuses.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logger(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Load(load) => match *load {
            LoadCmd {
                compare: Some(LoadSub::Compare(args)),
                ..
            } => compare_command(args),
            LoadCmd { args, .. } => load_command(args),
        },
        Command::CheckConfig(args) => check_config(&args),
        Command::PrintConfig(args) => print_config(&args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let out = &mut std::io::stdout();
            match shell {
                Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "wsreactor", out),
                Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "wsreactor", out),
                Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "wsreactor", out),
                Shell::Elvish => clap_complete::generate(clap_complete::Shell::Elvish, &mut cmd, "wsreactor", out),
                Shell::Powershell => {
                    clap_complete::generate(clap_complete::Shell::PowerShell, &mut cmd, "wsreactor", out)
                }
            }
            ExitCode::SUCCESS
        }
        Command::Man => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsreactor: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// env_logger, as text or as one JSON object per line.
fn init_logger(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            use std::io::Write;
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let line = serde_json::json!({
                "ts": format!("{}", humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + ts)),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// `check-config`: the configuration as `serve` would take it.
fn check_config(args: &ConfigArg) -> ExitCode {
    let serve = ServeArgs::from_config(args.config.clone());
    match configure(&serve) {
        Ok(_) => {
            let origin = args
                .config
                .as_ref()
                .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            println!("{origin}: ok");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("wsreactor: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `print-config`: the file (or the defaults), validated, as TOML.
fn print_config(args: &ConfigArg) -> ExitCode {
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    };
    let origin = args
        .config
        .as_ref()
        .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
    match config.and_then(|c| c.validate(&origin).map(|()| c)) {
        Ok(config) => {
            println!(
                "# wsreactor {}: the effective configuration of {origin}",
                env!("CARGO_PKG_VERSION")
            );
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("wsreactor: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// What every load run sets up first: the descriptor limit, and Ctrl-C
/// (the first one ends the measurement and still reports; a second one
/// exits at once).
fn load_setup(options: &load::Options) -> Arc<AtomicBool> {
    match wsreactor::sys::raise_fd_limit() {
        Ok(limit) if (limit as usize) < options.connections + 64 => {
            warn!("open file limit {limit} is below --connections {}", options.connections)
        }
        Ok(_) => {}
        Err(err) => warn!("could not raise the open file limit: {err}"),
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone());
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    stop
}

/// `load compare`: the table of medians, and the JSON and chart if asked.
fn compare_command(args: CompareArgs) -> ExitCode {
    let mut options = args.load.options();
    options.mode = Mode::Subscribe;
    if !args.load.binary {
        options.kind = MessageKind::Text;
    }
    let stop = load_setup(&options);
    let transports: Vec<Transport> = args.transports.iter().map(|&t| t.into()).collect();
    let mut comparison = match load::compare::run(&options, &transports, args.rounds, &stop) {
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
        match load::plot::compare_svg(&comparison, path) {
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
        status = status.max(load::report::EXIT_ERRORS);
    }
    if stop.load(Relaxed) {
        status = load::report::EXIT_INTERRUPTED;
    }
    ExitCode::from(status)
}

/// A run that could not be made: options refused are a configuration
/// error (2), anything else a failure (1).
fn load_failed(who: &str, err: LoadError) -> ExitCode {
    match err {
        LoadError::Invalid(why) => {
            eprintln!("{who}: {why}");
            ExitCode::from(EXIT_CONFIG)
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
    let mut summary = match load::run_until(&options, &stop) {
        Ok(summary) => summary,
        Err(err) => return load_failed("wsreactor load", err),
    };
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
        match load::plot::write_svg(&summary, path) {
            Ok(over_time) => eprintln!(
                "wsreactor load: charts in {} and {}",
                path.display(),
                over_time.display()
            ),
            Err(err) => {
                eprintln!("wsreactor load: no chart written to {}: {err}", path.display());
                status = status.max(1);
            }
        }
    }
    ExitCode::from(status)
}

fn serve(args: ServeArgs) -> ExitCode {
    let origin = args
        .config
        .as_ref()
        .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
    let config = match configure(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("wsreactor: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Without the raise the server would hit EMFILE near 1024 connections,
    // but it can still serve below that, so a failure only warns.
    match wsreactor::sys::raise_fd_limit() {
        Ok(limit) => info!("open file limit: {limit}"),
        Err(err) => warn!("could not raise the open file limit: {err}"),
    }
    match wsreactor::reactor::serve_from(config, &origin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wsreactor: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The file (or the defaults), then the flags, then one validation of the
/// result.
fn configure(args: &ServeArgs) -> Result<Config, ConfigError> {
    let (mut config, origin) = match &args.config {
        Some(path) => (Config::load(path)?, path.display().to_string()),
        None => (Config::default(), "built-in defaults".to_owned()),
    };
    // What set each key the flags and the environment override, for the
    // errors: the file never held those values.
    let mut origins = Origins::new(&origin);
    if let Some(bind) = args.bind {
        config.server.bind = bind;
        origins.set("server.bind", "--bind");
    }
    if let Some(threads) = args.threads {
        config.server.threads = threads;
        origins.set("server.threads", "--threads");
    }
    if let Some(max) = args.max_connections {
        config.server.max_connections = max;
        origins.set("server.max_connections", "--max-connections");
    }
    if args.access_log {
        config.server.access_log = true;
    }
    // The environment (out of `ps` and of config files), then the flag.
    if let Some(token) = secret_from_env(PUBLISH_TOKEN_VAR, "pubsub.publish_token")? {
        config.pubsub.publish_token = token.value;
        origins.set("pubsub.publish_token", token.origin);
    }
    if let Some(secret) = secret_from_env(wsreactor::auth::SECRET_VAR, "auth.secret")? {
        config.auth.secret = secret.value;
        origins.set("auth.secret", secret.origin);
    }
    // Read here so that an unreadable file stops the start (exit 2).
    #[cfg(feature = "redis")]
    secret_from_env(wsreactor::pubsub::redis::PASSWORD_VAR, "pubsub.broker")?;
    if let Some(token) = &args.publish_token {
        // An empty token would silently mean "no token".
        if token.is_empty() {
            return Err(ConfigError::Invalid {
                origin: "--publish-token".to_owned(),
                key: "pubsub.publish_token",
                message: "is empty: leave the flag out for no token".to_owned(),
            });
        }
        config.pubsub.publish_token = token.clone();
        origins.set("pubsub.publish_token", "--publish-token");
    }
    if let Some(broker) = &args.broker {
        config.pubsub.broker = BrokerKind::try_from(broker.clone()).map_err(|message| ConfigError::Invalid {
            origin: "--broker".to_owned(),
            key: "pubsub.broker",
            message,
        })?;
        origins.set("pubsub.broker", "--broker");
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls.cert = cert.clone();
        config.tls.key = key.clone();
        origins.set("tls.cert", "--tls-cert");
        origins.set("tls.key", "--tls-key");
    }
    config.validate_from(&origins)?;
    // Certificates are read at start: a bad one is a configuration error
    // (exit 2) that names the file.
    if !config.tls.cert.is_empty() {
        wsreactor::reactor::tls::server_config(config.tls.cert.as_ref(), config.tls.key.as_ref()).map_err(
            |message| ConfigError::Invalid {
                origin: origins.of("tls.cert").to_owned(),
                key: "tls.cert",
                message,
            },
        )?;
    }
    // Read at start so that a missing file is a configuration error (exit 2).
    let ca = &config.pubsub.broker_ca;
    if !ca.is_empty() {
        std::fs::File::open(ca).map_err(|e| ConfigError::Invalid {
            origin,
            key: "pubsub.broker_ca",
            message: format!("cannot read {ca}: {e}"),
        })?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    fn parse_load(args: &[&str]) -> LoadArgs {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Load(load) if load.compare.is_none() => load.args,
            other => panic!("not load: {other:?}"),
        }
    }

    #[test]
    fn load_compare_takes_the_load_flags_and_its_own() {
        let cli = Cli::try_parse_from([
            "wsreactor",
            "load",
            "compare",
            "--url",
            "http://127.0.0.1:9/",
            "--channel",
            "c",
            "--rounds",
            "5",
            "--transports",
            "sse,ws",
            "--poll-interval",
            "250ms",
            "--keep-alive",
            "off",
            "--cursor",
            "nchan",
            "--server-pid",
            "42",
        ])
        .unwrap();
        let Command::Load(load) = cli.command else {
            panic!("not load");
        };
        let Some(LoadSub::Compare(c)) = load.compare else {
            panic!("not load compare");
        };
        assert_eq!(
            (c.rounds, c.transports.as_slice()),
            (5, &[TransportArg::Sse, TransportArg::Ws][..])
        );
        let o = c.load.options();
        assert_eq!(o.channel.as_deref(), Some("c"));
        assert_eq!(o.poll_interval, Duration::from_millis(250));
        assert!(!o.keep_alive);
        assert_eq!((o.cursor, o.server_pid), (CursorStyle::Nchan, Some(42)));
        // A plain `load` still needs --url; `load --transport` takes each name.
        assert!(Cli::try_parse_from(["wsreactor", "load"]).is_err());
        for (name, t) in [
            ("ws", Transport::Ws),
            ("sse", Transport::Sse),
            ("longpoll", Transport::LongPoll),
            ("poll", Transport::Poll),
        ] {
            let args = parse_load(&[
                "wsreactor",
                "load",
                "--url",
                "ws://127.0.0.1:9/ws/c",
                "--transport",
                name,
            ]);
            assert_eq!(args.options().transport, t);
        }
    }

    #[test]
    fn load_flags_map_to_options() {
        let args = parse_load(&[
            "wsreactor",
            "load",
            "--url",
            "ws://127.0.0.1:9/x",
            "--connections",
            "5000",
            "--connect-rate",
            "250",
            "--duration",
            "1m 30s",
            "--text",
            "--rate",
            "1000",
            "--pipeline",
            "4",
            "--source-ips",
            "127.0.0.1-127.0.0.4",
            "--mode",
            "connect",
            "--quiet",
        ]);
        let o = args.options();
        assert_eq!((o.connections, o.connect_rate, o.pipeline), (5000, 250.0, 4));
        assert_eq!(o.duration, Duration::from_secs(90));
        assert_eq!(
            (o.kind, o.rate, o.mode),
            (MessageKind::Text, Some(1000.0), Mode::Connect)
        );
        assert_eq!(o.source_ips.len(), 4);
        assert!(!o.progress);
        let defaults = parse_load(&["wsreactor", "load", "--url", "ws://127.0.0.1:9/"]).options();
        assert_eq!(
            (defaults.kind, defaults.rate, defaults.mode),
            (MessageKind::Binary, None, Mode::Echo)
        );
        assert_eq!(defaults.publishers, 4);
        let sub = parse_load(&[
            "wsreactor",
            "load",
            "--url",
            "ws://127.0.0.1:9/ws/news",
            "--mode",
            "subscribe",
            "--publishers",
            "2",
        ])
        .options();
        assert_eq!((sub.mode, sub.publishers), (Mode::Subscribe, 2));
        let churn = parse_load(&["wsreactor", "load", "--url", "ws://127.0.0.1:9/", "--mode", "churn"]).options();
        assert_eq!((churn.mode, churn.rate), (Mode::Churn, None));
        assert!(Cli::try_parse_from(["wsreactor", "load", "--url", "ws://h/", "--text", "--binary"]).is_err());
        assert!(Cli::try_parse_from(["wsreactor", "load", "--url", "ws://h/", "--source-ips", "x"]).is_err());
        assert!(Cli::try_parse_from(["wsreactor", "load"]).is_err());
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = parse(&[
            "wsreactor",
            "serve",
            "--bind",
            "0.0.0.0:80",
            "--threads",
            "3",
            "--max-connections",
            "7",
        ]);
        let config = configure(&args).unwrap();
        assert_eq!(config.server.bind, "0.0.0.0:80".parse().unwrap());
        assert_eq!(config.server.threads, 3);
        assert_eq!(config.server.max_connections, 7);
        assert_eq!(config.limits, Config::default().limits);
    }

    #[test]
    fn no_flags_is_the_defaults() {
        let config = configure(&parse(&["wsreactor", "serve"])).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn bad_flag_values_are_refused_by_clap() {
        assert!(Cli::try_parse_from(["wsreactor", "serve", "--threads", "x"]).is_err());
        assert!(Cli::try_parse_from(["wsreactor", "serve", "--bind", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["wsreactor"]).is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
