//! Plain HTTP on the server's connections: which request target is what,
//! the metrics page and the demo page.
//!
//! The reactor parses a request head and asks [`route`] what it means; the
//! protocol layer ([`crate::protocol::handshake`]) then validates upgrades.

pub mod metrics;

use crate::pubsub::channel_name;
use std::borrow::Cow;

/// The demo page served at `GET /`, embedded in the binary, with the
/// server's version written in (once).
pub fn demo_page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| include_str!("demo.html").replace("{{VERSION}}", env!("CARGO_PKG_VERSION")))
}

/// The README, served at `GET /readme` (the demo page links to it), so
/// that the documentation of the running version is at hand offline.
pub const README: &str = include_str!("../../README.md");

/// What a request target names. Channel names are percent-decoded
/// ([`channel_name`]), so they borrow from the path only when they had no
/// escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/`: the WebSocket echo endpoint, or the demo page for a plain GET.
    Root,
    /// `/healthz`: liveness, a plain 200.
    Health,
    /// `GET /readyz`: 200 while the broker is reachable, else 503.
    Ready,
    /// `/metrics`: Prometheus text format.
    Metrics,
    /// `/readme`: the README (Markdown).
    Readme,
    /// `POST /pub/{channel}`.
    Publish(Cow<'a, str>),
    /// `/ws/{channel}`: a WebSocket subscriber.
    Subscribe(Cow<'a, str>),
    /// `/poll/{channel}`: long polling.
    Poll(Cow<'a, str>),
    /// `/sse/{channel}`: Server-Sent Events.
    Events(Cow<'a, str>),
    /// A channel endpoint with a name outside `[A-Za-z0-9_.:-]{1,128}`
    /// (after percent-decoding), or a bad escape.
    BadChannel,
    /// Anything else: 404.
    NotFound,
}

/// Map a request path (without query) to its route.
pub fn route<'a>(path: &'a str) -> Route<'a> {
    match path {
        "/" => return Route::Root,
        "/healthz" => return Route::Health,
        "/readyz" => return Route::Ready,
        "/metrics" => return Route::Metrics,
        "/readme" => return Route::Readme,
        _ => {}
    }
    type Make<'a> = fn(Cow<'a, str>) -> Route<'a>;
    let routes: [(&str, Make<'a>); 4] = [
        ("/pub/", Route::Publish),
        ("/ws/", Route::Subscribe),
        ("/poll/", Route::Poll),
        ("/sse/", Route::Events),
    ];
    for (prefix, make) in routes {
        if let Some(segment) = path.strip_prefix(prefix) {
            return channel_name(segment).map_or(Route::BadChannel, make);
        }
    }
    Route::NotFound
}

/// A query parameter that should be a number is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotANumber;

/// The value of `key` in a query string as a number: `Ok(None)` when absent,
/// `Err` when present but not a non-negative integer.
pub fn query_u64(query: Option<&str>, key: &str) -> Result<Option<u64>, NotANumber> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            return v.parse().map(Some).map_err(|_| NotANumber);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_paths() {
        assert_eq!(route("/"), Route::Root);
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/readyz"), Route::Ready);
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/nope"), Route::NotFound);
        assert_eq!(route("/healthz/"), Route::NotFound);
        assert_eq!(route("/pub/news"), Route::Publish("news".into()));
        assert_eq!(route("/ws/a.b:c-d_1"), Route::Subscribe("a.b:c-d_1".into()));
        assert_eq!(route("/ws/a.b%3Ac-d_1"), Route::Subscribe("a.b:c-d_1".into()));
        assert_eq!(route("/poll/x"), Route::Poll("x".into()));
        assert_eq!(route("/sse/x"), Route::Events("x".into()));
        assert_eq!(route("/pub/"), Route::BadChannel);
        assert_eq!(route("/ws/a/b"), Route::BadChannel);
        assert_eq!(route("/sse/%20"), Route::BadChannel);
        assert_eq!(route("/sse/a%2Fb"), Route::BadChannel);
        assert_eq!(route("/pub/a%4"), Route::BadChannel);
        assert_eq!(route("/poll/.."), Route::BadChannel);
        assert_eq!(route("/sse/%2E"), Route::BadChannel);
    }

    #[test]
    fn query_numbers() {
        assert_eq!(query_u64(None, "since"), Ok(None));
        assert_eq!(query_u64(Some("since=5"), "since"), Ok(Some(5)));
        assert_eq!(query_u64(Some("a=1&since=0&b"), "since"), Ok(Some(0)));
        assert_eq!(query_u64(Some("sincere=1"), "since"), Ok(None));
        assert_eq!(query_u64(Some("since="), "since"), Err(NotANumber));
        assert_eq!(query_u64(Some("since=-1"), "since"), Err(NotANumber));
    }
}
