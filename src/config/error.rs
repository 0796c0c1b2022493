//! Why a configuration was refused, and how toml's error is turned into
//! one that names the file, the key as `section.key` and its line.

use std::collections::BTreeMap;
use std::fmt;

use toml::Spanned;

use super::{AuthConfig, Deflate, HttpConfig, Limits, PubSub, ServerConfig, Timeouts, TlsConfig};

/// The sections and their keys, to tell an unknown key from a bad value and
/// to list the right names in the error. A test checks these against the
/// structs, so they cannot drift.
pub(super) const SECTIONS: &[(&str, &[&str])] = &[
    (
        "server",
        &["bind", "threads", "max_connections", "backlog", "access_log"],
    ),
    (
        "limits",
        &[
            "max_request_head",
            "max_frame_size",
            "max_message_size",
            "write_buffer_limit",
            "tcp_notsent_lowat",
            "read_buffer_size",
            "buffer_pool_size",
            "per_ip_connections",
            "per_ip_connect_rate",
            "per_ip_exempt",
            "trusted_proxies",
            "forwarded_header",
            "max_channels_per_connection",
        ],
    ),
    ("timeouts", &["handshake", "request", "idle", "close", "write_stall"]),
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
            "id_memory",
            "id_memory_channels",
            "idempotency_ttl",
            "idempotency_keys",
            "broker",
            "broker_ca",
            "broker_replicas",
            "broker_replicas_timeout",
        ],
    ),
    ("tls", &["cert", "key", "bind"]),
    ("http", &["allowed_origins", "allow_credentials"]),
    ("auth", &["secret", "private_channels"]),
    ("api", &["key", "max_broadcast_channels"]),
    ("presence", &["channels", "max_members", "max_events_per_second", "ttl"]),
];

pub(super) const SECTION_NAMES: &[&str] = &[
    "server", "limits", "timeouts", "deflate", "pubsub", "tls", "http", "auth", "api", "presence",
];

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

impl ConfigError {
    /// The exit status of a command refused its configuration or options:
    /// clap's for a bad flag, so that scripts can tell it from a failure
    /// while running (1).
    pub const EXIT_STATUS: u8 = 2;
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

/// Where the settings came from, for the errors that name it: the file (or
/// the built-in defaults) unless a flag or an environment variable set
/// the key, which is then named instead (`WSREACTOR_AUTH_SECRET: ...`, not
/// the file that never held the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    base: String,
    keys: Vec<(&'static str, String)>,
}

impl Origins {
    /// Every key from `base`: a file's path, or [`super::DEFAULTS_ORIGIN`].
    pub fn new(base: &str) -> Origins {
        Origins {
            base: base.to_owned(),
            keys: Vec::new(),
        }
    }

    /// `key` (`section.key`) was set by `origin` (a flag, a variable, a
    /// file a variable names), replacing what set it before.
    pub fn set(&mut self, key: &'static str, origin: impl Into<String>) {
        self.keys.retain(|(k, _)| *k != key);
        self.keys.push((key, origin.into()));
    }

    /// Where every key not set otherwise came from.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What set `key`.
    pub fn of(&self, key: &str) -> &str {
        self.keys
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(&self.base, |(_, origin)| origin)
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

/// Turn toml's error into one naming the key.
///
/// toml's message for a bad value names the line but not the key, and for an
/// unknown key names the key without its section. So on failure the text is
/// parsed again into a tree that keeps the position of every key, each key
/// is checked on its own, and the first problem in the file is reported.
/// Only the failure path pays for this.
pub(super) fn explain(text: &str, origin: &str, err: toml::de::Error) -> ConfigError {
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
        "tls" => table.try_into::<TlsConfig>().map(drop),
        "http" => table.try_into::<HttpConfig>().map(drop),
        "auth" => table.try_into::<AuthConfig>().map(drop),
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
