//! The `wsreactor` command line: it parses the flags and hands them to the
//! library, which puts the server together in one place.
//!
//! `wsreactor serve` and `check-config` go to [`wsreactor::server`]: the
//! configuration (a TOML file, or the built-in defaults when there is none),
//! the flags on top, one validation, then the server. A bad configuration is
//! a usage error: one line on stderr and exit status 2, the same status clap
//! uses for bad flags, so scripts can tell it from a server that failed while
//! running (status 1). `wsreactor load` goes to [`wsreactor::load::cli`]: bad
//! options are usage errors (status 2) too, while errors met during a run are
//! counted in the summary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use wsreactor::config::{reference, Config, ConfigError};
use wsreactor::load::cli::LoadCmd;
use wsreactor::server::{self, Overrides};

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

#[derive(Debug, Args)]
struct PrintConfigArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print the configuration reference instead, in Markdown
    /// (docs/configuration.md): every key with its default and meaning,
    /// the environment variables and the flags of `serve`.
    #[arg(long, conflicts_with = "config")]
    reference: bool,
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
    PrintConfig(PrintConfigArgs),
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

#[derive(Debug, Args)]
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
    /// What the flags set over the configuration.
    fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind,
            threads: self.threads,
            max_connections: self.max_connections,
            access_log: self.access_log,
            publish_token: self.publish_token.clone(),
            broker: self.broker.clone(),
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logger(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Load(load) => wsreactor::load::cli::run(*load),
        Command::CheckConfig(args) => check_config(&args),
        Command::PrintConfig(args) => print_config(&args),
        Command::Completions { shell } => {
            use clap_complete::Shell as S;
            let shell = match shell {
                Shell::Bash => S::Bash,
                Shell::Zsh => S::Zsh,
                Shell::Fish => S::Fish,
                Shell::Elvish => S::Elvish,
                Shell::Powershell => S::PowerShell,
            };
            clap_complete::generate(shell, &mut Cli::command(), "wsreactor", &mut std::io::stdout());
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
    match server::configure(args.config.as_deref(), &Overrides::default()) {
        Ok(startup) => {
            println!("{}: ok", startup.origin());
            ExitCode::SUCCESS
        }
        Err(err) => refused(err),
    }
}

/// `print-config`: the file (or the defaults), validated, as TOML; or
/// with `--reference`, the configuration reference.
fn print_config(args: &PrintConfigArgs) -> ExitCode {
    if args.reference {
        print!("{}", reference());
        return ExitCode::SUCCESS;
    }
    let config = Config::load_or_default(args.config.config.as_deref())
        .and_then(|(config, origin)| config.validate(&origin).map(|()| (config, origin)));
    match config {
        Ok((config, origin)) => {
            println!(
                "# wsreactor {}: the effective configuration of {origin}",
                env!("CARGO_PKG_VERSION")
            );
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(err) => refused(err),
    }
}

/// The configuration reference (docs/configuration.md), with `serve`'s
/// flags as clap knows them: their help is what `serve --help` says.
fn reference() -> String {
    let mut cli = Cli::command();
    cli.build();
    let serve = cli.find_subcommand("serve").expect("the serve subcommand");
    let flags: Vec<reference::Flag> = serve
        .get_arguments()
        .filter(|arg| !arg.is_hide_set() && !arg.is_global_set())
        .filter(|arg| !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version))
        .filter_map(|arg| {
            let mut usage = format!("--{}", arg.get_long()?);
            if arg.get_action().takes_values() {
                for name in arg.get_value_names().unwrap_or_default() {
                    usage = format!("{usage} {name}");
                }
            }
            let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string);
            Some(reference::Flag {
                usage,
                help: help.unwrap_or_default(),
            })
        })
        .collect();
    reference::markdown(&flags)
}

/// `serve`: the configuration, then the server until a signal.
fn serve(args: ServeArgs) -> ExitCode {
    let startup = match server::configure(args.config.as_deref(), &args.overrides()) {
        Ok(startup) => startup,
        Err(err) => return refused(err),
    };
    match startup.serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wsreactor: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A configuration refused: one line on stderr, exit status 2.
fn refused(err: ConfigError) -> ExitCode {
    eprintln!("wsreactor: {err}");
    ExitCode::from(ConfigError::EXIT_STATUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_are_overrides() {
        let line = "wsreactor serve --bind 0.0.0.0:80 --threads 3 --max-connections 7 --tls-cert c.pem --tls-key k.pem";
        let cli = Cli::try_parse_from(line.split(' ')).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let o = args.overrides();
        assert_eq!(
            (o.bind, o.threads, o.max_connections),
            (Some("0.0.0.0:80".parse().unwrap()), Some(3), Some(7))
        );
        assert_eq!(o.tls, Some(("c.pem".to_owned(), "k.pem".to_owned())));
        assert!(o.publish_token.is_none() && o.broker.is_none() && !o.access_log);
    }

    #[test]
    fn bad_flag_values_are_refused_by_clap() {
        assert!(Cli::try_parse_from(["wsreactor", "serve", "--threads", "x"]).is_err());
        assert!(Cli::try_parse_from(["wsreactor", "serve", "--bind", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["wsreactor"]).is_err());
    }

    #[test]
    fn docs_configuration_md_is_the_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let made = reference();
        if std::env::var_os("WSREACTOR_BLESS").is_some() {
            std::fs::write(path, &made).unwrap();
        }
        let docs = std::fs::read_to_string(path).unwrap_or_default();
        if docs != made {
            let line = docs.lines().zip(made.lines()).position(|(a, b)| a != b);
            let line = line.unwrap_or(docs.lines().count().min(made.lines().count()));
            panic!(
                "docs/configuration.md is not what `wsreactor print-config --reference` makes \
                 (first difference at line {}):\n  docs: {:?}\n  made: {:?}\n\
                 Regenerate it: {}\n(or WSREACTOR_BLESS=1 cargo test --bin wsreactor docs_configuration_md)",
                line + 1,
                docs.lines().nth(line).unwrap_or("(end)"),
                made.lines().nth(line).unwrap_or("(end)"),
                reference::REGENERATE,
            );
        }
    }

    #[test]
    fn every_serve_flag_but_config_names_the_keys_it_sets() {
        let text = reference();
        let flags = text
            .split("## Flags of `wsreactor serve`")
            .nth(1)
            .expect("the flags' section");
        let rows: Vec<&str> = flags.lines().filter(|l| l.starts_with("| `--")).collect();
        assert!(rows.len() >= 9, "{flags}");
        for row in rows {
            let keyless = row.starts_with("| `--config PATH` | none |");
            assert_eq!(
                row.contains(" | none | "),
                keyless,
                "a flag of serve must name the key it sets in its help (`overrides section.key`): {row}"
            );
        }
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
