//! The JavaScript client (`/client.js`) in headless Chromium, through a
//! proxy of the test's own (`common::proxy`) that refuses WebSocket
//! upgrades or holds event streams back, or points elsewhere: the client
//! finds the transport that works, goes back up when the block is lifted,
//! follows a restarted server, and every message published to its 3
//! channels, meanwhile too, arrives exactly once and in order.

use super::common::chromium::{Cdp, Chromium};
use super::common::js_page::{opened, publish_each, start_client, wait_all, wait_open, wait_open_after, CHANNELS};
use super::common::proxy::Proxy;
use super::common::{settings, Server};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

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
    publish_each(server.addr, 0, 10);
    wait_all(&mut cdp, 10);

    // Upgrades refused: the next connection falls back to SSE; what is
    // published while it switches arrives too.
    proxy.blocks.upgrades.store(true, SeqCst);
    cdp.eval("window.client.restart(), true");
    publish_each(server.addr, 10, 20);
    wait_open(&mut cdp, "sse", Duration::from_secs(10));
    publish_each(server.addr, 20, 30);
    wait_all(&mut cdp, 30);
    assert!(proxy.blocks.refused.load(SeqCst) >= 1);

    // Streams held back too: long polling.
    proxy.blocks.streams.store(true, SeqCst);
    cdp.eval("window.client.restart(), true");
    publish_each(server.addr, 30, 40);
    wait_open(&mut cdp, "longpoll", Duration::from_secs(15));
    publish_each(server.addr, 40, 50);
    wait_all(&mut cdp, 50);

    // The blocks lifted: it tries upward again and is back on WebSocket.
    proxy.blocks.upgrades.store(false, SeqCst);
    proxy.blocks.streams.store(false, SeqCst);
    wait_open(&mut cdp, "websocket", Duration::from_secs(15));
    publish_each(server.addr, 50, 60);
    wait_all(&mut cdp, 60);
    let seen = opened(&mut cdp);
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>().first(),
        Some(&"websocket"),
        "{seen:?}"
    );
    cdp.eval("window.client.close(), true");
}

#[test]
fn the_client_follows_a_restarted_server_and_is_told_its_cursors_are_gone() {
    let server = Server::start(settings());
    let proxy = Proxy::start(server.addr);
    let origin = format!("http://{}", proxy.addr);
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    start_client(&mut cdp, &origin);
    wait_open(&mut cdp, "websocket", Duration::from_secs(10));
    publish_each(server.addr, 0, 5);
    wait_all(&mut cdp, 5);
    // The server restarts (elsewhere, behind the same address): the local
    // hub's history is gone with it, its numbering starts again, and the
    // client is told that each channel's cursor is not one the new server
    // can vouch for; what the new server is given arrives once, in order.
    let before = opened(&mut cdp).len();
    drop(server);
    let server = Server::start(settings());
    proxy.point(server.addr);
    wait_open_after(&mut cdp, "websocket", before, Duration::from_secs(15));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while cdp.eval("(window.resets || []).length").as_u64() < Some(CHANNELS.len() as u64) {
        assert!(
            std::time::Instant::now() < deadline,
            "resets: {}",
            cdp.eval("window.resets || []")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cdp.eval("window.got = {}, true");
    publish_each(server.addr, 0, 10);
    wait_all(&mut cdp, 10);
    assert_eq!(opened(&mut cdp).last().map(String::as_str), Some("websocket"));
    cdp.eval("window.client.close(), true");
}
