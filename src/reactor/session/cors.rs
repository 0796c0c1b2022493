//! Browser origins: which pages may use a route, and the CORS answers
//! (Fetch standard, "CORS protocol") that let a page on another origin
//! read a long poll, an event stream or a publish's answer.
//!
//! The list is `[http] allowed_origins`; none configured means any. A
//! request without `Origin` is not a page's and is not checked. A page on
//! an origin not listed gets 403 on the WebSocket, poll, SSE and publish
//! routes, preflight included, so that a form post from any site cannot
//! publish. With `[http] allow_credentials`, responses carry
//! `Access-Control-Allow-Credentials: true` (only with a listed origin:
//! the configuration refuses it for any).

use super::{Access, Action, Env, Io, State};
use crate::protocol::http::{write_head, RequestHead, Status};
use crate::reactor::settings::Settings;

/// Which `Access-Control-Allow-Origin` the current request's answers
/// carry, in two bytes (every connection holds one): none, `*`, or the
/// listed origin at index `n - 2`, echoed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cors(u16);

impl Cors {
    /// Not a cross-origin route, or no `Origin`.
    pub(super) const NONE: Cors = Cors(0);
    /// `*`: any origin may read it.
    const ANY: Cors = Cors(1);

    /// The listed origin at `index` (a list is at most 1000 long).
    fn listed(index: usize) -> Cors {
        u16::try_from(index + 2).map_or(Cors::NONE, Cors)
    }

    /// The listed origin's index, if it is one.
    fn index(self) -> Option<usize> {
        (self.0 >= 2).then(|| usize::from(self.0 - 2))
    }
}

/// What a request's `Origin` (RFC 6454 §7) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// No `Origin`: not a browser page's request.
    Absent,
    /// A page that may use the route.
    Allowed(Cors),
    /// A page that may not, or two `Origin` headers.
    Refused,
}

/// Judge the request's `Origin` against `[http] allowed_origins`.
pub(super) fn origin(head: &RequestHead<'_, '_>, settings: &Settings) -> Origin {
    let mut origins = head.values("origin");
    let origin = match (origins.next(), origins.next()) {
        (None, _) => return Origin::Absent,
        (Some(origin), None) => origin,
        (Some(_), Some(_)) => return Origin::Refused,
    };
    let Some(allowed) = &settings.allowed_origins else {
        return Origin::Allowed(Cors::ANY);
    };
    match allowed.iter().position(|a| a.as_bytes().eq_ignore_ascii_case(origin)) {
        Some(i) => Origin::Allowed(Cors::listed(i)),
        None => Origin::Refused,
    }
}

/// The headers a preflight asks about (Fetch's CORS-safelisted ones need
/// no mention): the token, a publish's type, an event stream's cursor.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

impl Io {
    /// The CORS headers of the current request's answers.
    fn cors_headers<'s>(&self, settings: &'s Settings, out: &mut Vec<(&'s str, &'s str)>) {
        let origin = match self.cors.index() {
            _ if self.cors == Cors::NONE => return,
            None => "*",
            Some(i) => match settings.allowed_origins.as_deref().and_then(|a| a.get(i)) {
                Some(o) => o.as_str(),
                None => return,
            },
        };
        out.push(("Access-Control-Allow-Origin", origin));
        if self.cors.index().is_some() {
            // Caches must not give one origin's answer to another.
            out.push(("Vary", "Origin"));
            if settings.allow_credentials {
                out.push(("Access-Control-Allow-Credentials", "true"));
            }
        }
        out.push(("Access-Control-Expose-Headers", "X-Last-Id"));
    }

    /// Write a response head with `headers` and the request's CORS headers.
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
        if self.cors == Cors::NONE {
            write_head(self.out.buf(env.pool), status, headers, length, close, env.date);
            return;
        }
        let settings = env.settings;
        let mut all = headers.to_vec();
        self.cors_headers(settings, &mut all);
        write_head(self.out.buf(env.pool), status, &all, length, close, env.date);
    }

    /// `OPTIONS` on a cross-origin route: the preflight of a request with
    /// a token or a Last-Event-ID, answered for `methods`.
    pub(super) fn preflight(&mut self, head: &RequestHead<'_, '_>, methods: &'static str, env: &mut Env<'_>) -> State {
        if self.cors == Cors::NONE {
            // Not a browser's preflight: OPTIONS as a plain request.
            let allow = format!("{methods}, OPTIONS");
            return self.respond(Status::NO_CONTENT, &[("Allow", &allow)], b"", head.wants_close(), env);
        }
        let headers = [
            ("Access-Control-Allow-Methods", methods),
            ("Access-Control-Allow-Headers", ALLOW_HEADERS),
            ("Access-Control-Max-Age", "600"),
        ];
        self.respond(Status::NO_CONTENT, &headers, b"", head.wants_close(), env)
    }
}
