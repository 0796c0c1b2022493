//! What the server API asks of every connection of a user, on every node:
//! sent as a broker signal ([`crate::pubsub::Request::Signal`]), read by
//! each connection's handler, acted on by those of that user (the `sub`
//! of the token the connection came with).

use crate::app::{Context, Delivery};
use crate::protocol::CloseCode;
use serde::{Deserialize, Serialize};

/// The close code of a connection the server API disconnected: 4002, from
/// the private-use range (RFC 6455 §7.4.2). Do not reconnect at once: the
/// operator meant it.
pub const DISCONNECTED: CloseCode = CloseCode(4002);

/// The close code of a one-channel subscriber (`/ws/{channel}`) the
/// server API unsubscribed from its channel: 4003.
pub const UNSUBSCRIBED: CloseCode = CloseCode(4003);

/// An order for a user's connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserOrder {
    /// Close every connection of `user` with [`DISCONNECTED`].
    Disconnect {
        /// The token's `sub`.
        user: String,
    },
    /// End every subscription of `user` to `channel`.
    Unsubscribe {
        /// The token's `sub`.
        user: String,
        /// The channel.
        channel: String,
    },
}

impl UserOrder {
    /// As a signal's payload.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A signal's payload, if it is an order for `user`.
    pub fn for_user(payload: &[u8], user: &str) -> Option<UserOrder> {
        let order: UserOrder = serde_json::from_slice(payload).ok()?;
        let whose = match &order {
            UserOrder::Disconnect { user } | UserOrder::Unsubscribe { user, .. } => user,
        };
        (whose == user).then_some(order)
    }
}

/// An event stream's answer to an order: for its user (`user`), it ends
/// after an event that says why (`disconnected`, or `unsubscribed` when
/// the order names one of its channels, `on`).
pub fn end_stream(user: Option<&str>, payload: &[u8], on: impl Fn(&str) -> bool, cx: &mut Context<'_>) -> Delivery {
    match user.and_then(|user| UserOrder::for_user(payload, user)) {
        Some(UserOrder::Disconnect { .. }) => {
            cx.write(b"event: disconnected\ndata: disconnected by the server\n\n");
            Delivery::End
        }
        Some(UserOrder::Unsubscribe { channel, .. }) if on(&channel) => {
            cx.write(b"event: unsubscribed\ndata: unsubscribed by the server\n\n");
            Delivery::End
        }
        _ => Delivery::Skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_reaches_its_user_only() {
        let order = UserOrder::Unsubscribe {
            user: "ada".into(),
            channel: "news".into(),
        };
        let payload = order.encode();
        assert_eq!(UserOrder::for_user(&payload, "ada"), Some(order));
        assert_eq!(UserOrder::for_user(&payload, "bob"), None);
        assert_eq!(UserOrder::for_user(b"junk", "ada"), None);
    }
}
