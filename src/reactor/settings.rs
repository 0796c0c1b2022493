//! The reactor's view of the configuration: limits and timeouts resolved
//! once at start, shared read-only by every worker.
//!
//! Made from a [`Config`] one way only (the configuration knows nothing of
//! the reactor), and [`Settings::default`] is the conversion of
//! [`Config::default`]: the defaults are written once, in `config`.

use crate::auth::Auth;
use crate::config::{parse_net, Config};
use crate::protocol::deflate::DeflateConfig;
use crate::protocol::ReadLimits;
use crate::pubsub::{HubSettings, Numbering, PresenceLimits};
use crate::reactor::per_ip::{ForwardedHeader, PerIpSettings};
use std::time::Duration;

/// Everything a worker needs to know from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Frame and message size caps.
    pub read_limits: ReadLimits,
    /// Largest request head; more gets 431.
    pub max_request_head: usize,
    /// Pending output per connection above which it is not read from.
    pub write_buffer_limit: usize,
    /// Unsent bytes a socket may hold (TCP_NOTSENT_LOWAT); 0: the kernel's.
    pub tcp_notsent_lowat: usize,
    /// Size of a pooled buffer.
    pub read_buffer_size: usize,
    /// Idle buffers each worker keeps.
    pub buffer_pool_size: usize,
    /// Connections allowed in the whole process; 0 means the fd limit decides.
    pub max_connections: usize,
    /// The whole request head must arrive within this.
    pub handshake_timeout: Duration,
    /// The whole request, head and body, must arrive within this.
    pub request_timeout: Duration,
    /// No input for this long closes the connection; a ping goes at half.
    pub idle_timeout: Duration,
    /// Wait for the peer's close frame or EOF this long.
    pub close_timeout: Duration,
    /// How long a connection may stay over `write_buffer_limit`.
    pub write_stall: Duration,
    /// permessage-deflate policy.
    pub deflate: DeflateConfig,
    /// The push server's channels, polls and event streams.
    pub pubsub: PubSubSettings,
    /// The browser origins whose pages may open a WebSocket, a long poll or
    /// an event stream (`[http] allowed_origins`, lowercase); `None`: any.
    pub allowed_origins: Option<Vec<String>>,
    /// CORS answers say `Access-Control-Allow-Credentials: true`
    /// (`[http] allow_credentials`; only with listed origins).
    pub allow_credentials: bool,
    /// Private channels and the secret of their tokens (`[auth]`).
    pub auth: Auth,
    /// Per-address connection limits.
    pub per_ip: PerIpSettings,
    /// Log each response and WebSocket session (`[server] access_log`).
    pub access_log: bool,
    /// The server API (`[api]`).
    pub api: ApiSettings,
    /// Topics one WebSocket connection may be subscribed to at once
    /// (`[limits] max_channels_per_connection`).
    pub max_topics_per_connection: usize,
}

/// The server API's part of the settings (`[api]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// The key every `/api/` request must carry; `None`: the API is off.
    pub key: Option<String>,
    /// The most channels one `POST /api/broadcast` may name.
    pub max_broadcast_channels: usize,
}

/// The push server's part of the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubSettings {
    /// History and channel limits, for the hub.
    pub hub: HubSettings,
    /// A parked long poll answers 204 after this.
    pub poll_timeout: Duration,
    /// An event stream gets a comment line after this much silence.
    pub sse_heartbeat: Duration,
    /// When set, `POST /pub` needs `Authorization: Bearer <token>`.
    pub publish_token: Option<String>,
    /// Glob patterns of the channels whose subscribers are members of
    /// their presence (`[presence] channels`).
    pub presence_channels: Vec<String>,
}

impl Default for Settings {
    /// The built-in configuration's settings.
    fn default() -> Self {
        Settings::from(&Config::default())
    }
}

impl From<&Config> for Settings {
    fn from(c: &Config) -> Settings {
        let p = &c.pubsub;
        Settings {
            read_limits: ReadLimits {
                max_frame_size: c.limits.max_frame_size,
                max_message_size: c.limits.max_message_size,
            },
            max_request_head: c.limits.max_request_head,
            write_buffer_limit: c.limits.write_buffer_limit,
            tcp_notsent_lowat: c.limits.tcp_notsent_lowat,
            read_buffer_size: c.limits.read_buffer_size,
            buffer_pool_size: c.limits.buffer_pool_size,
            max_connections: c.server.max_connections,
            handshake_timeout: c.timeouts.handshake,
            request_timeout: c.timeouts.request(),
            idle_timeout: c.timeouts.idle,
            close_timeout: c.timeouts.close,
            write_stall: c.timeouts.write_stall,
            deflate: c.deflate.to_protocol(),
            pubsub: PubSubSettings {
                hub: HubSettings {
                    history_size: p.history_size,
                    history_ttl: p.history_ttl,
                    max_channels: p.max_channels,
                    id_memory: p.id_memory,
                    id_memory_channels: p.id_memory_channels,
                    idempotency_ttl: p.idempotency_ttl,
                    idempotency_keys: p.idempotency_keys,
                    numbering: Numbering::AfterClock,
                    presence: PresenceLimits {
                        max_members: c.presence.max_members,
                        max_events_per_second: c.presence.max_events_per_second,
                        ttl: c.presence.ttl,
                    },
                },
                presence_channels: c.presence.channels.clone(),
                poll_timeout: p.poll_timeout,
                sse_heartbeat: p.sse_heartbeat,
                publish_token: (!p.publish_token.is_empty()).then(|| p.publish_token.clone()),
            },
            allowed_origins: {
                let list = &c.http.allowed_origins;
                (!list.is_empty() && !list.iter().any(|o| o == "*"))
                    .then(|| list.iter().map(|o| o.to_ascii_lowercase()).collect())
            },
            allow_credentials: c.http.allow_credentials,
            auth: Auth::new(c.auth.private_channels.clone(), c.auth.secret.as_bytes()),
            access_log: c.server.access_log,
            api: ApiSettings {
                key: (!c.api.key.is_empty()).then(|| c.api.key.clone()),
                max_broadcast_channels: c.api.max_broadcast_channels,
            },
            max_topics_per_connection: c.limits.max_channels_per_connection,
            per_ip: PerIpSettings {
                connections: c.limits.per_ip_connections,
                connect_rate: c.limits.per_ip_connect_rate,
                // Checked by `Config::validate`.
                exempt: c.limits.per_ip_exempt.iter().filter_map(|s| parse_net(s)).collect(),
                trusted_proxies: c.limits.trusted_proxies.iter().filter_map(|s| parse_net(s)).collect(),
                forwarded_header: if c.limits.forwarded_header == "forwarded" {
                    ForwardedHeader::Forwarded
                } else {
                    ForwardedHeader::XForwardedFor
                },
            },
        }
    }
}

impl Settings {
    /// How often timers are checked: fine enough for the shortest timeout.
    pub fn tick(&self) -> Duration {
        let shortest = [
            self.handshake_timeout,
            self.request_timeout,
            self.idle_timeout / 2,
            self.close_timeout,
            self.write_stall,
            self.pubsub.poll_timeout,
            self.pubsub.sse_heartbeat,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1));
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_configs_and_the_shipped_files() {
        let shipped = include_str!("../../config/wsreactor.toml");
        let from_file = Settings::from(&Config::from_toml(shipped, "config/wsreactor.toml").unwrap());
        assert_eq!(Settings::default(), from_file);
        // Spot checks that the conversion takes each section's value.
        let mut c = Config::default();
        c.timeouts.request = Some(Duration::from_secs(77));
        c.pubsub.id_memory_channels = 5;
        c.limits.max_message_size = 1234;
        let s = Settings::from(&c);
        assert_eq!(s.request_timeout, Duration::from_secs(77));
        assert_eq!(s.pubsub.hub.id_memory_channels, 5);
        assert_eq!(s.read_limits.max_message_size, 1234);
        assert_ne!(s, Settings::default());
    }
}
