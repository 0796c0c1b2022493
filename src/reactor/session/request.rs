//! The `Request` and `Body` states: read a request head, route it, and
//! answer it, upgrade it, read a publish's body, or ask the broker.

use super::cors::{origin, Cors, Origin};
use super::token::bearer;
use super::{want, Access, Action, Env, Flags, Io, Session, State};
use crate::app::UserData;
use crate::auth::{Denied, Grant};
use crate::http::{self, metrics, route, Route};
use crate::protocol::http::{BodyFraming, RequestHead, Status, MAX_HEADERS};
use crate::protocol::{MessageKind, WebSocket};
use crate::pubsub::idempotency;
use crate::pubsub::{Answer, HubError, Request};
use crate::reactor::buffer::ReadBuf;
use crate::reactor::stamp::Stamp;
use std::sync::atomic::Ordering::Relaxed;

/// A publish whose body is being read.
#[derive(Debug)]
pub struct Publish {
    channel: Box<str>,
    kind: MessageKind,
    len: usize,
    close: bool,
    idempotency_key: Option<Box<str>>,
}

/// What a session waiting for the broker does with the answer.
#[derive(Debug)]
pub enum Wait {
    /// A publish: answer its id, then keep alive or `close`.
    Publish { close: bool },
    /// A WebSocket subscribed to a topic: the 101 (written once the
    /// subscription is live), the session it opens, its handler and data.
    Upgrade {
        response: Vec<u8>,
        ws: WebSocket,
        json: bool,
        handler: u16,
        data: UserData,
        grant: Option<Grant>,
    },
    /// A long poll; `wait_ms`: its `wait=S` (capped), if given.
    Poll {
        close: bool,
        grant: Option<Grant>,
        wait_ms: Option<u32>,
    },
    /// An event stream.
    Events { grant: Option<Grant> },
}

impl Session {
    /// Request: find the end of the head, then route it. True when a head
    /// was consumed and what follows it must be processed too.
    pub(super) fn on_head(&mut self, env: &mut Env<'_>) -> bool {
        let State::Request { scanner, since } = &mut self.state else {
            return false;
        };
        let since = *since;
        let Some(mut rbuf) = self.io.rbuf.take() else {
            return false;
        };
        let limit = env.settings.max_request_head;
        self.io.want = want(limit);
        // Every method token starts with a letter (RFC 9110 §9.1); anything
        // else (a TLS ClientHello, binary noise) is refused at once instead
        // of waiting for a blank line that will never come.
        let next = if rbuf.filled().first().is_some_and(|b| !b.is_ascii_alphabetic()) {
            Some(self.io.refuse(Status::BAD_REQUEST, &[], "not an HTTP/1.1 request", env))
        } else {
            match scanner.scan(rbuf.filled(), limit) {
                Ok(None) => None,
                Ok(Some(head_len)) => {
                    self.io.cors = Cors::NONE;
                    let next = self.on_complete_head(&rbuf.filled()[..head_len], since, env);
                    // Bytes after the head belong to the next state (frames
                    // after a 101, a body, the next keep-alive request).
                    rbuf.consume(head_len);
                    Some(next)
                }
                Err(e) => Some(self.io.refuse(e.status(), &[], &e.to_string(), env)),
            }
        };
        self.io.rbuf = Some(rbuf);
        match next {
            None => false,
            Some(next) => {
                self.state = next;
                self.tell_opened(env);
                matches!(self.state, State::Request { .. } | State::Body { .. } | State::Open(_))
            }
        }
    }

    /// A whole head: parse it, frame its body, route it.
    fn on_complete_head(&mut self, bytes: &[u8], since: Stamp, env: &mut Env<'_>) -> State {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match RequestHead::parse(bytes, &mut headers) {
            Ok(head) => {
                if env.settings.access_log {
                    let line = format!("{} {}", head.method, head.path()).into_boxed_str();
                    env.actions.push(Action::Access(Access::Request(line)));
                }
                // RFC 9110 §9.3.2: the answer to HEAD is the GET's head
                // alone, whatever the status.
                self.io.flags.replace(Flags::HEAD_ONLY, head.method == "HEAD");
                let next = match head.check() {
                    Ok(framing) if env.proxied.is_some() => match self.io.count_client(&head, env) {
                        Ok(()) => self.route(&head, framing, since, env),
                        Err(refused) => refused,
                    },
                    Ok(framing) => self.route(&head, framing, since, env),
                    Err(e) => self.io.refuse(e.status(), &[], &e.to_string(), env),
                };
                self.io.flags.replace(Flags::HEAD_ONLY, false);
                next
            }
            Err(e) => self.io.refuse(e.status(), &[], &e.to_string(), env),
        }
    }

    /// Answer, upgrade or start a request whose head passed
    /// [`RequestHead::check`]. Only a publish takes a body: any other
    /// request that declares one is refused and the connection closed, so
    /// its body is never read as a request (RFC 9112 §6.3; RFC 9110 §9.3.1
    /// gives a GET's body no meaning). Every other method on those routes,
    /// and every unknown route, is refused (and closed) below anyway.
    fn route(&mut self, head: &RequestHead<'_, '_>, framing: BodyFraming, since: Stamp, env: &mut Env<'_>) -> State {
        let io = &mut self.io;
        let app = env.app;
        let path = head.path();
        // A WebSocket handler's path: every request to it is an upgrade
        // (refused if it is not one), but `GET /` stays the demo page
        // unless it asks for an upgrade.
        let page = app.pages && path == "/";
        if let Some(handler) = app.route(path).filter(|_| !page || is_upgrade_attempt(head)) {
            if origin(head, env.settings) == Origin::Refused {
                return io.refuse(Status::FORBIDDEN, &[], "this origin may not open a WebSocket here", env);
            }
            if !framing.is_empty() {
                return io.refuse(Status::PAYLOAD_TOO_LARGE, &[], "an upgrade takes no body", env);
            }
            return io.upgrade(head, handler, env);
        }
        let route = match route(path) {
            Route::Root | Route::Health | Route::Ready | Route::Metrics | Route::Readme if !app.pages => {
                Route::NotFound
            }
            Route::Publish(_) | Route::Poll(_) | Route::Events(_) | Route::BadChannel if !app.push => Route::NotFound,
            // Subscribers are the `/ws/` handler's.
            Route::Subscribe(_) => Route::NotFound,
            route => route,
        };
        let answered = !matches!(route, Route::Publish(_) | Route::BadChannel | Route::NotFound);
        if !framing.is_empty() && answered && matches!(head.method, "GET" | "HEAD") {
            let why = format!("{} {} takes no body", head.method, head.path());
            return io.refuse(Status::PAYLOAD_TOO_LARGE, &[], &why, env);
        }
        // The routes a page on another origin may use (CORS).
        if let Route::Publish(_) | Route::Poll(_) | Route::Events(_) = &route {
            match origin(head, env.settings) {
                Origin::Refused => return io.refuse(Status::FORBIDDEN, &[], "this origin may not use this route", env),
                Origin::Allowed(cors) => io.cors = cors,
                Origin::Absent => {}
            }
            if head.method == "OPTIONS" {
                // A preflight has no body; one that declares it is refused,
                // so that the body is never read as the next request.
                if !framing.is_empty() {
                    return io.refuse(Status::PAYLOAD_TOO_LARGE, &[], "OPTIONS takes no body", env);
                }
                let methods = if let Route::Publish(_) = route { "POST" } else { "GET" };
                return io.preflight(head, methods, env);
            }
        }
        match route {
            Route::Root | Route::Health | Route::Ready | Route::Metrics | Route::Readme
                if !matches!(head.method, "GET" | "HEAD") =>
            {
                io.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET, HEAD")], "use GET", env)
            }
            Route::Root => io.reply(
                head,
                &[("Content-Type", "text/html; charset=utf-8")],
                http::demo_page().as_bytes(),
                env,
            ),
            Route::Readme => io.reply(
                head,
                &[("Content-Type", "text/markdown; charset=utf-8")],
                http::README.as_bytes(),
                env,
            ),
            Route::Health => io.reply(head, &[("Content-Type", "text/plain")], b"ok\n", env),
            // A probe's answer, not a refusal: the connection stays.
            Route::Ready => match (env.ready)() {
                Ok(()) => io.reply(head, &[("Content-Type", "text/plain")], b"ready\n", env),
                Err(why) => io.respond(
                    Status::SERVICE_UNAVAILABLE,
                    &[("Content-Type", "text/plain"), ("Retry-After", "1")],
                    format!("not ready: {why}\n").as_bytes(),
                    head.wants_close(),
                    env,
                ),
            },
            Route::Metrics => {
                let body = metrics::render(
                    env.all_stats,
                    (env.channels)(),
                    (env.broker_stats)(),
                    env.per_ip.stats(),
                );
                io.reply(head, &[("Content-Type", metrics::CONTENT_TYPE)], body.as_bytes(), env)
            }
            Route::Publish(channel) => io.start_publish(head, framing, &channel, since, env),
            Route::Poll(channel) => io.start_poll(head, &channel, env),
            Route::Events(channel) => io.start_events(head, &channel, env),
            Route::BadChannel => io.refuse(
                Status::BAD_REQUEST,
                &[],
                "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)",
                env,
            ),
            Route::Subscribe(_) | Route::NotFound => io.refuse(Status::NOT_FOUND, &[], "no such endpoint", env),
        }
    }

    /// Body: once the whole body is in, submit the publish.
    pub(super) fn on_body(&mut self, env: &mut Env<'_>) -> bool {
        let State::Body { publish, since } = &self.state else {
            return false;
        };
        let (len, since) = (publish.len, *since);
        let buffered = self.io.rbuf.as_ref().map_or(0, ReadBuf::len);
        if buffered < len {
            self.io.want = want(len);
            return false;
        }
        let State::Body { publish, .. } = std::mem::replace(&mut self.state, State::request(since)) else {
            unreachable!("matched above");
        };
        let Publish {
            channel,
            kind,
            close,
            idempotency_key,
            ..
        } = *publish;
        self.io.want = 0;
        let body: Box<[u8]> = match self.io.rbuf.as_mut() {
            Some(rbuf) => {
                let body = rbuf.filled()[..len].into();
                rbuf.consume(len);
                body
            }
            None => Box::default(),
        };
        if kind == MessageKind::Text && std::str::from_utf8(&body).is_err() {
            self.state = self
                .io
                .refuse(Status::BAD_REQUEST, &[], "a text message must be UTF-8", env);
            return false;
        }
        let request = Request::Publish {
            channel,
            kind,
            payload: body,
            idempotency_key,
        };
        env.actions.push(Action::Submit(request));
        self.state = State::Waiting {
            wait: Box::new(Wait::Publish { close }),
            since,
        };
        false
    }

    /// What the broker said to a request this session waited for.
    pub(super) fn on_answer(&mut self, wait: Wait, answer: Answer, env: &mut Env<'_>) -> State {
        match (wait, answer) {
            (Wait::Publish { close }, Answer::Published(Ok(receipt))) => {
                let duplicate = if receipt.duplicate {
                    ",\"duplicate\":true"
                } else {
                    env.stats.published.fetch_add(1, Relaxed);
                    ""
                };
                let body = format!(
                    "{{\"id\":{},\"subscribers\":{}{duplicate}}}",
                    receipt.id, receipt.subscribers
                );
                let headers = [("Content-Type", "application/json")];
                self.io.respond(Status::OK, &headers, body.as_bytes(), close, env)
            }
            (_, Answer::Published(Err(e)) | Answer::Subscribed(Err(e))) => self.io.refuse_broker(e, env),
            (wait, Answer::Subscribed(Ok((sub, snapshot)))) => match wait {
                Wait::Upgrade {
                    response,
                    ws,
                    json,
                    handler,
                    data,
                    grant,
                } => self
                    .io
                    .subscribed_upgrade((response, ws, json, grant), handler, data, sub, snapshot, env),
                Wait::Poll { close, grant, wait_ms } => {
                    self.io.subscribed_poll((close, grant, wait_ms), sub, snapshot, env)
                }
                Wait::Events { grant } => self.io.subscribed_events(grant, sub, snapshot, env),
                Wait::Publish { .. } => {
                    env.actions.push(Action::Unsubscribe(sub));
                    self.io
                        .refuse(Status::INTERNAL_ERROR, &[], "the broker answered another request", env)
                }
            },
            (_, Answer::Published(Ok(_))) => {
                self.io
                    .refuse(Status::INTERNAL_ERROR, &[], "the broker answered another request", env)
            }
        }
    }
}

impl Io {
    /// The broker could not do what was asked: the one place its errors
    /// become statuses. A refusal (nothing was done) is `503` with
    /// `Retry-After`; a publish whose outcome the broker cannot know is
    /// `504`, never a refusal, since it may yet be delivered: a publisher
    /// retries it with the same `Idempotency-Key`.
    pub(super) fn refuse_broker(&mut self, e: HubError, env: &mut Env<'_>) -> State {
        let status = match e {
            HubError::Unconfirmed => Status::GATEWAY_TIMEOUT,
            HubError::TooManyChannels | HubError::Unavailable(_) => Status::SERVICE_UNAVAILABLE,
        };
        self.refuse(status, &[("Retry-After", "1")], &e.to_string(), env)
    }

    /// Answer 200 and keep the connection for the next request unless the
    /// client asked to close.
    fn reply(&mut self, head: &RequestHead<'_, '_>, headers: &[(&str, &str)], body: &[u8], env: &mut Env<'_>) -> State {
        self.respond(Status::OK, headers, body, head.wants_close(), env)
    }

    /// `POST /pub/{channel}`: check the method, the token and the length,
    /// then read the body.
    fn start_publish(
        &mut self,
        head: &RequestHead<'_, '_>,
        framing: BodyFraming,
        channel: &str,
        since: Stamp,
        env: &mut Env<'_>,
    ) -> State {
        if head.method != "POST" {
            return self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "POST")], "use POST", env);
        }
        if let Some(token) = &env.settings.pubsub.publish_token {
            match bearer(head) {
                None => {
                    return self.refuse(
                        Status::UNAUTHORIZED,
                        &[("WWW-Authenticate", "Bearer realm=\"wsreactor\"")],
                        "publishing needs Authorization: Bearer <token>",
                        env,
                    )
                }
                Some(given) if same_token(given, token.as_bytes()) => {}
                // Not the static token: a JWT with the `pub` scope may do.
                Some(given) => match env.settings.auth.publish(given, channel, env.date.secs()) {
                    Ok(_) => {}
                    Err(Denied::Malformed | Denied::NoSecret) => {
                        return self.refuse(Status::FORBIDDEN, &[], "wrong publish token", env)
                    }
                    Err(denied) => return self.refuse(Status::FORBIDDEN, &[], &denied.to_string(), env),
                },
            }
        }
        let len = match framing {
            BodyFraming::Length(n) => n,
            BodyFraming::None => {
                return self.refuse(Status::LENGTH_REQUIRED, &[], "send the body with Content-Length", env)
            }
        };
        let max = env.settings.read_limits.max_message_size;
        let Some(len) = usize::try_from(len).ok().filter(|&n| n <= max) else {
            return self.refuse(
                Status::PAYLOAD_TOO_LARGE,
                &[],
                "message larger than max_message_size",
                env,
            );
        };
        // draft-ietf-httpapi-idempotency-key-header: a retry with the same
        // key is answered with the first publish's id, not published again.
        let idempotency_key = match head.single("idempotency-key") {
            Ok(None) => None,
            Ok(Some(v)) => match idempotency::parse_key(v) {
                Some(key) => Some(key.into()),
                None => {
                    let why = "Idempotency-Key must be 1 to 255 visible ASCII characters, quoted or not";
                    return self.refuse(Status::BAD_REQUEST, &[], why, env);
                }
            },
            Err(_) => return self.refuse(Status::BAD_REQUEST, &[], "more than one Idempotency-Key", env),
        };
        let kind = match head.single("content-type").ok().flatten() {
            Some(ct) if is_text(ct) => MessageKind::Text,
            _ => MessageKind::Binary,
        };
        // RFC 9110 §10.1.1: a client waiting for 100 sends the body after
        // it; an HTTP/1.0 client knows no 100, and its expectation MUST be
        // ignored.
        if head.minor_version >= 1 && head.has_token("expect", "100-continue") {
            self.out
                .buf(env.pool)
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.want = want(len);
        State::Body {
            publish: Box::new(Publish {
                channel: channel.into(),
                kind,
                len,
                close: head.wants_close(),
                idempotency_key,
            }),
            since,
        }
    }
}

/// Does the request try to be a WebSocket upgrade at all? One that does is
/// validated (and refused with the RFC's status if wrong); a plain GET is not.
fn is_upgrade_attempt(head: &RequestHead<'_, '_>) -> bool {
    head.values("upgrade").next().is_some()
        || head.values("sec-websocket-key").next().is_some()
        || head.has_token("connection", "upgrade")
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
    let Some((kind, sub)) = mime.split_once_bytes(b'/') else {
        return false;
    };
    kind == b"text"
        || sub.ends_with(b"+json")
        || sub.ends_with(b"+xml")
        || (kind == b"application" && matches!(sub, b"json" | b"xml" | b"javascript" | b"x-www-form-urlencoded"))
}

/// `split_once` for a byte string.
trait SplitOnceBytes {
    fn split_once_bytes(&self, sep: u8) -> Option<(&[u8], &[u8])>;
}

impl SplitOnceBytes for Vec<u8> {
    fn split_once_bytes(&self, sep: u8) -> Option<(&[u8], &[u8])> {
        let at = self.iter().position(|&b| b == sep)?;
        Some((&self[..at], &self[at + 1..]))
    }
}

/// Compare without an early exit, so timing does not reveal a prefix.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"secret", b"secret"));
        assert!(!same_token(b"secret", b"secreT"));
        assert!(!same_token(b"secret", b"secret2"));
    }
}
