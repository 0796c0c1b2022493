//! The load generator: `wsreactor load`, many WebSocket clients on a
//! hand-written mio reactor, speaking RFC 6455 through [`crate::protocol`].
//!
//! - [`schedule`]: connect and message pacing.
//! - [`timer`]: sub-millisecond wake-ups for due messages.
//! - [`stats`]: HDR histograms and error counters.
//! - [`target`]: the `ws://` URL and `--source-ips`.
//! - [`transport`]: a client's socket (source address, non-blocking connect) and buffers.

pub mod schedule;
pub mod stats;
pub mod target;
pub mod timer;
pub mod transport;

pub use target::{parse_source_ips, Target};
