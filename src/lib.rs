//! wsreactor: an RFC 6455 WebSocket server on a hand-written mio reactor.
//!
//! - [`config`]: the TOML configuration, its defaults and validation.
//! - [`sys`]: process setup the server needs from the OS (descriptor limit).
//! - [`reactor`]: the worker threads that accept and serve connections.
#![deny(missing_docs)]

pub mod config;
pub mod reactor;
pub mod sys;
