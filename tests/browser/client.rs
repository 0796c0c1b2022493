//! The JavaScript client (`/client.js`) in headless Chromium, through a
//! proxy of the test's own (`common::proxy`) that refuses WebSocket
//! upgrades or holds event streams back, or points elsewhere: the client
//! finds the transport that works, goes back up when the block is lifted,
//! follows a restarted server, and every message published to its 3
//! channels, meanwhile too, arrives exactly once and in order.

use super::common::chromium::{Cdp, Chromium};
use super::common::js_page::{
    open_origin, opened, publish_each, start_client, wait_all, wait_open, wait_open_after, CHANNELS,
};
use super::common::proxy::Proxy;
use super::common::{settings, Server};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// A server, a proxy in front of it (its blocks set by `block` first), and
/// the client started in a Chromium page of the proxy's origin. Fields in
/// the order they go: the page, the browser, the proxy, the server.
struct ThroughProxy {
    cdp: Cdp,
    _chromium: Chromium,
    proxy: Proxy,
    server: Server,
}

fn client_through_proxy(block: impl FnOnce(&Proxy)) -> ThroughProxy {
    let server = Server::start(settings());
    let proxy = Proxy::start(server.addr);
    block(&proxy);
    let origin = format!("http://{}", proxy.addr);
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    start_client(&mut cdp, &origin);
    ThroughProxy {
        cdp,
        _chromium: chromium,
        proxy,
        server,
    }
}

#[test]
fn the_client_falls_back_past_what_a_proxy_blocks_and_goes_back_up_losing_nothing() {
    let mut t = client_through_proxy(|_| {});

    // Nothing blocked: WebSocket.
    wait_open(&mut t.cdp, "websocket", Duration::from_secs(10));
    publish_each(t.server.addr, 0, 10);
    wait_all(&mut t.cdp, 10);

    // Upgrades refused: the next connection falls back to SSE; what is
    // published while it switches arrives too.
    t.proxy.blocks.upgrades.store(true, SeqCst);
    t.cdp.eval("window.client.restart(), true");
    publish_each(t.server.addr, 10, 20);
    wait_open(&mut t.cdp, "sse", Duration::from_secs(10));
    publish_each(t.server.addr, 20, 30);
    wait_all(&mut t.cdp, 30);
    assert!(t.proxy.blocks.refused.load(SeqCst) >= 1);

    // Streams held back too: long polling.
    t.proxy.blocks.streams.store(true, SeqCst);
    t.cdp.eval("window.client.restart(), true");
    publish_each(t.server.addr, 30, 40);
    wait_open(&mut t.cdp, "longpoll", Duration::from_secs(15));
    publish_each(t.server.addr, 40, 50);
    wait_all(&mut t.cdp, 50);

    // Each block lifted in turn: it tries upward again, and climbs one
    // transport at a time, to SSE, then to WebSocket.
    t.proxy.blocks.streams.store(false, SeqCst);
    wait_open(&mut t.cdp, "sse", Duration::from_secs(15));
    publish_each(t.server.addr, 50, 55);
    wait_all(&mut t.cdp, 55);
    t.proxy.blocks.upgrades.store(false, SeqCst);
    wait_open(&mut t.cdp, "websocket", Duration::from_secs(15));
    publish_each(t.server.addr, 55, 60);
    wait_all(&mut t.cdp, 60);
    let seen = opened(&mut t.cdp);
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>().first(),
        Some(&"websocket"),
        "{seen:?}"
    );
    t.cdp.eval("window.client.close(), true");
}

/// A client started through a proxy that `blocks` WebSocket upgrades in
/// its way (`close_upgrades` or `hold_upgrades`): it must end on SSE, with
/// every message once and in order, never having opened a WebSocket.
fn passed_over_to_sse(block: impl FnOnce(&Proxy)) {
    let mut t = client_through_proxy(block);
    // A new client is owed what comes after it first subscribes.
    wait_open(&mut t.cdp, "sse", Duration::from_secs(10));
    publish_each(t.server.addr, 0, 10);
    wait_all(&mut t.cdp, 10);
    assert!(!opened(&mut t.cdp).contains(&"websocket".to_owned()));
    t.cdp.eval("window.client.close(), true");
}

#[test]
fn a_proxy_that_kills_upgrades_sends_the_client_to_sse_too() {
    passed_over_to_sse(|proxy| proxy.blocks.close_upgrades.store(true, SeqCst));
}

#[test]
fn a_websocket_that_opens_and_delivers_nothing_is_passed_over() {
    // Its upgrade is answered, and its subscribes never are: after the
    // open time, SSE.
    passed_over_to_sse(|proxy| proxy.blocks.hold_upgrades.store(true, SeqCst));
}

#[test]
fn the_client_refreshes_its_token_over_its_websocket_before_it_ends() {
    const SECRET: &str = "the browser client test's secret";
    let mut s = settings();
    s.auth = wsreactor::auth::Auth::new(vec!["private-*".into()], SECRET.as_bytes());
    let server = Server::start(s);
    let origin = format!("http://{}", server.addr);
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    open_origin(&mut cdp, &origin);
    // Tokens of 3 s, signed in the page (Web Crypto's HMAC): over 7 s the
    // subscription is kept by refreshes sent over the WebSocket, with no
    // reconnect and nothing lost.
    let script = format!(
        r#"(async () => {{
            const {{ Client }} = await import("{origin}/client.js");
            const enc = new TextEncoder();
            const key = await crypto.subtle.importKey("raw", enc.encode("{SECRET}"), {{ name: "HMAC", hash: "SHA-256" }}, false, ["sign"]);
            const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
            window.issued = 0;
            const token = async () => {{
                window.issued++;
                const claims = {{ exp: Math.floor(Date.now() / 1000) + 3, channels: ["private-*"], sub: "ann" }};
                const signed = b64(enc.encode(JSON.stringify({{ alg: "HS256", typ: "JWT" }}))) + "." + b64(enc.encode(JSON.stringify(claims)));
                return signed + "." + b64(await crypto.subtle.sign("HMAC", key, enc.encode(signed)));
            }};
            window.got = [];
            window.opened = [];
            window.errors = [];
            const client = new Client("{origin}", {{ token }});
            client.on("state", (s) => {{ if (s.state === "open") window.opened.push(s.transport); }});
            client.on("message", (m) => window.got.push(m.data));
            client.on("error", (e) => window.errors.push(e.error));
            client.subscribe("private-a");
            window.client = client;
            return true;
        }})()"#
    );
    cdp.eval(&script);
    wait_open(&mut cdp, "websocket", Duration::from_secs(10));
    let mut c = super::common::Client::connect(server.addr);
    for i in 0..35 {
        let r = c.request(
            "POST",
            "/pub/private-a",
            &["Content-Type: text/plain"],
            format!("m{i}").as_bytes(),
        );
        assert_eq!(r.status, 200, "{r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    cdp.wait_for("every message", "window.got.length === 35", Duration::from_secs(10));
    let want: Vec<String> = (0..35).map(|i| format!("m{i}")).collect();
    assert_eq!(cdp.eval("window.got"), serde_json::json!(want));
    assert_eq!(
        cdp.eval("window.opened"),
        serde_json::json!(["websocket"]),
        "one connection, refreshed"
    );
    assert!(cdp.eval("window.issued").as_u64() >= Some(3));
    assert_eq!(cdp.eval("window.errors"), serde_json::json!([]));
    cdp.eval("window.client.close(), true");
}

#[test]
fn the_client_publishes_reads_presence_and_hears_joins_over_its_websocket() {
    const SECRET: &str = "the browser client test's secret";
    let mut s = settings();
    s.auth = wsreactor::auth::Auth::new(vec![], SECRET.as_bytes());
    s.pubsub.presence_channels = vec!["room-*".into()];
    let server = Server::start(s);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = |user: &str| {
        super::common::jwt(
            SECRET,
            serde_json::json!({"exp": exp, "sub": user, "info": {"name": user}, "channels": ["*"], "scope": "pub"}),
        )
    };
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    let origin = format!("http://{}", server.addr);
    open_origin(&mut cdp, &origin);
    let script = format!(
        r#"(async () => {{
            const {{ Client }} = await import("{origin}/client.js");
            window.joins = [];
            window.got = [];
            const ann = new Client("{origin}", {{ token: async () => "{ann}" }});
            ann.on("join", (e) => window.joins.push(e.member.user));
            ann.on("message", (m) => window.got.push(m.data));
            ann.subscribe("room-1", null, {{ joinLeave: true }});
            const opened = (c) => new Promise((r) => c.on("state", (s) => s.state === "open" && r()));
            await opened(ann);
            const bob = new Client("{origin}", {{ token: async () => "{bob}" }});
            bob.subscribe("room-1");
            await opened(bob);
            window.stats = (await ann.presence("room-1", true));
            window.members = (await ann.presence("room-1")).members.map((m) => m.info.name).sort();
            window.published = await ann.publish("room-1", {{ hello: "room" }});
            window.clients = [ann, bob];
            return true;
        }})()"#,
        ann = token("ann"),
        bob = token("bob"),
    );
    cdp.eval(&script);
    cdp.wait_for(
        "the publish's message",
        "window.got.length === 1 && window.joins.includes('bob')",
        Duration::from_secs(20),
    );
    assert_eq!(cdp.eval("window.got[0]"), "{\"hello\":\"room\"}");
    assert_eq!(cdp.eval("window.published"), 1);
    assert_eq!(
        cdp.eval("[window.stats.clients, window.stats.users]"),
        serde_json::json!([2, 2])
    );
    assert_eq!(cdp.eval("window.members"), serde_json::json!(["ann", "bob"]));
    cdp.eval("window.clients.forEach((c) => c.close()), true");
}

#[test]
fn the_demo_page_runs_the_client_on_its_own_button() {
    let server = Server::start(settings());
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    cdp.call(
        "Page.navigate",
        serde_json::json!({ "url": format!("http://{}/", server.addr) }),
    );
    cdp.wait_for(
        "the demo page",
        "document.readyState === 'complete' && !!document.getElementById('client-start')",
        Duration::from_secs(20),
    );
    cdp.eval("document.getElementById('client-channels').value = 'a, b:1'; document.getElementById('client-start').click(); true");
    cdp.wait_for(
        "the client open",
        "document.getElementById('client-state').textContent === 'open'",
        Duration::from_secs(20),
    );
    assert_eq!(
        cdp.eval("document.getElementById('client-transport').textContent"),
        "websocket"
    );
    publish_each(server.addr, 0, 3);
    cdp.wait_for(
        "its messages",
        "document.getElementById('client-count').textContent === '6'",
        Duration::from_secs(20),
    );
    let first = cdp.eval("document.querySelector('#client-log li').textContent");
    assert_eq!(
        first.as_str().map(|t| t.starts_with("b:1 #3: b:12")),
        Some(true),
        "{first}"
    );
}

#[test]
fn the_client_follows_a_restarted_server_and_is_told_its_cursors_are_gone() {
    let mut t = client_through_proxy(|_| {});
    wait_open(&mut t.cdp, "websocket", Duration::from_secs(10));
    publish_each(t.server.addr, 0, 5);
    wait_all(&mut t.cdp, 5);
    // The server restarts (elsewhere, behind the same address): the local
    // hub's history is gone with it, its numbering starts again, and the
    // client is told that each channel's cursor is not one the new server
    // can vouch for; what the new server is given arrives once, in order.
    let before = opened(&mut t.cdp).len();
    t.server = Server::start(settings());
    t.proxy.point(t.server.addr);
    wait_open_after(&mut t.cdp, "websocket", before, Duration::from_secs(15));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while t.cdp.eval("(window.resets || []).length").as_u64() < Some(CHANNELS.len() as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "resets: {}",
            t.cdp.eval("window.resets || []")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.cdp.eval("window.got = {}, true");
    publish_each(t.server.addr, 0, 10);
    wait_all(&mut t.cdp, 10);
    assert_eq!(opened(&mut t.cdp).last().map(String::as_str), Some("websocket"));
    t.cdp.eval("window.client.close(), true");
}
