//! The `Request` and `Body` states: read a request head and route it: a
//! WebSocket upgrade to its handler ([`super::upgrade`]), any other
//! request to its HTTP handler ([`crate::app::HttpHandler`]), whose steps
//! ([`Next`]) this module carries out: answer, read the body, ask the
//! broker, park, stream.

use super::expiry::Expiry;
use super::handler::{with_cx, with_cx_headers, Body, Headers, HttpWait, Parked, Streaming};
use super::{want, Access, Action, Env, Flags, Io, Session, State};
use crate::app::{AnyNext, Next, Origin, Part, Request, Response, UserData};
use crate::config::MAX_TIMEOUT;
use crate::protocol::http::{write_head, BodyFraming, RequestHead, Status, MAX_HEADERS};
use crate::pubsub::Subscription;
use crate::reactor::buffer::ReadBuf;
use crate::reactor::stamp::Stamp;
use std::time::Duration;

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
                self.io.flags.replace(Flags::CLOSE, head.wants_close());
                match head.check() {
                    Ok(framing) if self.io.hold.is_proxy() => match self.io.count_client(&head, env) {
                        Ok(()) => self.route(&head, framing, since, env),
                        Err(refused) => refused,
                    },
                    Ok(framing) => self.route(&head, framing, since, env),
                    Err(e) => self.io.refuse(e.status(), &[], &e.to_string(), env),
                }
            }
            Err(e) => self.io.refuse(e.status(), &[], &e.to_string(), env),
        }
    }

    /// Route a request whose head passed [`RequestHead::check`]: an
    /// upgrade (or any request to a path only a WebSocket handler takes)
    /// to the WebSocket handler, the rest to the HTTP handler, else 404.
    fn route(&mut self, head: &RequestHead<'_, '_>, framing: BodyFraming, since: Stamp, env: &mut Env<'_>) -> State {
        let app = env.app;
        let path = head.path();
        let http = app.http_route(path);
        if let Some(handler) = app
            .websocket_route(path)
            .filter(|_| http.is_none() || is_upgrade_attempt(head))
        {
            let io = &mut self.io;
            // RFC 6455 §10.2: a page's WebSocket comes with its Origin.
            if Origin::of(head, env.settings.allowed_origins.as_deref()) == Origin::Refused {
                return io.refuse(Status::FORBIDDEN, &[], "this origin may not open a WebSocket here", env);
            }
            if !framing.is_empty() {
                return io.refuse(Status::PAYLOAD_TOO_LARGE, &[], "an upgrade takes no body", env);
            }
            return io.upgrade(head, handler, env);
        }
        let Some(handler) = http else {
            return self.io.refuse(Status::NOT_FOUND, &[], "no such endpoint", env);
        };
        let content_length = match framing {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::None => None,
        };
        let request = Request {
            head,
            rest: app.http_rest(handler, path),
            content_length,
        };
        let (step, headers) = with_cx_headers(&mut self.io.out, env, false, |cx| {
            app.http_handler(handler).request(&request, cx)
        });
        let headers = headers.unwrap_or_default();
        // Only a handler that reads the body may have one: any other
        // request that declares one is answered and the connection closed,
        // so that its body is never read as a request (RFC 9112 §6.3; RFC
        // 9110 §9.3.1 gives a GET's body no meaning).
        let step = match step {
            Next::ReadBody { data, limit } => {
                let body = (data, limit, content_length, headers);
                return self.io.read_body(handler, body, head, since, env);
            }
            Next::Respond(r) if !framing.is_empty() => {
                let r = if r.status().0 < 400 {
                    let why = format!("{} {} takes no body", head.method, head.path());
                    Response::refuse(Status::PAYLOAD_TOO_LARGE, &why).headers(headers)
                } else {
                    r.close()
                };
                Next::Respond(r)
            }
            step if !framing.is_empty() => {
                self.io.give_back(step, env);
                let why = format!("{} {} takes no body", head.method, head.path());
                Next::Respond(Response::refuse(Status::PAYLOAD_TOO_LARGE, &why).headers(headers))
            }
            step => step,
        };
        self.io.step(handler, step, env.stamp, env)
    }

    /// Body: once the whole body is in, hand it to the handler.
    pub(super) fn on_body(&mut self, env: &mut Env<'_>) -> bool {
        let State::Body { body, .. } = &self.state else {
            return false;
        };
        let buffered = self.io.rbuf.as_ref().map_or(0, ReadBuf::len);
        if buffered < body.len {
            self.io.want = want(body.len);
            return false;
        }
        self.state = match self.take_state() {
            State::Body { body, since } => (*body).complete(since, &mut self.io, env),
            other => other,
        };
        matches!(self.state, State::Request { .. })
    }
}

impl Body {
    /// The whole body is in: its handler's next step. The whole request,
    /// body and broker, is within `request_timeout` from `since`.
    fn complete(self, since: Stamp, io: &mut Io, env: &mut Env<'_>) -> State {
        let Body { handler, data, len, .. } = self;
        io.want = 0;
        let app = env.app;
        let rbuf = io.rbuf.as_ref().map_or(&[][..], |r| &r.filled()[..len]);
        let step = with_cx(&mut io.out, env, false, |cx| {
            app.http_handler(handler).body(data, rbuf, cx)
        });
        if let Some(rbuf) = io.rbuf.as_mut() {
            rbuf.consume(len);
        }
        io.step(handler, step, since, env)
    }
}

impl Io {
    /// Carry out a handler's step: the state it leads to. A broker request
    /// it makes is waited for from `since`.
    pub(super) fn step(&mut self, handler: u16, step: AnyNext, since: Stamp, env: &mut Env<'_>) -> State {
        self.step_holding(handler, step, since, Vec::new(), env)
    }

    /// [`step`](Self::step) for a request that holds subscriptions
    /// ([`crate::app::Context::hold`]): they go on waiting with it, join
    /// its park or stream, or go back.
    pub(super) fn step_holding(
        &mut self,
        handler: u16,
        step: AnyNext,
        since: Stamp,
        mut held: Vec<Subscription>,
        env: &mut Env<'_>,
    ) -> State {
        if matches!(step, Next::Respond(_) | Next::ReadBody { .. }) {
            env.actions.extend(held.drain(..).map(Action::Unsubscribe));
        }
        match step {
            Next::Respond(r) => self.answer(r, env),
            // The body was the request step's to ask for.
            Next::ReadBody { .. } => self.refuse(Status::INTERNAL_ERROR, &[], "no body left to read", env),
            Next::Ask { data, request } => {
                env.actions.push(Action::Submit(request));
                State::Waiting {
                    wait: Box::new(super::Wait::Http(HttpWait { handler, data, held })),
                    since,
                }
            }
            Next::Park {
                data,
                subscription,
                wait,
                expires,
            } => State::Parked {
                parked: Box::new(Parked {
                    handler,
                    data,
                    sub: subscription,
                    held,
                    wait_ms: millis(wait),
                    expiry: expires.map(|exp| Expiry::new(exp, env)),
                    ready: false,
                }),
                since: env.stamp,
            },
            Next::Stream {
                data,
                subscription,
                head,
                heartbeat,
                expires,
            } => {
                if let Err(e) = check(&head) {
                    env.actions.push(Action::Unsubscribe(subscription));
                    env.actions.extend(held.into_iter().map(Action::Unsubscribe));
                    log::warn!("a handler's stream head is malformed: {e}: 500");
                    return self.answer(Response::refuse(Status::INTERNAL_ERROR, "malformed response"), env);
                }
                // The body runs until the connection closes, so the head says so.
                self.write_response_head(&head, None, true, env);
                self.want = 0;
                // RFC 9110 §9.3.2: a HEAD's answer is the head alone.
                if self.flags.replace(Flags::HEAD_ONLY, false) {
                    env.actions.push(Action::Unsubscribe(subscription));
                    env.actions.extend(held.into_iter().map(Action::Unsubscribe));
                    return State::closing(env.stamp);
                }
                self.write_body(head.body, env);
                State::Stream {
                    stream: Box::new(Streaming {
                        handler,
                        data,
                        sub: subscription,
                        held,
                        heartbeat_ms: millis(heartbeat),
                        expiry: expires.map(|exp| Expiry::new(exp, env)),
                    }),
                    last_event: env.stamp,
                }
            }
        }
    }

    /// A step that is not carried out: a subscription in it goes back.
    pub(super) fn give_back(&mut self, step: AnyNext, env: &mut Env<'_>) {
        if let Next::Park { subscription, .. } | Next::Stream { subscription, .. } = step {
            env.actions.push(Action::Unsubscribe(subscription));
        }
    }

    /// `ReadBody` from the request step: the declared body, within the
    /// handler's limit, is read next; `100 Continue` first if asked.
    fn read_body(
        &mut self,
        handler: u16,
        (data, limit, content_length, headers): (UserData, usize, Option<u64>, Headers),
        head: &RequestHead<'_, '_>,
        since: Stamp,
        env: &mut Env<'_>,
    ) -> State {
        // The body is held whole at the front of the read buffer, whose
        // wants are counted in a u32.
        let limit = limit.min(u32::MAX as usize);
        let len = content_length.unwrap_or(0);
        let Some(len) = usize::try_from(len).ok().filter(|&n| n <= limit) else {
            let why = format!("the body is larger than {limit} bytes");
            return self.answer(Response::refuse(Status::PAYLOAD_TOO_LARGE, &why).headers(headers), env);
        };
        // RFC 9110 §10.1.1: a client waiting for 100 sends the body after
        // it; an HTTP/1.0 client knows no 100, and its expectation MUST be
        // ignored.
        if len > 0 && head.minor_version >= 1 && head.has_token("expect", "100-continue") {
            self.out
                .buf(env.pool)
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.want = want(len);
        State::Body {
            body: Box::new(Body {
                handler,
                data,
                len,
                headers,
            }),
            since,
        }
    }

    /// Answer with `response`; the next state is `Closing` if it or the
    /// client closes, else `Request` again with its timer started now.
    pub(super) fn answer(&mut self, response: Response, env: &mut Env<'_>) -> State {
        let response = match check(&response) {
            Ok(()) => response,
            Err(e) => {
                log::warn!("a handler's response is malformed: {e}: 500");
                Response::refuse(Status::INTERNAL_ERROR, "malformed response")
            }
        };
        let close = response.close || self.flags.get(Flags::CLOSE);
        let status = response.status;
        // A refusal is an error of the request; a probe's 503 is an answer.
        if response.close && status.0 >= 400 {
            env.stats.count_http_error(status);
        }
        // RFC 9110 §6.4.1: a 204 or a 304 has no body, and no length of one.
        let bodiless = status == Status::NO_CONTENT || status == Status::NOT_MODIFIED;
        let length = (!bodiless).then_some(response.body_len());
        self.write_response_head(&response, length, close, env);
        if !self.flags.replace(Flags::HEAD_ONLY, false) && !bodiless {
            self.write_body(response.body, env);
        }
        if close {
            self.want = 0;
            State::closing(env.stamp)
        } else {
            State::request(env.stamp)
        }
    }

    fn write_response_head(&mut self, r: &Response, length: Option<usize>, close: bool, env: &mut Env<'_>) {
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|(n, v)| (&**n, v.as_str())).collect();
        self.write_head(r.status, &headers, length, close, env);
    }

    fn write_body(&mut self, body: Vec<Part>, env: &mut Env<'_>) {
        for part in body {
            match part {
                Part::Owned(bytes) => self.out.buf(env.pool).extend_from_slice(&bytes),
                Part::Shared(bytes) => self.out.push_shared(bytes, env.pool),
            }
        }
    }

    /// A response head, counted for the access log.
    pub(super) fn write_head(
        &mut self,
        status: Status,
        headers: &[(&str, &str)],
        length: Option<usize>,
        close: bool,
        env: &mut Env<'_>,
    ) {
        if env.settings.access_log {
            let status = status.0;
            env.actions
                .push(Action::Access(Access::Response { status, bytes: length }));
        }
        write_head(self.out.buf(env.pool), status, headers, length, close, env.date);
    }
}

/// A duration a handler gives, in milliseconds between 1 and
/// [`MAX_TIMEOUT`], as far as the worker's clock compares stamps (a wait
/// of "forever" or of nothing would put a deadline behind now).
fn millis(d: Duration) -> u32 {
    let max = u32::try_from(MAX_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).clamp(1, max)
}

/// Is `r` a response the session can frame? Its status is final (a 1xx
/// would leave the request unanswered), its header names are tokens and
/// its values hold no CR, LF or NUL (RFC 9110 §5.5: they would split the
/// head), and it sets none of the headers that frame the message, which
/// are the session's.
fn check(r: &Response) -> Result<(), String> {
    if r.status().0 < 200 || r.status().0 > 999 {
        return Err(format!("status {}", r.status().0));
    }
    for (name, value) in &r.headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("header name {name:?}"));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(format!("the value of {name}"));
        }
        for framing in ["content-length", "transfer-encoding", "connection", "date"] {
            if name.eq_ignore_ascii_case(framing) {
                return Err(format!("{name} is the session's"));
            }
        }
    }
    Ok(())
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Does the request try to be a WebSocket upgrade at all? One that does is
/// validated (and refused with the RFC's status if wrong); a plain GET is not.
fn is_upgrade_attempt(head: &RequestHead<'_, '_>) -> bool {
    head.values("upgrade").next().is_some()
        || head.values("sec-websocket-key").next().is_some()
        || head.has_token("connection", "upgrade")
}
