//! The push server over real sockets: publish over HTTP, receive by
//! WebSocket, long polling and Server-Sent Events; ordering, no loss, no
//! duplicate, resumes, gaps, auth, slow subscribers, metrics.

mod api;
#[path = "../common/mod.rs"]
mod common;
mod documented;
mod mux;
mod presence;
mod several;
mod short_poll;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wsreactor::reactor::settings::Settings;
use wsreactor::stats::Transport;

fn text(frame: &Frame) -> &str {
    assert_eq!(frame.opcode, TEXT, "{frame:?}");
    std::str::from_utf8(&frame.payload).unwrap()
}

fn json(frame: &Frame) -> Value {
    serde_json::from_str(text(frame)).unwrap()
}

/// Each worker's gauge of open connections of `transport`.
fn gauges(server: &Server, transport: Transport) -> Vec<i64> {
    server
        .handle()
        .stats()
        .iter()
        .map(|s| s.open_by[transport as usize].load(Relaxed))
        .collect()
}

/// Wait (at most 5 s) until `n` connections of `transport` are open in all.
fn wait_gauge(server: &Server, transport: Transport, n: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if gauges(server, transport).iter().sum::<i64>() == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn with_pubsub(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = settings();
    f(&mut s);
    s
}

#[test]
fn thousand_subscribers_on_four_workers_get_a_thousand_messages_in_order() {
    wsreactor::sys::raise_fd_limit().unwrap();
    let server = Server::with_threads(4, settings());
    let mut subs: Vec<Client> = (0..1000)
        .map(|_| Client::upgrade_at(server.addr, "/ws/fan", "").0)
        .collect();
    // Every worker holds some of them.
    assert!(wait_gauge(&server, Transport::WebSocket, 1000));
    let per_worker = gauges(&server, Transport::WebSocket);
    assert!(per_worker.iter().all(|&n| n > 0), "spread {per_worker:?}");

    let mut publisher = Client::connect(server.addr);
    for i in 1..=1000u64 {
        let receipt = publish(&mut publisher, "fan", &format!("m{i}"));
        assert_eq!(receipt["id"], i);
        assert_eq!(receipt["subscribers"], 1000);
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        for i in 1..=1000u64 {
            let f = sub.recv();
            assert_eq!(text(&f), format!("m{i}"), "subscriber {n}");
        }
        assert!(sub.recv_within(Duration::from_millis(1)).is_none(), "duplicate at {n}");
    }
}

#[test]
fn since_replays_history_then_live_without_gap_or_duplicate() {
    let server = Server::start(settings());
    let mut publisher = Client::connect(server.addr);
    for i in 1..=5 {
        publish(&mut publisher, "s", &i.to_string());
    }
    let (mut sub, _) = Client::upgrade_at(server.addr, "/ws/s?since=2", "");
    for i in 3..=5 {
        assert_eq!(text(&sub.recv()), i.to_string());
    }
    publish(&mut publisher, "s", "6");
    assert_eq!(text(&sub.recv()), "6");
    // Without since: only what comes next.
    let (mut fresh, _) = Client::upgrade_at(server.addr, "/ws/s", "");
    publish(&mut publisher, "s", "7");
    assert_eq!(text(&fresh.recv()), "7");
    assert_eq!(text(&sub.recv()), "7");
}

#[test]
fn subscribers_joining_during_a_publish_stream_see_every_id_once() {
    let server = Server::with_threads(2, settings());
    let addr = server.addr;
    const N: u64 = 400;
    let publisher = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        for i in 1..=N {
            publish(&mut c, "race", &i.to_string());
        }
    });
    // Join at different points of the stream, each from the start.
    let mut subs = Vec::new();
    for _ in 0..20 {
        subs.push(Client::upgrade_at(addr, "/ws/race?since=0", "").0);
        std::thread::sleep(Duration::from_millis(2));
    }
    publisher.join().unwrap();
    for (n, sub) in subs.iter_mut().enumerate() {
        for i in 1..=N {
            assert_eq!(text(&sub.recv()), i.to_string(), "subscriber {n}");
        }
        assert!(sub.recv_within(Duration::from_millis(20)).is_none(), "duplicate at {n}");
    }
}

#[test]
fn json_subprotocol_wraps_messages_and_reports_gaps() {
    let server = Server::start(with_pubsub(|s| s.pubsub.hub.history_size = 3));
    let mut publisher = Client::connect(server.addr);
    for i in 1..=5 {
        publish(&mut publisher, "j", &format!("t{i}"));
    }
    let r = publisher.request(
        "POST",
        "/pub/j",
        &["Content-Type: application/octet-stream"],
        &[0, 1, 255],
    );
    assert_eq!(r.status, 200);
    // History holds 4, 5, 6: asking from 1 misses 2 and 3.
    let (mut sub, r) = Client::upgrade_at(
        server.addr,
        "/ws/j?since=1",
        "Sec-WebSocket-Protocol: chat, wsreactor.json\r\n",
    );
    assert_eq!(r.header("sec-websocket-protocol"), Some("wsreactor.json"));
    assert_eq!(
        json(&sub.recv()),
        serde_json::json!({"channel": "j", "gap": {"from": 2, "to": 3}})
    );
    assert_eq!(
        json(&sub.recv()),
        serde_json::json!({"id": 4, "channel": "j", "data": "t4"})
    );
    assert_eq!(json(&sub.recv())["id"], 5);
    assert_eq!(
        json(&sub.recv()),
        serde_json::json!({"id": 6, "channel": "j", "data": "AAH/", "encoding": "base64"})
    );
    // The raw form keeps the published frame type.
    let (mut raw, r) = Client::upgrade_at(server.addr, "/ws/j?since=5", "");
    assert_eq!(r.header("sec-websocket-protocol"), None);
    let f = raw.recv();
    assert_eq!((f.opcode, f.payload.as_slice()), (BINARY, &[0u8, 1, 255][..]));
}

/// A long-poll client: its cursor, and every id it has seen.
struct Poller {
    client: Client,
    cursor: u64,
    seen: Vec<u64>,
}

impl Poller {
    fn poll(&mut self, channel: &str) -> u16 {
        let r = self
            .client
            .request("GET", &format!("/poll/{channel}?since={}", self.cursor), &[], b"");
        if r.status == 200 {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["gap"], false, "{v}");
            for m in v["messages"].as_array().unwrap() {
                let id = m["id"].as_u64().unwrap();
                assert_eq!(m["data"], id.to_string());
                self.seen.push(id);
            }
            self.cursor = v["last_id"].as_u64().unwrap();
        } else {
            assert_eq!(r.status, 204, "{r:?}");
            assert!(r.body.is_empty());
        }
        r.status
    }
}

#[test]
fn long_polling_sees_every_id_exactly_once_on_one_connection() {
    let server = Server::with_threads(2, with_pubsub(|s| s.pubsub.poll_timeout = Duration::from_millis(300)));
    let addr = server.addr;
    let mut poller = Poller {
        client: Client::connect(addr),
        cursor: 0,
        seen: Vec::new(),
    };
    // Published before the first poll: answered at once.
    let mut publisher = Client::connect(addr);
    for i in 1..=3 {
        publish(&mut publisher, "lp", &i.to_string());
    }
    assert_eq!(poller.poll("lp"), 200);
    assert_eq!(poller.seen, [1, 2, 3]);
    // Nothing new: 204 after the timeout, on the same connection.
    let t0 = Instant::now();
    assert_eq!(poller.poll("lp"), 204);
    assert!(t0.elapsed() >= Duration::from_millis(250), "{:?}", t0.elapsed());
    // A poll without since learns the cursor from the 204.
    let r = poller.client.request("GET", "/poll/lp", &[], b"");
    assert_eq!((r.status, r.header("x-last-id")), (204, Some("3")));

    // Published while parked and between polls, from another thread.
    const N: u64 = 300;
    let publisher = std::thread::spawn(move || {
        for i in 4..=N {
            publish(&mut publisher, "lp", &i.to_string());
            if i % 7 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while poller.cursor < N && Instant::now() < deadline {
        poller.poll("lp");
    }
    publisher.join().unwrap();
    assert_eq!(poller.seen, (1..=N).collect::<Vec<_>>());
    // One connection served every poll.
    assert_eq!(server.total(|s| &s.accepted), 2);
}

#[test]
fn a_percent_encoded_channel_name_is_the_same_channel() {
    // encodeURIComponent("market:btc") is "market%3Abtc".
    let server = Server::start(settings());
    let (mut sub, _) = Client::upgrade_at(server.addr, "/ws/market%3Abtc", "");
    let mut publisher = Client::connect(server.addr);
    let receipt = publish(&mut publisher, "market:btc", "one");
    assert_eq!(receipt["subscribers"], 1);
    assert_eq!(text(&sub.recv()), "one");
    let receipt = publish(&mut publisher, "market%3abtc", "two");
    assert_eq!(receipt["id"], 2);
    assert_eq!(text(&sub.recv()), "two");
    // An escape that decodes outside the name set is refused.
    let r = publisher.request("POST", "/pub/a%2Fb", &[], b"x");
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_parked_poll_is_answered_by_a_publish() {
    let server = Server::start(settings());
    let mut poller = Client::connect(server.addr);
    poller.write(b"GET /poll/p HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_gauge(&server, Transport::Poll, 1));
    let t0 = Instant::now();
    let mut publisher = Client::connect(server.addr);
    let receipt = publish(&mut publisher, "p", "hello");
    assert_eq!(receipt["subscribers"], 1);
    let r = poller.read_response();
    assert!(t0.elapsed() < Duration::from_secs(2));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"messages": [{"id": 1, "data": "hello"}], "last_id": 1, "gap": false})
    );
}

#[test]
fn polling_after_trimmed_history_reports_the_gap() {
    let server = Server::start(with_pubsub(|s| s.pubsub.hub.history_size = 2));
    let mut c = Client::connect(server.addr);
    for i in 1..=5 {
        publish(&mut c, "g", &i.to_string());
    }
    let r = c.request("GET", "/poll/g?since=1", &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["gap"], true);
    assert_eq!(v["last_id"], 5);
    let ids: Vec<u64> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [4, 5]);
}

/// Read SSE events until one with an `id:` line; returns (id, data lines,
/// comments and gap events seen before it).
fn next_event(c: &mut Client) -> (u64, Vec<String>, Vec<String>) {
    let mut other = Vec::new();
    loop {
        let block = String::from_utf8(c.read_until(b"\n\n")).unwrap();
        let mut id = None;
        let mut data = Vec::new();
        for line in block.trim_end_matches('\n').split('\n') {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v.to_string());
            }
        }
        match id {
            Some(id) => return (id, data, other),
            None => other.push(block),
        }
    }
}

fn open_sse(addr: SocketAddr, target: &str, extra: &str) -> Client {
    let mut c = Client::connect(addr);
    c.write(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
    let head = String::from_utf8(c.read_until(b"\r\n\r\n")).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/event-stream\r\n"), "{head}");
    c
}

#[test]
fn sse_streams_resumes_with_last_event_id_and_reports_gaps() {
    let server = Server::start(with_pubsub(|s| {
        s.pubsub.hub.history_size = 4;
        s.pubsub.sse_heartbeat = Duration::from_millis(200);
    }));
    let mut publisher = Client::connect(server.addr);
    let mut sse = open_sse(server.addr, "/sse/e", "");
    publish(&mut publisher, "e", "one\ntwo");
    publish(&mut publisher, "e", "three");
    assert_eq!(next_event(&mut sse).0, 1);
    let (id, data, _) = next_event(&mut sse);
    assert_eq!((id, data), (2, vec!["three".to_string()]));
    // Silence brings a heartbeat comment.
    let beat = String::from_utf8(sse.read_until(b"\n\n")).unwrap();
    assert_eq!(beat, ": heartbeat\n\n");
    drop(sse);

    // Reconnect after id 2 (the header wins over the URL's since).
    publish(&mut publisher, "e", "four");
    let mut again = open_sse(server.addr, "/sse/e?since=0", "Last-Event-ID: 2\r\n");
    let (id, data, other) = next_event(&mut again);
    assert_eq!((id, data), (3, vec!["four".to_string()]));
    assert!(other.is_empty(), "{other:?}");
    publish(&mut publisher, "e", "five");
    assert_eq!(next_event(&mut again).0, 4);

    // History keeps 4: from 0, ids 1 and 2 are gone.
    for i in 5..=6 {
        publish(&mut publisher, "e", &i.to_string());
    }
    let mut late = open_sse(server.addr, "/sse/e?since=0", "");
    let (id, _, other) = next_event(&mut late);
    assert_eq!(id, 3);
    assert_eq!(other, ["event: gap\ndata: {\"from\":1,\"to\":2}\n\n"]);
}

#[test]
fn publish_token_guards_publishing_and_a_refused_publish_reaches_nobody() {
    let server = Server::start(with_pubsub(|s| s.pubsub.publish_token = Some("s3cret".into())));
    let (mut sub, _) = Client::upgrade_at(server.addr, "/ws/a", "");
    let mut c = Client::connect(server.addr);
    let r = c.request("POST", "/pub/a", &[], b"no token");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let mut c = Client::connect(server.addr);
    let r = c.request("POST", "/pub/a", &["Authorization: Bearer wrong"], b"bad token");
    assert_eq!(r.status, 403);
    let mut c = Client::connect(server.addr);
    let r = c.request("POST", "/pub/a", &["Authorization: Bearer s3cret"], b"good");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    // Refused publishes used up no id.
    assert_eq!(v, serde_json::json!({"id": 1, "subscribers": 1}));
    let f = sub.recv();
    assert_eq!((f.opcode, f.payload.as_slice()), (BINARY, &b"good"[..]));
    assert!(sub.recv_within(Duration::from_millis(200)).is_none());
}

#[test]
fn bad_publishes_get_clear_statuses() {
    let server = Server::start(with_pubsub(|s| s.read_limits.max_message_size = 100));
    type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("POST", "/pub/bad name", vec![], b"x".to_vec(), 400),
        ("POST", "/pub/a%2Fb", vec![], b"x".to_vec(), 400),
        ("GET", "/pub/a", vec![], vec![], 405),
        (
            "POST",
            "/pub/a",
            vec!["Content-Type: text/plain"],
            vec![0xff, 0xfe],
            400,
        ),
        ("POST", "/pub/a", vec![], vec![b'x'; 101], 413),
        // No transfer coding is implemented (RFC 9112 §6.1).
        ("POST", "/pub/a", vec!["Transfer-Encoding: chunked"], vec![], 501),
        ("GET", "/poll/a?since=x", vec![], vec![], 400),
        ("GET", "/sse/a?since=-1", vec![], vec![], 400),
        ("POST", "/poll/a", vec![], vec![], 405),
    ];
    for (method, target, headers, body, status) in cases {
        let mut c = Client::connect(server.addr);
        let r = c.request(method, target, &headers, &body);
        assert_eq!(r.status, status, "{method} {target}: {r:?}");
    }
    // No Content-Length at all.
    let mut c = Client::connect(server.addr);
    c.write(b"POST /pub/a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 411);
    // None of them published anything.
    let mut c = Client::connect(server.addr);
    let v: Value = serde_json::from_slice(&c.request("POST", "/pub/a", &[], b"ok").body).unwrap();
    assert_eq!(v["id"], 1);
}

#[test]
fn a_slow_subscriber_is_dropped_while_others_get_everything() {
    // The slow client reads only at the end: give its 1013 time to get out.
    let server = Server::start(with_pubsub(|s| {
        s.write_buffer_limit = 64 << 10;
        s.close_timeout = Duration::from_secs(20);
    }));
    let (mut slow, _) = Client::upgrade_at(server.addr, "/ws/big", "");
    let (mut good, _) = Client::upgrade_at(server.addr, "/ws/big", "");
    let addr = server.addr;
    // More than loopback's socket buffers can hold for the one that does not read.
    const N: usize = 1000;
    let payload = Arc::new("x".repeat(16 << 10));
    let p = payload.clone();
    // The reader that keeps up is at most two messages (32 KiB, under the
    // limit) behind, however the machine schedules the threads.
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = received.clone();
    let publisher = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        for i in 0..N {
            let deadline = Instant::now() + Duration::from_secs(10);
            while r.load(Relaxed) + 2 < i && Instant::now() < deadline {
                std::thread::yield_now();
            }
            publish(&mut c, "big", &p);
        }
    });
    for i in 0..N {
        let f = good.recv();
        assert_eq!(f.payload.len(), payload.len(), "message {i}: {f:?}");
        received.store(i + 1, Relaxed);
    }
    publisher.join().unwrap();
    assert!(server.wait_for(|s| &s.slow_consumers, 1, Duration::from_secs(5)));
    // The slow one finds a 1013 close after what was queued for it.
    let mut got = 0;
    loop {
        let f = slow.recv();
        if f.opcode == CLOSE {
            assert_eq!(f.close_code(), Some(1013));
            break;
        }
        got += 1;
    }
    assert!(got < N, "got all {got}");
}

#[test]
fn metrics_and_demo_page() {
    let server = Server::with_threads(2, settings());
    let (mut sub, _) = Client::upgrade_at(server.addr, "/ws/m", "");
    let mut c = Client::connect(server.addr);
    publish(&mut c, "m", "x");
    // Delivery is asynchronous to the publish's answer: once the subscriber
    // has the message, the counters have it too.
    assert_eq!(sub.recv().payload, b"x");
    let _ = Client::connect(server.addr).request("GET", "/nope", &[], b"");
    assert!(server.wait_for(|s| &s.handshake_errors, 1, Duration::from_secs(5)));
    assert_eq!(
        c.request("GET", "/readyz", &[], b"").status,
        200,
        "the local hub is always ready"
    );
    let r = c.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let page = String::from_utf8(r.body).unwrap();
    for needle in [
        "# TYPE wsreactor_connections gauge",
        "wsreactor_connections{worker=\"0\",transport=\"websocket\"}",
        "wsreactor_connections{worker=\"1\",transport=\"http\"}",
        "wsreactor_messages_published_total{worker=",
        "wsreactor_http_errors_total{worker=",
        ",status=\"404\"} 1",
        "wsreactor_channels 1",
    ] {
        assert!(page.contains(needle), "{needle} missing from\n{page}");
    }
    let delivered: u64 = page
        .lines()
        .filter(|l| l.starts_with("wsreactor_messages_delivered_total{") && l.contains("websocket"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(delivered, 1);

    let r = c.request("GET", "/", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let page_len = r.body.len();
    assert!(String::from_utf8(r.body).unwrap().contains("<html"));
    // HEAD: the same length, no body (the next response follows at once).
    c.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = String::from_utf8(c.read_until(b"\r\n\r\n")).unwrap();
    assert!(head.contains(&format!("Content-Length: {page_len}\r\n")), "{head}");
    assert_eq!(c.request("GET", "/healthz", &[], b"").body, b"ok\n");
    // The echo endpoint is still there for upgrades.
    let mut echo = Client::upgrade(server.addr);
    echo.echo(TEXT, b"still echoing");
}

/// The `Broker` methods a test broker hands to its `LocalHub` unchanged.
macro_rules! delegate_to_hub {
    () => {
        fn history(
            &self,
            channel: &str,
            since: Option<u64>,
            now: Instant,
        ) -> Result<wsreactor::pubsub::Snapshot, wsreactor::pubsub::HubError> {
            self.hub.history(channel, since, now)
        }
        fn unsubscribe(&self, subscription: wsreactor::pubsub::Subscription) {
            self.hub.unsubscribe(subscription)
        }
        fn sweep(&self, now: Instant) {
            self.hub.sweep(now)
        }
        fn channels(&self) -> usize {
            self.hub.channels()
        }
    };
}

/// A broker put between the workers and the hub: it counts what it is
/// asked and hands everything to a `LocalHub` on the reactor's inboxes.
#[derive(Debug)]
struct Counting {
    hub: wsreactor::pubsub::LocalHub,
    publishes: std::sync::atomic::AtomicUsize,
}

impl wsreactor::pubsub::Broker for Counting {
    fn submit(&self, from: wsreactor::pubsub::Address, request: wsreactor::pubsub::Request, now: Instant) {
        if matches!(request, wsreactor::pubsub::Request::Publish { .. }) {
            self.publishes.fetch_add(1, Relaxed);
        }
        self.hub.submit(from, request, now)
    }
    delegate_to_hub!();
}

#[test]
fn the_broker_is_injected_and_delivers_through_the_reactors_inboxes() {
    let settings = settings();
    let hub_settings = settings.pubsub.hub.clone();
    let counting = Arc::new(std::sync::OnceLock::<Arc<Counting>>::new());
    let keep = counting.clone();
    let handle =
        wsreactor::reactor::start_with_broker("127.0.0.1:0".parse().unwrap(), 2, 128, settings, move |inboxes| {
            let broker = Arc::new(Counting {
                hub: wsreactor::pubsub::LocalHub::new(hub_settings, inboxes),
                publishes: Default::default(),
            });
            let _ = keep.set(broker.clone());
            broker
        })
        .unwrap();
    let server = Server::from_handle(handle);
    let (mut sub, _) = Client::upgrade_at(server.addr, "/ws/injected", "");
    let mut publisher = Client::connect(server.addr);
    assert_eq!(publish(&mut publisher, "injected", "through it")["subscribers"], 1);
    assert_eq!(text(&sub.recv()), "through it");
    assert_eq!(counting.get().unwrap().publishes.load(Relaxed), 1);
}

#[test]
fn an_idempotency_key_publishes_once_and_a_bad_one_is_400() {
    let server = Server::start(settings());
    let (mut sub, _) = Client::upgrade_at(server.addr, "/ws/once", "");
    let post = |key: &str, body: &[u8]| {
        let key = format!("Idempotency-Key: {key}");
        Client::connect(server.addr).request("POST", "/pub/once", &["Content-Type: text/plain", &key], body)
    };
    let first: Value = serde_json::from_slice(&post("\"8e03978e-40d5\"", b"once").body).unwrap();
    assert_eq!(first, serde_json::json!({"id": 1, "subscribers": 1}));
    // A retry, quoted or not: the first receipt, and nothing published.
    for key in ["\"8e03978e-40d5\"", "8e03978e-40d5"] {
        let again: Value = serde_json::from_slice(&post(key, b"once").body).unwrap();
        assert_eq!(again, serde_json::json!({"id": 1, "subscribers": 1, "duplicate": true}));
    }
    assert_eq!(text(&sub.recv()), "once");
    assert!(sub.recv_within(Duration::from_millis(200)).is_none(), "published once");
    for bad in ["\"\"", "a b", "\"x\\y\"", &"k".repeat(256)] {
        let r = post(bad, b"x");
        assert_eq!(r.status, 400, "{bad:?}: {r:?}");
        assert!(String::from_utf8_lossy(&r.body).contains("Idempotency-Key"), "{r:?}");
    }
    // Two keys in one request: refused, not one of them taken.
    let r =
        Client::connect(server.addr).request("POST", "/pub/once", &["Idempotency-Key: a", "Idempotency-Key: b"], b"x");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(publish(&mut Client::connect(server.addr), "once", "next")["id"], 2);
}

/// What the server runs with (the local hub numbering after the clock),
/// with a short close timeout.
fn numbered_after_the_clock() -> Settings {
    Settings {
        close_timeout: Duration::from_secs(1),
        ..Settings::default()
    }
}

#[test]
fn ids_never_go_back_across_a_restart() {
    // What the server runs with: the local hub numbers after the clock.
    let server = Server::start(numbered_after_the_clock());
    let mut c = Client::connect(server.addr);
    let mut cursor = 0;
    for i in 1..=4 {
        cursor = publish(&mut c, "r", &format!("m{i}"))["id"].as_u64().unwrap();
    }
    drop((c, server));
    // A new process: a client back with its cursor is told, on every
    // transport, and given the new numbering's history, never moved on.
    let server = Server::start(numbered_after_the_clock());
    let mut c = Client::connect(server.addr);
    let new_ids: Vec<u64> = (1..=6)
        .map(|i| publish(&mut c, "r", &format!("n{i}"))["id"].as_u64().unwrap())
        .collect();
    assert!(new_ids[0] > cursor, "ids never go back: {new_ids:?} after {cursor}");
    let r = c.request("GET", &format!("/poll/r?since={cursor}"), &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["gap"].as_bool(), v["reset"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    let polled: Vec<u64> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(polled, new_ids, "{v}");
    let mut sse = open_sse(server.addr, "/sse/r", &format!("Last-Event-ID: {cursor}\r\n"));
    let (id, _, before) = next_event(&mut sse);
    assert_eq!(id, new_ids[0]);
    assert!(
        before
            .iter()
            .any(|e| e.starts_with("event: gap") && e.contains("\"reset\":true")),
        "{before:?}"
    );
    let (mut ws, _) = Client::upgrade_at(
        server.addr,
        &format!("/ws/r?since={cursor}"),
        "Sec-WebSocket-Protocol: wsreactor.json\r\n",
    );
    assert_eq!(json(&ws.recv())["gap"]["reset"], true);
    assert_eq!(json(&ws.recv())["id"], new_ids[0]);
}

#[test]
fn a_quiet_channels_last_id_is_a_cursor_that_parks() {
    // The numbering after the clock: a channel with no publish yet has
    // the numbering's start as its last id, and a poll that asks from it
    // waits for a publish like any other, with no reset.
    let server = Server::start(numbered_after_the_clock());
    let mut c = Client::connect(server.addr);
    let r = c.request("GET", "/poll/quiet?wait=0", &[], b"");
    assert_eq!(r.status, 204, "{r:?}");
    let cursor = r.header("x-last-id").unwrap().to_owned();
    let t0 = Instant::now();
    let r = c.request("GET", &format!("/poll/quiet?since={cursor}&wait=1"), &[], b"");
    assert_eq!(r.status, 204, "parked, then nothing: {r:?}");
    assert!(t0.elapsed() >= Duration::from_millis(900), "answered at once: {r:?}");
    assert_eq!(r.header("x-last-id"), Some(cursor.as_str()));
    let id = publish(&mut Client::connect(server.addr), "quiet", "first")["id"]
        .as_u64()
        .unwrap();
    assert_eq!(id, cursor.parse::<u64>().unwrap() + 1);
    let r = c.request("GET", &format!("/poll/quiet?since={cursor}"), &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((&v["gap"], v.get("reset")), (&Value::Bool(false), None), "{v}");
}

/// A broker that takes publishes and never answers them, as one across a
/// network that went silent would.
#[derive(Debug)]
struct Silent {
    hub: wsreactor::pubsub::LocalHub,
}

impl wsreactor::pubsub::Broker for Silent {
    fn submit(&self, from: wsreactor::pubsub::Address, request: wsreactor::pubsub::Request, now: Instant) {
        if !matches!(request, wsreactor::pubsub::Request::Publish { .. }) {
            self.hub.submit(from, request, now);
        }
    }
    delegate_to_hub!();
}

#[test]
fn a_publish_the_broker_never_answers_is_504_not_a_refusal() {
    let mut settings = settings();
    settings.request_timeout = Duration::from_millis(300);
    let hub_settings = settings.pubsub.hub.clone();
    let handle =
        wsreactor::reactor::start_with_broker("127.0.0.1:0".parse().unwrap(), 1, 128, settings, move |inboxes| {
            Arc::new(Silent {
                hub: wsreactor::pubsub::LocalHub::new(hub_settings, inboxes),
            })
        })
        .unwrap();
    let server = Server::from_handle(handle);
    let r = Client::connect(server.addr).request("POST", "/pub/silent", &[], b"x");
    assert_eq!(r.status, 504, "{r:?}");
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("may or may not have been published") && body.contains("Idempotency-Key"),
        "{body}"
    );
}

/// A broker that answers subscribes late, from another thread, as one
/// across the network would.
#[derive(Debug)]
struct Late {
    hub: wsreactor::pubsub::LocalHub,
    inboxes: Arc<[wsreactor::pubsub::Inbox]>,
    delay: Duration,
}

impl wsreactor::pubsub::Broker for Late {
    fn submit(&self, from: wsreactor::pubsub::Address, request: wsreactor::pubsub::Request, now: Instant) {
        let wsreactor::pubsub::Request::Subscribe { channel, since, .. } = request else {
            return self.hub.submit(from, request, now);
        };
        let answer = wsreactor::pubsub::Answer::Subscribed(self.hub.subscribe(&channel, from.worker, since, now));
        let (inboxes, delay) = (self.inboxes.clone(), self.delay);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            inboxes[from.worker].answer(from, answer);
        });
    }
    delegate_to_hub!();
}

#[test]
fn a_late_answer_for_a_gone_connection_is_not_given_to_the_slots_next_user() {
    let settings = settings();
    let hub_settings = settings.pubsub.hub.clone();
    // One worker, so the second connection takes the first one's slab slot.
    let handle =
        wsreactor::reactor::start_with_broker("127.0.0.1:0".parse().unwrap(), 1, 128, settings, move |inboxes| {
            Arc::new(Late {
                hub: wsreactor::pubsub::LocalHub::new(hub_settings, inboxes.clone()),
                inboxes,
                delay: Duration::from_millis(500),
            })
        })
        .unwrap();
    let server = Server::from_handle(handle);
    let mut gone = Client::connect(server.addr);
    gone.write(b"GET /sse/late HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    drop(gone);
    std::thread::sleep(Duration::from_millis(150));
    let mut next = Client::connect(server.addr);
    next.write(b"GET /sse/other HTTP/1.1\r\nHost: t\r\n\r\n");
    // The gone connection's answer comes first, to the same slot: it is
    // dropped and its subscription given back, not opened on "other"'s client.
    let head = next.read_response();
    assert_eq!(head.status, 200, "{head:?}");
    let mut publisher = Client::connect(server.addr);
    assert_eq!(publish(&mut publisher, "late", "not yours")["subscribers"], 0);
    assert_eq!(publish(&mut publisher, "other", "yours")["subscribers"], 1);
    let event = String::from_utf8(next.read_until(b"\n\n")).unwrap();
    assert_eq!(event, "id: 1\ndata: yours\n\n");
}

#[test]
fn allowed_origins_refuse_other_pages_on_every_subscribing_route() {
    let server = Server::start(Settings {
        allowed_origins: Some(vec!["https://app.example".into(), "http://localhost:8080".into()]),
        ..settings()
    });
    let upgrade = |origin: Option<&str>| -> u16 {
        let mut c = Client::connect(server.addr);
        let request = upgrade_request().replacen("GET / ", "GET /ws/o ", 1);
        let extra = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
        c.write(request.replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1).as_bytes());
        c.read_response().status
    };
    assert_eq!(upgrade(Some("https://app.example")), 101);
    assert_eq!(
        upgrade(Some("HTTPS://APP.EXAMPLE")),
        101,
        "origins compare without case"
    );
    assert_eq!(upgrade(Some("http://localhost:8080")), 101);
    assert_eq!(upgrade(None), 101, "not a browser: not checked");
    for other in [
        "https://evil.example",
        "https://app.example.evil",
        "null",
        "http://localhost:8081",
    ] {
        assert_eq!(upgrade(Some(other)), 403, "{other}");
    }
    // The echo endpoint at / too: any WebSocket handshake.
    let mut c = Client::connect(server.addr);
    c.write(
        upgrade_request()
            .replacen("\r\n\r\n", "\r\nOrigin: https://evil.example\r\n\r\n", 1)
            .as_bytes(),
    );
    assert_eq!(c.read_response().status, 403);
    // Long polling and event streams alike; publishing is not a page's.
    for path in ["/poll/o?since=0", "/sse/o"] {
        let r = Client::connect(server.addr).request("GET", path, &["Origin: https://evil.example"], b"");
        assert_eq!(r.status, 403, "{path}: {r:?}");
    }
    let r = Client::connect(server.addr).request("GET", "/sse/o", &["Origin: https://app.example"], b"");
    assert_eq!(r.status, 200);
    // Two Origin headers are none allowed.
    let r = Client::connect(server.addr).request(
        "GET",
        "/sse/o",
        &["Origin: https://app.example", "Origin: https://evil.example"],
        b"",
    );
    assert_eq!(r.status, 403);
}

/// The answer to a WebSocket upgrade at `target`, whatever its status.
fn upgrade_answer(addr: SocketAddr, target: &str) -> Response {
    let mut c = Client::connect(addr);
    let request = upgrade_request().replacen("GET / ", &format!("GET {target} "), 1);
    c.write(request.as_bytes());
    c.read_response()
}

#[test]
fn a_websocket_channel_is_the_whole_rest_of_the_path() {
    // The last segment alone was the channel: `/ws/public-x/internal-feed`
    // got 101 and `internal-feed`'s messages, past a proxy's rule on
    // `/ws/public-*`, and `/ws/x/..` opened channel `..` (issue 24, fault 1).
    let server = Server::start(settings());
    for target in [
        "/ws/a/b",
        "/ws/x/..",
        "/ws/..",
        "/ws/.",
        "/ws/%2E%2E",
        "/ws/a%2Fb",
        "/ws/",
        "/ws/public-x/internal-feed",
    ] {
        let r = upgrade_answer(server.addr, target);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(r.header("sec-websocket-accept").is_none(), "{target}: {r:?}");
    }
    // The same rule on every transport.
    let mut c = Client::connect(server.addr);
    for target in ["/poll/..?wait=0", "/sse/..", "/poll/a/b?wait=0", "/sse/a%2Fb"] {
        assert_eq!(c.request("GET", target, &[], b"").status, 400, "{target}");
        c = Client::connect(server.addr);
    }
    assert_eq!(c.request("POST", "/pub/..", &[], b"x").status, 400);
    // Nothing subscribed to `internal-feed`: its publish reaches nobody.
    let mut publisher = Client::connect(server.addr);
    assert_eq!(publish(&mut publisher, "internal-feed", "secret")["subscribers"], 0);
}
