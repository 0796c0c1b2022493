//! The demo page in a real browser: headless Chromium loads `GET /` from an
//! in-process server, subscribes to a channel by short polling, long
//! polling, SSE and WebSocket, publishes through the page's form, and each
//! message must show up in every column with byte counts that match what
//! the server really sent, and its publish-to-display latency.
//!
//! The browser is driven over the Chrome DevTools Protocol (a WebSocket,
//! spoken with `tungstenite`): `Target.createTarget` + `Target.attachToTarget`
//! (flattened session), `Page.navigate`, then `Runtime.evaluate` to fill the
//! forms, click, and read the page. Everything is on 127.0.0.1 and every wait
//! is bounded; Chromium's process group is killed when the test ends, passed
//! or failed.
//!
//! Needs Debian's `chromium` (`/usr/bin/chromium`); `tests/run-all.sh`
//! installs it. Without it the test fails rather than passing silently.

mod client;
#[path = "../common/mod.rs"]
mod common;
mod documented;
mod quickstart;

use common::chromium::{Cdp, Chromium};
use common::{Client, Server};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use wsreactor::stats::Transport;

/// The page's columns, as their ids begin.
const TRANSPORTS: [&str; 4] = ["short", "poll", "sse", "ws"];

/// How long a message may take to show up in the page.
const SHOW_TIMEOUT: Duration = Duration::from_secs(20);

/// The page's statuses and columns as text, for failure messages.
const PAGE_STATE: &str = r#"["short-status", "ws-status", "poll-status", "sse-status", "pub-status", "short-log", "ws-log", "poll-log", "sse-log"]
    .map((id) => { const e = document.getElementById(id);
                   return id + ": " + (e ? (e.dataset.state || "") + " " + e.innerText : "(missing)"); })
    .join("\n")"#;

/// Set an input's value as if typed.
fn type_into(cdp: &mut Cdp, id: &str, text: &str) {
    let expr = format!(
        "(() => {{ const e = document.getElementById({id}); e.value = {text}; \
           e.dispatchEvent(new Event('input', {{ bubbles: true }})); return true; }})()",
        id = json!(id),
        text = json!(text)
    );
    assert_eq!(cdp.eval(&expr), json!(true));
}

/// Click the element with this id.
fn click(cdp: &mut Cdp, id: &str) {
    let expr = format!(
        "(() => {{ document.getElementById({}).click(); return true; }})()",
        json!(id)
    );
    assert_eq!(cdp.eval(&expr), json!(true));
}

/// What one column shows for message `id`: its text and its wire accounting.
#[derive(Debug)]
struct Shown {
    data: String,
    wire_text: String,
    wire_bytes: u64,
}

/// Message `id` as the `transport` column shows it, if it does yet.
fn shown(cdp: &mut Cdp, transport: &str, id: u64) -> Option<Shown> {
    let expr = format!(
        r#"(() => {{ const li = document.querySelector('li.msg[data-transport="{transport}"][data-id="{id}"]');
             return li && [li.querySelector('.data').textContent, li.querySelector('.wire').textContent,
                           li.dataset.wireBytes]; }})()"#
    );
    let v = cdp.eval(&expr);
    let a = v.as_array()?;
    Some(Shown {
        data: a[0].as_str().unwrap().to_string(),
        wire_text: a[1].as_str().unwrap().to_string(),
        wire_bytes: a[2].as_str().unwrap().parse().unwrap(),
    })
}

/// The integers in `text`, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

/// A running total the page shows (`#ws-bytes`, `#poll-count`...).
fn counter(cdp: &mut Cdp, id: &str) -> u64 {
    let v = cdp.eval(&format!("document.getElementById({}).textContent", json!(id)));
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("#{id} does not show a number: {v}"))
}

/// What the server puts on the wire for `GET path`, read by a raw client:
/// the exact sizes of the response head (status line, headers, blank line)
/// and of its `Content-Length` body.
fn raw_get(addr: SocketAddr, path: &str) -> (usize, usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "GET {path}: EOF in the response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_len].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "GET {path}: {head}");
    let body_len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("GET {path}: no Content-Length in {head}"));
    while buf.len() < head_len + body_len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "GET {path}: EOF in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (head_len, body_len)
}

/// Wait until a long poll is parked at `server` (its per-transport gauge).
fn wait_poll_parked(server: &Server) {
    let poll = Transport::ALL.iter().position(|&t| t == Transport::Poll).unwrap();
    let parked = || -> i64 {
        server
            .handle()
            .stats()
            .iter()
            .map(|s| s.open_by[poll].load(Relaxed))
            .sum()
    };
    let deadline = Instant::now() + SHOW_TIMEOUT;
    while parked() < 1 {
        assert!(
            Instant::now() < deadline,
            "the page's long poll never parked at the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Load the demo page from the server at `addr`.
fn navigate(cdp: &mut Cdp, addr: SocketAddr) {
    cdp.call("Page.navigate", json!({ "url": format!("http://{addr}/") }));
    cdp.wait_for(
        "the demo page loaded",
        "document.readyState === 'complete' && !!document.getElementById('subscribe')",
        SHOW_TIMEOUT,
    );
}

/// Fill in the subscribe form (short polls every 0.2 s) and wait for every
/// transport to be under way.
fn subscribe(cdp: &mut Cdp, channel: &str, since: Option<u64>) {
    type_into(cdp, "channel", channel);
    type_into(cdp, "since", &since.map(|n| n.to_string()).unwrap_or_default());
    type_into(cdp, "interval", "0.2");
    click(cdp, "subscribe");
    cdp.wait_for(
        "short polls answered",
        "document.getElementById('short-status').dataset.state === 'polling'",
        SHOW_TIMEOUT,
    );
    cdp.wait_for(
        "the WebSocket open",
        "document.getElementById('ws-status').dataset.state === 'open'",
        SHOW_TIMEOUT,
    );
    cdp.wait_for(
        "a long poll pending",
        "document.getElementById('poll-status').dataset.state === 'waiting'",
        SHOW_TIMEOUT,
    );
    cdp.wait_for(
        "the event stream open",
        "document.getElementById('sse-status').dataset.state === 'open'",
        SHOW_TIMEOUT,
    );
}

/// Publish `text` with the page's form; returns the id the server gave it.
fn publish(cdp: &mut Cdp, text: &str) -> u64 {
    let before = cdp.eval("document.getElementById('pub-status').textContent");
    type_into(cdp, "message", text);
    click(cdp, "publish");
    let status = cdp.wait_for(
        "the publish answered",
        &format!(
            "(() => {{ const t = document.getElementById('pub-status').textContent; \
               return t !== {before} && t; }})()"
        ),
        SHOW_TIMEOUT,
    );
    let status = status.as_str().unwrap();
    assert!(status.starts_with("published #"), "publish refused: {status}");
    numbers(status)[0]
}

/// Wait for message `id` to show with `text` in every column.
fn wait_shown_in_both(cdp: &mut Cdp, id: u64, text: &str) {
    for transport in TRANSPORTS {
        cdp.wait_for(
            &format!("message #{id} in the {transport} column"),
            &format!(r#"!!document.querySelector('li.msg[data-transport="{transport}"][data-id="{id}"]')"#),
            SHOW_TIMEOUT,
        );
        let s = shown(cdp, transport, id).unwrap();
        assert_eq!(s.data, text, "{transport} #{id}");
    }
}

/// The WebSocket column's accounting for message `id`, "frame header H B +
/// payload P B = T B", against the frame a raw subscriber got for it.
fn check_ws_bytes(cdp: &mut Cdp, id: u64, text: &str, frame: &common::Frame) -> u64 {
    let s = shown(cdp, "ws", id).unwrap();
    let n = numbers(&s.wire_text);
    assert_eq!(n.len(), 3, "ws #{id}: {s:?}");
    let (header, payload, total) = (n[0], n[1], n[2]);
    // The page says channel frames go uncompressed even with permessage-deflate
    // agreed (as with Chromium), so that its counts are the wire's.
    assert_eq!(
        frame.rsv, 0,
        "ws #{id}: a compressed channel frame; the page's note is wrong"
    );
    assert_eq!(
        payload,
        frame.payload.len() as u64,
        "ws #{id}: the payload differs from the server's frame: {s:?}"
    );
    assert_eq!(header, if payload < 126 { 2 } else { 4 }, "ws #{id}: {s:?}");
    assert!(
        payload > text.len() as u64,
        "ws #{id}: the payload holds the message and its id: {s:?}"
    );
    assert_eq!(
        (total, s.wire_bytes),
        (header + payload, header + payload),
        "ws #{id}: {s:?}"
    );
    total
}

/// The long-poll column's accounting for message `id`, "headers H B + body
/// B B = T B"; returns (H, B).
fn poll_bytes(cdp: &mut Cdp, id: u64, text: &str) -> (u64, u64) {
    polled_bytes(cdp, "poll", id, text)
}

/// The same for the long-poll (`poll`) or short-poll (`short`) column.
fn polled_bytes(cdp: &mut Cdp, column: &str, id: u64, text: &str) -> (u64, u64) {
    let s = shown(cdp, column, id).unwrap();
    let n = numbers(&s.wire_text);
    assert!(n.len() >= 3, "poll #{id}: {s:?}");
    let (head, body, total) = (n[0], n[1], n[2]);
    assert!(head > "HTTP/1.1 200 OK\r\n\r\n".len() as u64, "poll #{id}: {s:?}");
    assert!(
        body > text.len() as u64,
        "poll #{id}: the body holds the message: {s:?}"
    );
    assert_eq!((total, s.wire_bytes), (head + body, head + body), "poll #{id}: {s:?}");
    (head, body)
}

/// The page in Chromium, live subscription (no `since`): two messages, a
/// short one with multi-byte UTF-8 (2-byte frame header) and one of 200
/// bytes (4-byte header), each in both columns, with byte counts equal to
/// what the server puts on the wire; then a resubscription with `since=0`
/// replays both, the long poll in one response.
/// The first `n` events of an event stream, each as read off the wire.
fn raw_events(addr: SocketAddr, path: &str, n: usize) -> Vec<String> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let body = text.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &text[i + 4..]);
        let body = String::from_utf8_lossy(body.unwrap_or_default()).into_owned();
        let events: Vec<String> = body
            .split_inclusive("\n\n")
            .filter(|e| e.ends_with("\n\n") && e.starts_with("id: "))
            .map(str::to_owned)
            .collect();
        if events.len() >= n {
            return events[..n].to_vec();
        }
        let got = c.read(&mut buf).expect("the event stream");
        assert!(got > 0, "the stream ended");
        text.extend_from_slice(&buf[..got]);
    }
}

/// The page as it looks now, as PNG under target/ (`demo-page.png`).
fn screenshot(cdp: &mut Cdp) {
    use base64::Engine;
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );
    let shot = cdp.call(
        "Page.captureScreenshot",
        json!({ "format": "png", "captureBeyondViewport": true }),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/demo-page.png");
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn demo_page_shows_each_message_over_every_transport() {
    let t0 = Instant::now();
    let server = Server::start(common::settings());
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    cdp.state = PAGE_STATE;
    navigate(&mut cdp, server.addr);

    let channel = "browser-test";
    subscribe(&mut cdp, channel, None);
    // The page's first poll has no cursor, so it sees only what is published
    // after it reaches the server.
    wait_poll_parked(&server);
    let messages = ["héllo ✓ wsreactor", &"x".repeat(200)];
    for (i, text) in messages.iter().enumerate() {
        assert_eq!(publish(&mut cdp, text), i as u64 + 1);
        wait_shown_in_both(&mut cdp, i as u64 + 1, text);
    }
    // Each column timed each message from its publish, and averages them.
    for t in TRANSPORTS {
        let mut sum = 0.0;
        for id in 1..=messages.len() {
            let expr =
                format!(r#"document.querySelector('li.msg[data-transport="{t}"][data-id="{id}"]').dataset.latencyMs"#);
            let ms: f64 = cdp
                .wait_for(&format!("#{id}'s latency in {t}"), &expr, SHOW_TIMEOUT)
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                (0.0..SHOW_TIMEOUT.as_millis() as f64).contains(&ms),
                "{t} #{id}: {ms} ms"
            );
            sum += ms;
        }
        let mean = cdp.eval(&format!("document.getElementById('{t}-latency').textContent"));
        let mean: f64 = mean.as_str().unwrap().parse().unwrap();
        assert!(
            (mean - sum / messages.len() as f64).abs() < 0.1,
            "{t}: mean {mean} of {sum}"
        );
    }
    // A short poll every 0.2 s: each message came in a response of its own
    // (the next was published after it showed everywhere), and the total is
    // those two and the empty answers, read together while polls go on.
    let (h1, b1) = polled_bytes(&mut cdp, "short", 1, messages[0]);
    let (h2, b2) = polled_bytes(&mut cdp, "short", 2, messages[1]);
    let v = cdp.eval(
        "['short-bytes', 'short-empty-bytes', 'short-empty', 'short-count'].map((id) => \
           Number(document.getElementById(id).textContent))",
    );
    let short: Vec<u64> = v.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    assert_eq!(short[0], h1 + b1 + h2 + b2 + short[1], "{short:?}");
    assert!(short[2] >= 1 && short[1] >= short[2] * "HTTP/1.1 204 No Content\r\n\r\n".len() as u64);
    assert_eq!(short[3], 2);

    // Chromium offers permessage-deflate, and the page notes it was agreed;
    // the raw subscriber offers it too.
    assert_eq!(cdp.eval("!document.getElementById('ws-deflate').hidden"), json!(true));
    let (mut raw, r) = Client::upgrade_at(
        server.addr,
        &format!("/ws/{channel}?since=0"),
        "Sec-WebSocket-Protocol: wsreactor.json\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    let agreed = r.header("sec-websocket-extensions").unwrap_or_default();
    assert!(agreed.starts_with("permessage-deflate"), "{r:?}");
    let mut ws_sum = 0;
    for (i, text) in messages.iter().enumerate() {
        ws_sum += check_ws_bytes(&mut cdp, i as u64 + 1, text, &raw.recv());
    }
    assert_eq!(counter(&mut cdp, "ws-bytes"), ws_sum);
    assert_eq!(counter(&mut cdp, "ws-count"), 2);
    assert_eq!(counter(&mut cdp, "ws-frames"), 2);

    // The event stream: each event's bytes as the page counts them are
    // those a raw client reads for the same event.
    let events = raw_events(server.addr, &format!("/sse/{channel}?since=0"), messages.len());
    let mut sse_sum = 0;
    for (i, event) in events.iter().enumerate() {
        let shown = shown(&mut cdp, "sse", i as u64 + 1).unwrap();
        assert_eq!(shown.wire_bytes, event.len() as u64, "sse #{} against {event:?}", i + 1);
        assert!(event.starts_with(&format!("id: {}\n", i + 1)), "{event:?}");
        sse_sum += shown.wire_bytes;
    }
    assert_eq!(counter(&mut cdp, "sse-bytes"), sse_sum);
    assert_eq!(counter(&mut cdp, "sse-count"), 2);
    // The copyable client names the channel; the header, the version.
    let snippet = cdp.eval("document.getElementById('snippet').textContent");
    assert!(
        snippet.as_str().unwrap().contains(&format!("/sse/{channel}")),
        "{snippet}"
    );
    let version = cdp.eval("document.getElementById('version').textContent");
    assert_eq!(version, json!(format!("wsreactor {}", env!("CARGO_PKG_VERSION"))));
    // The nav link: a page of the routes and where the docs are, not the
    // whole README as raw Markdown.
    let guide = cdp.eval("fetch(document.getElementById('readme-link').href).then((r) => r.text())");
    let guide = guide.as_str().unwrap();
    assert!(
        guide.starts_with("wsreactor ") && guide.contains("POST /pub/CHANNEL") && guide.contains("man wsreactor"),
        "the routes link: {guide}"
    );
    assert!(guide.len() < 4096, "{} bytes", guide.len());
    screenshot(&mut cdp);

    let mut poll_sum = 0;
    for (i, text) in messages.iter().enumerate() {
        let (head, body) = poll_bytes(&mut cdp, i as u64 + 1, text);
        poll_sum += head + body;
        if i == 1 {
            // The page asked for message 2 with since=1: the same request from
            // a raw client must get a response of the same sizes.
            let raw = raw_get(server.addr, &format!("/poll/{channel}?since=1"));
            assert_eq!(
                (head, body),
                (raw.0 as u64, raw.1 as u64),
                "poll #2 against a raw GET of the same"
            );
        }
    }
    assert_eq!(counter(&mut cdp, "poll-bytes"), poll_sum);
    assert_eq!(counter(&mut cdp, "poll-count"), 2);
    assert_eq!(counter(&mut cdp, "poll-responses"), 2);

    // Replay: since=0 brings both back, the long poll in a single response.
    subscribe(&mut cdp, channel, Some(0));
    for (i, text) in messages.iter().enumerate() {
        wait_shown_in_both(&mut cdp, i as u64 + 1, text);
    }
    // Replayed, so not timed.
    let timed = cdp.eval("document.querySelectorAll('li.msg[data-latency-ms]').length");
    assert_eq!(timed, json!(0));
    let short = polled_bytes(&mut cdp, "short", 1, messages[0]);
    assert_eq!(
        polled_bytes(&mut cdp, "short", 2, messages[1]),
        short,
        "one short poll brought both"
    );
    let (head, body) = poll_bytes(&mut cdp, 1, messages[0]);
    assert_eq!(
        poll_bytes(&mut cdp, 2, messages[1]),
        (head, body),
        "one response, shown on both"
    );
    let raw = raw_get(server.addr, &format!("/poll/{channel}?since=0"));
    assert_eq!(
        (head, body),
        (raw.0 as u64, raw.1 as u64),
        "replay against a raw GET of the same"
    );
    assert_eq!(counter(&mut cdp, "poll-bytes"), head + body);
    assert_eq!(counter(&mut cdp, "poll-responses"), 1);
    assert_eq!(counter(&mut cdp, "poll-count"), 2);
    assert_eq!(counter(&mut cdp, "ws-count"), 2);
    assert_eq!(counter(&mut cdp, "ws-bytes"), ws_sum);

    drop(cdp);
    drop(chromium);
    eprintln!("browser test: {:?}", t0.elapsed());
}

/// A long poll that times out (204) is counted and followed by the next
/// request, and a message published after it still reaches both columns.
#[test]
fn demo_page_counts_a_204_and_polls_again() {
    let mut settings = common::settings();
    settings.pubsub.poll_timeout = Duration::from_millis(500);
    let server = Server::start(settings);
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    cdp.state = PAGE_STATE;
    navigate(&mut cdp, server.addr);

    // since=0: the cursor is known from the start, so nothing can fall
    // between a 204 and the next request.
    subscribe(&mut cdp, "quiet", Some(0));
    let empty = cdp.wait_for(
        "a 204 in the poll column",
        r#"(() => { const li = document.querySelector('#poll-log li[data-status="204"]');
                    return li && Number(li.dataset.wireBytes); })()"#,
        SHOW_TIMEOUT,
    );
    let empty = empty.as_u64().unwrap();
    assert!(empty >= "HTTP/1.1 204 No Content\r\n\r\n".len() as u64, "{empty}");

    assert_eq!(publish(&mut cdp, "after a timeout"), 1);
    wait_shown_in_both(&mut cdp, 1, "after a timeout");
    let (head, body) = poll_bytes(&mut cdp, 1, "after a timeout");
    // Read at once: the page keeps polling (and getting 204s) meanwhile.
    let v = cdp.eval(
        r#"[document.getElementById('poll-bytes').textContent,
            Array.from(document.querySelectorAll('#poll-log li[data-status="204"]'))
              .reduce((sum, li) => sum + Number(li.dataset.wireBytes), 0)]"#,
    );
    let total: u64 = v[0].as_str().unwrap().parse().unwrap();
    let empties = v[1].as_u64().unwrap();
    assert!(empties >= empty);
    assert_eq!(total, head + body + empties, "the total counts the 200 and every 204");
    assert_eq!(counter(&mut cdp, "poll-count"), 1);
    assert!(counter(&mut cdp, "poll-responses") >= 2);

    // A binary message (published by another client) is shown as its size
    // and bytes in hex: base64 in both transports' JSON.
    let mut publisher = Client::connect(server.addr);
    let r = publisher.request(
        "POST",
        "/pub/quiet",
        &["Content-Type: application/octet-stream"],
        &[0, 1, 2, 0xff],
    );
    assert_eq!(r.status, 200, "{r:?}");
    wait_shown_in_both(&mut cdp, 2, "(binary, 4 B) 00 01 02 ff");
}
