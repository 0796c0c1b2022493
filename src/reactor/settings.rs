//! The reactor's view of the configuration: limits and timeouts resolved
//! once at start, shared read-only by every worker.

use crate::protocol::deflate::DeflateConfig;
use crate::protocol::ReadLimits;
use crate::pubsub::HubSettings;
use std::time::Duration;

/// Everything a worker needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Frame and message size caps.
    pub read_limits: ReadLimits,
    /// Largest request head; more gets 431.
    pub max_request_head: usize,
    /// Pending output per connection above which it is not read from.
    pub write_buffer_limit: usize,
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
}

/// The push server's part of the settings.
#[derive(Debug, Clone)]
pub struct PubSubSettings {
    /// History and channel limits, for the hub.
    pub hub: HubSettings,
    /// A parked long poll answers 204 after this.
    pub poll_timeout: Duration,
    /// An event stream gets a comment line after this much silence.
    pub sse_heartbeat: Duration,
    /// When set, `POST /pub` needs `Authorization: Bearer <token>`.
    pub publish_token: Option<String>,
}

impl Default for PubSubSettings {
    fn default() -> Self {
        PubSubSettings {
            hub: HubSettings::default(),
            poll_timeout: Duration::from_secs(30),
            sse_heartbeat: Duration::from_secs(15),
            publish_token: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            read_limits: ReadLimits::default(),
            max_request_head: 8192,
            write_buffer_limit: 1 << 20,
            read_buffer_size: 16384,
            buffer_pool_size: 1024,
            max_connections: 0,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            close_timeout: Duration::from_secs(5),
            write_stall: Duration::from_secs(30),
            deflate: crate::config::Deflate::default().to_protocol(),
            pubsub: PubSubSettings::default(),
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
