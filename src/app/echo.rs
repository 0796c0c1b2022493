//! The echo endpoint, a handler on the public API.

use super::{Accept, Conn, Handler, Message, Refusal, Reply, Upgrade};

/// The echo endpoint: every message goes back whole, same type (what
/// Autobahn and the load generator's echo mode expect).
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Handler for Echo {
    type Data = ();

    fn open(&self, _: &Upgrade<'_, '_>) -> Result<Accept, Refusal> {
        Ok(Accept::new())
    }

    fn message(&self, _: &mut Conn<'_, ()>, _: Message<'_>) -> Reply {
        Reply::Echo
    }
}
