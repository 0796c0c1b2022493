//! The composition root: the one place a server is put together, in this
//! order.
//!
//! ```text
//!  configure: the file (read once) or the built-in defaults ─► the environment's secrets ─► the flags
//!             ─► one validation (errors name the key and what set it) ─► the files the config names
//!                (certificates, the broker's CA), read once: a Startup
//!  Startup::serve: descriptor limit ─► signal handlers ─► broker ─► workers (reactor::Builder)
//!                  ─► the start line ─► the signal thread ─► join
//! ```
//!
//! `wsreactor serve` and `check-config` are [`configure`] (and
//! [`Startup::serve`]); [`serve_from`], for a [`Config`]
//! built in code, joins at [`Startup::new`]. Everything that goes wrong
//! before the first worker starts is a [`ConfigError`] (exit status
//! [`ConfigError::EXIT_STATUS`]); what fails after is an I/O error.

use crate::config::{
    secret_from_env, BrokerKind, Config, ConfigError, Origins, API_KEY_VAR, DEFAULTS_ORIGIN, PUBLISH_TOKEN_VAR,
};
use crate::pubsub::{Broker, LocalHub};
use crate::reactor::settings::Settings;
use crate::reactor::{tls, Builder, MakeBroker, ServerHandle};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// What the command line sets over the configuration: each `Some` (or
/// `true`) replaces the key it names, and errors about it name the flag.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--bind`: `server.bind`.
    pub bind: Option<SocketAddr>,
    /// `--threads`: `server.threads`.
    pub threads: Option<usize>,
    /// `--max-connections`: `server.max_connections`.
    pub max_connections: Option<usize>,
    /// `--access-log`: `server.access_log` on.
    pub access_log: bool,
    /// `--publish-token`: `pubsub.publish_token`, over the environment's.
    pub publish_token: Option<String>,
    /// `--broker`: `pubsub.broker`, as written.
    pub broker: Option<String>,
    /// `--tls-cert` and `--tls-key`, which come together: `tls.cert` and `tls.key`.
    pub tls: Option<(String, String)>,
}

/// The configuration `path` (or the defaults) with the environment's
/// secrets and `overrides` applied, validated once, and the files it names
/// read: ready to [`serve`](Startup::serve).
pub fn configure(path: Option<&Path>, overrides: &Overrides) -> Result<Startup, ConfigError> {
    let (mut config, origin) = Config::load_or_default(path)?;
    // What set each key the flags and the environment override, for the
    // errors: the file never held those values.
    let mut origins = Origins::new(&origin);
    if let Some(bind) = overrides.bind {
        config.server.bind = bind;
        origins.set("server.bind", "--bind");
    }
    if let Some(threads) = overrides.threads {
        config.server.threads = threads;
        origins.set("server.threads", "--threads");
    }
    if let Some(max) = overrides.max_connections {
        config.server.max_connections = max;
        origins.set("server.max_connections", "--max-connections");
    }
    if overrides.access_log {
        config.server.access_log = true;
    }
    // The environment (out of `ps` and of config files), then the flag.
    if let Some(token) = secret_from_env(PUBLISH_TOKEN_VAR, "pubsub.publish_token")? {
        config.pubsub.publish_token = token.value;
        origins.set("pubsub.publish_token", token.origin);
    }
    if let Some(secret) = secret_from_env(crate::auth::SECRET_VAR, "auth.secret")? {
        config.auth.secret = secret.value;
        origins.set("auth.secret", secret.origin);
    }
    if let Some(key) = secret_from_env(API_KEY_VAR, "api.key")? {
        config.api.key = key.value;
        origins.set("api.key", key.origin);
    }
    // Read here so that an unreadable file stops the start (exit 2).
    #[cfg(feature = "redis")]
    secret_from_env(crate::pubsub::redis::PASSWORD_VAR, "pubsub.broker")?;
    if let Some(token) = &overrides.publish_token {
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
    if let Some(broker) = &overrides.broker {
        config.pubsub.broker = BrokerKind::try_from(broker.clone()).map_err(|message| ConfigError::Invalid {
            origin: "--broker".to_owned(),
            key: "pubsub.broker",
            message,
        })?;
        origins.set("pubsub.broker", "--broker");
    }
    if let Some((cert, key)) = &overrides.tls {
        config.tls.cert = cert.clone();
        config.tls.key = key.clone();
        origins.set("tls.cert", "--tls-cert");
        origins.set("tls.key", "--tls-key");
    }
    config.validate_from(&origins)?;
    Startup::new(config, &origins)
}

/// A configuration with the files it names already read: the server's
/// certificate and key, and the broker's CA.
#[derive(Debug)]
pub struct Startup {
    config: Config,
    origin: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    broker_ca: Option<Vec<u8>>,
}

impl Startup {
    /// Read the files `config` names; an error names the key and what set
    /// it (`origins`). `config` is taken as it is: validate it first.
    pub fn new(config: Config, origins: &Origins) -> Result<Startup, ConfigError> {
        // Certificates are read at start: a bad one is a configuration error
        // (exit 2) that names the file.
        let tls = match config.tls.cert.as_str() {
            "" => None,
            cert => Some(
                tls::server_config(cert.as_ref(), config.tls.key.as_ref()).map_err(|message| ConfigError::Invalid {
                    origin: origins.of("tls.cert").to_owned(),
                    key: "tls.cert",
                    message,
                })?,
            ),
        };
        let broker_ca = match config.pubsub.broker_ca.as_str() {
            "" => None,
            ca => Some(std::fs::read(ca).map_err(|e| ConfigError::Invalid {
                origin: origins.of("pubsub.broker_ca").to_owned(),
                key: "pubsub.broker_ca",
                message: format!("cannot read {ca}: {e}"),
            })?),
        };
        Ok(Startup {
            config,
            origin: origins.base().to_owned(),
            tls,
            broker_ca,
        })
    }

    /// The configuration ([`configure`] validated it).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where it came from: a file's path, or the built-in defaults.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Raise the descriptor limit, then [`run`](Self::run).
    pub fn serve(self) -> io::Result<()> {
        // Without the raise the server would hit EMFILE near 1024 connections,
        // but it can still serve below that, so a failure only warns.
        match crate::sys::raise_fd_limit() {
            Ok(limit) => log::info!("open file limit: {limit}"),
            Err(err) => log::warn!("could not raise the open file limit: {err}"),
        }
        self.run()
    }

    /// Serve until SIGINT or SIGTERM, then shut down gracefully (a second
    /// signal during the shutdown exits at once).
    pub fn run(self) -> io::Result<()> {
        // Handlers first: once a worker accepts, a SIGTERM must be the graceful
        // shutdown, not the default action that kills the process. Signals that
        // arrive before the thread below runs are kept for it.
        let mut signals =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
        let Startup {
            config,
            origin,
            tls,
            broker_ca,
        } = self;
        let threads = config.worker_threads();
        let settings = Settings::from(&config);
        let make_broker = broker(&config.pubsub, broker_ca, settings.pubsub.hub.clone())?;
        let mut builder = Builder::new(settings)
            .threads(threads)
            .backlog(config.server.backlog)
            .try_broker(make_broker);
        if let Some(tls) = tls {
            builder = match config.tls.bind_addr() {
                Some(addr) => builder.tls_listener(addr, tls),
                None => builder.tls(tls),
            };
        }
        let server = builder.start(config.server.bind)?;
        log::info!("{}", start_line(&config, &origin, &server, threads));
        let private = &config.auth.private_channels;
        match (private.is_empty(), config.auth.secret.is_empty()) {
            (true, _) => {}
            (false, false) => log::info!("channels {private:?} need a token (HS256)"),
            (false, true) => log::info!("channels {private:?} cannot be subscribed: no auth.secret"),
        }
        if !config.api.key.is_empty() {
            log::info!("the server API is at /api/ (with api.key)");
        }
        let trigger = server.shutdown_trigger();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut seen = false;
            for signal in signals.forever() {
                if seen {
                    log::warn!("second signal {signal}: exiting now");
                    std::process::exit(1);
                }
                seen = true;
                log::info!("signal {signal}: closing connections (1001) and stopping");
                trigger();
            }
        })?;
        server.join()?;
        log::info!("stopped");
        Ok(())
    }
}

/// What makes the broker `kind` names once the workers' inboxes exist.
fn broker(
    pubsub: &crate::config::PubSub,
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))] ca: Option<Vec<u8>>,
    hub: crate::pubsub::HubSettings,
) -> io::Result<MakeBroker> {
    match &pubsub.broker {
        BrokerKind::Local => Ok(Box::new(move |inboxes| {
            Ok(Arc::new(LocalHub::new(hub, inboxes)) as Arc<dyn Broker>)
        })),
        #[cfg(feature = "redis")]
        BrokerKind::Redis(url) => {
            let url = url.clone();
            let options = crate::pubsub::redis::RedisOptions {
                ca_pem: ca,
                replicas: pubsub.broker_replicas,
                replicas_timeout: pubsub.broker_replicas_timeout,
            };
            Ok(Box::new(move |inboxes| {
                let broker = crate::pubsub::redis::RedisBroker::start_with(&url, options, hub, inboxes)
                    .map_err(io::Error::other)?;
                Ok(Arc::new(broker) as Arc<dyn Broker>)
            }))
        }
        #[cfg(not(feature = "redis"))]
        BrokerKind::Redis(url) => Err(io::Error::other(format!(
            "broker {url}: built without the redis feature"
        ))),
    }
}

/// The one line that says what started: the version, where the
/// configuration came from, the addresses, workers, broker, whether a
/// publish token is set (never its value) and the demo page.
fn start_line(config: &Config, origin: &str, server: &ServerHandle, threads: usize) -> String {
    let tls_main = !config.tls.cert.is_empty() && server.tls_addr().is_none();
    let addr = server.local_addr();
    // The address comes first after "listening on": scripts read it there.
    let mut listening = format!("{addr}{}", if tls_main { " (TLS)" } else { "" });
    listening.push_str(&format!(" with {threads} worker thread(s)"));
    if let Some(tls) = server.tls_addr() {
        listening.push_str(&format!(", TLS on {tls}"));
    }
    let broker = match &config.pubsub.broker {
        BrokerKind::Local => "local".to_owned(),
        #[cfg(feature = "redis")]
        BrokerKind::Redis(url) => crate::pubsub::redis::redacted(url),
        #[cfg(not(feature = "redis"))]
        BrokerKind::Redis(url) => url.clone(),
    };
    let token = if config.pubsub.publish_token.is_empty() {
        "none"
    } else {
        "set"
    };
    let page = if tls_main { "https" } else { "http" };
    format!(
        "wsreactor {} listening on {listening}; config: {origin}; broker: {broker}; publish token: {token}; demo page: {page}://{addr}/",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Serve with `config` until SIGINT or SIGTERM, then shut down gracefully.
/// A second signal during the shutdown exits at once.
pub fn serve(config: Config) -> io::Result<()> {
    serve_from(config, DEFAULTS_ORIGIN)
}

/// [`serve`], saying in the start line where the configuration came from
/// (`origin`: a file's path, or [`DEFAULTS_ORIGIN`]). The server is put
/// together where `wsreactor serve`'s is, by [`Startup`].
pub fn serve_from(config: Config, origin: &str) -> io::Result<()> {
    Startup::new(config, &Origins::new(origin))
        .map_err(|err| io::Error::other(err.to_string()))?
        .run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULTS_ORIGIN;

    #[test]
    fn overrides_replace_their_keys_and_nothing_else() {
        let overrides = Overrides {
            bind: Some("0.0.0.0:80".parse().unwrap()),
            threads: Some(3),
            max_connections: Some(7),
            ..Overrides::default()
        };
        let startup = configure(None, &overrides).unwrap();
        let config = startup.config();
        assert_eq!(config.server.bind, "0.0.0.0:80".parse().unwrap());
        assert_eq!((config.server.threads, config.server.max_connections), (3, 7));
        assert_eq!(config.limits, Config::default().limits);
        assert_eq!(startup.origin(), DEFAULTS_ORIGIN);
    }

    #[test]
    fn no_overrides_is_the_defaults() {
        assert_eq!(
            configure(None, &Overrides::default()).unwrap().config(),
            &Config::default()
        );
    }

    #[test]
    fn an_empty_publish_token_flag_is_refused_naming_the_flag() {
        let overrides = Overrides {
            publish_token: Some(String::new()),
            ..Overrides::default()
        };
        let err = configure(None, &overrides).err().unwrap().to_string();
        assert!(
            err.starts_with("--publish-token: `pubsub.publish_token` is empty"),
            "{err}"
        );
    }
}
