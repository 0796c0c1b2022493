//! The server's configuration: a TOML file, its defaults, and the checks on it.
//!
//! Every limit and timeout the server applies lives here with a documented
//! default, so nothing is hard-coded elsewhere. `config/wsreactor.toml` lists
//! every key set to its default, and a test keeps that file and
//! [`Config::default`] identical.
//!
//! A file may set only some keys, and may leave out whole sections: what it
//! does not set keeps its default. A key the server does not know is an error
//! rather than ignored, because a misspelt limit that silently keeps its
//! default is worse than a refusal to start. Every error names the file and,
//! where it is about one key, the key as `section.key` and its line.
//!
//! Loading is split in two: [`Config::from_toml`] / [`Config::load`] only parse,
//! and [`Config::validate`] checks ranges, so the command line can override
//! values in between and the result is checked once.
//!
//! This module is a leaf: it knows nothing of the reactor. The reactor turns
//! a `Config` into its own view once (`reactor::settings`), and its
//! defaults are this module's: one source for every default.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

mod error;
mod presence;
pub mod reference;
mod secret;

use error::explain;
pub use error::{ConfigError, Origins};
pub use presence::PresenceConfig;
pub use secret::{secret_from_env, EnvSecret};

/// The largest any byte size may be: buffers index their bytes with 32 bits
/// (`u32` lengths), and no single message, head or queue needs more.
pub const MAX_SIZE: usize = 1 << 30;

/// The longest timeout: connection timers measure with 32-bit millisecond
/// stamps, which wrap after ~49 days; half of that leaves room to spare.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 24 * 3600);

/// The most worker threads: each holds three descriptors (poll, waker,
/// listener) and a stack, and no machine has more cores than this.
pub const MAX_THREADS: usize = 1024;

/// Where the configuration came from when no file was given: errors and
/// the start line name it as they would name a file.
pub const DEFAULTS_ORIGIN: &str = "built-in defaults";

/// The environment variable the publish token may come from (and the load
/// generator's token for publishing).
pub const PUBLISH_TOKEN_VAR: &str = "WSREACTOR_PUBLISH_TOKEN";

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where to listen and how many workers.
    pub server: ServerConfig,
    /// `[limits]`: the byte caps on every buffer.
    pub limits: Limits,
    /// `[timeouts]`: how long each phase of a connection may take.
    pub timeouts: Timeouts,
    /// `[deflate]`: permessage-deflate (RFC 7692).
    pub deflate: Deflate,
    /// `[pubsub]`: channels, history, long polling and event streams.
    pub pubsub: PubSub,
    /// `[tls]`: TLS on the listener.
    pub tls: TlsConfig,
    /// `[http]`: what browsers may do.
    pub http: HttpConfig,
    /// `[auth]`: private channels and the secret of their tokens.
    pub auth: AuthConfig,
    /// `[api]`: the server API under `/api/`.
    pub api: ApiConfig,
    /// `[presence]`: who is subscribed, for the channels that keep it.
    pub presence: PresenceConfig,
}

/// The environment variable the API key may come from (or, with `_FILE`
/// appended, the file holding it).
pub const API_KEY_VAR: &str = "WSREACTOR_API_KEY";

/// `[api]`: the server API under `/api/` (JSON, for the operator's own
/// services).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The key every `/api/` request must carry (`X-API-Key: KEY` or
    /// `Authorization: apikey KEY`); better from the environment variable
    /// WSREACTOR_API_KEY. Empty (the default): the API is off.
    pub key: String,
    /// The most channels one `POST /api/broadcast` may name. Default 100.
    pub max_broadcast_channels: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            key: String::new(),
            max_broadcast_channels: 100,
        }
    }
}

/// `[auth]`: channels that need a subscriber token (a JWT), and the key
/// that signs those tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The HS256 secret of subscriber (and publisher) tokens; better from
    /// the environment variable WSREACTOR_AUTH_SECRET. Empty: no token is
    /// good, so private channels cannot be subscribed.
    pub secret: String,
    /// Glob patterns (`*`: any run of characters) of the channels that
    /// need a token. Default `["private-*"]`.
    pub private_channels: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: String::new(),
            private_channels: vec!["private-*".to_owned()],
        }
    }
}

/// `[http]`: which web pages may use the server from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Origins (`https://app.example`, `http://localhost:8080`) whose pages
    /// may open a WebSocket, a long poll or an event stream; empty or
    /// `"*"`: any.
    pub allowed_origins: Vec<String>,
    /// CORS answers say `Access-Control-Allow-Credentials: true`, so that
    /// a page may send cookies or HTTP authentication with its requests.
    /// Only with listed origins. Default false.
    pub allow_credentials: bool,
}

/// `[tls]`: with a certificate and its key, the listener speaks TLS
/// (`wss://`, `https://`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate chain (the server's first). Empty: no TLS.
    pub cert: String,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Empty: `server.bind` speaks TLS. An address: `server.bind` stays
    /// plain and TLS gets a listener of its own there, on the same workers.
    pub bind: String,
}

impl TlsConfig {
    /// `bind` as an address (checked by [`Config::validate`]).
    pub fn bind_addr(&self) -> Option<SocketAddr> {
        self.bind.parse().ok()
    }
}

/// The `[pubsub]` section: the push server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubSub {
    /// Messages kept per channel for `since` / `Last-Event-ID` resumes;
    /// 0 keeps none. Default 1000.
    pub history_size: usize,
    /// Messages older than this leave the history. Default 1h.
    #[serde(with = "humantime_serde")]
    pub history_ttl: Duration,
    /// Channels that may exist at once (a channel exists while it has
    /// history or subscribers); beyond it a publish or subscribe gets 503.
    /// Default 100000.
    pub max_channels: usize,
    /// A long poll with nothing new answers 204 after this. Default 30s.
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// An event stream gets a comment line after this much silence.
    /// Default 15s.
    #[serde(with = "humantime_serde")]
    pub sse_heartbeat: Duration,
    /// When not empty, `POST /pub/...` needs `Authorization: Bearer <token>`.
    /// Default "" (anyone on the network may publish).
    pub publish_token: String,
    /// How long a forgotten channel (no history, no subscriber) keeps its
    /// last id, so that its next publish continues from it instead of
    /// reusing ids a client may hold as its cursor. Default 30days.
    #[serde(with = "humantime_serde")]
    pub id_memory: Duration,
    /// How many forgotten channels keep their last id at most; the oldest is
    /// forgotten first. They do not count against `max_channels`.
    /// Default 100000.
    pub id_memory_channels: usize,
    /// How long a publish's `Idempotency-Key` is remembered: a publish
    /// with a key seen within it is answered with the first one's id and
    /// not published again (on every node of a Redis broker). Default 5m.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// How many `Idempotency-Key`s are remembered per channel at most; the
    /// oldest is forgotten first. Default 10000.
    pub idempotency_keys: usize,
    /// Where channels live. Default `local` (in this process).
    pub broker: BrokerKind,
    /// With a `rediss://` broker: a PEM file of the certificate authority
    /// that signed the Redis server's certificate. Empty (the default):
    /// the system's roots.
    pub broker_ca: String,
    /// With a Redis broker: how many replicas must have a message (Redis's
    /// `WAIT`) before its publish is answered 200. Redis replicates
    /// asynchronously: with 0 (the default), a message the master
    /// acknowledged and died before passing on is lost in a failover.
    pub broker_replicas: u32,
    /// How long a publish waits for `broker_replicas`; past it the publish
    /// is answered 503 (the master has the message, a failover may lose
    /// it). Default 500ms.
    #[serde(with = "humantime_serde")]
    pub broker_replicas_timeout: Duration,
}

/// The brokers the server can be started with (`[pubsub] broker`):
/// `"local"`, or a Redis URL: `redis://HOST:PORT/DB` (`rediss://` with
/// TLS), or `redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`
/// (`rediss+sentinel://`): the master Redis Sentinel names, followed
/// across failovers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum BrokerKind {
    /// Channels in this process ([`crate::pubsub::LocalHub`]).
    #[default]
    Local,
    /// Channels in Redis, shared by every node that names the same server.
    Redis(String),
}

impl TryFrom<String> for BrokerKind {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        if value == "local" {
            Ok(BrokerKind::Local)
        } else if REDIS_SCHEMES.iter().any(|s| value.starts_with(s)) {
            Ok(BrokerKind::Redis(value))
        } else {
            // Shown without a password a mistyped scheme may carry.
            let shown = match value.rsplit_once('@') {
                Some((_, host)) => format!("...@{host}"),
                None => value,
            };
            Err(format!(
                "expected `local` or a redis://, rediss://, redis+sentinel://, rediss+sentinel://, \
                 redis+cluster:// or rediss+cluster:// URL, got {shown:?}"
            ))
        }
    }
}

/// The URL schemes of a Redis broker.
const REDIS_SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
];

impl serde::Serialize for BrokerKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BrokerKind::Local => s.serialize_str("local"),
            BrokerKind::Redis(url) => s.serialize_str(url),
        }
    }
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            history_size: 1000,
            history_ttl: Duration::from_secs(3600),
            max_channels: 100_000,
            poll_timeout: Duration::from_secs(30),
            sse_heartbeat: Duration::from_secs(15),
            publish_token: String::new(),
            id_memory: Duration::from_secs(30 * 24 * 3600),
            id_memory_channels: 100_000,
            idempotency_ttl: Duration::from_secs(300),
            idempotency_keys: 10_000,
            broker: BrokerKind::Local,
            broker_ca: String::new(),
            broker_replicas: 0,
            broker_replicas_timeout: Duration::from_millis(500),
        }
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9001`.
    pub bind: SocketAddr,
    /// Worker threads; 0 means one per core. At most [`MAX_THREADS`].
    /// Default 0.
    pub threads: usize,
    /// Connections open at once across all workers; beyond it a new
    /// connection gets `503`. 0 means no limit of our own (the descriptor
    /// limit is the limit). Default 0.
    pub max_connections: usize,
    /// The `listen(2)` backlog of each worker's listener. Default 1024.
    pub backlog: u32,
    /// One log line per HTTP response and per WebSocket session (target
    /// `wsreactor::access`, level info). Default false.
    pub access_log: bool,
}

/// The `[limits]` section: byte caps, so no buffer grows without bound.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest HTTP request head; a larger one gets `431`. Default 8192.
    pub max_request_head: usize,
    /// Largest frame payload; a larger frame closes with 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// Largest reassembled message; a larger one closes with 1009.
    /// Default 16 MiB.
    pub max_message_size: usize,
    /// Pending output per connection. Over it the server stops reading from
    /// that connection, and closes it if it stays over for
    /// [`Timeouts::write_stall`]. Default 1 MiB.
    pub write_buffer_limit: usize,
    /// Bytes a connection's socket may hold not yet sent (TCP_NOTSENT_LOWAT),
    /// so that output a peer does not take waits in
    /// [`Limits::write_buffer_limit`]'s queue, where the slow-consumer rule
    /// sees it, and not in a kernel buffer that autotuning grows to 4 MiB.
    /// 0: the kernel's own. Default 131072 (128 KiB).
    pub tcp_notsent_lowat: usize,
    /// Size of one pooled read/write buffer. Default 16384.
    pub read_buffer_size: usize,
    /// Idle buffers each worker keeps for reuse. Default 1024.
    pub buffer_pool_size: usize,
    /// Open connections one client address (an IPv6 /64) may hold; over it
    /// a new one gets 429. 0: no limit (the default).
    pub per_ip_connections: u32,
    /// New connections per second one client address may open (a token
    /// bucket, a second's worth of burst); over it 429. 0: no limit (the
    /// default).
    pub per_ip_connect_rate: u32,
    /// Addresses or networks (CIDR) the per-address limits leave alone.
    /// Default ["127.0.0.0/8", "::1"], so that local load tests work.
    pub per_ip_exempt: Vec<String>,
    /// Proxies (addresses or CIDR) whose [`forwarded_header`](Self::forwarded_header)
    /// names the client the limits count. Default [] (the header of
    /// anyone else is ignored: it is the client's to forge).
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies set, `"x-forwarded-for"` (the
    /// default, what docs/operating.md's nginx snippet sets) or `"forwarded"`
    /// (RFC 7239). The other is ignored: a client may have sent it.
    pub forwarded_header: String,
    /// Channels one WebSocket connection may be subscribed to at once
    /// (the `wsreactor.mux` subprotocol, or any handler's); over it a
    /// subscribe is refused. 1 to 1000, default 128 (a delivery looks a
    /// message's channel up among a connection's).
    pub max_channels_per_connection: usize,
}

/// An address or network as the limits take it: `192.0.2.0/24`,
/// `2001:db8::/32`, or a bare address.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// The `[timeouts]` section. In the TOML each is a humantime string such as
/// `"10s"`, `"500ms"` or `"2m"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// The whole request head must arrive within it. Default 10s.
    #[serde(with = "humantime_serde")]
    pub handshake: Duration,
    /// The whole request, head and body (a publish), must arrive within
    /// it, counted from the same start as `handshake`; at least
    /// `handshake`. Default: not set, the value of `handshake` (so one
    /// deadline covers the whole request unless a longer one is asked for
    /// bodies); see [`Timeouts::request`].
    #[serde(default, with = "humantime_serde")]
    pub request: Option<Duration>,
    /// No input for this long closes the connection; the server pings at half
    /// of it. Default 120s.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    /// How long to wait for the peer's close frame or EOF, and for a graceful
    /// shutdown. Default 5s.
    #[serde(with = "humantime_serde")]
    pub close: Duration,
    /// How long a connection may stay over [`Limits::write_buffer_limit`]
    /// before it is closed. Default 30s.
    #[serde(with = "humantime_serde")]
    pub write_stall: Duration,
}

/// The `[deflate]` section: permessage-deflate (RFC 7692). The defaults
/// keep no compression state between messages, so an idle connection holds
/// none; context takeover compresses small repetitive messages better but
/// keeps ~370 KiB (compressor) and ~47 KiB (decompressor) per connection
/// that has used them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deflate {
    /// Accept a client's permessage-deflate offer. Default true.
    pub enabled: bool,
    /// Largest window our compressor uses, 9..=15. Default 15.
    pub server_max_window_bits: u8,
    /// Largest window we ask the client to use, 8..=15 (only when it
    /// offers `client_max_window_bits`). Default 15.
    pub client_max_window_bits: u8,
    /// Reset (and free) our compressor after every message. Default true.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message, so our
    /// decompressor is freed between messages. Default true.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes go uncompressed. Default 64.
    pub min_size: usize,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate {
            enabled: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            min_size: 64,
        }
    }
}

impl Deflate {
    /// The protocol layer's view of this section.
    pub fn to_protocol(&self) -> crate::protocol::deflate::DeflateConfig {
        crate::protocol::deflate::DeflateConfig {
            enabled: self.enabled,
            server_max_window_bits: self.server_max_window_bits,
            client_max_window_bits: self.client_max_window_bits,
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            min_size: self.min_size,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9001)),
            threads: 0,
            max_connections: 0,
            backlog: 1024,
            access_log: false,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_head: 8192,
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            write_buffer_limit: 1 << 20,
            tcp_notsent_lowat: 128 << 10,
            read_buffer_size: 16384,
            buffer_pool_size: 1024,
            per_ip_connections: 0,
            per_ip_connect_rate: 0,
            per_ip_exempt: vec!["127.0.0.0/8".to_owned(), "::1".to_owned()],
            trusted_proxies: Vec::new(),
            forwarded_header: "x-forwarded-for".to_owned(),
            max_channels_per_connection: 128,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            request: None,
            idle: Duration::from_secs(120),
            close: Duration::from_secs(5),
            write_stall: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// The deadline of a whole request: `request`, or `handshake` when it
    /// is not set.
    pub fn request(&self) -> Duration {
        self.request.unwrap_or(self.handshake)
    }
}

impl Config {
    /// Parse TOML text; `origin` names the file in errors. Only parses:
    /// call [`Config::validate`] once any overrides are applied.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|err| explain(text, origin, err))
    }

    /// Read and parse the file at `path` (see [`Config::from_toml`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        Config::from_toml(&text, &origin)
    }

    /// The file at `path` if there is one, else the defaults, with what
    /// errors call it: the path, or [`DEFAULTS_ORIGIN`]. Only parses, as
    /// [`Config::load`].
    pub fn load_or_default(path: Option<&Path>) -> Result<(Config, String), ConfigError> {
        match path {
            Some(path) => Ok((Config::load(path)?, path.display().to_string())),
            None => Ok((Config::default(), DEFAULTS_ORIGIN.to_owned())),
        }
    }

    /// Check that the values make sense together; the first problem found is
    /// returned, naming the key as `section.key` and `origin` as where it
    /// came from.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        self.validate_from(&Origins::new(origin))
    }

    /// [`validate`](Self::validate), an error naming what set its key
    /// (a flag or an environment variable over the file).
    pub fn validate_from(&self, origins: &Origins) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            origin: origins.of(key).to_owned(),
            key,
            message,
        };
        let at_least = |key, min: usize, got: usize| {
            if got < min {
                Err(invalid(key, format!("must be at least {min}, got {got}")))
            } else {
                Ok(())
            }
        };
        let (server, limits, timeouts) = (&self.server, &self.limits, &self.timeouts);
        let at_most = |key, max: usize, got: usize| {
            if got > max {
                Err(invalid(key, format!("must be at most {max}, got {got}")))
            } else {
                Ok(())
            }
        };
        at_most("server.threads", MAX_THREADS, server.threads)?;
        for (key, got) in [
            ("limits.max_request_head", limits.max_request_head),
            ("limits.max_frame_size", limits.max_frame_size),
            ("limits.max_message_size", limits.max_message_size),
            ("limits.write_buffer_limit", limits.write_buffer_limit),
            ("limits.tcp_notsent_lowat", limits.tcp_notsent_lowat),
            ("limits.read_buffer_size", limits.read_buffer_size),
        ] {
            at_most(key, MAX_SIZE, got)?;
        }

        at_least("server.backlog", 1, server.backlog as usize)?;
        // The smallest upgrade request is about 200 bytes and browsers send
        // 400 to 1500; a cap below 512 would refuse real clients.
        at_least("limits.max_request_head", 512, limits.max_request_head)?;
        // Control frames may carry 125 bytes and cannot be fragmented
        // (RFC 6455 section 5.5), so a smaller frame cap would break ping/close.
        at_least("limits.max_frame_size", 125, limits.max_frame_size)?;
        at_least("limits.max_message_size", 1, limits.max_message_size)?;
        at_least("limits.write_buffer_limit", 1, limits.write_buffer_limit)?;
        // Below 1 KiB each read returns so little that syscalls dominate.
        at_least("limits.read_buffer_size", 1024, limits.read_buffer_size)?;

        let nonzero = |key, d: Duration| {
            if d.is_zero() {
                Err(invalid(key, "must be more than zero".to_owned()))
            } else {
                Ok(())
            }
        };
        let max = MAX_TIMEOUT;
        for (key, d) in [
            ("timeouts.handshake", timeouts.handshake),
            ("timeouts.request", timeouts.request()),
            ("timeouts.idle", timeouts.idle),
            ("timeouts.close", timeouts.close),
            ("timeouts.write_stall", timeouts.write_stall),
            ("pubsub.poll_timeout", self.pubsub.poll_timeout),
            ("pubsub.sse_heartbeat", self.pubsub.sse_heartbeat),
        ] {
            if d > max {
                let got = humantime_serde::re::humantime::format_duration(d);
                return Err(invalid(key, format!("must be at most 24 days, got {got}")));
            }
        }
        nonzero("timeouts.handshake", timeouts.handshake)?;
        if timeouts.request() < timeouts.handshake {
            return Err(invalid(
                "timeouts.request",
                "must be at least timeouts.handshake (a request includes its head)".to_owned(),
            ));
        }
        nonzero("timeouts.close", timeouts.close)?;
        nonzero("timeouts.write_stall", timeouts.write_stall)?;
        // The server pings at idle / 2; under 2s that ping would be sent so
        // often it costs more than the dead connections it finds.
        if timeouts.idle < Duration::from_secs(2) {
            let got = humantime_serde::re::humantime::format_duration(timeouts.idle);
            return Err(invalid("timeouts.idle", format!("must be at least 2s, got {got}")));
        }
        // zlib cannot write a raw stream with an 8-bit window (RFC 7692 §7.1.2.1).
        let bits = |key, min: u8, got: u8| {
            if (min..=15).contains(&got) {
                Ok(())
            } else {
                Err(invalid(key, format!("must be from {min} to 15, got {got}")))
            }
        };
        bits("deflate.server_max_window_bits", 9, self.deflate.server_max_window_bits)?;
        bits("deflate.client_max_window_bits", 8, self.deflate.client_max_window_bits)?;
        let pubsub = &self.pubsub;
        at_least("pubsub.max_channels", 1, pubsub.max_channels)?;
        nonzero("pubsub.poll_timeout", pubsub.poll_timeout)?;
        nonzero("pubsub.sse_heartbeat", pubsub.sse_heartbeat)?;
        nonzero("pubsub.history_ttl", pubsub.history_ttl)?;
        nonzero("pubsub.id_memory", pubsub.id_memory)?;
        nonzero("pubsub.idempotency_ttl", pubsub.idempotency_ttl)?;
        // The token travels in a header value: visible ASCII only (RFC 9110 §5.5).
        if !pubsub.publish_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "pubsub.publish_token",
                "must be printable ASCII without spaces".to_owned(),
            ));
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            let (key, missing) = if self.tls.cert.is_empty() {
                ("tls.cert", "tls.key is set")
            } else {
                ("tls.key", "tls.cert is set")
            };
            return Err(invalid(key, format!("must be set too: {missing}")));
        }
        if !self.tls.bind.is_empty() {
            if self.tls.cert.is_empty() {
                return Err(invalid("tls.bind", "needs tls.cert and tls.key".to_owned()));
            }
            match self.tls.bind.parse::<SocketAddr>() {
                Ok(addr) if addr == self.server.bind => {
                    return Err(invalid("tls.bind", format!("{addr} is server.bind already")));
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(invalid(
                        "tls.bind",
                        format!("expected an address like 0.0.0.0:443, got {:?}", self.tls.bind),
                    ))
                }
            }
        }
        for origin in &self.http.allowed_origins {
            if origin != "*" && !is_origin(origin) {
                return Err(invalid(
                    "http.allowed_origins",
                    format!("expected \"*\" or an origin like \"https://app.example\" (scheme, host, port; no path), got {origin:?}"),
                ));
            }
        }
        for (key, list) in [
            ("limits.per_ip_exempt", &limits.per_ip_exempt),
            ("limits.trusted_proxies", &limits.trusted_proxies),
        ] {
            if let Some(bad) = list.iter().find(|s| parse_net(s).is_none()) {
                return Err(invalid(
                    key,
                    format!("expected addresses or networks like \"10.0.0.0/8\" or \"::1\", got {bad:?}"),
                ));
            }
        }
        if !matches!(limits.forwarded_header.as_str(), "x-forwarded-for" | "forwarded") {
            return Err(invalid(
                "limits.forwarded_header",
                format!(
                    "expected \"x-forwarded-for\" or \"forwarded\" (the one header the trusted proxies set), got {:?}",
                    limits.forwarded_header
                ),
            ));
        }
        // RFC 7518 §3.2: an HS256 key MUST be at least the hash's size.
        if !self.auth.secret.is_empty() && self.auth.secret.len() < 32 {
            return Err(invalid(
                "auth.secret",
                format!(
                    "must be at least 32 bytes for HS256 (RFC 7518 §3.2), got {}",
                    self.auth.secret.len()
                ),
            ));
        }
        // An API key is a password an operator's services send on every
        // call: long enough not to be guessed, and what a header can carry.
        let key = &self.api.key;
        if !key.is_empty() && (key.len() < 16 || !key.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(invalid(
                "api.key",
                format!(
                    "must be at least 16 visible ASCII characters (no spaces), got {} bytes",
                    key.len()
                ),
            ));
        }
        if !(1..=1_000).contains(&self.limits.max_channels_per_connection) {
            return Err(invalid(
                "limits.max_channels_per_connection",
                format!("must be 1 to 1000, got {}", self.limits.max_channels_per_connection),
            ));
        }
        if !(1..=10_000).contains(&self.api.max_broadcast_channels) {
            return Err(invalid(
                "api.max_broadcast_channels",
                format!("must be 1 to 10000, got {}", self.api.max_broadcast_channels),
            ));
        }
        let any_origin = self.http.allowed_origins.is_empty() || self.http.allowed_origins.iter().any(|o| o == "*");
        if self.http.allow_credentials && any_origin {
            return Err(invalid(
                "http.allow_credentials",
                "needs http.allowed_origins to list origins: credentials for any origin would let every site use a visitor's".to_owned(),
            ));
        }
        if self.http.allowed_origins.len() > 1000 {
            return Err(invalid(
                "http.allowed_origins",
                format!(
                    "must list at most 1000 origins, got {}",
                    self.http.allowed_origins.len()
                ),
            ));
        }
        for pattern in &self.auth.private_channels {
            if !crate::auth::valid_pattern(pattern) {
                return Err(invalid(
                    "auth.private_channels",
                    format!("expected channel names with * (1 to 128 of A-Z a-z 0-9 _ . : - *), got {pattern:?}"),
                ));
            }
        }
        self.presence.check().map_err(|(key, why)| invalid(key, why))?;
        // A CA for a broker that is not TLS would promise what it does not do.
        let tls = matches!(&pubsub.broker, BrokerKind::Redis(url) if url.starts_with("rediss"));
        if !pubsub.broker_ca.is_empty() && !tls {
            return Err(invalid(
                "pubsub.broker_ca",
                "is set, but pubsub.broker is not a rediss:// (or rediss+...) URL".to_owned(),
            ));
        }
        #[cfg(feature = "redis")]
        if let BrokerKind::Redis(url) = &pubsub.broker {
            crate::pubsub::redis::url::check_url(url).map_err(|why| invalid("pubsub.broker", why))?;
        }
        if pubsub.broker_replicas > 0 && pubsub.broker == BrokerKind::Local {
            return Err(invalid(
                "pubsub.broker_replicas",
                "is set, but pubsub.broker is local: replicas are a Redis broker's".to_owned(),
            ));
        }
        if pubsub.broker_replicas > 64 {
            return Err(invalid(
                "pubsub.broker_replicas",
                format!("must be 0 to 64, got {}", pubsub.broker_replicas),
            ));
        }
        // The wait holds the master's command connection: past a second it
        // would hold subscribes and the subscription probe past theirs.
        if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&pubsub.broker_replicas_timeout) {
            return Err(invalid(
                "pubsub.broker_replicas_timeout",
                format!("must be 1ms to 1s, got {:?}", pubsub.broker_replicas_timeout),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML, every key written out (defaults
    /// included); read back with [`Config::from_toml`] it is this one again.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot be written as TOML: {e}\n"))
    }

    /// Effective worker thread count: `server.threads`, or one per core when
    /// it is 0 (one if the core count cannot be found).
    pub fn worker_threads(&self) -> usize {
        match self.server.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// `scheme://host[:port]` with nothing after (RFC 6454 §6.1's
/// serialization, as browsers send it in `Origin`).
fn is_origin(s: &str) -> bool {
    let Some((scheme, authority)) = s.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
}

#[cfg(test)]
mod tests;
