//! The push server's WebSocket subscriber at `/ws/{channel}`.

use super::query::query_u64;
use crate::app::{Accept, Conn, Handler, Message, Refusal, Reply, Upgrade};
use crate::protocol::http::Status;
use crate::pubsub::channel_name;

/// The `wsreactor.json` subprotocol: messages in a JSON envelope, gaps told.
pub const JSON_PROTOCOL: &str = "wsreactor.json";

/// A channel's WebSocket subscriber at `/ws/{channel}?since=N` (the
/// channel is the whole rest of the path after the route, checked as the
/// HTTP routes check it, so `/ws/a/b` is a 400, not channel `b`): what it
/// missed after N, then every message published to the channel; with the
/// `wsreactor.json` subprotocol, messages in a JSON envelope with their
/// ids, and gaps told. What the subscriber sends is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subscriber;

impl Handler for Subscriber {
    type Data = ();

    fn open(&self, upgrade: &Upgrade<'_, '_>) -> Result<Accept, Refusal> {
        // The whole rest, as `/pub/`, `/poll/` and `/sse/` take it: one
        // rule for every transport, refused before the 101.
        let Some(channel) = channel_name(upgrade.rest()) else {
            let why = "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)";
            return Err(Refusal::new(Status::BAD_REQUEST, why));
        };
        let since = query_u64(upgrade.query(), "since")
            .map_err(|_| Refusal::new(Status::BAD_REQUEST, "since must be a message id"))?;
        // RFC 6455 §4.2.2 step 5: echo one of the offered subprotocols, or none.
        let envelope = upgrade.protocols().contains(&JSON_PROTOCOL);
        let mut accept = Accept::new().subscribe(&channel);
        if let Some(since) = since {
            accept = accept.since(since);
        }
        if envelope {
            accept = accept.protocol(JSON_PROTOCOL).envelope();
        }
        Ok(accept)
    }

    fn message(&self, _: &mut Conn<'_, ()>, _: Message<'_>) -> Reply {
        // A subscriber's own messages have nowhere to go.
        Reply::Done
    }
}
