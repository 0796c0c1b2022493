//! The pages about the server: the demo page (`GET /`), a guide to the
//! routes (`/readme`), the JavaScript client (`/client.js`), liveness
//! (`/healthz`), readiness (`/readyz`) and the counters (`/metrics`), each
//! a handler answering at once.

use super::metrics;
use crate::app::{Context, HttpHandler, Next, Request, Response};
use crate::protocol::http::Status;

/// The demo page served at `GET /`, embedded in the binary, with the
/// server's version written in (once).
pub fn demo_page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| include_str!("demo.html").replace("{{VERSION}}", env!("CARGO_PKG_VERSION")))
}

/// What `GET /readme` answers (the demo page links to it): the routes in
/// a line each, and where the documentation of this version is. It once
/// served the whole README, 92 KB of Markdown that no browser renders.
pub fn guide() -> &'static str {
    static GUIDE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    GUIDE.get_or_init(|| {
        format!(
            "wsreactor {}: what this server answers\n\n{}",
            env!("CARGO_PKG_VERSION"),
            include_str!("guide.txt")
        )
    })
}

/// The JavaScript client (`clients/js/wsreactor.js`), served at
/// `GET /client.js` as the server was built with it.
pub const CLIENT_JS: &str = include_str!("../../clients/js/wsreactor.js");

/// The client's entity tag: a hash of its bytes (FNV-1a), so that a
/// browser's cached copy is revalidated with a `304` until the client
/// changes.
fn client_etag() -> &'static str {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ETAG.get_or_init(|| {
        let hash = CLIENT_JS.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("\"{hash:016x}\"")
    })
}

/// Which page a [`Page`] handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The demo page.
    Demo,
    /// The guide to the routes, as plain text ([`guide`]).
    Readme,
    /// The JavaScript client, an ES module.
    Client,
    /// `ok`: the process answers.
    Health,
    /// `ready` while the broker can take requests, else `503` with why.
    Ready,
    /// The Prometheus text format.
    Metrics,
}

impl HttpHandler for Page {
    type Data = ();

    fn request(&self, request: &Request<'_, '_>, cx: &mut Context<'_>) -> Next<()> {
        if !matches!(request.method(), "GET" | "HEAD") {
            return Next::Respond(Response::refuse(Status::METHOD_NOT_ALLOWED, "use GET").header("Allow", "GET, HEAD"));
        }
        let response = match self {
            Page::Demo => Response::ok("text/html; charset=utf-8", demo_page()),
            Page::Readme => Response::ok("text/plain; charset=utf-8", guide()),
            Page::Client => {
                let etag = client_etag();
                // RFC 9110 §13.1.2: the tag the client has is this one.
                let fresh = matches!(request.header("if-none-match"), Ok(Some(v))
                    if v.split(|&b| b == b',').any(|t| t.trim_ascii() == etag.as_bytes() || t.trim_ascii() == b"*"));
                let response = if fresh {
                    Response::new(Status::NOT_MODIFIED)
                } else {
                    Response::ok("text/javascript; charset=utf-8", CLIENT_JS)
                };
                response
                    .header("Cache-Control", "public, max-age=3600, must-revalidate")
                    .header("ETag", etag)
                    .header("Access-Control-Allow-Origin", "*")
            }
            Page::Health => Response::ok("text/plain", "ok\n"),
            // A probe's answer, not a refusal: the connection stays.
            Page::Ready => {
                // The broker's servers as last found: which master a
                // failover left, under the verdict.
                let topology = cx
                    .server()
                    .broker_topology()
                    .map_or_else(String::new, |t| format!("broker: {t}\n"));
                match cx.server().ready() {
                    Ok(()) => Response::ok("text/plain", format!("ready\n{topology}")),
                    Err(why) => Response::new(Status::SERVICE_UNAVAILABLE)
                        .header("Content-Type", "text/plain")
                        .header("Retry-After", "1")
                        .body(format!("not ready: {why}\n{topology}")),
                }
            }
            Page::Metrics => {
                let server = cx.server();
                let body = metrics::render(
                    server.worker_stats(),
                    server.channels(),
                    server.broker_stats(),
                    server.per_ip_stats(),
                    server.presence_events(),
                    server.broker_topology(),
                );
                Response::ok(metrics::CONTENT_TYPE, body)
            }
        };
        Next::Respond(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the standard server registers is in the guide, so that
    /// a new one cannot be left out of it; and the guide stays short.
    #[test]
    fn the_guide_lists_every_route_and_stays_small() {
        let routes = format!("{:?}", crate::push::standard());
        let text = guide();
        // `App { websocket: ["/", "/ws/", ...], http: [...] }`
        for route in routes.split('"').skip(1).step_by(2) {
            assert!(text.contains(route), "{route} is not in the guide:\n{text}");
        }
        assert!(text.starts_with(&format!("wsreactor {}", env!("CARGO_PKG_VERSION"))));
        assert!(text.len() < 4096, "{}", text.len());
    }
}
