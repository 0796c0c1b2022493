//! The JavaScript client (`/client.js`) in a headless Chromium page:
//! started on 3 channels, what it got and the transports it opened read
//! back, and messages published straight to a server; for the browser
//! tests and the Redis ones.

use super::chromium::Cdp;
use super::Client;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const CHANNELS: [&str; 3] = ["a", "b:1", "c"];

/// Open a page of `origin` (its `/healthz`): where `/client.js` is
/// imported from, as a page of the server's own would.
pub fn open_origin(cdp: &mut Cdp, origin: &str) {
    cdp.call("Page.navigate", json!({ "url": format!("{origin}/healthz") }));
    cdp.wait_for(
        "the page",
        "document.readyState === 'complete'",
        Duration::from_secs(20),
    );
}

/// Start the client in the page (loaded through the proxy), on the
/// channels, recording what it gets and the transports it opens.
pub fn start_client(cdp: &mut Cdp, origin: &str) {
    open_origin(cdp, origin);
    let script = format!(
        r#"(async () => {{
            const {{ Client }} = await import("{origin}/client.js");
            window.got = {{}};
            window.opened = [];
            const client = new Client("{origin}", {{ openTimeout: 1500, upgradeAfter: 2500, minDelay: 50, maxDelay: 300 }});
            client.on("state", (s) => {{ if (s.state === "open") window.opened.push(s.transport); }});
            client.on("message", (m) => (window.got[m.channel] ||= []).push(m.data));
            client.on("gap", (g) => (window.gaps ||= []).push(g));
            client.on("reset", (g) => (window.resets ||= []).push(g));
            for (const c of {channels}) client.subscribe(c);
            window.client = client;
            return true;
        }})()"#,
        channels = json!(CHANNELS),
    );
    cdp.eval(&script);
}

pub fn opened(cdp: &mut Cdp) -> Vec<String> {
    serde_json::from_value(cdp.eval("window.opened || []")).unwrap()
}

/// Wait until the client opens `transport` (its latest).
pub fn wait_open(cdp: &mut Cdp, transport: &str, within: Duration) {
    wait_open_after(cdp, transport, 0, within);
}

/// Wait until the client has opened more than `before` times, the latest
/// on `transport`: a reconnect seen through.
pub fn wait_open_after(cdp: &mut Cdp, transport: &str, before: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = opened(cdp);
        if seen.len() > before && seen.last().map(String::as_str) == Some(transport) {
            return;
        }
        assert!(Instant::now() < deadline, "never opened {transport} again: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publish messages `from..to` to each channel, straight to the server.
pub fn publish_each(server: SocketAddr, from: u64, to: u64) {
    let mut c = Client::connect(server);
    for i in from..to {
        for ch in CHANNELS {
            let r = c.request(
                "POST",
                &format!("/pub/{ch}"),
                &["Content-Type: text/plain"],
                format!("{ch}{i}").as_bytes(),
            );
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
}

/// Wait until the page has every message `0..n` of each channel, once and
/// in order.
pub fn wait_all(cdp: &mut Cdp, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = cdp.eval("window.got");
        let done = CHANNELS
            .iter()
            .all(|c| got[*c].as_array().is_some_and(|a| a.len() as u64 >= n));
        if done {
            for c in CHANNELS {
                let want: Vec<Value> = (0..n).map(|i| json!(format!("{c}{i}"))).collect();
                assert_eq!(got[c], Value::Array(want), "{c}: every message once, in order");
            }
            assert_eq!(cdp.eval("window.gaps || []"), json!([]), "no gap");
            return;
        }
        assert!(Instant::now() < deadline, "got {got}, opened {:?}", opened(cdp));
        std::thread::sleep(Duration::from_millis(20));
    }
}
