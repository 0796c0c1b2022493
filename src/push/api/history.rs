//! `GET /api/history/{channel}?since=N&limit=N`: what the channel's
//! history holds after id N (all of it without `since`), at most `limit`
//! (default 100, at most 1000) messages, in the form a poll answers.

use super::super::message_list;
use super::super::query::query_u64;
use super::{error, refusal, ApiCall};
use crate::app::{Context, Next, Request, Response};
use crate::protocol::http::Status;
use crate::pubsub::{channel_name, Answer, Cursor, Request as BrokerRequest, Via};

/// `limit` when none is given, and the most it may be.
const HISTORY_LIMIT: (u64, u64) = (100, 1000);

/// The head of a history read: what to ask the broker for, or the 400 or 405.
pub(super) fn request(request: &Request<'_, '_>, channel: &str) -> Next<ApiCall> {
    match read(request, channel) {
        Ok((limit, ask)) => Next::Ask {
            data: ApiCall::History { limit },
            request: ask,
        },
        Err(refused) => Next::Respond(refused),
    }
}

/// The channel (the rule of every
/// transport, percent-decoded as in any path), `since` and `limit` from the
/// query; the limit and what to ask the broker for, or the 400 or 405. The
/// history is read as a subscribe from `since` (0: all of it) whose
/// subscription is given back at once, as a short poll does.
fn read(request: &Request<'_, '_>, channel: &str) -> Result<(usize, BrokerRequest), Response> {
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
    let ask = BrokerRequest::subscribe(channel, Some(since.unwrap_or(0))).via(Via::Poll);
    Ok((limit as usize, ask))
}

/// The answer to a history read: at most `limit` messages in the form a
/// poll gives them, `last_id` the cursor to ask from next (the last message
/// given when the limit cut the answer short, and then `"more":true`),
/// `gap` (and `reset`) as a poll says them.
pub(super) fn answer(answer: Answer, limit: usize, cx: &mut Context<'_>) -> Response {
    let (sub, snapshot) = match answer {
        Answer::Subscribed(Ok(subscribed)) => subscribed,
        Answer::Subscribed(Err(e)) | Answer::Published(Err(e)) | Answer::Found(Err(e)) | Answer::Signalled(Err(e)) => {
            return refusal(e)
        }
        Answer::Published(Ok(_)) | Answer::Found(Ok(_)) | Answer::Signalled(Ok(_)) => {
            return error(Status::INTERNAL_ERROR, "the broker answered another request")
        }
    };
    cx.unsubscribe(sub);
    let more = snapshot.replay.len() > limit;
    let given = &snapshot.replay[..snapshot.replay.len().min(limit)];
    let last_id = match given.last() {
        Some(m) if more => m.id,
        _ => Cursor::new(&snapshot).last(),
    };
    let response = message_list(given);
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
