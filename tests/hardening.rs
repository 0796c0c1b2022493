//! What a hostile or careless client found, kept found: each test here
//! reproduces one fault of the hardening issue over real loopback sockets
//! (request smuggling, trickled bodies, SSE field injection, reused ids,
//! pipelining behind a long poll, a second server on our port, HTTP details).
//! The memory faults (a declared length that sized a buffer) have their own
//! test binary, `tests/declared_length.rs`, because they measure the
//! process's RSS.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wsreactor::reactor::settings::Settings;

fn with(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = settings();
    f(&mut s);
    s
}

/// Publish on a connection of its own.
fn publish_at(addr: std::net::SocketAddr, channel: &str, body: &str) -> Value {
    publish(&mut Client::connect(addr), channel, body)
}

/// Everything the server sends until it closes (at most `within`).
fn all_until_eof(c: &mut Client, within: Duration) -> String {
    let (bytes, _) = c.wait_eof(within).expect("the server did not close the connection");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// How many responses a byte stream holds (status lines).
fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

/// The channel has had no accepted publish: its first publish gets the
/// id a channel never used gets (1, or after the clock: every new channel
/// of a process starts where its numbering does).
fn assert_never_published(addr: std::net::SocketAddr, channel: &str) {
    let fresh = publish_at(addr, &format!("never-used-{channel}"), "probe")["id"].clone();
    assert_eq!(
        publish_at(addr, channel, "probe")["id"],
        fresh,
        "{channel} had been published to"
    );
}

// --- 2: a deadline on the whole request, body included ----------------------

#[test]
fn a_trickled_publish_body_times_out_as_a_whole() {
    trickle_times_out(
        with(|s| {
            s.handshake_timeout = Duration::from_secs(1);
            s.request_timeout = Duration::from_secs(2);
        }),
        Duration::from_secs(4),
    );
}

#[test]
fn without_timeouts_request_the_handshake_deadline_covers_the_body() {
    // As an operator would configure it: only `timeouts.handshake`.
    let mut config = wsreactor::config::Config::default();
    config.timeouts.handshake = Duration::from_secs(1);
    config.timeouts.close = Duration::from_secs(1);
    trickle_times_out(Settings::from(&config), Duration::from_secs(3));
}

/// A publish whose body comes a byte every 100 ms is answered 408 and
/// closed within `within`, and publishes nothing.
fn trickle_times_out(settings: Settings, within: Duration) {
    let server = Server::start(settings);
    let mut c = Client::connect(server.addr);
    c.write(b"POST /pub/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    let mut writer = c.stream.try_clone().unwrap();
    let t0 = Instant::now();
    // One byte every 100 ms: each arrives well inside any per-byte timer.
    let trickle = std::thread::spawn(move || {
        for _ in 0..80 {
            std::thread::sleep(Duration::from_millis(100));
            if writer.write_all(b"x").is_err() {
                return;
            }
        }
    });
    let text = all_until_eof(&mut c, Duration::from_secs(6));
    let took = t0.elapsed();
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(took < within, "closed after {took:?}");
    trickle.join().unwrap();
    assert_never_published(server.addr, "slow");
}

// --- 3: one function frames every request's body -----------------------------

/// A complete publish request, as a smuggled body would carry it.
fn smuggled_publish(channel: &str) -> String {
    format!("POST /pub/{channel} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nforge")
}

#[test]
fn a_get_with_a_body_does_not_smuggle_a_request() {
    let server = Server::start(with(|s| s.pubsub.poll_timeout = Duration::from_millis(300)));
    for target in ["/poll/c?since=0", "/healthz", "/sse/c", "/metrics", "/nope"] {
        let inner = smuggled_publish("victim");
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        );
        let mut c = Client::connect(server.addr);
        c.write(req.as_bytes());
        let text = all_until_eof(&mut c, Duration::from_secs(3));
        assert!(responses(&text) <= 1, "{target}: {text:?}");
        assert!(!text.contains("\"id\""), "{target}: {text:?}");
    }
    assert_never_published(server.addr, "victim");
}

#[test]
fn transfer_encoding_is_refused_and_the_connection_closed() {
    let server = Server::start(settings());
    let inner = smuggled_publish("victim2");
    for (method, target) in [("GET", "/healthz"), ("GET", "/poll/c"), ("POST", "/pub/c")] {
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        );
        let mut c = Client::connect(server.addr);
        c.write(req.as_bytes());
        let text = all_until_eof(&mut c, Duration::from_secs(3));
        assert_eq!(responses(&text), 1, "{method} {target}: {text:?}");
        assert!(
            text.starts_with("HTTP/1.1 501 ") || text.starts_with("HTTP/1.1 400 "),
            "{method} {target}: {text:?}"
        );
    }
    assert_never_published(server.addr, "victim2");
    assert_never_published(server.addr, "c");
}

#[test]
fn differing_content_lengths_are_400_and_close() {
    let server = Server::start(settings());
    let inner = smuggled_publish("victim3");
    for (method, target) in [("GET", "/healthz"), ("POST", "/pub/c")] {
        for lengths in [
            format!("Content-Length: 0\r\nContent-Length: {}", inner.len()),
            format!("Content-Length: 0, {}", inner.len()),
        ] {
            let req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{lengths}\r\n\r\n{inner}");
            let mut c = Client::connect(server.addr);
            c.write(req.as_bytes());
            let text = all_until_eof(&mut c, Duration::from_secs(3));
            assert_eq!(responses(&text), 1, "{lengths}: {text:?}");
            assert!(text.starts_with("HTTP/1.1 400 "), "{lengths}: {text:?}");
        }
    }
    assert_never_published(server.addr, "victim3");
    assert_never_published(server.addr, "c");
}

// --- 4: SSE data split on CR, LF and CRLF ------------------------------------

/// The lines of an event stream as an EventSource splits them (WHATWG HTML,
/// "interpreting an event stream": CRLF, LF and a lone CR all end a line).
fn browser_lines(stream: &str) -> Vec<&str> {
    stream.split("\r\n").flat_map(|l| l.split(['\r', '\n'])).collect()
}

#[test]
fn a_published_carriage_return_cannot_forge_sse_fields() {
    let server = Server::start(settings());
    let mut c = Client::connect(server.addr);
    c.write(b"GET /sse/cr HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_until(b"\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 200 "));
    let payload = "hello\rid: 999\revent: evil\rdata: forged\r\nline2\nline3";
    assert_eq!(publish_at(server.addr, "cr", payload)["id"], 1);
    let event = String::from_utf8(c.read_until(b"\n\n")).unwrap();
    let fields: Vec<&str> = browser_lines(&event).into_iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        fields,
        [
            "id: 1",
            "data: hello",
            "data: id: 999",
            "data: event: evil",
            "data: data: forged",
            "data: line2",
            "data: line3"
        ],
        "{event:?}"
    );
}

// --- 5: ids are never reused --------------------------------------------------

#[test]
fn a_forgotten_channel_continues_its_ids() {
    // No history: the channel is idle (and swept, within a second) as soon
    // as its publish is done.
    let server = Server::start(with(|s| s.pubsub.hub.history_size = 0));
    assert_eq!(publish_at(server.addr, "gone", "a")["id"], 1);
    assert_eq!(publish_at(server.addr, "gone", "b")["id"], 2);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(publish_at(server.addr, "gone", "c")["id"], 3);
    // It does not count against max_channels meanwhile: /metrics shows 0.
    std::thread::sleep(Duration::from_millis(2500));
    let mut m = Client::connect(server.addr);
    let body = String::from_utf8(m.request("GET", "/metrics", &[], b"").body).unwrap();
    assert!(body.contains("wsreactor_channels 0"), "{body}");
}

#[test]
fn history_expiry_does_not_restart_ids() {
    let server = Server::start(with(|s| s.pubsub.hub.history_ttl = Duration::from_millis(200)));
    assert_eq!(publish_at(server.addr, "ttl", "a")["id"], 1);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(publish_at(server.addr, "ttl", "b")["id"], 2);
}

#[test]
fn a_cursor_beyond_the_last_id_is_told_as_a_gap_on_every_transport() {
    // As after a restart: the client's cursor is above anything this
    // server numbered.
    let server = Server::start(with(|s| s.pubsub.poll_timeout = Duration::from_secs(3)));
    assert_eq!(publish_at(server.addr, "fut", "one")["id"], 1);

    // Long poll: answered at once with the gap, not parked, never a 204.
    let mut c = Client::connect(server.addr);
    let t0 = Instant::now();
    let r = c.request("GET", "/poll/fut?since=50", &[], b"");
    assert!(t0.elapsed() < Duration::from_secs(2), "parked");
    assert_eq!(r.status, 200, "{r:?}");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["gap"], true, "{v}");
    assert_eq!(v["last_id"], 1, "{v}");
    // What the server does hold is given, so the client can start over.
    assert_eq!(v["messages"][0]["id"], 1, "{v}");

    // SSE: an `event: gap` first.
    let mut s = Client::connect(server.addr);
    s.write(b"GET /sse/fut HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 50\r\n\r\n");
    s.read_until(b"\r\n\r\n");
    let first = String::from_utf8(s.read_until(b"\n\n")).unwrap();
    assert!(first.starts_with("event: gap\n"), "{first:?}");

    // WebSocket with the JSON subprotocol: a gap message first.
    let (mut w, _) = Client::upgrade_at(
        server.addr,
        "/ws/fut?since=50",
        "Sec-WebSocket-Protocol: wsreactor.json\r\n",
    );
    let f = w.recv();
    let v: Value = serde_json::from_slice(&f.payload).unwrap();
    assert!(v.get("gap").is_some(), "{v}");
}

// --- 6: pipelined requests behind a long poll ---------------------------------

#[test]
fn a_request_pipelined_behind_a_long_poll_is_answered() {
    let server = Server::start(with(|s| s.pubsub.poll_timeout = Duration::from_millis(500)));
    // Answered by a publish.
    let mut c = Client::connect(server.addr);
    c.write(b"GET /poll/q HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    publish_at(server.addr, "q", "m");
    let t0 = Instant::now();
    assert_eq!(c.read_response().status, 200);
    let r = c.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // Answered by the poll timeout (204).
    let mut c = Client::connect(server.addr);
    c.write(b"GET /poll/q2 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 204);
    let t0 = Instant::now();
    assert_eq!(c.read_response().status, 200);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

// --- 7: only our own workers share the port -----------------------------------

#[test]
fn a_second_server_on_the_same_address_is_refused() {
    let server = Server::with_threads(2, settings());
    let err = wsreactor::reactor::start(server.addr, 2, 128, settings()).err();
    assert_eq!(err.map(|e| e.kind()), Some(std::io::ErrorKind::AddrInUse));
}

#[test]
fn a_second_serve_process_fails_naming_the_address() {
    let server = Server::start(settings());
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", &server.addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = status.expect("the second server kept running");
    assert!(!status.success(), "{status}");
    assert!(stderr.contains(&server.addr.to_string()), "{stderr}");
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
    // The first one still serves.
    let mut c = Client::connect(server.addr);
    assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn a_port_freed_by_a_stopped_server_can_be_bound_again() {
    // The check against a second server must not refuse a restart.
    let server = Server::start(settings());
    let addr = server.addr;
    // Leave a connection behind in TIME_WAIT on the server side.
    let mut c = Client::connect(addr);
    assert_eq!(c.request("GET", "/healthz", &["Connection: close"], b"").status, 200);
    drop(c);
    server.stop();
    let again = wsreactor::reactor::start(addr, 2, 128, settings()).unwrap();
    again.shutdown();
    again.join().unwrap();
}

// --- 8: HTTP details (RFC 9110, RFC 9112) ---------------------------------------

/// Send raw bytes on a new connection; everything until the server closes,
/// or what arrived within `within` if it keeps the connection.
fn exchange(addr: std::net::SocketAddr, raw: &[u8], within: Duration) -> String {
    let mut c = Client::connect(addr);
    c.write(raw);
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        c.stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match c.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn host_is_required_once_in_http_1_1() {
    let server = Server::start(settings());
    let t = Duration::from_millis(500);
    let none = exchange(server.addr, b"GET /healthz HTTP/1.1\r\n\r\n", t);
    assert!(none.starts_with("HTTP/1.1 400 "), "{none:?}");
    let two = exchange(server.addr, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", t);
    assert!(two.starts_with("HTTP/1.1 400 "), "{two:?}");
    let upgrade = upgrade_request().replace("Host: 127.0.0.1\r\n", "");
    let ws = exchange(server.addr, upgrade.as_bytes(), t);
    assert!(ws.starts_with("HTTP/1.1 400 "), "{ws:?}");
    // HTTP/1.0 has no such rule (RFC 9112 §3.2 is about 1.1).
    let old = exchange(server.addr, b"GET /healthz HTTP/1.0\r\n\r\n", t);
    assert!(old.starts_with("HTTP/1.1 200 "), "{old:?}");
}

#[test]
fn an_absolute_form_target_is_accepted() {
    let server = Server::start(settings());
    let raw = format!(
        "GET http://{}/healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr, server.addr
    );
    let got = exchange(server.addr, raw.as_bytes(), Duration::from_millis(500));
    assert!(got.starts_with("HTTP/1.1 200 ") && got.ends_with("ok\n"), "{got:?}");
    let mut c = Client::connect(server.addr);
    let r = c.request("POST", &format!("http://{}/pub/abs", server.addr), &[], b"x");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn expect_100_continue_is_ignored_in_http_1_0() {
    let server = Server::start(settings());
    let raw = b"POST /pub/e HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi";
    let got = exchange(server.addr, raw, Duration::from_millis(500));
    assert!(!got.contains("100 Continue"), "{got:?}");
    assert!(got.starts_with("HTTP/1.1 200 "), "{got:?}");
}

#[test]
fn content_length_must_be_digits() {
    let server = Server::start(settings());
    for value in ["+5", "-5", "5 5", "0x5", "", "5.0"] {
        let raw = format!("POST /pub/cl HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nhello");
        let got = exchange(server.addr, raw.as_bytes(), Duration::from_millis(500));
        assert!(got.starts_with("HTTP/1.1 400 "), "{value:?}: {got:?}");
        assert_eq!(responses(&got), 1, "{value:?}: {got:?}");
    }
    // A length too large to be a number at all is too large.
    let raw = "POST /pub/cl HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    let got = exchange(server.addr, raw.as_bytes(), Duration::from_millis(500));
    assert!(got.starts_with("HTTP/1.1 413 "), "{got:?}");
    assert_never_published(server.addr, "cl");
}

#[test]
fn head_responses_have_no_body_refusals_included() {
    let server = Server::start(settings());
    for (target, status) in [("/healthz", 200), ("/nope", 404), ("/pub/x", 405), ("/poll/bad%", 400)] {
        let raw = format!("HEAD {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = exchange(server.addr, raw.as_bytes(), Duration::from_secs(1));
        assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{target}: {got:?}");
        assert!(got.ends_with("\r\n\r\n"), "{target}: a body follows: {got:?}");
    }
}

#[test]
fn responses_carry_a_date() {
    let server = Server::start(with(|s| s.pubsub.poll_timeout = Duration::from_millis(200)));
    let mut c = Client::connect(server.addr);
    let checks = [
        c.request("GET", "/healthz", &[], b""),
        c.request("POST", "/pub/d", &[], b"x"),
        c.request("GET", "/poll/d?since=0", &[], b""),
        c.request("GET", "/poll/d", &[], b""),
        c.request("GET", "/nope", &[], b""),
    ];
    for r in checks {
        let date = r.header("date").unwrap_or_else(|| panic!("no Date: {r:?}"));
        // IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
        assert_eq!(date.len(), 29, "{date:?}");
        assert!(date.ends_with(" GMT") && date.as_bytes()[3] == b',', "{date:?}");
    }
}
