//! `GET /api/presence/{channel}`: the members of a channel that keeps
//! presence (`[presence] channels`), on every node; and
//! `GET /api/presence/{channel}/stats`: how many, and how many distinct
//! users. A channel that keeps none is a 404 that says so.

use super::super::presence::keeps_presence;
use super::{error, found, ApiCall};
use crate::app::{Context, Next, Request, Response};
use crate::protocol::http::Status;
use crate::pubsub::message::push_json_string;
use crate::pubsub::{channel_name, Answer, Found, Query, Request as BrokerRequest};

/// The head of a presence call: what to ask the broker, or the 400/404/405.
pub(super) fn request(request: &Request<'_, '_>, rest: &str, cx: &Context<'_>) -> Next<ApiCall> {
    if request.method() != "GET" {
        return Next::Respond(error(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET"));
    }
    let (rest, stats) = match rest.strip_suffix("/stats") {
        Some(channel) => (channel, true),
        None => (rest, false),
    };
    let Some(channel) = channel_name(rest) else {
        return Next::Respond(error(
            Status::BAD_REQUEST,
            "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)",
        ));
    };
    if !keeps_presence(cx.settings(), &channel) {
        return Next::Respond(error(
            Status::NOT_FOUND,
            &format!("{channel} keeps no presence: [presence] channels names the channels that do"),
        ));
    }
    let name: Box<str> = channel.into();
    let query = if stats {
        Query::PresenceStats(name.clone())
    } else {
        Query::Presence(name.clone())
    };
    Next::Ask {
        data: ApiCall::Presence(name),
        request: BrokerRequest::Query(query),
    }
}

/// `{"channel":C,"members":[{"client":..,"user":..,"info":..},...]}`, or
/// `{"channel":C,"clients":N,"users":M}`.
pub(super) fn answer(channel: &str, answer: Answer) -> Response {
    let found = match found(answer) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let mut body = String::from("{\"channel\":");
    push_json_string(channel, &mut body);
    match found {
        Found::Presence(members) => {
            body.push_str(",\"members\":[");
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&m.json());
            }
            body.push(']');
        }
        Found::PresenceStats(stats) => {
            body.push_str(&format!(",\"clients\":{},\"users\":{}", stats.clients, stats.users));
        }
        Found::Channel(_) | Found::Channels { .. } => {
            return error(Status::INTERNAL_ERROR, "the broker answered another query")
        }
    }
    body.push('}');
    Response::ok("application/json", body).header("Cache-Control", "no-store")
}
