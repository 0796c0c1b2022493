//! wsreactor: an RFC 6455 WebSocket server on a hand-written mio reactor.
//!
//! - [`config`]: the TOML configuration, its defaults and validation.
#![deny(missing_docs)]

pub mod config;
