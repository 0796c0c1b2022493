//! The JavaScript client (`/client.js`) in headless Chromium, through a
//! proxy of the test's own (`common::proxy`) that refuses WebSocket
//! upgrades or holds event streams back: the client finds the transport
//! that works, goes back up when the block is lifted, and every message
//! published to its 3 channels, meanwhile too, arrives exactly once and in
//! order.

use super::common::chromium::{Cdp, Chromium};
use super::common::proxy::Proxy;
use super::common::{settings, Client, Server};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

const CHANNELS: [&str; 3] = ["a", "b:1", "c"];

/// Start the client in the page (loaded through the proxy), on the
/// channels, recording what it gets and the transports it opens.
fn start_client(cdp: &mut Cdp, origin: &str) {
    cdp.call("Page.navigate", json!({ "url": format!("{origin}/healthz") }));
    cdp.wait_for(
        "the page",
        "document.readyState === 'complete'",
        Duration::from_secs(20),
    );
    let script = format!(
        r#"(async () => {{
            const {{ Client }} = await import("{origin}/client.js");
            window.got = {{}};
            window.opened = [];
            const client = new Client("{origin}", {{ openTimeout: 1500, upgradeAfter: 2500, minDelay: 50, maxDelay: 300 }});
            client.on("state", (s) => {{ if (s.state === "open") window.opened.push(s.transport); }});
            client.on("message", (m) => (window.got[m.channel] ||= []).push(m.data));
            client.on("gap", (g) => (window.gaps ||= []).push(g));
            for (const c of {channels}) client.subscribe(c);
            window.client = client;
            return true;
        }})()"#,
        channels = json!(CHANNELS),
    );
    cdp.eval(&script);
}

fn opened(cdp: &mut Cdp) -> Vec<String> {
    serde_json::from_value(cdp.eval("window.opened || []")).unwrap()
}

/// Wait until the client opens `transport` (its latest).
fn wait_open(cdp: &mut Cdp, transport: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = opened(cdp);
        if seen.last().map(String::as_str) == Some(transport) {
            return;
        }
        assert!(Instant::now() < deadline, "never opened {transport}: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publish messages `from..to` to each channel, straight to the server.
fn publish_each(server: &Server, from: u64, to: u64) {
    let mut c = Client::connect(server.addr);
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
fn wait_all(cdp: &mut Cdp, n: u64) {
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

#[test]
fn the_client_falls_back_past_what_a_proxy_blocks_and_goes_back_up_losing_nothing() {
    let server = Server::start(settings());
    let proxy = Proxy::start(server.addr);
    let origin = format!("http://{}", proxy.addr);
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);

    // Nothing blocked: WebSocket.
    start_client(&mut cdp, &origin);
    wait_open(&mut cdp, "websocket", Duration::from_secs(10));
    publish_each(&server, 0, 10);
    wait_all(&mut cdp, 10);

    // Upgrades refused: the next connection falls back to SSE; what is
    // published while it switches arrives too.
    proxy.blocks.upgrades.store(true, SeqCst);
    cdp.eval("window.client.restart(), true");
    publish_each(&server, 10, 20);
    wait_open(&mut cdp, "sse", Duration::from_secs(10));
    publish_each(&server, 20, 30);
    wait_all(&mut cdp, 30);
    assert!(proxy.blocks.refused.load(SeqCst) >= 1);

    // Streams held back too: long polling.
    proxy.blocks.streams.store(true, SeqCst);
    cdp.eval("window.client.restart(), true");
    publish_each(&server, 30, 40);
    wait_open(&mut cdp, "longpoll", Duration::from_secs(15));
    publish_each(&server, 40, 50);
    wait_all(&mut cdp, 50);

    // The blocks lifted: it tries upward again and is back on WebSocket.
    proxy.blocks.upgrades.store(false, SeqCst);
    proxy.blocks.streams.store(false, SeqCst);
    wait_open(&mut cdp, "websocket", Duration::from_secs(15));
    publish_each(&server, 50, 60);
    wait_all(&mut cdp, 60);
    let seen = opened(&mut cdp);
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>().first(),
        Some(&"websocket"),
        "{seen:?}"
    );
    cdp.eval("window.client.close(), true");
}
