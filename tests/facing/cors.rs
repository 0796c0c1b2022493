//! CORS in a real browser: a page served by one server (its origin) uses
//! another server's event stream, long poll and publish from JavaScript.
//! The poll carries `Authorization` and the publish a JSON body, so the
//! browser sends a preflight for each; the poll's 204 exposes `X-Last-Id`.
//! A third server that lists another origin is refused by the same page.
//!
//! Headless Chromium over the DevTools Protocol (`crate::common::chromium`).

use crate::common::chromium::{Cdp, Chromium};
use crate::common::{jwt, publish, settings, Client, Server};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wsreactor::auth::Auth;
use wsreactor::reactor::settings::Settings;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "cors-test-secret-of-32-bytes-ok!";

fn push_server(allowed: &str) -> Server {
    let mut s: Settings = settings();
    s.allowed_origins = Some(vec![allowed.to_owned()]);
    s.pubsub.poll_timeout = Duration::from_secs(1);
    s.auth = Auth::new(vec!["private-*".into()], SECRET.as_bytes());
    Server::start(s)
}

fn token(channel: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 300;
    jwt(SECRET, json!({"exp": exp, "channel": channel}))
}

#[test]
fn a_page_on_another_origin_subscribes_by_eventsource_and_long_polling() {
    let page = Server::start(settings());
    let origin = format!("http://{}", page.addr);
    let push = push_server(&origin);
    let stranger = push_server("https://elsewhere.example");
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    cdp.call("Page.navigate", json!({ "url": format!("{origin}/") }));
    cdp.wait_for("the page loaded", "document.readyState === 'complete'", WAIT);

    let (b, c, t) = (push.addr, stranger.addr, token("private-room"));
    cdp.eval(&format!(
        r#"(() => {{
        window.seen = []; window.errors = [];
        const es = new EventSource("http://{b}/sse/news");
        es.onopen = () => window.sseOpen = true;
        es.onmessage = (e) => window.seen.push("sse:" + e.data);
        // Authorization is not a safelisted header: a preflight first.
        fetch("http://{b}/poll/private-room?since=0", {{ headers: {{ Authorization: "Bearer {t}" }} }})
          .then((r) => r.json())
          .then((j) => j.messages.forEach((m) => window.seen.push("poll:" + m.data)))
          .catch((e) => window.errors.push("poll: " + e));
        // Nothing new within the poll timeout: 204, whose X-Last-Id the
        // page may read only if it is exposed.
        fetch("http://{b}/poll/quiet?since=0")
          .then((r) => window.quiet = r.status + " " + r.headers.get("X-Last-Id"))
          .catch((e) => window.errors.push("quiet: " + e));
        const bad = new EventSource("http://{c}/sse/news");
        bad.onerror = () => window.strangerSse = bad.readyState;
        fetch("http://{c}/poll/news?since=0")
          .then((r) => window.strangerPoll = "read " + r.status)
          .catch(() => window.strangerPoll = "refused");
        return true;
      }})()"#
    ));
    cdp.wait_for("the event stream opened", "window.sseOpen === true", WAIT);
    let mut publisher = Client::connect(push.addr);
    publish(&mut publisher, "news", "hello from the test");
    publish(&mut publisher, "private-room", "for token holders");
    cdp.wait_for(
        "both messages in the page",
        "window.seen.includes('sse:hello from the test') && window.seen.includes('poll:for token holders')",
        WAIT,
    );
    let quiet = cdp.wait_for("the quiet poll's 204", "window.quiet", WAIT);
    assert_eq!(quiet, json!("204 0"));

    // A publish from the page: application/json needs a preflight too.
    let published = cdp.eval(&format!(
        r#"fetch("http://{b}/pub/news", {{ method: "POST", headers: {{ "Content-Type": "application/json" }}, body: '{{"from":"page"}}' }})
             .then((r) => r.json()).then((j) => j.id)"#
    ));
    assert_eq!(published, json!(2));
    cdp.wait_for(
        "the page's own message",
        "window.seen.includes('sse:{\"from\":\"page\"}')",
        WAIT,
    );

    // The server that lists another origin: the stream fails for good
    // (CLOSED, 2) and the poll's answer is not readable.
    assert_eq!(cdp.wait_for("the refused stream", "window.strangerSse", WAIT), json!(2));
    assert_eq!(
        cdp.wait_for("the refused poll", "window.strangerPoll", WAIT),
        json!("refused")
    );
    let errors: Value = cdp.eval("window.errors");
    assert_eq!(errors, json!([]));
}
