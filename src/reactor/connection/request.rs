//! The `Request` and `Body` states: read a request head, route it, and
//! answer it, upgrade it, read a publish's body, or hand it to a feed.

use super::{want, Connection, Ctx, State};
use crate::http::{self, metrics, route, Route};
use crate::protocol::http::{BodyFraming, HeadScanner, RequestHead, Status, MAX_HEADERS};
use crate::protocol::MessageKind;
use crate::reactor::buffer::ReadBuf;
use std::sync::atomic::Ordering::Relaxed;

/// A publish whose body is being read.
#[derive(Debug)]
pub struct Publish {
    channel: Box<str>,
    kind: MessageKind,
    len: usize,
    close: bool,
}

impl Connection {
    /// Request: find the end of the head, then route it. True when a head
    /// was consumed and what follows it must be processed too.
    pub(super) fn process_head(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let Some(mut rbuf) = self.rbuf.take() else {
            return false;
        };
        let mut more = self.handle_head(&mut rbuf, ctx);
        if more && matches!(self.state, State::Body { .. }) {
            more = self.handle_body(&mut rbuf, ctx);
        }
        self.rbuf = Some(rbuf);
        more
    }

    /// Body: publish once the whole body is in.
    pub(super) fn process_body(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let Some(mut rbuf) = self.rbuf.take() else {
            return false;
        };
        let more = self.handle_body(&mut rbuf, ctx);
        self.rbuf = Some(rbuf);
        more
    }

    fn handle_head(&mut self, rbuf: &mut ReadBuf, ctx: &mut Ctx<'_>) -> bool {
        let State::Request { scanner } = &mut self.state else {
            return false;
        };
        let limit = ctx.settings.max_request_head;
        self.want = want(limit);
        // Every method token starts with a letter (RFC 9110 §9.1); anything
        // else (a TLS ClientHello, binary noise) is refused at once instead
        // of waiting for a blank line that will never come.
        if rbuf.filled().first().is_some_and(|b| !b.is_ascii_alphabetic()) {
            return self.refuse(Status::BAD_REQUEST, &[], "not an HTTP/1.1 request", ctx);
        }
        let head_len = match scanner.scan(rbuf.filled(), limit) {
            Ok(None) => return false,
            Ok(Some(n)) => n,
            Err(e) => return self.refuse(e.status(), &[], &e.to_string(), ctx),
        };
        let more = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match RequestHead::parse(&rbuf.filled()[..head_len], &mut headers) {
                Ok(head) => {
                    // RFC 9110 §9.3.2: the answer to HEAD is the GET's head
                    // alone, whatever the status.
                    self.head_only = head.method == "HEAD";
                    let more = match head.check() {
                        Ok(framing) => self.route(&head, framing, ctx),
                        Err(e) => self.refuse(e.status(), &[], &e.to_string(), ctx),
                    };
                    self.head_only = false;
                    more
                }
                Err(e) => self.refuse(e.status(), &[], &e.to_string(), ctx),
            }
        };
        // Bytes after the head belong to the next state (frames after a
        // 101, a body, the next keep-alive request).
        rbuf.consume(head_len);
        more
    }

    /// Answer, upgrade or start a request whose head passed
    /// [`RequestHead::check`]. Only a publish takes a body: any other
    /// request that declares one is refused and the connection closed, so
    /// its body is never read as a request (RFC 9112 §6.3; RFC 9110 §9.3.1
    /// gives a GET's body no meaning). Every other method on those routes,
    /// and every unknown route, is refused (and closed) below anyway.
    fn route(&mut self, head: &RequestHead<'_, '_>, framing: BodyFraming, ctx: &mut Ctx<'_>) -> bool {
        let route = route(head.path());
        let answered = !matches!(route, Route::Publish(_) | Route::BadChannel | Route::NotFound);
        if !framing.is_empty() && answered && matches!(head.method, "GET" | "HEAD") {
            let why = format!("{} {} takes no body", head.method, head.path());
            return self.refuse(Status::PAYLOAD_TOO_LARGE, &[], &why, ctx);
        }
        match route {
            Route::Root if is_upgrade_attempt(head) => self.upgrade(head, None, ctx),
            Route::Root | Route::Health | Route::Metrics if !matches!(head.method, "GET" | "HEAD") => {
                self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "GET, HEAD")], "use GET", ctx)
            }
            Route::Root => self.reply(
                head,
                &[("Content-Type", "text/html; charset=utf-8")],
                http::DEMO_PAGE.as_bytes(),
                ctx,
            ),
            Route::Health => self.reply(head, &[("Content-Type", "text/plain")], b"ok\n", ctx),
            Route::Metrics => {
                let body = metrics::render(ctx.all_stats, ctx.hub);
                self.reply(head, &[("Content-Type", metrics::CONTENT_TYPE)], body.as_bytes(), ctx)
            }
            Route::Publish(channel) => self.start_publish(head, framing, &channel, ctx),
            Route::Subscribe(channel) => self.upgrade(head, Some(&channel), ctx),
            Route::Poll(channel) => self.start_poll(head, &channel, ctx),
            Route::Events(channel) => self.start_events(head, &channel, ctx),
            Route::BadChannel => self.refuse(
                Status::BAD_REQUEST,
                &[],
                "channel names are 1 to 128 of A-Z a-z 0-9 _ . : - (percent-encoded or not)",
                ctx,
            ),
            Route::NotFound => self.refuse(Status::NOT_FOUND, &[], "no such endpoint", ctx),
        }
    }

    /// Answer 200 and keep the connection for the next request unless the
    /// client asked to close.
    pub(super) fn reply(
        &mut self,
        head: &RequestHead<'_, '_>,
        headers: &[(&str, &str)],
        body: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let close = head.wants_close();
        self.respond(Status::OK, headers, body, close, ctx);
        !close
    }

    /// Answer a refused request and close; nothing after it is processed.
    pub(super) fn refuse(&mut self, status: Status, headers: &[(&str, &str)], why: &str, ctx: &mut Ctx<'_>) -> bool {
        ctx.stats.count_http_error(status);
        let mut all: Vec<(&str, &str)> = vec![("Content-Type", "text/plain")];
        all.extend_from_slice(headers);
        let body = format!("{} {}: {why}\n", status.0, status.reason());
        self.respond(status, &all, body.as_bytes(), true, ctx);
        false
    }

    /// `POST /pub/{channel}`: check the method, the token and the length,
    /// then read the body.
    fn start_publish(
        &mut self,
        head: &RequestHead<'_, '_>,
        framing: BodyFraming,
        channel: &str,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        if head.method != "POST" {
            return self.refuse(Status::METHOD_NOT_ALLOWED, &[("Allow", "POST")], "use POST", ctx);
        }
        if let Some(token) = &ctx.settings.pubsub.publish_token {
            match bearer(head) {
                None => {
                    return self.refuse(
                        Status::UNAUTHORIZED,
                        &[("WWW-Authenticate", "Bearer realm=\"wsreactor\"")],
                        "publishing needs Authorization: Bearer <token>",
                        ctx,
                    )
                }
                Some(given) if !same_token(given, token.as_bytes()) => {
                    return self.refuse(Status::FORBIDDEN, &[], "wrong publish token", ctx)
                }
                Some(_) => {}
            }
        }
        let len = match framing {
            BodyFraming::Length(n) => n,
            BodyFraming::None => {
                return self.refuse(Status::LENGTH_REQUIRED, &[], "send the body with Content-Length", ctx)
            }
        };
        let max = ctx.settings.read_limits.max_message_size;
        let Some(len) = usize::try_from(len).ok().filter(|&n| n <= max) else {
            return self.refuse(
                Status::PAYLOAD_TOO_LARGE,
                &[],
                "message larger than max_message_size",
                ctx,
            );
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
                .buf(ctx.pool)
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.state = State::Body {
            publish: Box::new(Publish {
                channel: channel.into(),
                kind,
                len,
                close: head.wants_close(),
            }),
        };
        self.want = want(len);
        true
    }

    fn handle_body(&mut self, rbuf: &mut ReadBuf, ctx: &mut Ctx<'_>) -> bool {
        let State::Body { publish } = &self.state else {
            return false;
        };
        if rbuf.len() < publish.len {
            self.want = want(publish.len);
            return false;
        }
        let Publish {
            channel,
            kind,
            len,
            close,
        } = *std::mem::replace(
            &mut self.state,
            State::Request {
                scanner: HeadScanner::default(),
            },
        )
        .into_publish();
        self.want = 0;
        let body = &rbuf.filled()[..len];
        if kind == MessageKind::Text && std::str::from_utf8(body).is_err() {
            rbuf.consume(len);
            return self.refuse(Status::BAD_REQUEST, &[], "a text message must be UTF-8", ctx);
        }
        let result = ctx.hub.publish(&channel, kind, body.into(), ctx.now);
        rbuf.consume(len);
        match result {
            Ok(receipt) => {
                ctx.stats.published.fetch_add(1, Relaxed);
                let body = format!("{{\"id\":{},\"subscribers\":{}}}", receipt.id, receipt.subscribers);
                self.respond(
                    Status::OK,
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                    close,
                    ctx,
                );
                !close
            }
            Err(e) => self.refuse(Status::SERVICE_UNAVAILABLE, &[], &e.to_string(), ctx),
        }
    }
}

impl State {
    fn into_publish(self) -> Box<Publish> {
        match self {
            State::Body { publish } => publish,
            _ => unreachable!("called in the Body state only"),
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

/// `text/*` and JSON are text; everything else is binary.
fn is_text(content_type: &[u8]) -> bool {
    let mime = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    mime.len() >= 5 && mime[..5].eq_ignore_ascii_case(b"text/") || mime.eq_ignore_ascii_case(b"application/json")
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
fn bearer<'b>(head: &RequestHead<'b, '_>) -> Option<&'b [u8]> {
    let value = head.single("authorization").ok().flatten()?.trim_ascii();
    let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme.eq_ignore_ascii_case(b"bearer").then(|| token.trim_ascii())
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
        assert!(is_text(b"text/plain"));
        assert!(is_text(b"Text/HTML; charset=utf-8"));
        assert!(is_text(b"application/json"));
        assert!(!is_text(b"application/octet-stream"));
        assert!(!is_text(b"application/jsonx"));
        assert!(!is_text(b""));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"secret", b"secret"));
        assert!(!same_token(b"secret", b"secreT"));
        assert!(!same_token(b"secret", b"secret2"));
    }
}
