//! `POST /pub/{channel}`: publish the body to a channel, answered with
//! its id once the broker numbered it.

use super::cors::Headers;
use super::{broker_refusal, channel_route, same_secret};
use crate::app::{Context, HttpHandler, Next, Request, Response, Wake};
use crate::auth::{bearer, Denied};
use crate::protocol::http::Status;
use crate::protocol::MessageKind;
use crate::pubsub::{idempotency, Answer, HubError, Request as BrokerRequest};
use std::sync::atomic::Ordering::Relaxed;

/// The publish route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Publish;

/// A publish between its head and the broker's answer.
pub struct Publishing {
    cors: Headers,
    channel: Box<str>,
    kind: MessageKind,
    idempotency_key: Option<Box<str>>,
}

impl HttpHandler for Publish {
    type Data = Publishing;

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<Publishing> {
        let (channel, cors) = match channel_route(request, cx, "POST") {
            Ok(start) => start,
            Err(answer) => return Next::Respond(answer),
        };
        let settings = cx.settings();
        let refuse = |response: Response| Next::Respond(response.headers(cors.clone()));
        if let Some(token) = &settings.pubsub.publish_token {
            match bearer(request.head()) {
                None => {
                    return refuse(
                        Response::refuse(Status::UNAUTHORIZED, "publishing needs Authorization: Bearer <token>")
                            .header("WWW-Authenticate", "Bearer realm=\"wsreactor\""),
                    )
                }
                Some(given) if same_secret(given, token.as_bytes()) => {}
                // Not the static token: a JWT with the `pub` scope may do.
                Some(given) => match settings.auth.publish(given, &channel, cx.unix_time()) {
                    Ok(_) => {}
                    Err(Denied::Malformed | Denied::NoSecret) => {
                        return refuse(Response::refuse(Status::FORBIDDEN, "wrong publish token"))
                    }
                    Err(denied) => return refuse(Response::refuse(Status::FORBIDDEN, &denied.to_string())),
                },
            }
        }
        let Some(len) = request.content_length() else {
            return refuse(Response::refuse(
                Status::LENGTH_REQUIRED,
                "send the body with Content-Length",
            ));
        };
        let max = settings.read_limits.max_message_size;
        if usize::try_from(len).map_or(true, |n| n > max) {
            return refuse(Response::refuse(
                Status::PAYLOAD_TOO_LARGE,
                "message larger than max_message_size",
            ));
        }
        // draft-ietf-httpapi-idempotency-key-header: a retry with the same
        // key is answered with the first publish's id, not published again.
        let idempotency_key = match request.header("idempotency-key") {
            Ok(None) => None,
            Ok(Some(v)) => match idempotency::parse_key(v) {
                Some(key) => Some(key.into()),
                None => {
                    let why = "Idempotency-Key must be 1 to 255 visible ASCII characters, quoted or not";
                    return refuse(Response::refuse(Status::BAD_REQUEST, why));
                }
            },
            Err(()) => return refuse(Response::refuse(Status::BAD_REQUEST, "more than one Idempotency-Key")),
        };
        let kind = match request.header("content-type").ok().flatten() {
            Some(ct) if is_text(ct) => MessageKind::Text,
            _ => MessageKind::Binary,
        };
        let data = Publishing {
            cors,
            channel: channel.into(),
            kind,
            idempotency_key,
        };
        Next::ReadBody { data, limit: max }
    }

    fn body(&self, data: Publishing, body: &[u8], _: &mut Context<'_>) -> Next<Publishing> {
        if data.kind == MessageKind::Text && std::str::from_utf8(body).is_err() {
            let refused = Response::refuse(Status::BAD_REQUEST, "a text message must be UTF-8");
            return Next::Respond(refused.headers(data.cors));
        }
        let request = BrokerRequest::Publish {
            channel: data.channel.clone(),
            kind: data.kind,
            payload: body.into(),
            idempotency_key: data.idempotency_key.clone(),
        };
        Next::Ask { data, request }
    }

    fn answer(&self, data: Publishing, answer: Answer, cx: &mut Context<'_>) -> Next<Publishing> {
        let response = match answer {
            Answer::Published(Ok(receipt)) => {
                let duplicate = if receipt.duplicate {
                    ",\"duplicate\":true"
                } else {
                    cx.stats().published.fetch_add(1, Relaxed);
                    ""
                };
                let body = format!(
                    "{{\"id\":{},\"subscribers\":{}{duplicate}}}",
                    receipt.id, receipt.subscribers
                );
                Response::ok("application/json", body)
            }
            Answer::Published(Err(e)) => broker_refusal(e),
            Answer::Subscribed(result) => {
                if let Ok((sub, _)) = result {
                    cx.unsubscribe(sub);
                }
                Response::refuse(Status::INTERNAL_ERROR, "the broker answered another request")
            }
            Answer::Found(_) | Answer::Signalled(_) => {
                Response::refuse(Status::INTERNAL_ERROR, "the broker answered another request")
            }
        };
        Next::Respond(response.headers(data.cors))
    }

    /// No answer within `request_timeout`. A publish handed to the broker
    /// may still be carried out: its outcome is unknown, not refused.
    fn wake(&self, data: Publishing, _: Wake, _: &mut Context<'_>) -> Next<Publishing> {
        Next::Respond(broker_refusal(HubError::Unconfirmed).headers(data.cors))
    }
}

/// What a person would call text is published as text (and must be
/// UTF-8): `text/*`, JSON (`application/json`, `application/*+json`), XML
/// (`application/xml`, `*/*+xml`), `application/javascript`, and
/// `application/x-www-form-urlencoded` (what `curl -d` sends). Everything
/// else, or no `Content-Type`, is binary.
fn is_text(content_type: &[u8]) -> bool {
    let mime = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    let Some(at) = mime.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (kind, sub) = (&mime[..at], &mime[at + 1..]);
    kind == b"text"
        || sub.ends_with(b"+json")
        || sub.ends_with(b"+xml")
        || (kind == b"application" && matches!(sub, b"json" | b"xml" | b"javascript" | b"x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_content_types() {
        for text in [
            &b"text/plain"[..],
            b"Text/HTML; charset=utf-8",
            b"application/json",
            b"application/ld+json",
            b"application/vnd.api+json",
            b"application/xml",
            b"image/svg+xml",
            b"application/atom+xml",
            b"application/javascript",
            b"application/x-www-form-urlencoded",
            b"APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
        ] {
            assert!(is_text(text), "{}", String::from_utf8_lossy(text));
        }
        for binary in [
            &b"application/octet-stream"[..],
            b"application/jsonx",
            b"application/json-seq",
            b"image/png",
            b"multipart/form-data",
            b"",
            b"json",
        ] {
            assert!(!is_text(binary), "{}", String::from_utf8_lossy(binary));
        }
    }
}
