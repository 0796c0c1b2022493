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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use log::{info, warn};
use wsreactor::config::{secret_from_env, BrokerKind, Config, ConfigError, Origins, PUBLISH_TOKEN_VAR};
use wsreactor::load::cli::LoadCmd;

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

/// Exit status for a configuration the server refuses.
const EXIT_CONFIG: u8 = ConfigError::EXIT_STATUS;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logger(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Load(load) => wsreactor::load::cli::run(*load),
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
