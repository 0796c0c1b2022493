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

use super::query::query_u64;
use super::{broker_refusal, same_secret};
use crate::app::{Context, HttpHandler, Next, Request, Response, Wake};
use crate::protocol::http::Status;
use crate::protocol::MessageKind;
use crate::pubsub::{channel_name, valid_channel, Answer, Cursor, Encoding, HubError, Request as BrokerRequest};
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;

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
}

/// `GET /api/history`'s `limit` when none is given, and the most it may be.
const HISTORY_LIMIT: (u64, u64) = (100, 1000);

/// A broadcast under way.
#[derive(Default)]
pub struct Broadcasting {
    /// The channels, checked, in the order given.
    channels: Vec<Box<str>>,
    /// `data` as JSON text.
    payload: Box<[u8]>,
    /// What became of each channel so far (one per channel before `next`).
    outcomes: Vec<Outcome>,
}

/// What became of one channel of a broadcast.
enum Outcome {
    /// Numbered and handed to its subscribers.
    Published { id: u64, subscribers: usize },
    /// The broker refused it, or cannot tell whether it was published.
    Failed(HubError),
}

/// The body of `POST /api/broadcast`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    channels: Vec<String>,
    data: serde_json::Value,
}

impl HttpHandler for Api {
    type Data = ApiCall;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<ApiCall> {
        if let Err(refused) = authorised(request, cx) {
            return Next::Respond(refused);
        }
        match request.rest() {
            "broadcast" if request.method() == "POST" => {
                let max = cx.settings().read_limits.max_message_size;
                match request.content_length() {
                    None => Next::Respond(error(Status::LENGTH_REQUIRED, "send the body with Content-Length")),
                    Some(len) if usize::try_from(len).map_or(true, |n| n > max) => Next::Respond(error(
                        Status::PAYLOAD_TOO_LARGE,
                        "body larger than limits.max_message_size",
                    )),
                    Some(_) => Next::ReadBody {
                        data: ApiCall::Broadcast(Broadcasting::default()),
                        limit: max,
                    },
                }
            }
            "broadcast" => Next::Respond(error(Status::METHOD_NOT_ALLOWED, "use POST").header("Allow", "POST")),
            rest if rest.starts_with("history/") => match history(request, &rest["history/".len()..]) {
                Ok((limit, ask)) => Next::Ask {
                    data: ApiCall::History { limit },
                    request: ask,
                },
                Err(refused) => Next::Respond(refused),
            },
            rest => Next::Respond(error(Status::NOT_FOUND, &format!("no API route /api/{rest}"))),
        }
    }

    fn body(&self, data: ApiCall, body: &[u8], cx: &mut Context<'_>) -> Next<ApiCall> {
        if !matches!(data, ApiCall::Broadcast(_)) {
            return Next::Respond(error(Status::INTERNAL_ERROR, "a body read for a call that has none"));
        }
        match read_broadcast(body, cx.settings().api.max_broadcast_channels) {
            Ok(broadcast) => next(broadcast),
            Err(why) => Next::Respond(error(Status::BAD_REQUEST, &why)),
        }
    }

    fn answer(&self, data: ApiCall, answer: Answer, cx: &mut Context<'_>) -> Next<ApiCall> {
        let mut broadcast = match data {
            ApiCall::Broadcast(broadcast) => broadcast,
            ApiCall::History { limit } => return Next::Respond(history_answer(answer, limit, cx)),
        };
        let outcome = match answer {
            Answer::Published(Ok(receipt)) => {
                cx.stats().published.fetch_add(1, Relaxed);
                Outcome::Published {
                    id: receipt.id,
                    subscribers: receipt.subscribers,
                }
            }
            Answer::Published(Err(e)) => Outcome::Failed(e),
            Answer::Subscribed(result) => {
                if let Ok((sub, _)) = result {
                    cx.unsubscribe(sub);
                }
                return Next::Respond(error(Status::INTERNAL_ERROR, "the broker answered another request"));
            }
        };
        broadcast.outcomes.push(outcome);
        next(broadcast)
    }

    /// The request's time is over with a publish handed to the broker: its
    /// outcome is unknown (it may yet be published), and the channels after
    /// it were not tried.
    /// A history read the broker did not answer is refused like any
    /// request it did not take.
    fn wake(&self, data: ApiCall, _: Wake, _: &mut Context<'_>) -> Next<ApiCall> {
        match data {
            ApiCall::Broadcast(mut broadcast) => {
                broadcast.outcomes.push(Outcome::Failed(HubError::Unconfirmed));
                Next::Respond(broadcast_answer(&broadcast))
            }
            ApiCall::History { .. } => Next::Respond(refusal(HubError::Unavailable("it did not answer in time"))),
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

/// A broadcast's body, checked whole before anything is published: its
/// channels (1 to `max_channels`, each a channel name, none twice) and
/// `data` as JSON text. Anything else is refused (400) with why.
fn read_broadcast(body: &[u8], max_channels: usize) -> Result<Broadcasting, String> {
    let parsed: BroadcastBody = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    if parsed.channels.is_empty() {
        return Err("channels is empty".to_owned());
    }
    if parsed.channels.len() > max_channels {
        return Err(format!(
            "{} channels, more than api.max_broadcast_channels ({max_channels})",
            parsed.channels.len()
        ));
    }
    let mut channels: Vec<Box<str>> = Vec::with_capacity(parsed.channels.len());
    for name in parsed.channels {
        // The one channel-name rule of every transport (taken literally
        // here: JSON has its own escapes, percent-encoding is a URL's).
        if !valid_channel(&name) {
            return Err(format!(
                "channel {}: names are 1 to 128 of A-Z a-z 0-9 _ . : -",
                serde_json::Value::from(name)
            ));
        }
        if channels.iter().any(|c| **c == *name) {
            return Err(format!("channel {name} is listed twice"));
        }
        channels.push(name.into());
    }
    Ok(Broadcasting {
        channels,
        payload: parsed.data.to_string().into_bytes().into_boxed_slice(),
        outcomes: Vec::new(),
    })
}

/// Publish to the next channel, or answer once every channel has its outcome.
fn next(broadcast: Broadcasting) -> Next<ApiCall> {
    let Some(channel) = broadcast.channels.get(broadcast.outcomes.len()) else {
        return Next::Respond(broadcast_answer(&broadcast));
    };
    let request = BrokerRequest::Publish {
        channel: channel.clone(),
        kind: MessageKind::Text,
        payload: broadcast.payload.clone(),
        idempotency_key: None,
    };
    Next::Ask {
        data: ApiCall::Broadcast(broadcast),
        request,
    }
}

/// The answer to a broadcast: each channel's outcome in the order given.
/// `200` only when every channel was published; when none was, the status
/// of the first failure (`503` refused, `504` unknown); when some were,
/// `207 Multi-Status`, so that no status says "done" or "refused" of what
/// was only partly done. A channel not tried (the request's time ran out)
/// is refused: nothing of it was published.
fn broadcast_answer(broadcast: &Broadcasting) -> Response {
    let mut results = Vec::with_capacity(broadcast.channels.len());
    let mut published = 0;
    let mut first_failure = None;
    for (i, channel) in broadcast.channels.iter().enumerate() {
        let result = match broadcast.outcomes.get(i) {
            Some(Outcome::Published { id, subscribers }) => {
                published += 1;
                serde_json::json!({"channel": &**channel, "id": id, "subscribers": subscribers})
            }
            Some(Outcome::Failed(e)) => {
                let status = broker_refusal(*e).status();
                first_failure.get_or_insert(status);
                serde_json::json!({"channel": &**channel, "status": status.0, "error": e.to_string()})
            }
            None => {
                let status = Status::SERVICE_UNAVAILABLE;
                first_failure.get_or_insert(status);
                serde_json::json!({"channel": &**channel, "status": status.0, "error": "not tried: the request's time ran out"})
            }
        };
        results.push(result);
    }
    let status = match first_failure {
        None => Status::OK,
        Some(_) if published > 0 => Status::MULTI_STATUS,
        Some(status) => status,
    };
    let response = Response::new(status)
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "results": results }).to_string());
    retry_after(response)
}

/// `GET /api/history/{channel}`: the channel (the rule of every
/// transport, percent-decoded as in any path), `since` and `limit` from the
/// query; the limit and what to ask the broker for, or the 400 or 405. The
/// history is read as a subscribe from `since` (0: all of it) whose
/// subscription is given back at once, as a short poll does.
fn history(request: &Request<'_, '_>, channel: &str) -> Result<(usize, BrokerRequest), Response> {
    if request.method() != "GET" {
        return Err(error(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET"));
    }
    let Some(channel) = channel_name(channel) else {
        return Err(error(
            Status::BAD_REQUEST,
            "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)",
        ));
    };
    let query = request.query();
    let Ok(since) = query_u64(query, "since") else {
        return Err(error(Status::BAD_REQUEST, "since must be a message id"));
    };
    let (default, most) = HISTORY_LIMIT;
    let limit = match query_u64(query, "limit") {
        Ok(None) => default,
        Ok(Some(n)) if (1..=most).contains(&n) => n,
        _ => return Err(error(Status::BAD_REQUEST, &format!("limit must be 1 to {most}"))),
    };
    let ask = BrokerRequest::Subscribe {
        channel: channel.into(),
        since: Some(since.unwrap_or(0)),
    };
    Ok((limit as usize, ask))
}

/// The answer to a history read: at most `limit` messages in the form a
/// poll gives them, `last_id` the cursor to ask from next (the last message
/// given when the limit cut the answer short, and then `"more":true`),
/// `gap` (and `reset`) as a poll says them.
fn history_answer(answer: Answer, limit: usize, cx: &mut Context<'_>) -> Response {
    let (sub, snapshot) = match answer {
        Answer::Subscribed(Ok(subscribed)) => subscribed,
        Answer::Subscribed(Err(e)) | Answer::Published(Err(e)) => return refusal(e),
        Answer::Published(Ok(_)) => return error(Status::INTERNAL_ERROR, "the broker answered another request"),
    };
    cx.unsubscribe(sub);
    let more = snapshot.replay.len() > limit;
    let given = &snapshot.replay[..snapshot.replay.len().min(limit)];
    let last_id = match given.last() {
        Some(m) if more => m.id,
        _ => Cursor::new(&snapshot).last(),
    };
    let mut response = Response::new(Status::OK)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(&b"{\"messages\":["[..]);
    for (i, m) in given.iter().enumerate() {
        if i > 0 {
            response = response.body(&b","[..]);
        }
        response = response.shared(m.shared(Encoding::PollItem));
    }
    let reset = if snapshot.gap.is_some_and(|g| g.reset) {
        ",\"reset\":true"
    } else {
        ""
    };
    response.body(format!(
        "],\"last_id\":{last_id},\"gap\":{},\"more\":{more}{reset}}}",
        snapshot.gap.is_some()
    ))
}

/// The broker could not do it: its status (503 with `Retry-After`, 504),
/// as JSON.
fn refusal(e: HubError) -> Response {
    retry_after(error(broker_refusal(e).status(), &e.to_string()))
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

    #[test]
    fn a_broadcast_body_is_checked_whole() {
        let broadcast = read_broadcast(br#"{"channels":["a","b:c"],"data":{"x":1}}"#, 10)
            .ok()
            .unwrap();
        assert_eq!(broadcast.channels, vec![Box::from("a"), Box::from("b:c")]);
        assert_eq!(&*broadcast.payload, br#"{"x":1}"#);
        for (body, why) in [
            (&br#"{"channels":["a"]"#[..], "malformed JSON"),
            (br#"{"channels":["a"]}"#, "malformed JSON"),
            (br#"{"channels":[],"data":1}"#, "channels is empty"),
            (br#"{"channels":["a","a"],"data":1}"#, "listed twice"),
            (br#"{"channels":["a b"],"data":1}"#, "names are"),
            (br#"{"channels":["a%3Ab"],"data":1}"#, "names are"),
            (br#"{"channels":["a"],"data":1,"extra":2}"#, "malformed JSON"),
            (
                br#"{"channels":["1","2","3"],"data":1}"#,
                "more than api.max_broadcast_channels",
            ),
        ] {
            let refused = read_broadcast(body, 2).err().unwrap();
            assert!(refused.contains(why), "{refused} lacks {why}");
        }
    }
}
