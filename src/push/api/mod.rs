//! The server API under `/api/`: JSON in and out, for the operator's own
//! services, never for browsers.
//!
//! Every route needs `[api] key`, sent as `X-API-Key: KEY` or
//! `Authorization: apikey KEY`: a request with neither is `401`, one with
//! another key `403`. With no key configured the API is off and every
//! route is `403`. Errors are JSON with a reason (`{"error":"..."}`),
//! whatever the route. The key is checked before the route is looked at,
//! so that nothing about the API is told to a caller without it.
//!
//! Routes:
//! - `POST /api/broadcast` with `{"channels":[...],"data":...}`: `data`
//!   (any JSON value, published as its JSON text) to each channel in
//!   order, each numbered by the broker as a publish would be.
//! - `GET /api/history/{channel}?since=N&limit=N`: what the channel's
//!   history holds after id N (all of it without `since`), at most `limit`
//!   (default 100, at most 1000) messages, in the form a poll answers.
//! - `GET /api/channels?pattern=GLOB&limit=N&cursor=C`: the channels that
//!   exist, in name order, a page at a time; `GET /api/channels/{channel}`:
//!   one channel's subscribers, last id, epoch and history.
//! - `GET /api/presence/{channel}`: the members of a channel that keeps
//!   presence; `GET /api/presence/{channel}/stats`: how many, and how
//!   many distinct users.
//! - `POST /api/disconnect` with `{"user":...}`, `POST /api/unsubscribe`
//!   with `{"user":...,"channel":...}`: every connection of that user
//!   (its token's `sub`) on every node closed (4002), or unsubscribed.

mod broadcast;
mod channels;
mod history;
mod presence;
mod users;

use super::{broker_status, same_secret};
use crate::app::{Context, HttpHandler, Next, Request, Response, Wake};
use crate::protocol::http::Status;
use crate::pubsub::{Answer, Found, HubError};
pub use broadcast::Broadcasting;
pub use users::UserCall;

/// The API route (`/api/`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Api;

/// An API call between its head and its answer.
pub enum ApiCall {
    /// `POST /api/broadcast`, its channels published one after another.
    Broadcast(Broadcasting),
    /// `GET /api/history/{channel}`, reading at most `limit` messages.
    History {
        /// The most messages to answer with.
        limit: usize,
    },
    /// `GET /api/channels` or `GET /api/channels/{channel}`.
    Channels,
    /// `GET /api/presence/{channel}` (or `/stats`).
    Presence(Box<str>),
    /// `POST /api/disconnect` or `POST /api/unsubscribe`.
    User(UserCall),
}

impl HttpHandler for Api {
    type Data = ApiCall;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<ApiCall> {
        if let Err(refused) = authorised(request, cx) {
            return Next::Respond(refused);
        }
        match request.rest() {
            "broadcast" => broadcast::request(request, cx),
            rest if rest.starts_with("history/") => history::request(request, &rest["history/".len()..]),
            "channels" => channels::request(request, None),
            "disconnect" => users::request(request, UserCall::Disconnect),
            "unsubscribe" => users::request(request, UserCall::Unsubscribe),
            rest if rest.starts_with("channels/") => channels::request(request, Some(&rest["channels/".len()..])),
            rest if rest.starts_with("presence/") => presence::request(request, &rest["presence/".len()..], cx),
            rest => Next::Respond(error(Status::NOT_FOUND, &format!("no API route /api/{rest}"))),
        }
    }

    fn body(&self, data: ApiCall, body: &[u8], cx: &mut Context<'_>) -> Next<ApiCall> {
        match data {
            ApiCall::Broadcast(_) => broadcast::body(body, cx),
            ApiCall::User(call) => users::body(call, body),
            ApiCall::History { .. } | ApiCall::Channels | ApiCall::Presence(_) => {
                Next::Respond(error(Status::INTERNAL_ERROR, "a body read for a call that has none"))
            }
        }
    }

    fn answer(&self, data: ApiCall, answer: Answer, cx: &mut Context<'_>) -> Next<ApiCall> {
        match data {
            ApiCall::Broadcast(broadcast) => broadcast::answer(broadcast, answer, cx),
            ApiCall::History { limit } => Next::Respond(history::answer(answer, limit, cx)),
            ApiCall::Channels => Next::Respond(channels::answer(answer)),
            ApiCall::Presence(channel) => Next::Respond(presence::answer(&channel, answer)),
            ApiCall::User(_) => Next::Respond(users::answer(answer)),
        }
    }

    /// The request's time is over: a broadcast's publish in the broker's
    /// hands is unknown (it may yet be published) and the channels after it
    /// were not tried; a history read the broker did not answer is refused
    /// like any request it did not take.
    fn wake(&self, data: ApiCall, _: Wake, _: &mut Context<'_>) -> Next<ApiCall> {
        match data {
            ApiCall::Broadcast(broadcast) => Next::Respond(broadcast::timed_out(broadcast)),
            ApiCall::History { .. } | ApiCall::Channels | ApiCall::Presence(_) => {
                Next::Respond(refusal(HubError::Unavailable("it did not answer in time")))
            }
            // Not a refusal: it may have reached some nodes. Sending it
            // again does no harm.
            ApiCall::User(_) => Next::Respond(error(
                Status::GATEWAY_TIMEOUT,
                "the broker did not confirm the order in time: it may have reached some nodes; send it again",
            )),
        }
    }
}

/// Is the request's API key `[api] key`? A missing key is 401 (with how
/// to send one), another key 403, and with no key configured every request
/// is 403: the API is off.
fn authorised(request: &Request<'_, '_>, cx: &Context<'_>) -> Result<(), Response> {
    let Some(key) = cx.settings().api.key.as_deref() else {
        return Err(error(Status::FORBIDDEN, "the server API is off: set [api] key"));
    };
    let given = match (request.header("x-api-key"), request.header("authorization")) {
        (Ok(Some(given)), _) => Some(given),
        (Ok(None), Ok(Some(auth))) => apikey(auth),
        (Ok(None), Ok(None)) => None,
        // A header sent twice names no one key.
        (Err(()), _) | (_, Err(())) => return Err(error(Status::BAD_REQUEST, "an API key header sent twice")),
    };
    match given {
        None => Err(error(
            Status::UNAUTHORIZED,
            "send the API key as X-API-Key: KEY or Authorization: apikey KEY",
        )
        .header("WWW-Authenticate", "apikey realm=\"wsreactor\"")),
        Some(given) if same_secret(given, key.as_bytes()) => Ok(()),
        Some(_) => Err(error(Status::FORBIDDEN, "wrong API key")),
    }
}

/// The key in `Authorization: apikey KEY` (the scheme in any case).
fn apikey(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme.eq_ignore_ascii_case(b"apikey").then(|| rest.trim_ascii())
}

/// What a query found, or the refusal to send.
fn found(answer: Answer) -> Result<Found, Response> {
    match answer {
        Answer::Found(Ok(found)) => Ok(found),
        Answer::Found(Err(e)) | Answer::Published(Err(e)) | Answer::Subscribed(Err(e)) | Answer::Signalled(Err(e)) => {
            Err(refusal(e))
        }
        Answer::Published(Ok(_)) | Answer::Subscribed(Ok(_)) | Answer::Signalled(Ok(_)) => {
            Err(error(Status::INTERNAL_ERROR, "the broker answered another request"))
        }
    }
}

/// The broker could not do it: its status (503 with `Retry-After`, 504),
/// as JSON.
fn refusal(e: HubError) -> Response {
    retry_after(error(broker_status(e), &e.to_string()))
}

/// A refusal (`503`) says when to try again.
fn retry_after(response: Response) -> Response {
    if response.status() == Status::SERVICE_UNAVAILABLE {
        response.header("Retry-After", "1")
    } else {
        response
    }
}

/// An API error: `status` and `{"error": why}`.
fn error(status: Status, why: &str) -> Response {
    Response::new(status)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(serde_json::json!({ "error": why }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_in_either_header_form() {
        assert_eq!(apikey(b"apikey s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(apikey(b"ApiKey   s3cret "), Some(&b"s3cret"[..]));
        assert_eq!(apikey(b"Bearer s3cret"), None);
        assert_eq!(apikey(b"apikey"), None);
    }
}
