//! The CORS layer of the push server's routes (Fetch standard, "CORS
//! protocol"): which pages may publish, poll or stream, and the headers
//! that let a page on another origin read the answers.
//!
//! A page on an origin not listed in `[http] allowed_origins` gets 403 on
//! these routes, preflight included, so that a form post from any site
//! cannot publish ([`Origin`] is the rule, the same one the WebSocket
//! upgrades follow). With `[http] allow_credentials`, answers carry
//! `Access-Control-Allow-Credentials: true` (only with a listed origin:
//! the configuration refuses it for any).

use crate::app::{Context, Origin, Request, Response};
use crate::protocol::http::Status;
use crate::reactor::settings::Settings;
use std::borrow::Cow;

/// The headers every answer to one request carries.
pub(super) type Headers = Vec<(Cow<'static, str>, String)>;

/// What a preflight may ask to send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

/// A request to a cross-origin route: whether it may, and the headers
/// its answers carry if so.
pub(super) fn check(request: &Request<'_, '_>, settings: &Settings) -> Result<Headers, Response> {
    let origin = match Origin::of(request.head(), settings.allowed_origins.as_deref()) {
        Origin::Absent => return Ok(Headers::new()),
        Origin::Refused => {
            return Err(Response::refuse(
                Status::FORBIDDEN,
                "this origin may not use this route",
            ))
        }
        Origin::Any => "*",
        Origin::Listed(i) => match settings.allowed_origins.as_deref().and_then(|a| a.get(i)) {
            Some(o) => o.as_str(),
            None => return Ok(Headers::new()),
        },
    };
    let mut headers: Headers = vec![("Access-Control-Allow-Origin".into(), origin.to_string())];
    if origin != "*" {
        headers.push(("Vary".into(), "Origin".into()));
        if settings.allow_credentials {
            headers.push(("Access-Control-Allow-Credentials".into(), "true".into()));
        }
    }
    // A page reads a poll's cursor from X-Last-Id.
    headers.push(("Access-Control-Expose-Headers".into(), "X-Last-Id".into()));
    Ok(headers)
}

/// The answer to `OPTIONS` on a route that takes `methods`: a preflight
/// (Fetch standard §3.2.2) when a page asks, else the methods it allows.
pub(super) fn preflight(cors: Headers, methods: &'static str) -> Response {
    let response = Response::new(Status::NO_CONTENT);
    if cors.is_empty() {
        return response.header("Allow", format!("{methods}, OPTIONS"));
    }
    response
        .header("Access-Control-Allow-Methods", methods)
        .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
        .header("Access-Control-Max-Age", "600")
        .headers(cors)
}

/// The layer in front of a route taking `methods`: a refused origin is
/// 403, a preflight is answered, and anything else goes on with the
/// headers its answers carry, the session's own answers included (a 408
/// for a slow body, a 413 for a body the route does not read).
pub(super) fn layer(
    request: &Request<'_, '_>,
    cx: &mut Context<'_>,
    methods: &'static str,
) -> Result<Headers, Response> {
    let cors = check(request, cx.settings())?;
    cx.answer_headers(cors.clone());
    if request.method() == "OPTIONS" {
        return Err(preflight(cors, methods));
    }
    Ok(cors)
}
