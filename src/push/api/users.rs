//! `POST /api/disconnect` with `{"user":"U"}`: every connection of user U
//! (the `sub` of the token it came with), on every node, is closed with
//! [`DISCONNECTED`](super::super::DISCONNECTED) (4002). `POST
//! /api/unsubscribe` with `{"user":"U","channel":"C"}`: U's subscriptions
//! to C end (a `wsreactor.mux` connection is told and goes on; a
//! `/ws/{channel}` subscriber of C is closed with 4003). Both go to every
//! node as one broker signal; `200` says every node was sent it.

use super::super::signal::UserOrder;
use super::{error, refusal, ApiCall};
use crate::app::{Next, Request, Response};
use crate::protocol::http::Status;
use crate::pubsub::{valid_channel, Answer, Request as BrokerRequest};
use serde::Deserialize;

/// The longest body either route takes.
const MAX_BODY: usize = 4096;

/// The longest user name (a token's `sub`) an order names.
const MAX_USER: usize = 1024;

/// Which order a body makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCall {
    /// `POST /api/disconnect`.
    Disconnect,
    /// `POST /api/unsubscribe`.
    Unsubscribe,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    user: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeBody {
    user: String,
    channel: String,
}

/// The head: a body of at most [`MAX_BODY`] with its length given.
pub(super) fn request(request: &Request<'_, '_>, call: UserCall) -> Next<ApiCall> {
    if request.method() != "POST" {
        return Next::Respond(error(Status::METHOD_NOT_ALLOWED, "use POST").header("Allow", "POST"));
    }
    match request.content_length() {
        None => Next::Respond(error(Status::LENGTH_REQUIRED, "send the body with Content-Length")),
        Some(len) if len > MAX_BODY as u64 => {
            Next::Respond(error(Status::PAYLOAD_TOO_LARGE, "a body of at most 4096 bytes"))
        }
        Some(_) => Next::ReadBody {
            data: ApiCall::User(call),
            limit: MAX_BODY,
        },
    }
}

/// The body, checked whole: the signal to send, or the 400.
pub(super) fn body(call: UserCall, body: &[u8]) -> Next<ApiCall> {
    match order(call, body) {
        Ok(order) => Next::Ask {
            data: ApiCall::User(call),
            request: BrokerRequest::Signal(order.encode().into()),
        },
        Err(why) => Next::Respond(error(Status::BAD_REQUEST, &why)),
    }
}

fn order(call: UserCall, body: &[u8]) -> Result<UserOrder, String> {
    let order = match call {
        UserCall::Disconnect => serde_json::from_slice::<DisconnectBody>(body)
            .map(|b| UserOrder::Disconnect { user: b.user })
            .map_err(|e| format!("the body is {{\"user\":\"...\"}}: {e}"))?,
        UserCall::Unsubscribe => serde_json::from_slice::<UnsubscribeBody>(body)
            .map(|b| UserOrder::Unsubscribe {
                user: b.user,
                channel: b.channel,
            })
            .map_err(|e| format!("the body is {{\"user\":\"...\",\"channel\":\"...\"}}: {e}"))?,
    };
    let (UserOrder::Disconnect { user } | UserOrder::Unsubscribe { user, .. }) = &order;
    if user.is_empty() || user.len() > MAX_USER {
        return Err(format!("user is 1 to {MAX_USER} bytes: a token's sub"));
    }
    if let UserOrder::Unsubscribe { channel, .. } = &order {
        if !valid_channel(channel) {
            return Err("channel names are 1 to 128 of A-Z a-z 0-9 _ . : -".to_owned());
        }
    }
    Ok(order)
}

/// The broker's answer: sent to every node (`200 {}`), or refused.
pub(super) fn answer(answer: Answer) -> Response {
    match answer {
        Answer::Signalled(Ok(())) => Response::ok("application/json", "{}").header("Cache-Control", "no-store"),
        Answer::Signalled(Err(e)) | Answer::Found(Err(e)) | Answer::Published(Err(e)) | Answer::Subscribed(Err(e)) => {
            refusal(e)
        }
        Answer::Found(Ok(_)) | Answer::Published(Ok(_)) | Answer::Subscribed(Ok(_)) => {
            error(Status::INTERNAL_ERROR, "the broker answered another request")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_checked_whole() {
        assert_eq!(
            order(UserCall::Disconnect, br#"{"user":"ada"}"#),
            Ok(UserOrder::Disconnect { user: "ada".into() })
        );
        assert!(order(UserCall::Disconnect, br#"{"user":""}"#).is_err());
        assert!(order(UserCall::Disconnect, br#"{"user":"ada","x":1}"#).is_err());
        assert!(order(UserCall::Disconnect, br#"{"user":7}"#).is_err());
        assert!(order(UserCall::Unsubscribe, br#"{"user":"ada","channel":"a/b"}"#).is_err());
        assert!(order(UserCall::Unsubscribe, br#"{"user":"ada"}"#).is_err());
        assert!(order(UserCall::Unsubscribe, br#"{"user":"ada","channel":"news"}"#).is_ok());
    }
}
