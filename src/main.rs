//! The `wsreactor` command line.
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

use clap::{Args, Parser, Subcommand};
use log::{info, warn};
use wsreactor::config::{Config, ConfigError};

/// An RFC 6455 WebSocket server on a hand-written mio reactor.
#[derive(Debug, Parser)]
#[command(name = "wsreactor", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Subcommands rather than flags on the top level, so the load generator can
// arrive as `wsreactor load` beside `serve`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the WebSocket server.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file; without it the built-in defaults are used
    /// (config/wsreactor.toml lists them).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.bind).
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Worker threads, 0 for one per core (overrides server.threads).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Connections open at once, 0 for no limit of our own (overrides
    /// server.max_connections).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

/// Exit status for a configuration the server refuses.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
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
    match wsreactor::reactor::serve(config) {
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
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    if let Some(threads) = args.threads {
        config.server.threads = threads;
    }
    if let Some(max) = args.max_connections {
        config.server.max_connections = max;
    }
    config.validate(&origin)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Serve(args) => args,
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
