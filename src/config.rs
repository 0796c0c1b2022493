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

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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
}

/// The `[pubsub]` section: the push server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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
        }
    }
}

impl PubSub {
    /// The reactor's view of this section.
    pub fn to_settings(&self) -> crate::reactor::settings::PubSubSettings {
        crate::reactor::settings::PubSubSettings {
            hub: crate::pubsub::HubSettings {
                history_size: self.history_size,
                history_ttl: self.history_ttl,
                max_channels: self.max_channels,
            },
            poll_timeout: self.poll_timeout,
            sse_heartbeat: self.sse_heartbeat,
            publish_token: (!self.publish_token.is_empty()).then(|| self.publish_token.clone()),
        }
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9001`.
    pub bind: SocketAddr,
    /// Worker threads; 0 means one per core. Default 0.
    pub threads: usize,
    /// Connections open at once across all workers; beyond it a new
    /// connection gets `503`. 0 means no limit of our own (the descriptor
    /// limit is the limit). Default 0.
    pub max_connections: usize,
    /// The `listen(2)` backlog of each worker's listener. Default 1024.
    pub backlog: u32,
}

/// The `[limits]` section: byte caps, so no buffer grows without bound.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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
    /// Size of one pooled read/write buffer. Default 16384.
    pub read_buffer_size: usize,
    /// Idle buffers each worker keeps for reuse. Default 1024.
    pub buffer_pool_size: usize,
}

/// The `[timeouts]` section. In the TOML each is a humantime string such as
/// `"10s"`, `"500ms"` or `"2m"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// The whole request head must arrive within it. Default 10s.
    #[serde(with = "humantime_serde")]
    pub handshake: Duration,
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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
            read_buffer_size: 16384,
            buffer_pool_size: 1024,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            close: Duration::from_secs(5),
            write_stall: Duration::from_secs(30),
        }
    }
}

/// The sections and their keys, to tell an unknown key from a bad value and
/// to list the right names in the error. A test checks these against the
/// structs, so they cannot drift.
const SECTIONS: &[(&str, &[&str])] = &[
    ("server", &["bind", "threads", "max_connections", "backlog"]),
    (
        "limits",
        &[
            "max_request_head",
            "max_frame_size",
            "max_message_size",
            "write_buffer_limit",
            "read_buffer_size",
            "buffer_pool_size",
        ],
    ),
    ("timeouts", &["handshake", "idle", "close", "write_stall"]),
    (
        "deflate",
        &[
            "enabled",
            "server_max_window_bits",
            "client_max_window_bits",
            "server_no_context_takeover",
            "client_no_context_takeover",
            "min_size",
        ],
    ),
    (
        "pubsub",
        &[
            "history_size",
            "history_ttl",
            "max_channels",
            "poll_timeout",
            "sse_heartbeat",
            "publish_token",
        ],
    ),
];

const SECTION_NAMES: &[&str] = &["server", "limits", "timeouts", "deflate", "pubsub"];

/// Why a configuration was refused. Every message starts with the origin
/// (the file, or whatever the caller named) and names the key where there is
/// one.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        origin: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text is not TOML at all; toml's message gives the line.
    Syntax {
        /// The file.
        origin: String,
        /// toml's message, with the line and a caret under the problem.
        message: String,
    },
    /// A key or section the server does not know, usually a typo.
    UnknownKey {
        /// The file.
        origin: String,
        /// `section.key`, or just the section's name.
        key: String,
        /// 1-based line of the key.
        line: usize,
        /// The names that are allowed where this one was found.
        expected: &'static [&'static str],
    },
    /// A known key whose value has the wrong type or does not parse
    /// (an address, a duration).
    BadValue {
        /// The file.
        origin: String,
        /// `section.key`.
        key: String,
        /// 1-based line of the value.
        line: usize,
        /// What was wrong, from serde.
        message: String,
    },
    /// A value that parsed but is out of range.
    Invalid {
        /// The file.
        origin: String,
        /// `section.key`.
        key: &'static str,
        /// The rule and the value, e.g. "must be at least 1024, got 10".
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { origin, source } => {
                write!(f, "{origin}: cannot read the config file: {source}")
            }
            ConfigError::Syntax { origin, message } => {
                write!(f, "{origin}: {}", message.trim_end())
            }
            ConfigError::UnknownKey {
                origin,
                key,
                line,
                expected,
            } => {
                write!(f, "{origin}: unknown key `{key}` at line {line}; expected one of ")?;
                for (i, name) in expected.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}`{name}`")?;
                }
                Ok(())
            }
            ConfigError::BadValue {
                origin,
                key,
                line,
                message,
            } => write!(f, "{origin}: bad value for `{key}` at line {line}: {message}"),
            ConfigError::Invalid { origin, key, message } => write!(f, "{origin}: `{key}` {message}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
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

    /// Check that the values make sense together; the first problem found is
    /// returned, naming the key as `section.key`.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
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
        nonzero("timeouts.handshake", timeouts.handshake)?;
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
        // The token travels in a header value: visible ASCII only (RFC 9110 §5.5).
        if !pubsub.publish_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "pubsub.publish_token",
                "must be printable ASCII without spaces".to_owned(),
            ));
        }
        Ok(())
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

/// Turn toml's error into one naming the key.
///
/// toml's message for a bad value names the line but not the key, and for an
/// unknown key names the key without its section. So on failure the text is
/// parsed again into a tree that keeps the position of every key, each key
/// is checked on its own, and the first problem in the file is reported.
/// Only the failure path pays for this.
fn explain(text: &str, origin: &str, err: toml::de::Error) -> ConfigError {
    let origin = origin.to_owned();
    let line_of = |span: std::ops::Range<usize>| {
        let before = text.get(..span.start).unwrap_or(text);
        before.matches('\n').count() + 1
    };
    let mut problems: Vec<(usize, ConfigError)> = Vec::new();

    // Values are read without their span, keys with it: toml cannot give a
    // span for a table made by dotted keys (`limits.max_frame = 1`). A
    // problem is reported at its key's line.
    let top: BTreeMap<Spanned<String>, toml::Value> = match toml::from_str(text) {
        Ok(top) => top,
        // Not TOML at all: toml's message already says where.
        Err(_) => {
            return ConfigError::Syntax {
                origin,
                message: err.to_string(),
            }
        }
    };
    for (section, value) in &top {
        let name = section.get_ref();
        if !SECTION_NAMES.contains(&name.as_str()) {
            let key = name.clone();
            let line = line_of(section.span());
            let expected = SECTION_NAMES;
            problems.push((section.span().start, unknown(&origin, key, line, expected)));
        } else if !value.is_table() {
            let message = format!("expected a table `[{name}]`, got {}", value.type_str());
            let e = bad(&origin, name.clone(), line_of(section.span()), message);
            problems.push((section.span().start, e));
        }
    }
    // Inner positions need a second pass, which only works once every
    // section is known to be a table.
    if problems.is_empty() {
        type SpannedTable = BTreeMap<Spanned<String>, toml::Value>;
        // Should it fail anyway, toml's own message is the fallback below.
        let sections: BTreeMap<String, SpannedTable> = toml::from_str(text).unwrap_or_default();
        for (section, table) in &sections {
            let Some((_, keys)) = SECTIONS.iter().find(|(s, _)| s == section) else {
                continue;
            };
            for (key, value) in table {
                let full = format!("{section}.{}", key.get_ref());
                if !keys.contains(&key.get_ref().as_str()) {
                    let e = unknown(&origin, full, line_of(key.span()), keys);
                    problems.push((key.span().start, e));
                } else if let Err(message) = check_one(section, key.get_ref(), value) {
                    let e = bad(&origin, full, line_of(key.span()), message);
                    problems.push((key.span().start, e));
                }
            }
        }
    }
    match problems.into_iter().min_by_key(|(at, _)| *at) {
        Some((_, problem)) => problem,
        // Found nothing wrong key by key: keep toml's own account.
        None => ConfigError::Syntax {
            origin,
            message: err.to_string(),
        },
    }
}

/// Deserialize one key alone into its section, so a failure is that key's.
fn check_one(section: &str, key: &str, value: &toml::Value) -> Result<(), String> {
    let mut table = toml::Table::new();
    table.insert(key.to_owned(), value.clone());
    let table = toml::Value::Table(table);
    let result = match section {
        "server" => table.try_into::<ServerConfig>().map(drop),
        "limits" => table.try_into::<Limits>().map(drop),
        "timeouts" => table.try_into::<Timeouts>().map(drop),
        "deflate" => table.try_into::<Deflate>().map(drop),
        "pubsub" => table.try_into::<PubSub>().map(drop),
        _ => Ok(()),
    };
    result.map_err(|e| e.message().to_owned())
}

fn unknown(origin: &str, key: String, line: usize, expected: &'static [&'static str]) -> ConfigError {
    ConfigError::UnknownKey {
        origin: origin.to_owned(),
        key,
        line,
        expected,
    }
}

fn bad(origin: &str, key: String, line: usize, message: String) -> ConfigError {
    ConfigError::BadValue {
        origin: origin.to_owned(),
        key,
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "config/x.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, ORIGIN)
    }

    /// The error's message, checked to name the file as every message must.
    fn message(text: &str) -> String {
        let msg = parse(text).expect_err("should be refused").to_string();
        assert!(msg.starts_with(ORIGIN), "no file in {msg:?}");
        msg
    }

    #[test]
    fn shipped_file_is_exactly_the_defaults() {
        let text = include_str!("../config/wsreactor.toml");
        let config = Config::from_toml(text, "config/wsreactor.toml").unwrap();
        assert_eq!(config, Config::default());
        config.validate("config/wsreactor.toml").unwrap();
    }

    #[test]
    fn key_lists_match_the_structs() {
        // Serializing the defaults gives the keys serde knows; SECTIONS must
        // list the same ones, or a real key would be called unknown.
        let text = toml::to_string(&Config::default()).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let names: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut sections = SECTION_NAMES.to_vec();
        sections.sort_unstable();
        assert_eq!(names, sections);
        for (section, keys) in SECTIONS {
            let found: Vec<&str> = table[*section].as_table().unwrap().keys().map(String::as_str).collect();
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            assert_eq!(found, keys, "[{section}]");
        }
    }

    #[test]
    fn empty_text_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn partial_section_keeps_other_defaults() {
        let config = parse("[limits]\nmax_frame_size = 4096\n").unwrap();
        let mut expected = Config::default();
        expected.limits.max_frame_size = 4096;
        assert_eq!(config, expected);
    }

    #[test]
    fn durations_and_address_parse() {
        let text = "server.bind = \"[::1]:80\"\n[timeouts]\nidle = \"1m 30s\"\nclose = \"500ms\"\n";
        let config = parse(text).unwrap();
        assert_eq!(config.server.bind, "[::1]:80".parse().unwrap());
        assert_eq!(config.timeouts.idle, Duration::from_secs(90));
        assert_eq!(config.timeouts.close, Duration::from_millis(500));
    }

    #[test]
    fn unknown_key_is_named_with_its_section_and_line() {
        let msg = message("[limits]\nmax_frame_size = 1000\nmax_frame = 1\n");
        assert!(msg.contains("unknown key `limits.max_frame` at line 3"), "{msg}");
        assert!(msg.contains("`max_frame_size`"), "lists the known keys: {msg}");
        let err = parse("[limits]\nmax_frame = 1\n").unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { ref key, line: 2, .. } if key == "limits.max_frame"));
    }

    #[test]
    fn unknown_dotted_and_inline_keys_are_named() {
        let msg = message("limits.max_frame = 1\n");
        assert!(msg.contains("`limits.max_frame` at line 1"), "{msg}");
        let msg = message("\n\nserver = { bind = \"127.0.0.1:1\", thread = 2 }\n");
        assert!(msg.contains("`server.thread` at line 3"), "{msg}");
    }

    #[test]
    fn unknown_section_is_named() {
        let msg = message("[server]\nthreads = 2\n[limit]\nmax_frame_size = 1\n");
        assert!(msg.contains("unknown key `limit` at line 3"), "{msg}");
        assert!(msg.contains("`limits`"), "lists the sections: {msg}");
    }

    #[test]
    fn wrong_type_is_named_with_its_section_and_line() {
        let msg = message("[server]\nbind = \"127.0.0.1:1\"\nthreads = \"four\"\n");
        assert!(msg.contains("bad value for `server.threads` at line 3"), "{msg}");
        assert!(msg.contains("expected usize"), "{msg}");
        let err = parse("[server]\nthreads = \"four\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::BadValue { ref key, line: 2, .. } if key == "server.threads"));
    }

    #[test]
    fn unparsable_values_are_named() {
        let msg = message("[server]\nbind = \"localhost\"\n");
        assert!(msg.contains("`server.bind` at line 2"), "{msg}");
        let msg = message("[timeouts]\nidle = \"2 fortnights\"\n");
        assert!(msg.contains("`timeouts.idle` at line 2"), "{msg}");
        let msg = message("[timeouts]\nidle = 120\n");
        assert!(msg.contains("`timeouts.idle` at line 2"), "{msg}");
        let msg = message("[limits]\nmax_frame_size = -1\n");
        assert!(msg.contains("`limits.max_frame_size` at line 2"), "{msg}");
    }

    #[test]
    fn section_that_is_not_a_table_is_named() {
        let msg = message("server = 3\n");
        assert!(msg.contains("bad value for `server` at line 1"), "{msg}");
        let msg = message("[[server]]\n");
        assert!(msg.contains("bad value for `server` at line 1"), "{msg}");
    }

    #[test]
    fn table_where_a_value_belongs_is_named() {
        let msg = message("[server]\nbind.port = 1\n");
        assert!(msg.contains("bad value for `server.bind` at line 2"), "{msg}");
        let msg = message("limits.read_buffer_size.x = 1\n");
        assert!(msg.contains("`limits.read_buffer_size` at line 1"), "{msg}");
        let msg = message("[server.extra]\na = 1\n");
        assert!(msg.contains("unknown key `server.extra` at line 1"), "{msg}");
    }

    #[test]
    fn first_problem_in_the_file_is_reported() {
        let msg = message("[timeouts]\nidle = 5\n[limits]\nbogus = 1\n");
        assert!(msg.contains("`timeouts.idle` at line 2"), "{msg}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let msg = message("[server]\nthreads = = 2\n");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(matches!(parse("[server\n").unwrap_err(), ConfigError::Syntax { .. }));
    }

    #[test]
    fn load_reads_a_file_and_names_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("wsreactor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("partial.toml");
        std::fs::write(&path, "[server]\nthreads = 3\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().server.threads, 3);
        let missing = dir.join("missing.toml");
        let err = Config::load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn invalid(edit: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        edit(&mut config);
        let err = config.validate(ORIGIN).expect_err("should be invalid");
        assert!(matches!(err, ConfigError::Invalid { .. }));
        err.to_string()
    }

    #[test]
    fn validate_names_the_key_and_the_value() {
        let msg = invalid(|c| c.limits.read_buffer_size = 10);
        assert_eq!(
            msg,
            "config/x.toml: `limits.read_buffer_size` must be at least 1024, got 10"
        );
        let msg = invalid(|c| c.timeouts.idle = Duration::from_millis(1500));
        assert_eq!(msg, "config/x.toml: `timeouts.idle` must be at least 2s, got 1s 500ms");
    }

    #[test]
    fn validate_refuses_zero_sizes_and_timeouts() {
        type Edit = fn(&mut Config);
        let cases: [(&str, Edit); 9] = [
            ("server.backlog", |c| c.server.backlog = 0),
            ("limits.max_request_head", |c| c.limits.max_request_head = 0),
            ("limits.max_frame_size", |c| c.limits.max_frame_size = 124),
            ("limits.max_message_size", |c| c.limits.max_message_size = 0),
            ("limits.write_buffer_limit", |c| c.limits.write_buffer_limit = 0),
            ("timeouts.handshake", |c| c.timeouts.handshake = Duration::ZERO),
            ("timeouts.idle", |c| c.timeouts.idle = Duration::ZERO),
            ("timeouts.close", |c| c.timeouts.close = Duration::ZERO),
            ("timeouts.write_stall", |c| c.timeouts.write_stall = Duration::ZERO),
        ];
        for (key, edit) in cases {
            let msg = invalid(edit);
            assert!(msg.contains(&format!("`{key}`")), "{key}: {msg}");
        }
    }

    #[test]
    fn validate_accepts_the_edges() {
        let mut config = Config::default();
        config.limits.read_buffer_size = 1024;
        config.limits.max_frame_size = 125;
        config.limits.buffer_pool_size = 0;
        config.timeouts.idle = Duration::from_secs(2);
        config.validate(ORIGIN).unwrap();
    }

    #[test]
    fn worker_threads_resolves_zero_to_the_core_count() {
        let mut config = Config::default();
        config.server.threads = 3;
        assert_eq!(config.worker_threads(), 3);
        config.server.threads = 0;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(config.worker_threads(), cores);
    }
}
