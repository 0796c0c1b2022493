//! The push server, an application on the public handler API ([`crate::app`])
//! and nothing else: what `wsreactor serve` runs besides the echo.
//!
//! | route | handler | transport |
//! | --- | --- | --- |
//! | `POST /pub/{channel}` | [`Publish`] | publish, answered with the id |
//! | `GET /ws/{channel}` | [`Subscriber`] | WebSocket |
//! | `GET /ws` with `wsreactor.mux` | [`Mux`] | WebSocket, several channels |
//! | `GET /sse/{channel}` | [`Events`] | Server-Sent Events |
//! | `GET /poll/{channel}` | [`Poll`] | long and short polling |
//! | `/api/...` (`POST /api/broadcast`, `GET /api/history/{channel}`) | [`Api`] | the server API, JSON, behind `[api] key` |
//! | `/`, `/readme` (the routes, in plain text), `/client.js`, `/healthz`, `/readyz`, `/metrics` | [`Page`] | pages |
//!
//! A channel is the whole rest of the path after the route, one rule on
//! every transport ([`channel_name`]). The cross-cutting rules are layers
//! the routes opt into, each written once: browser origins and CORS
//! (`cors.rs`), subscriber tokens (`grant`, [`crate::auth`]); the
//! per-address limits are the reactor's, before any route.
//!
//! This module uses only what any user of the crate can use: CI compiles
//! it as a crate outside this one (`tests/push_outside.rs`).

mod api;
mod cors;
pub mod metrics;
mod mux;
mod pages;
mod poll;
mod presence;
mod publish;
mod query;
mod several;
mod signal;
mod sse;
mod subscriber;

pub use api::{Api, ApiCall, Broadcasting, UserCall};
pub use mux::{Mux, Muxing, MUX_PROTOCOL};
pub use pages::{demo_page, guide, Page, CLIENT_JS};
pub use poll::{Poll, Polling};
pub use presence::{join_leave, keeps_presence, member};
pub use publish::{Publish, Publishing};
pub use query::{query_u64, query_values, NotANumber};
pub use several::{EventsSeveral, PollSeveral, PollingSeveral, StreamingSeveral};
pub use signal::{UserOrder, DISCONNECTED, UNSUBSCRIBED};
pub use sse::{Events, Streaming};
pub use subscriber::{Subscriber, SubscriberUser, JSON_PROTOCOL};

use crate::app::{App, Context, Echo, Request, Response};
use crate::auth::{request_token, Grant};
use crate::protocol::http::Status;
use crate::pubsub::{channel_name, Answer, Encoding, HubError, Message, Snapshot, Subscription};
use std::sync::Arc;

/// What `wsreactor serve` runs: the echo at `/`, the push server
/// (`/ws/`, `/pub/`, `/poll/`, `/sse/`) and the pages (the demo page at
/// `GET /`, `/readme`, `/healthz`, `/readyz`, `/metrics`).
pub fn standard() -> App {
    App::new().websocket("/", Echo).push_server().pages()
}

/// The push server's routes, added to an [`App`].
pub trait PushServer {
    /// WebSocket subscribers at `/ws/{channel}` and, several channels on
    /// one connection, at `/ws` ([`MUX_PROTOCOL`]), publishing at
    /// `/pub/{channel}`, long polling at `/poll/{channel}` and Server-Sent
    /// Events at `/sse/{channel}`.
    fn push_server(self) -> Self;
    /// The demo page at `GET /`, `/readme`, `/healthz`, `/readyz` and `/metrics`.
    fn pages(self) -> Self;
}

impl PushServer for App {
    fn push_server(self) -> Self {
        self.websocket("/ws/", Subscriber)
            .websocket("/ws", Mux)
            .http("/pub/", Publish)
            .http("/poll/", Poll)
            .http("/poll", PollSeveral)
            .http("/sse/", Events)
            .http("/sse", EventsSeveral)
            .http("/api/", Api)
    }

    fn pages(self) -> Self {
        self.http("/", Page::Demo)
            .http("/readme", Page::Readme)
            .http("/client.js", Page::Client)
            .http("/healthz", Page::Health)
            .http("/readyz", Page::Ready)
            .http("/metrics", Page::Metrics)
    }
}

/// The channel a request names (the whole rest of its path), or the 400.
fn channel_or_400(request: &Request<'_, '_>) -> Result<String, Response> {
    channel_name(request.rest()).map(|c| c.into_owned()).ok_or_else(|| {
        Response::refuse(
            Status::BAD_REQUEST,
            "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)",
        )
    })
}

/// What every channel route (publish, poll, event stream) does first, in
/// this order: the channel from the path (else 400), the CORS layer for
/// `method` (a refused origin is 403, a preflight answered), `method` only
/// (else 405). The channel and the CORS headers each of its answers
/// carries, or the answer to send now.
fn channel_route(
    request: &Request<'_, '_>,
    cx: &mut Context<'_>,
    method: &'static str,
) -> Result<(String, cors::Headers), Response> {
    let channel = channel_or_400(request)?;
    let cors = cors::layer(request, cx, method)?;
    if query_values(request.query(), "channel").next().is_some() {
        let why = "the channel is the path's: ?channel= names channels of /sse and /poll, which have none in the path";
        return Err(Response::refuse(Status::BAD_REQUEST, why).headers(cors));
    }
    if request.method() != method {
        let refused = Response::refuse(Status::METHOD_NOT_ALLOWED, &format!("use {method}")).header("Allow", method);
        return Err(refused.headers(cors));
    }
    Ok((channel, cors))
}

/// A `200` JSON answer that lists `messages`, each in its poll form
/// (encoded once, shared by every answer that carries it): the head and
/// `{"messages":[` with the items. The caller closes the list and adds its
/// own fields (the cursor, the gap), as a poll and a history read do.
fn message_list(messages: &[Arc<Message>]) -> Response {
    let mut response = Response::new(Status::OK)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(&b"{\"messages\":["[..]);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            response = response.body(&b","[..]);
        }
        response = response.shared(m.shared(Encoding::PollItem));
    }
    response
}

/// Is a secret a client sent (a publish token, an API key) the one
/// configured? Compared without an early exit, so that timing does not
/// reveal how much of a guess was right.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len() && given.iter().zip(secret).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The broker did not answer a subscribe within the request's time.
fn broker_silent() -> Response {
    broker_refusal(HubError::Unavailable("it did not answer in time"))
}

/// May this request subscribe to `channel`? `Ok(Some(grant))` for a
/// private channel and a good token (`?token=` or `Authorization:
/// Bearer`), `Ok(None)` for a public channel; else the 403 with why.
fn grant(request: &Request<'_, '_>, channel: &str, cx: &Context<'_>) -> Result<Option<Grant>, Response> {
    cx.settings()
        .auth
        .subscribe(request_token(request.head()), channel, cx.unix_time())
        .map_err(|denied| Response::refuse(Status::FORBIDDEN, &denied.to_string()))
}

/// The subscription a subscribe's answer brings, or the refusal to send.
fn subscribed(answer: Answer) -> Result<(Subscription, Snapshot), Response> {
    match answer {
        Answer::Subscribed(Ok(subscribed)) => Ok(subscribed),
        Answer::Subscribed(Err(e)) | Answer::Published(Err(e)) | Answer::Found(Err(e)) | Answer::Signalled(Err(e)) => {
            Err(broker_refusal(e))
        }
        Answer::Published(Ok(_)) | Answer::Found(Ok(_)) | Answer::Signalled(Ok(_)) => Err(Response::refuse(
            Status::INTERNAL_ERROR,
            "the broker answered another request",
        )),
    }
}

/// The broker could not do what was asked: the one place its errors
/// become statuses. A refusal (nothing was done) is `503` with
/// `Retry-After`; a publish whose outcome the broker cannot know is
/// `504`, never a refusal, since it may yet be delivered: a publisher
/// retries it with the same `Idempotency-Key`.
fn broker_refusal(e: HubError) -> Response {
    Response::refuse(broker_status(e), &e.to_string()).header("Retry-After", "1")
}

/// The status of what the broker could not do: `503` refused, `504`
/// unknown (see [`broker_refusal`]).
fn broker_status(e: HubError) -> Status {
    match e {
        HubError::Unconfirmed => Status::GATEWAY_TIMEOUT,
        HubError::TooManyChannels | HubError::PresenceFull | HubError::Unavailable(_) => Status::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"secret", b"secret"));
        assert!(!same_secret(b"secret", b"secreT"));
        assert!(!same_secret(b"secret", b"secret2"));
        assert!(!same_secret(b"", b"secret"));
    }
}
