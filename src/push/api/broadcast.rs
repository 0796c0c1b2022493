//! `POST /api/broadcast` with `{"channels":[...],"data":...}`: `data`
//! (any JSON value, published as its JSON text) to each channel in order,
//! each numbered by the broker as a publish would be.

use super::{error, retry_after, ApiCall};
use crate::app::{Context, Next, Request, Response};
use crate::protocol::http::Status;
use crate::protocol::MessageKind;
use crate::pubsub::{valid_channel, Answer, HubError, Request as BrokerRequest};
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;

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

/// `POST /api/broadcast`'s head: a body of at most `max_message_size`,
/// with its length given; other methods are 405.
pub(super) fn request(request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<ApiCall> {
    if request.method() != "POST" {
        return Next::Respond(error(Status::METHOD_NOT_ALLOWED, "use POST").header("Allow", "POST"));
    }
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

/// The body, read: checked whole, then the first channel's publish.
pub(super) fn body(body: &[u8], cx: &mut Context<'_>) -> Next<ApiCall> {
    match read_broadcast(body, cx.settings().api.max_broadcast_channels) {
        Ok(broadcast) => next(broadcast),
        Err(why) => Next::Respond(error(Status::BAD_REQUEST, &why)),
    }
}

/// The broker's answer to the publish of the next channel: its outcome
/// kept, then on to the channel after it.
pub(super) fn answer(mut broadcast: Broadcasting, answer: Answer, cx: &mut Context<'_>) -> Next<ApiCall> {
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
        Answer::Found(_) | Answer::Signalled(_) => {
            return Next::Respond(error(Status::INTERNAL_ERROR, "the broker answered another request"));
        }
    };
    broadcast.outcomes.push(outcome);
    next(broadcast)
}

/// The request's time ran out with a publish in the broker's hands.
pub(super) fn timed_out(mut broadcast: Broadcasting) -> Response {
    broadcast.outcomes.push(Outcome::Failed(HubError::Unconfirmed));
    broadcast_answer(&broadcast)
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
                let status = super::broker_status(*e);
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

#[cfg(test)]
mod tests {
    use super::*;

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
