//! wsreactor: an RFC 6455 WebSocket server on a hand-written mio reactor.
#![deny(missing_docs)]

pub mod http;
pub mod protocol;
pub mod reactor;
