//! `GET /api/channels?pattern=GLOB&limit=N&cursor=C`: the channels that
//! exist (history or subscribers, on any node) whose names match, in name
//! order, a page at a time; and `GET /api/channels/{channel}`: one
//! channel's state, its subscribers counted per transport too. Read through the broker: looking makes no channel.
//!
//! A page's `cursor` is where the next page starts: pass it back as it
//! came. It is the page's last name, encoded (base64url); one that no page
//! could have given is a 400, never an empty page.

use super::super::query::{query_u64, query_values};
use super::{error, found, ApiCall};
use crate::app::{Next, Request, Response};
use crate::protocol::http::Status;
use crate::pubsub::{
    channel_name, channel_pattern, valid_channel, Answer, ChannelState, Found, Query, Request as BrokerRequest,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// `limit` when none is given, and the most it may be.
const PAGE_LIMIT: (u64, u64) = (100, 1000);

/// The head of `GET /api/channels` (`rest` empty) or
/// `GET /api/channels/{channel}`: what to ask the broker, or the 400/405.
pub(super) fn request(request: &Request<'_, '_>, rest: Option<&str>) -> Next<ApiCall> {
    if request.method() != "GET" {
        return Next::Respond(error(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET"));
    }
    let query = match rest {
        Some(channel) => match channel_name(channel) {
            Some(channel) => Ok(Query::Channel(channel.into())),
            None => Err("channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)".to_owned()),
        },
        None => page(request.query()),
    };
    match query {
        Ok(query) => Next::Ask {
            data: ApiCall::Channels,
            request: BrokerRequest::Query(query),
        },
        Err(why) => Next::Respond(error(Status::BAD_REQUEST, &why)),
    }
}

/// The page a query string asks for: `pattern` (default `*`), `limit`
/// and `cursor`, each at most once.
fn page(query: Option<&str>) -> Result<Query, String> {
    let once = |key: &'static str| -> Result<Option<&str>, String> {
        let mut values = query_values(query, key);
        match (values.next(), values.next()) {
            (v, None) => Ok(v),
            _ => Err(format!("{key} given more than once")),
        }
    };
    let pattern = match once("pattern")? {
        None => "*".into(),
        Some(raw) => {
            channel_pattern(raw).ok_or("pattern is 1 to 128 of * (any run of characters) and A-Z a-z 0-9 _ . : -")?
        }
    };
    once("limit")?;
    let (default, most) = PAGE_LIMIT;
    let limit = match query_u64(query, "limit") {
        Ok(None) => default,
        Ok(Some(n)) if (1..=most).contains(&n) => n,
        _ => return Err(format!("limit must be 1 to {most}")),
    };
    let after = match once("cursor")? {
        None => None,
        Some(cursor) => Some(
            decode_cursor(cursor)
                .ok_or("cursor is not one a page gave: pass back the cursor of the page before, as it came")?,
        ),
    };
    Ok(Query::Channels {
        pattern: pattern.into(),
        after: after.map(Into::into),
        limit: limit as usize,
    })
}

/// A page's cursor: its last channel's name, base64url.
fn encode_cursor(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name)
}

/// The name a cursor carries, if it is one a page could have given.
fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok().filter(|name| valid_channel(name))
}

/// The broker's answer: the page (`{"channels":[...],"cursor":C}`, the
/// cursor `null` on the last page), or the channel (`404` when it does
/// not exist).
pub(super) fn answer(answer: Answer) -> Response {
    let found = match found(answer) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let body = match found {
        Found::Channel(Some(state)) => describe(&state),
        Found::Channel(None) => {
            return error(
                Status::NOT_FOUND,
                "no such channel: it has neither history nor subscribers",
            )
        }
        Found::Channels { channels, more } => {
            let cursor = channels.last().filter(|_| more).map(|c| encode_cursor(&c.name));
            json!({
                "channels": channels.iter().map(describe).collect::<Vec<_>>(),
                "cursor": cursor,
            })
        }
        Found::Presence(_) | Found::PresenceStats(_) => {
            return error(Status::INTERNAL_ERROR, "the broker answered another query")
        }
    };
    Response::ok("application/json", body.to_string()).header("Cache-Control", "no-store")
}

/// One channel as the API shows it.
fn describe(c: &ChannelState) -> Value {
    let [websocket, sse, poll] = c.by_via;
    json!({
        "channel": c.name,
        "subscribers": c.subscribers,
        "transports": { "websocket": websocket, "sse": sse, "poll": poll },
        "last_id": c.last_id,
        "epoch_start": c.epoch_start,
        "history": { "kept": c.history, "first_id": c.first_kept },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_asked_for_by_pattern_limit_and_cursor() {
        assert_eq!(
            page(None),
            Ok(Query::Channels {
                pattern: "*".into(),
                after: None,
                limit: 100
            })
        );
        let cursor = encode_cursor("news.7");
        assert_eq!(
            page(Some(&format!("pattern=news.%2A&limit=2&cursor={cursor}"))),
            Ok(Query::Channels {
                pattern: "news.*".into(),
                after: Some("news.7".into()),
                limit: 2
            })
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "pattern=a/b",
            "pattern=",
            "cursor=!!",
            "cursor=Lw",
            "limit=1&limit=2",
        ] {
            assert!(page(Some(bad)).is_err(), "{bad}");
        }
    }
}
