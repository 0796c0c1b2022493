//! Several nodes through one Redis: every node's subscribers, on every
//! transport, get every message published on any node, once and in id
//! order, from one id sequence. The test starts its own `redis-server` on a
//! free loopback port (CI installs it: tests/run-all.sh) and stops it by
//! its pid.

mod common;

use common::services::Node;
use common::*;
use serde_json::{json, Value};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wsreactor::pubsub::redis::RedisBroker;
use wsreactor::pubsub::Broker;
use wsreactor::reactor::Builder;

/// A `redis-server` of this test's own, stopped (by pid) when dropped.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_free(&["--appendonly", "no"], true).0
    }

    fn start_on(port: u16) -> Redis {
        Redis::launch(port, &["--appendonly", "no"])
    }

    /// One that writes every command to its append-only file in `dir`
    /// before answering (`appendfsync always`), and reads it back at start.
    fn durable_on(port: u16, dir: &std::path::Path) -> Redis {
        let dir = dir.to_str().unwrap();
        Redis::launch(port, &["--appendonly", "yes", "--appendfsync", "always", "--dir", dir])
    }

    /// On a free port: (the server, its port). The probe listener is closed
    /// before redis-server binds the port, so another test may take the
    /// port meanwhile: then redis-server exits, and another port is tried.
    /// `plain`: the port speaks plain RESP (answers PING); else (TLS) only
    /// its being open and redis-server alive are checked.
    fn start_free(extra: &[&str], plain: bool) -> (Redis, u16) {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            if let Some(redis) = Redis::try_launch(port, extra, plain) {
                return (redis, port);
            }
        }
        panic!("redis-server found no free port in 10 tries");
    }

    fn launch(port: u16, extra: &[&str]) -> Redis {
        Redis::try_launch(port, extra, true).unwrap_or_else(|| panic!("redis-server exited: port {port} in use?"))
    }

    /// `None` if redis-server exited before it served the port.
    fn try_launch(port: u16, extra: &[&str], plain: bool) -> Option<Redis> {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--protected-mode", "yes"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed (Debian: apt-get install redis-server; tests/run-all.sh does it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t0 = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            if Redis::serves(addr, plain) {
                // Still ours: not a listener of another test's that
                // redis-server lost the port to.
                std::thread::sleep(Duration::from_millis(20));
                if child.try_wait().unwrap().is_none() {
                    break;
                }
                return None;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis-server did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    }

    /// Something listens on `addr` and, if `plain`, answers PING as Redis
    /// does (`+PONG`, or `-NOAUTH` when it wants a password).
    fn serves(addr: SocketAddr, plain: bool) -> bool {
        use std::io::{Read, Write};
        let Ok(mut c) = TcpStream::connect(addr) else {
            return false;
        };
        if !plain {
            return true;
        }
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 8];
        c.write_all(b"PING\r\n").is_ok()
            && matches!(c.read(&mut reply), Ok(n) if n > 0 && matches!(reply[0], b'+' | b'-'))
    }
}

impl Redis {
    /// SIGKILL, as a crash would; returns the port to start it again on.
    fn crash(mut self) -> u16 {
        let port = self
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let _ = self.child.kill();
        let _ = self.child.wait();
        port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node: an in-process server whose channels live in `redis`.
fn node(redis: &Redis) -> Server {
    node_with(redis, settings())
}

fn node_with(redis: &Redis, settings: wsreactor::reactor::settings::Settings) -> Server {
    let hub = settings.pubsub.hub.clone();
    let url = redis.url.clone();
    let handle = Builder::new(settings)
        .threads(2)
        .try_broker(Box::new(move |inboxes| {
            let broker = RedisBroker::start(&url, hub, inboxes).map_err(io::Error::other)?;
            Ok(Arc::new(broker) as Arc<dyn Broker>)
        }))
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    Server::from_handle(handle)
}

/// The server API's key and the tokens' secret of the tests that use them.
const KEY: &str = "an-api-key-of-the-operator";
const SECRET: &str = "the redis tests' token secret!!!";

/// Settings with the server API on ([`KEY`]) and tokens signed by [`SECRET`].
fn with_api() -> wsreactor::reactor::settings::Settings {
    let mut s = settings();
    s.api.key = Some(KEY.to_owned());
    s.auth = wsreactor::auth::Auth::new(vec![], SECRET.as_bytes());
    s
}

const EACH: usize = 100;

/// The id after which the numbering that gave `first_id` (a first publish)
/// began: Redis's clock in microseconds when the channel was made, so
/// above every id of an earlier life of Redis's data.
fn numbering_start(first_id: u64) -> u64 {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let start = first_id - 1;
    assert!(
        start > now_us - 600_000_000 && start <= now_us + 1_000_000,
        "a numbering starts at Redis's clock (µs): {start}, now {now_us}"
    );
    start
}

#[test]
fn two_nodes_share_one_id_sequence_and_every_transport_gets_every_message() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    let (mut raw_a, _) = Client::upgrade_at(a.addr, "/ws/news", "");
    let (mut json_b, r) = Client::upgrade_at(b.addr, "/ws/news", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    assert_eq!(r.header("sec-websocket-protocol"), Some("wsreactor.json"));
    let mut sse_a = Client::connect(a.addr);
    sse_a.write(b"GET /sse/news HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(sse_a.read_response().status, 200);

    // Two publishers at once, one on each node.
    let publishers: Vec<_> = [(a.addr, 'a'), (b.addr, 'b')]
        .into_iter()
        .map(|(addr, tag)| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                (0..EACH)
                    .map(|i| publish(&mut c, "news", &format!("{tag}{i}"))["id"].as_u64().unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut ids: Vec<u64> = publishers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    ids.sort_unstable();
    let total = 2 * EACH as u64;
    let base = numbering_start(ids[0]);
    let all: Vec<u64> = (base + 1..=base + total).collect();
    assert_eq!(ids, all, "one sequence, none repeated");

    // The raw subscriber on node a: every payload once, each publisher's in order.
    let payloads: Vec<String> = (0..total)
        .map(|_| String::from_utf8(raw_a.recv().payload).unwrap())
        .collect();
    for tag in ['a', 'b'] {
        let mine: Vec<&String> = payloads.iter().filter(|p| p.starts_with(tag)).collect();
        let want: Vec<String> = (0..EACH).map(|i| format!("{tag}{i}")).collect();
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "publisher {tag}'s messages, in order, once"
        );
    }
    // The envelope on node b: every id in order.
    let got: Vec<u64> = (0..total)
        .map(|_| {
            let v: Value = serde_json::from_slice(&json_b.recv().payload).unwrap();
            v["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(got, all);
    // The event stream on node a: `id:` lines in order.
    let mut sse_ids = Vec::new();
    while sse_ids.len() < total as usize {
        let event = String::from_utf8(sse_a.read_until(b"\n\n")).unwrap();
        if let Some(id) = event.strip_prefix("id: ").and_then(|r| r.split('\n').next()) {
            sse_ids.push(id.parse::<u64>().unwrap());
        }
    }
    assert_eq!(sse_ids, all);

    // A long poll on node b from a cursor: the history that Redis keeps.
    let mut poller = Client::connect(b.addr);
    let last = base + total;
    let r = poller.request("GET", &format!("/poll/news?since={}", last - 5), &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let polled = message_ids(&v);
    assert_eq!(polled, (last - 4..=last).collect::<Vec<_>>(), "{v}");
    assert_eq!((v["last_id"].as_u64(), v["gap"].as_bool()), (Some(last), Some(false)));
}

#[test]
fn a_subscriber_resumes_on_another_node_from_its_cursor() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut publisher = Client::connect(a.addr);
    let base = numbering_start(publish(&mut publisher, "resume", "m1")["id"].as_u64().unwrap());
    for i in 2..=5 {
        assert_eq!(publish(&mut publisher, "resume", &format!("m{i}"))["id"], base + i);
    }
    // Its cursor is the second id: node b replays 3..5 from Redis's history, then live.
    let (mut json, _) = Client::upgrade_at(
        b.addr,
        &format!("/ws/resume?since={}", base + 2),
        "Sec-WebSocket-Protocol: wsreactor.json\r\n",
    );
    let ids = |c: &mut Client, n: usize| -> Vec<u64> {
        (0..n)
            .map(|_| {
                serde_json::from_slice::<Value>(&c.recv().payload).unwrap()["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(ids(&mut json, 3), [base + 3, base + 4, base + 5]);
    assert_eq!(publish(&mut publisher, "resume", "m6")["id"], base + 6);
    assert_eq!(ids(&mut json, 1), [base + 6]);
    // A cursor from the future (a Redis that lost this channel) is a reset.
    let (mut late, _) = Client::upgrade_at(
        b.addr,
        &format!("/ws/resume?since={}", base + 99),
        "Sec-WebSocket-Protocol: wsreactor.json\r\n",
    );
    let first: Value = serde_json::from_slice(&late.recv().payload).unwrap();
    assert_eq!(first["gap"]["reset"], true, "{first}");
}

#[test]
fn a_connection_on_one_node_gets_three_channels_published_on_another_each_once_in_order() {
    use common::mux::MuxClient;
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut m = MuxClient::connect(a.addr, "");
    for (id, c) in ["x", "y", "z"].iter().enumerate() {
        m.subscribe(id as u64 + 1, c, None);
    }
    let mut publisher = Client::connect(b.addr);
    let mut round = |from: u64, to: u64| {
        let mut ids = std::collections::HashMap::new();
        for i in from..=to {
            for c in ["x", "y", "z"] {
                let id = publish(&mut publisher, c, &format!("{c}{i}"))["id"].as_u64().unwrap();
                ids.entry(c).or_insert_with(Vec::new).push(id);
            }
        }
        ids
    };
    let mut want = round(1, 20);
    let mut got = std::collections::HashMap::<String, Vec<u64>>::new();
    for _ in 0..60 {
        let (channel, id, _) = m.message();
        got.entry(channel).or_default().push(id);
    }
    for c in ["x", "y", "z"] {
        assert_eq!(got[c], want[c], "{c}: every message once, in order");
    }
    // y is left, then taken again from its cursor through node a: what
    // node b published meanwhile comes from Redis's history, then live.
    assert_eq!(m.call(json!({"id": 4, "unsubscribe": "y"}))["ok"], true);
    let cursor = *got["y"].last().unwrap();
    let missed = round(21, 25);
    m.subscribe(5, "y", Some(cursor));
    let live = round(26, 30);
    for c in ["x", "y", "z"] {
        want.get_mut(c).unwrap().extend(&missed[c]);
        want.get_mut(c).unwrap().extend(&live[c]);
    }
    for _ in 0..30 {
        let (channel, id, _) = m.message();
        got.get_mut(&channel).unwrap().push(id);
    }
    for c in ["x", "y", "z"] {
        assert_eq!(got[c], want[c], "{c}: every message once, in order");
    }
    assert!(m.c.recv_within(Duration::from_millis(100)).is_none(), "nothing more");
}

#[test]
fn the_channels_api_reads_every_node_through_redis() {
    let redis = Redis::start();
    let (a, b) = (node_with(&redis, with_api()), node_with(&redis, with_api()));
    let key = format!("X-API-Key: {KEY}");
    let mut publisher = Client::connect(b.addr);
    let first = publish(&mut publisher, "room.1", "m1")["id"].as_u64().unwrap();
    publish(&mut publisher, "room.1", "m2");
    publish(&mut publisher, "room.2", "m1");
    // Subscribers on node a, of a channel nobody published to: a
    // WebSocket and an event stream.
    let (_sub, _) = Client::upgrade_at(a.addr, "/ws/room.3", "");
    let mut sse = Client::connect(a.addr);
    sse.write(b"GET /sse/room.3 HTTP/1.1\r\nHost: t\r\n\r\n");
    sse.read_until(b"\r\n\r\n");
    let read = |node: &Server, path: &str| -> (u16, Value) {
        let r = Client::connect(node.addr).request("GET", path, &[&key], b"");
        (r.status, serde_json::from_slice(&r.body).unwrap())
    };
    // Seen from node b: every channel, whichever node made it.
    let (status, page) = read(&b, "/api/channels?pattern=room.*");
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["room.1", "room.2", "room.3"]);
    let (_, one) = read(&a, "/api/channels/room.1");
    assert_eq!(
        (
            one["last_id"].as_u64(),
            one["history"]["kept"].as_u64(),
            one["history"]["first_id"].as_u64()
        ),
        (Some(first + 1), Some(2), Some(first))
    );
    assert_eq!(one["epoch_start"].as_u64(), Some(numbering_start(first)));
    // Node a's subscribers, counted per transport from node b once a has
    // told Redis.
    let t0 = Instant::now();
    loop {
        let (_, three) = read(&b, "/api/channels/room.3");
        if three["subscribers"] == 2 {
            assert_eq!(three["transports"], json!({"websocket": 1, "sse": 1, "poll": 0}));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{three}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, none) = read(&b, "/api/channels/room.9");
    assert_eq!(status, 404, "{none}");
}

#[test]
fn a_broadcast_and_a_mux_publish_on_one_node_reach_the_other_and_its_history_api() {
    use common::mux::MuxClient;
    let redis = Redis::start();
    let (a, b) = (node_with(&redis, with_api()), node_with(&redis, with_api()));
    let key = format!("X-API-Key: {KEY}");
    // A subscriber of both channels on node a.
    let mut m = MuxClient::connect(a.addr, "");
    m.subscribe(1, "news", None);
    m.subscribe(2, "sport", None);
    // A broadcast through node b: each channel's id, and the subscriber
    // on node a gets both.
    let r = Client::connect(b.addr).request(
        "POST",
        "/api/broadcast",
        &[&key],
        br#"{"channels":["news","sport"],"data":{"headline":"rain"}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let results: Value = serde_json::from_slice(&r.body).unwrap();
    let mut got = [m.message(), m.message()];
    got.sort_by(|x, y| x.0.cmp(&y.0));
    for (i, channel) in ["news", "sport"].iter().enumerate() {
        assert_eq!(results["results"][i]["channel"], *channel);
        assert_eq!(Some(got[i].1), results["results"][i]["id"].as_u64(), "{results}");
        assert_eq!(got[i].2, json!("{\"headline\":\"rain\"}"));
    }
    // A publish from a mux connection on node b with the pub scope.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let publisher = jwt(SECRET, json!({"exp": exp, "channels": ["*"], "scope": "pub"}));
    let mut p = MuxClient::connect(b.addr, &format!("?token={publisher}"));
    let reply = p.call(json!({"id": 1, "publish": "news", "data": "sun"}));
    let id = reply["message_id"].as_u64().expect("an id");
    assert_eq!(m.message(), ("news".to_owned(), id, json!("\"sun\"")));
    // Node a's history API has both news messages.
    let r = Client::connect(a.addr).request("GET", "/api/history/news?since=0", &[&key], b"");
    let history: Value = serde_json::from_slice(&r.body).unwrap();
    let data: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["{\"headline\":\"rain\"}", "\"sun\""], "{history}");
    assert_eq!(history["last_id"].as_u64(), Some(id));
}

#[test]
fn a_user_disconnected_through_one_node_loses_its_connections_on_the_other() {
    use common::mux::MuxClient;
    let redis = Redis::start();
    let (a, b) = (node_with(&redis, with_api()), node_with(&redis, with_api()));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = |sub: &str| jwt(SECRET, json!({"exp": exp, "sub": sub}));
    let mut ada = MuxClient::connect(a.addr, &format!("?token={}", token("ada")));
    ada.subscribe(1, "x", None);
    let (mut ada_one, _) = Client::upgrade_at(a.addr, &format!("/ws/x?token={}", token("ada")), "");
    let mut bob = MuxClient::connect(a.addr, &format!("?token={}", token("bob")));
    bob.subscribe(1, "x", None);
    // Unsubscribe first, through node b: ada's mux connection on a is told.
    let key = format!("X-API-Key: {KEY}");
    let mut api = Client::connect(b.addr);
    let r = api.request("POST", "/api/unsubscribe", &[&key], br#"{"user":"ada","channel":"x"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ada.next(), json!({"channel": "x", "unsubscribed": "by the server"}));
    ada_one.expect_close(4003);
    ada.subscribe(2, "y", None);
    let r = api.request("POST", "/api/disconnect", &[&key], br#"{"user":"ada"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    ada.c.expect_close(4002);
    // Bob, on the same node, goes on.
    publish(&mut Client::connect(b.addr), "x", "for bob");
    assert_eq!(bob.message().2, json!("for bob"));
}

/// Wait (at most `within`) until `channel`'s members seen from `node` are `want`.
fn presence_becomes(node: SocketAddr, key: &str, channel: &str, want: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = presence_users(node, key, channel);
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{channel} from {node}: {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn presence_holds_over_both_nodes_and_a_killed_nodes_members_leave_within_the_ttl() {
    use common::mux::MuxClient;
    let redis = Redis::start();
    let ttl = Duration::from_secs(3);
    let presence = || {
        let mut s = with_api();
        s.pubsub.presence_channels = vec!["room-*".into()];
        s.pubsub.hub.presence.ttl = ttl;
        s.pubsub.hub.presence.max_members = 3;
        s
    };
    let (a, b) = (node_with(&redis, presence()), node_with(&redis, presence()));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = |sub: &str| jwt(SECRET, json!({"exp": exp, "sub": sub, "info": {"n": sub.len()}}));
    // A watcher on node b asks for the events; Ann joins on node a.
    let mut watcher = MuxClient::connect(b.addr, &format!("?token={}", token("watcher")));
    let reply = watcher.call(json!({"id": 1, "subscribe": "room-1", "join_leave": true}));
    assert_eq!((&reply["reply"], &reply["ok"]), (&json!(1), &json!(true)), "{reply}");
    let mut ann = MuxClient::connect(a.addr, &format!("?token={}", token("ann")));
    ann.subscribe(1, "room-1", None);
    let event = |m: &mut MuxClient, change: &str| loop {
        let v = m.pushed.pop_front().unwrap_or_else(|| m.next());
        if let Some(member) = v.get(change) {
            break member.clone();
        }
    };
    let joined = event(&mut watcher, "join");
    assert_eq!(
        (&joined["user"], &joined["info"]),
        (&json!("ann"), &json!({"n": 3})),
        "{joined}"
    );
    // Seen alike from either node.
    for node in [a.addr, b.addr] {
        presence_becomes(node, KEY, "room-1", &["ann", "watcher"], Duration::from_secs(5));
    }
    // And by the watcher on node b, over its connection.
    let reply = watcher.call(json!({"id": 2, "presence_stats": "room-1"}));
    assert_eq!(reply, json!({"reply": 2, "ok": true, "clients": 2, "users": 2}));
    let r = Client::connect(a.addr).request(
        "GET",
        "/api/presence/room-1/stats",
        &[&format!("X-API-Key: {KEY}")],
        b"",
    );
    let stats: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(stats, json!({"channel": "room-1", "clients": 2, "users": 2}));
    // The bound holds over both nodes: a third fits, a fourth on node a is refused.
    let mut cy = MuxClient::connect(b.addr, &format!("?token={}", token("cy")));
    cy.subscribe(1, "room-1", None);
    let mut dan = MuxClient::connect(a.addr, &format!("?token={}", token("dan")));
    let refused = dan.call(json!({"id": 1, "subscribe": "room-1"}));
    assert_eq!(refused, json!({"reply": 1, "error": "the channel's presence is full"}));
    // Ann leaves: every node hears of it.
    assert_eq!(
        ann.call(json!({"id": 2, "unsubscribe": "room-1"})),
        json!({"reply": 2, "ok": true})
    );
    assert_eq!(event(&mut watcher, "leave")["user"], "ann");
    presence_becomes(a.addr, KEY, "room-1", &["cy", "watcher"], Duration::from_secs(5));
    // Cy's entry lost in Redis (as when its node's renewal came too late
    // and another script took it out): its node puts it back at the next
    // renewal, and tells its join again, so no subscriber keeps a leave
    // without a join.
    let r = Client::connect(a.addr).request("GET", "/api/presence/room-1", &[&format!("X-API-Key: {KEY}")], b"");
    let listed: Value = serde_json::from_slice(&r.body).unwrap();
    let cy_client = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "cy")
        .unwrap()["client"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut con = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let removed: u64 = redis::cmd("HDEL")
        .arg("wsr:{room-1}:members")
        .arg(&cy_client)
        .query(&mut con)
        .unwrap();
    assert_eq!(removed, 1);
    presence_becomes(a.addr, KEY, "room-1", &["watcher"], Duration::from_secs(1));
    let back = event(&mut watcher, "join");
    assert_eq!((&back["user"], &back["client"]), (&json!("cy"), &json!(cy_client)));
    presence_becomes(a.addr, KEY, "room-1", &["cy", "watcher"], ttl);

    // A node process with members, killed: its members leave within the ttl.
    let config = std::env::temp_dir().join(format!("wsreactor-presence-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!("[presence]\nchannels = [\"room-*\"]\nttl = \"3s\"\n[auth]\nsecret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let doomed = Node::spawn_args(&redis.url, &[], &["--config", config.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_file(&config);
    let mut eve = MuxClient::connect(doomed.addr, &format!("?token={}", token("eve")));
    eve.subscribe(1, "room-2", None);
    let mut fay = MuxClient::connect(doomed.addr, &format!("?token={}", token("fay")));
    fay.subscribe(1, "room-2", None);
    presence_becomes(b.addr, KEY, "room-2", &["eve", "fay"], Duration::from_secs(5));
    let killed = Instant::now();
    drop(doomed); // SIGKILL: no leave is sent.
    presence_becomes(b.addr, KEY, "room-2", &[], ttl + Duration::from_secs(2));
    let gone = killed.elapsed();
    assert!(gone <= ttl + Duration::from_millis(500), "gone after {gone:?}");
    // Node b's own members stay.
    presence_becomes(b.addr, KEY, "room-1", &["cy", "watcher"], Duration::from_secs(1));
}

#[test]
fn an_event_stream_and_a_poll_of_two_channels_on_one_node_get_what_another_publishes() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut sse = Client::connect(a.addr);
    sse.write(b"GET /sse?channel=x&channel=y HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = String::from_utf8(sse.read_until(b"\r\n\r\n")).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let mut p = Client::connect(b.addr);
    for i in 1..=3 {
        publish(&mut p, "x", &format!("x{i}"));
        publish(&mut p, "y", &format!("y{i}"));
    }
    let mut seen = Vec::new();
    let mut last_id = String::new();
    while seen.len() < 6 {
        let (_, id, data) = sse_event(&mut sse);
        if data.is_empty() {
            // The stream's start: every channel's place, no message.
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        seen.push(v["data"].as_str().unwrap().to_owned());
        last_id = id;
    }
    seen.sort();
    assert_eq!(seen, ["x1", "x2", "x3", "y1", "y2", "y3"]);
    // The stream's last id is the cursor of a poll of the same channels,
    // on the other node: nothing new, then what comes next.
    let mut c = Client::connect(b.addr);
    let r = c.request(
        "GET",
        &format!("/poll?channel=x&channel=y&since={last_id}&wait=0"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.header("x-cursor")), (204, Some(last_id.as_str())), "{r:?}");
    publish(&mut p, "y", "y4");
    let r = c.request(
        "GET",
        &format!("/poll?channel=x&channel=y&since={last_id}&wait=0"),
        &[],
        b"",
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["messages"][0]["data"], "y4", "{body}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1, "{body}");
}

#[test]
fn the_js_client_in_a_browser_loses_nothing_when_its_node_is_killed() {
    use common::chromium::{Cdp, Chromium};
    use common::js_page::{opened, publish_each, start_client, wait_all, wait_open, wait_open_after};
    use common::proxy::Proxy;
    let redis = Redis::start();
    // The client's node, a process of its own to kill; the other, where
    // messages are published, and where the proxy sends the client next.
    let doomed = Node::spawn_args(&redis.url, &[], &[]).unwrap();
    let other = node(&redis);
    let proxy = Proxy::start(doomed.addr);
    let origin = format!("http://{}", proxy.addr);
    let chromium = Chromium::launch();
    let mut cdp = Cdp::open_page(&chromium.devtools_url);
    start_client(&mut cdp, &origin);
    wait_open(&mut cdp, "websocket", Duration::from_secs(10));
    publish_each(other.addr, 0, 10);
    wait_all(&mut cdp, 10);
    // SIGKILL mid-stream; the proxy sends new connections to the other
    // node; what is published meanwhile comes from the history in Redis
    // after the client's cursors, once each, in order.
    let before = opened(&mut cdp).len();
    drop(doomed);
    proxy.point(other.addr);
    publish_each(other.addr, 10, 20);
    wait_open_after(&mut cdp, "websocket", before, Duration::from_secs(15));
    publish_each(other.addr, 20, 30);
    wait_all(&mut cdp, 30);
    cdp.eval("window.client.close(), true");
}

#[test]
fn without_its_redis_a_node_does_not_start() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = settings();
    let hub = settings.pubsub.hub.clone();
    let url = format!("redis://127.0.0.1:{port}/0");
    let started = Builder::new(settings)
        .try_broker(Box::new(move |inboxes| {
            let broker = RedisBroker::start(&url, hub, inboxes).map_err(io::Error::other)?;
            Ok(Arc::new(broker) as Arc<dyn Broker>)
        }))
        .start("127.0.0.1:0".parse().unwrap());
    let err = started.err().expect("no Redis on that port");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn while_redis_is_down_publishing_is_refused_and_then_delivery_resumes() {
    let redis = Redis::start();
    let a = node(&redis);
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/outage", "");
    let mut publisher = Client::connect(a.addr);
    publish(&mut publisher, "outage", "before");
    assert_eq!(sub.recv().payload, b"before");

    let ready = |addr| Client::connect(addr).request("GET", "/readyz", &[], b"").status;
    assert_eq!(ready(a.addr), 200);
    let port = redis.crash();
    // /readyz says so (/healthz stays 200: the node itself is fine).
    let t0 = Instant::now();
    while ready(a.addr) != 503 {
        assert!(t0.elapsed() < Duration::from_secs(5), "/readyz still 200 without Redis");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(Client::connect(a.addr).request("GET", "/healthz", &[], b"").status, 200);
    // Never a false 200: the node cannot store or number the message.
    let r = publisher.request("POST", "/pub/outage", &[], b"during");
    assert_eq!(r.status, 503, "{r:?}");
    let mut subscriber = Client::connect(a.addr);
    subscriber.write(b"GET /sse/outage HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        subscriber.read_response().status,
        503,
        "no new subscriber without Redis"
    );

    let _redis = Redis::start_on(port);
    // The node connects again by itself (backoff from 250 ms) and listens
    // to its channels again: the subscriber that stayed gets what follows.
    // (This Redis restarted empty: the reset is the next test's subject.)
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(20), "delivery did not resume");
        let mut c = Client::connect(a.addr);
        let r = c.request("POST", "/pub/outage", &["Content-Type: text/plain"], b"after");
        if r.status == 200 {
            if let Some(f) = sub.recv_within(Duration::from_millis(300)) {
                assert_eq!(f.payload, b"after");
                assert_eq!(ready(a.addr), 200, "ready again");
                break;
            }
        } else {
            assert_eq!(r.status, 503, "{r:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn a_subscriber_that_stayed_connected_misses_nothing_redis_stored_across_a_crash() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("redis-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = Redis::durable_on(port, &dir);
    let a = node(&redis);
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/kept", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    let mut publisher = Client::connect(a.addr);
    let base = numbering_start(publish(&mut publisher, "kept", "m1")["id"].as_u64().unwrap());
    for i in 2..=3 {
        assert_eq!(publish(&mut publisher, "kept", &format!("m{i}"))["id"], base + i);
    }
    let port = redis.crash();
    let t0 = Instant::now();
    let redis = Redis::durable_on(port, &dir);
    // Another node publishes at once, likely before node a listens again:
    // what node a missed live comes from the history when it does.
    let b = node(&redis);
    let mut other = Client::connect(b.addr);
    let mut last = 3;
    for i in 4..=20 {
        let v = publish(&mut other, "kept", &format!("m{i}"));
        assert_eq!(v["id"], base + i, "the ids go on from what Redis kept: {v}");
        last = i;
    }
    let ids: Vec<u64> = (0..last)
        .map(|_| {
            let v: Value = serde_json::from_slice(&sub.recv().payload).unwrap();
            assert!(v.get("gap").is_none(), "nothing was lost: {v}");
            v["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        (base + 1..=base + last).collect::<Vec<_>>(),
        "every stored message once, in order"
    );
    eprintln!("recovered: all {last} delivered {:?} after the crash", t0.elapsed());
    assert!(
        sub.recv_within(Duration::from_millis(200)).is_none(),
        "and nothing twice"
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `wsreactor serve --broker` process on a free port, stopped by pid.
/// Ids a long-poll client collects on one keep-alive connection until it
/// has `count` of them.
fn poll_until(addr: SocketAddr, channel: &str, count: u64) -> std::thread::JoinHandle<Vec<u64>> {
    let channel = channel.to_string();
    let mut c = Client::connect(addr);
    // From cursor 0: what is published before a poll is parked comes from
    // the history (history_size is 1000).
    std::thread::spawn(move || {
        let (mut cursor, mut seen) = (0u64, Vec::new());
        while (seen.len() as u64) < count {
            let r = c.request("GET", &format!("/poll/{channel}?since={cursor}"), &[], b"");
            if r.status == 204 {
                continue;
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["gap"], false, "{v}");
            seen.extend(message_ids(&v));
            cursor = v["last_id"].as_u64().unwrap();
        }
        seen
    })
}

#[test]
fn two_processes_one_redis_a_thousand_messages_every_transport_once_in_order() {
    const TOTAL: u64 = 1000;
    let redis = Redis::start();
    let nodes = [
        Node::spawn_args(&redis.url, &[], &[]).unwrap(),
        Node::spawn_args(&redis.url, &[], &[]).unwrap(),
    ];
    let mut raw = Vec::new();
    let mut json = Vec::new();
    let mut sse = Vec::new();
    let mut polls = Vec::new();
    for n in &nodes {
        raw.push(Client::upgrade_at(n.addr, "/ws/k", "").0);
        json.push(Client::upgrade_at(n.addr, "/ws/k", "Sec-WebSocket-Protocol: wsreactor.json\r\n").0);
        let mut s = Client::connect(n.addr);
        s.write(b"GET /sse/k HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(s.read_response().status, 200);
        sse.push(s);
        polls.push(poll_until(n.addr, "k", TOTAL));
    }
    // Alternately to both nodes, from two threads at once.
    let publishers: Vec<_> = (0..2)
        .map(|t| {
            let addrs = [nodes[0].addr, nodes[1].addr];
            std::thread::spawn(move || {
                let mut cs = addrs.map(Client::connect);
                (0..TOTAL / 2)
                    .map(|i| {
                        publish(&mut cs[(i % 2) as usize], "k", &format!("{t}-{i}"))["id"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut ids: Vec<u64> = publishers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    ids.sort_unstable();
    let base = numbering_start(ids[0]);
    let all: Vec<u64> = (base + 1..=base + TOTAL).collect();
    assert_eq!(ids, all, "1,000 ids in a row, none repeated");
    for c in &mut json {
        let got: Vec<u64> = (0..TOTAL)
            .map(|_| {
                serde_json::from_slice::<Value>(&c.recv().payload).unwrap()["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, all, "wsreactor.json: every id once, in order");
    }
    for c in &mut raw {
        let got: Vec<String> = (0..TOTAL)
            .map(|_| String::from_utf8(c.recv().payload).unwrap())
            .collect();
        for t in 0..2 {
            let mine: Vec<&String> = got.iter().filter(|p| p.starts_with(&format!("{t}-"))).collect();
            let want: Vec<String> = (0..TOTAL / 2).map(|i| format!("{t}-{i}")).collect();
            assert_eq!(
                mine,
                want.iter().collect::<Vec<_>>(),
                "raw: each publisher's messages once, in order"
            );
        }
        assert!(c.recv_within(Duration::from_millis(100)).is_none(), "nothing twice");
    }
    for c in &mut sse {
        let mut got = Vec::new();
        while got.len() < TOTAL as usize {
            let event = String::from_utf8(c.read_until(b"\n\n")).unwrap();
            if let Some(id) = event.strip_prefix("id: ").and_then(|r| r.split('\n').next()) {
                got.push(id.parse::<u64>().unwrap());
            }
        }
        assert_eq!(got, all, "SSE: every id once, in order");
    }
    for p in polls {
        assert_eq!(p.join().unwrap(), all, "long polling: every id once, in order");
    }
}

#[test]
fn when_a_node_dies_its_subscribers_resume_on_another_with_their_cursor() {
    const TOTAL: u64 = 300;
    let redis = Redis::start();
    let doomed = Node::spawn_args(&redis.url, &[], &[]).unwrap();
    let other = Node::spawn_args(&redis.url, &[], &[]).unwrap();
    let (mut sub, _) = Client::upgrade_at(doomed.addr, "/ws/moving", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    // Publishing goes on through the other node the whole time.
    let addr = other.addr;
    let mut c = Client::connect(addr);
    let base = numbering_start(publish(&mut c, "moving", "m1")["id"].as_u64().unwrap());
    let publisher = std::thread::spawn(move || {
        for i in 2..=TOTAL {
            assert_eq!(publish(&mut c, "moving", &format!("m{i}"))["id"], base + i);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let next = |c: &mut Client| -> Option<Value> {
        let f = c.recv_within(Duration::from_secs(2))?;
        (f.opcode == TEXT).then(|| serde_json::from_slice(&f.payload).unwrap())
    };
    let mut seen = Vec::new();
    while seen.len() < 50 {
        seen.push(next(&mut sub).unwrap()["id"].as_u64().unwrap());
    }
    drop(doomed); // SIGKILL, mid-stream
                  // What the dead node had sent may still be in flight; then EOF, which
                  // the test client reports by panicking (caught here: it is expected).
    while let Some(v) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| next(&mut sub)))
        .ok()
        .flatten()
    {
        seen.push(v["id"].as_u64().unwrap());
    }
    let cursor = *seen.last().unwrap();
    let path = format!("/ws/moving?since={cursor}");
    let (mut again, _) = Client::upgrade_at(other.addr, &path, "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    while *seen.last().unwrap() < base + TOTAL {
        let v = next(&mut again).expect("the rest arrives");
        assert!(v.get("gap").is_none(), "nothing was lost: {v}");
        seen.push(v["id"].as_u64().unwrap());
    }
    publisher.join().unwrap();
    assert_eq!(
        seen,
        (base + 1..=base + TOTAL).collect::<Vec<_>>(),
        "every id once, in order, across the move"
    );
}

/// The ids of a long poll's answer.
fn message_ids(v: &Value) -> Vec<u64> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// The next wsreactor.json message.
fn envelope(c: &mut Client) -> Value {
    serde_json::from_slice(&c.recv().payload).unwrap()
}

/// Publish on a new connection each time until Redis takes it (a refusal
/// closes its connection): the receipt.
fn publish_when_back(addr: SocketAddr, channel: &str, body: &str) -> Value {
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(20), "publishing did not resume");
        let r = Client::connect(addr).request(
            "POST",
            &format!("/pub/{channel}"),
            &["Content-Type: text/plain"],
            body.as_bytes(),
        );
        if r.status == 200 {
            return serde_json::from_slice(&r.body).unwrap();
        }
        assert_eq!(r.status, 503, "{r:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The next SSE event of a stream, as (event, id, data), heartbeats skipped.
fn sse_event(c: &mut Client) -> (String, String, String) {
    loop {
        let raw = String::from_utf8(c.read_until(b"\n\n")).unwrap();
        let (mut event, mut id, mut data) = ("message".to_string(), String::new(), String::new());
        for line in raw.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.into();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.into();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = v.into();
            }
        }
        if !raw.starts_with(':') {
            return (event, id, data);
        }
    }
}

#[test]
fn after_redis_lost_its_data_the_first_new_message_carries_the_reset_naming_no_id_a_subscriber_holds() {
    let redis = Redis::start();
    let a = node(&redis);
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/lost", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    let mut sse = Client::connect(a.addr);
    sse.write(b"GET /sse/lost HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(sse.read_response().status, 200);
    let mut publisher = Client::connect(a.addr);
    let mut held = 0;
    for i in 1..=5 {
        held = publish(&mut publisher, "lost", &format!("m{i}"))["id"]
            .as_u64()
            .unwrap();
        assert_eq!(envelope(&mut sub)["id"], held);
        assert_eq!(sse_event(&mut sse).1, held.to_string());
    }
    let port = redis.crash();
    let _empty = Redis::start_on(port);
    // Publishing on the same node resumes at once, likely before its
    // subscription connection is back: the first new messages then come
    // to the subscribers by the catch-up, not live.
    let mut new_ids = vec![publish_when_back(a.addr, "lost", "n0")["id"].as_u64().unwrap()];
    let mut publisher = Client::connect(a.addr);
    for i in 1..5 {
        new_ids.push(
            publish(&mut publisher, "lost", &format!("n{i}"))["id"]
                .as_u64()
                .unwrap(),
        );
    }
    assert!(new_ids[0] > held, "ids never go back: {new_ids:?} after {held}");
    // WebSocket: the reset first, naming none of the ids the client holds,
    // then every new message once, in order.
    let told = envelope(&mut sub);
    assert_eq!(told["gap"]["reset"], true, "the reset comes first: {told}");
    let (from, to) = (
        told["gap"]["from"].as_u64().unwrap(),
        told["gap"]["to"].as_u64().unwrap(),
    );
    assert!(
        from > held && to < new_ids[0],
        "the gap names no id held, nor one given: {told}"
    );
    let got: Vec<u64> = (0..5).map(|_| envelope(&mut sub)["id"].as_u64().unwrap()).collect();
    assert_eq!(got, new_ids);
    assert!(sub.recv_within(Duration::from_millis(300)).is_none(), "nothing more");
    // The event stream: the same.
    let (event, _, data) = sse_event(&mut sse);
    assert_eq!(event, "gap", "{data}");
    let gap: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(gap["reset"], true, "{gap}");
    assert!(
        gap["from"].as_u64().unwrap() > held && gap["to"].as_u64().unwrap() < new_ids[0],
        "{gap}"
    );
    let ids: Vec<u64> = (0..5).map(|_| sse_event(&mut sse).1.parse().unwrap()).collect();
    assert_eq!(ids, new_ids);
}

#[test]
fn a_cursor_from_before_redis_lost_its_data_is_told_as_a_reset_on_every_transport() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    // A channel with four messages and no subscriber: no node remembers it.
    let mut pa = Client::connect(a.addr);
    let mut cursor = 0;
    for i in 1..=4 {
        cursor = publish(&mut pa, "gone", &format!("m{i}"))["id"].as_u64().unwrap();
    }
    let port = redis.crash();
    let _empty = Redis::start_on(port);
    let mut new_ids = vec![publish_when_back(b.addr, "gone", "n1")["id"].as_u64().unwrap()];
    let mut pb = Client::connect(b.addr);
    for i in 2..=6 {
        new_ids.push(publish(&mut pb, "gone", &format!("n{i}"))["id"].as_u64().unwrap());
    }
    assert!(new_ids[0] > cursor, "ids never go back: {new_ids:?} after {cursor}");
    // A long poll resuming after its cursor: told, and given all of the new numbering.
    let r = Client::connect(a.addr).request("GET", &format!("/poll/gone?since={cursor}"), &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["gap"].as_bool(), v["reset"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    let polled = message_ids(&v);
    assert_eq!(polled, new_ids, "{v}");
    // An event stream resuming with Last-Event-ID.
    let mut sse = Client::connect(b.addr);
    sse.write(format!("GET /sse/gone HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {cursor}\r\n\r\n").as_bytes());
    assert_eq!(sse.read_response().status, 200);
    let (event, _, data) = sse_event(&mut sse);
    assert_eq!(event, "gap", "{data}");
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["reset"], true, "{data}");
    assert_eq!(sse_event(&mut sse).1, new_ids[0].to_string());
    // A WebSocket resuming with ?since.
    let (mut ws, _) = Client::upgrade_at(
        a.addr,
        &format!("/ws/gone?since={cursor}"),
        "Sec-WebSocket-Protocol: wsreactor.json\r\n",
    );
    let told = envelope(&mut ws);
    assert_eq!(told["gap"]["reset"], true, "{told}");
    assert_eq!(envelope(&mut ws)["id"], new_ids[0]);
}

#[test]
fn redis_back_from_an_older_snapshot_reuses_no_id_a_subscriber_holds() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("redis-rdb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = |port| {
        let d = dir.to_str().unwrap().to_owned();
        Redis::launch(port, &["--appendonly", "no", "--dir", &d, "--dbfilename", "dump.rdb"])
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = snapshot(port);
    let (a, b) = (node(&redis), node(&redis));
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/old", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    let mut publisher = Client::connect(a.addr);
    let mut held = 0;
    for i in 1..=5 {
        held = publish(&mut publisher, "old", &format!("m{i}"))["id"].as_u64().unwrap();
        assert_eq!(envelope(&mut sub)["id"], held);
        if i == 3 {
            // The snapshot Redis will come back from: the channel at its third id.
            let mut con = redis::Client::open(redis.url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: String = redis::cmd("SAVE").query(&mut con).unwrap();
        }
    }
    let port = redis.crash();
    let _back = snapshot(port);
    // A poller back on the node that delivered the fifth id, before any
    // publish, the node's catch-up racing it: told of the reset, and not
    // given the first three ids again as if they were new.
    let t0 = Instant::now();
    let v = loop {
        assert!(t0.elapsed() < Duration::from_secs(20), "polls did not resume");
        let r = Client::connect(a.addr).request("GET", &format!("/poll/old?since={held}&wait=0"), &[], b"");
        if r.status == 200 {
            break serde_json::from_slice::<Value>(&r.body).unwrap();
        }
        assert_eq!(r.status, 503, "{r:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(v["reset"], true, "{v}");
    assert_eq!(message_ids(&v), Vec::<u64>::new(), "{v}");
    assert!(v["last_id"].as_u64().unwrap() > held, "{v}");
    // The node whose subscriber holds the fifth id publishes: never an id
    // it holds again, and the subscriber is told of the new numbering.
    let id = publish_when_back(a.addr, "old", "new")["id"].as_u64().unwrap();
    assert!(id > held, "id {id} again after {held}");
    let told = envelope(&mut sub);
    assert_eq!(told["gap"]["reset"], true, "{told}");
    assert_eq!(envelope(&mut sub)["id"], id);
    // A client back on the other node with the fifth id as its cursor is told too.
    let r = Client::connect(b.addr).request("GET", &format!("/poll/old?since={held}"), &[], b"");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["reset"], true, "{v}");
    assert_eq!(message_ids(&v).last().copied(), Some(id), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_publish_redis_refuses_is_503_saying_why_as_redis_did() {
    let redis = Redis::start();
    let a = node(&redis);
    publish(&mut Client::connect(a.addr), "ro", "before");
    // Made a replica (of a port where nothing listens): it refuses writes.
    let mut con = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let nowhere = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _: String = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(nowhere)
        .query(&mut con)
        .unwrap();
    let r = Client::connect(a.addr).request("POST", "/pub/ro", &["Content-Type: text/plain"], b"x");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("redis is a read-only replica"),
        "{r:?}"
    );
    assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
    let _: String = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut con).unwrap();
    publish(&mut Client::connect(a.addr), "ro", "after");
}

#[test]
fn a_publish_fewer_replicas_confirmed_than_broker_replicas_asks_is_503_saying_so() {
    // A Redis with no replica: WAIT 1 times out.
    let redis = Redis::start();
    let settings = settings();
    let hub = settings.pubsub.hub.clone();
    let url = redis.url.clone();
    let handle = Builder::new(settings)
        .threads(1)
        .try_broker(Box::new(move |inboxes| {
            let options = wsreactor::pubsub::redis::RedisOptions {
                replicas: 1,
                replicas_timeout: Duration::from_millis(100),
                ..Default::default()
            };
            let broker = RedisBroker::start_with(&url, options, hub, inboxes).map_err(io::Error::other)?;
            Ok(Arc::new(broker) as Arc<dyn Broker>)
        }))
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let node = Server::from_handle(handle);
    let t0 = Instant::now();
    let r = Client::connect(node.addr).request("POST", "/pub/w", &["Content-Type: text/plain"], b"x");
    assert!(t0.elapsed() >= Duration::from_millis(100), "it waited for the replicas");
    assert_eq!(r.status, 503, "{r:?}");
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("too few redis replicas confirmed the message"), "{body}");
    // The master has it: a retry with a key publishes it at most once.
    let mut con = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let len: u64 = redis::cmd("XLEN").arg("wsr:{w}:stream").query(&mut con).unwrap();
    assert_eq!(len, 1);
    let metrics = Client::connect(node.addr).request("GET", "/metrics", &[], b"");
    let metrics = String::from_utf8(metrics.body).unwrap();
    assert!(metrics.contains("wsreactor_broker_publish_errors_total 1"), "{metrics}");
    assert!(metrics.contains("wsreactor_broker_failovers_total 0"), "{metrics}");
    assert!(
        metrics.contains("wsreactor_broker_master{kind=\"redis\",name=\"\",address=\"127.0.0.1:"),
        "{metrics}"
    );
}

/// Stop or resume `redis` (SIGSTOP, SIGCONT): a Redis that hangs.
fn signal(redis: &Redis, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &redis.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

#[test]
fn a_frozen_redis_is_not_ready_before_a_publish_fails_and_an_unknown_outcome_is_504_not_a_refusal() {
    let redis = Redis::start();
    let a = node(&redis);
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/frozen", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    publish(&mut Client::connect(a.addr), "frozen", "before");
    assert_eq!(envelope(&mut sub)["data"], "before");
    let ready = |addr| Client::connect(addr).request("GET", "/readyz", &[], b"");
    assert_eq!(ready(a.addr).status, 200);

    signal(&redis, "-STOP");
    let t0 = Instant::now();
    let addr = a.addr;
    let publisher = std::thread::spawn(move || {
        let r = Client::connect(addr).request(
            "POST",
            "/pub/frozen",
            &["Content-Type: text/plain", "Idempotency-Key: \"k-1\""],
            b"during",
        );
        (r, t0.elapsed())
    });
    let mut not_ready = None;
    while !publisher.is_finished() {
        let r = ready(a.addr);
        if r.status == 503 && not_ready.is_none() {
            not_ready = Some((t0.elapsed(), String::from_utf8_lossy(&r.body).into_owned()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, answered) = publisher.join().unwrap();
    let (when, why) = not_ready.expect("/readyz never said 503 while the publish waited");
    eprintln!(
        "/readyz 503 after {when:?} ({why:?}); the publish answered {} after {answered:?}",
        r.status
    );
    assert!(
        when <= answered,
        "/readyz said 503 after {when:?}, the publish was answered after {answered:?}"
    );
    assert!(why.contains("redis does not answer"), "{why}");
    // Sent and never answered: not a refusal.
    assert_eq!(r.status, 504, "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("Idempotency-Key"), "{r:?}");
    // A publish that cannot reach Redis is a refusal, and says when to retry.
    let r = Client::connect(a.addr).request("POST", "/pub/frozen", &["Content-Type: text/plain"], b"refused");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("redis"), "{r:?}");

    signal(&redis, "-CONT");
    // The unconfirmed publish was carried out once Redis resumed: the
    // retry with its key gets its id, and publishes nothing again.
    let first = envelope(&mut sub);
    assert_eq!(first["data"], "during", "{first}");
    let t0 = Instant::now();
    let receipt = loop {
        assert!(t0.elapsed() < Duration::from_secs(20), "publishing did not resume");
        let r = Client::connect(a.addr).request(
            "POST",
            "/pub/frozen",
            &["Content-Type: text/plain", "Idempotency-Key: \"k-1\""],
            b"during",
        );
        if r.status == 200 {
            break serde_json::from_slice::<Value>(&r.body).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (&receipt["id"], &receipt["duplicate"]),
        (&first["id"], &Value::Bool(true)),
        "{receipt}"
    );
    let r = publish(&mut Client::connect(a.addr), "frozen", "after");
    assert_eq!(envelope(&mut sub)["id"], r["id"], "the retry was not published again");
    assert_eq!(ready(a.addr).status, 200);
}

#[test]
fn after_redis_restarts_the_first_publish_on_each_node_is_not_refused() {
    let redis = Redis::start();
    let nodes = [node(&redis), node(&redis)];
    for n in &nodes {
        publish(&mut Client::connect(n.addr), "stale", "before");
    }
    let port = redis.crash();
    let _back = Redis::start_on(port);
    // Each node's command connection is dead: found before the publish goes on it.
    for n in &nodes {
        let r = Client::connect(n.addr).request("POST", "/pub/stale", &["Content-Type: text/plain"], b"after");
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[test]
fn an_idempotency_key_publishes_once_on_every_node() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/once", "Sec-WebSocket-Protocol: wsreactor.json\r\n");
    let post = |addr, key: &str, body: &[u8]| {
        let key = format!("Idempotency-Key: {key}");
        Client::connect(addr).request("POST", "/pub/once", &["Content-Type: text/plain", &key], body)
    };
    let first: Value = serde_json::from_slice(&post(a.addr, "\"order-7\"", b"x").body).unwrap();
    assert_eq!(first.get("duplicate"), None, "{first}");
    // The same key on the other node: the first receipt, nothing published.
    let again: Value = serde_json::from_slice(&post(b.addr, "\"order-7\"", b"x").body).unwrap();
    assert_eq!(
        (&again["id"], &again["duplicate"]),
        (&first["id"], &Value::Bool(true)),
        "{again}"
    );
    let other: Value = serde_json::from_slice(&post(b.addr, "order-8", b"y").body).unwrap();
    assert_eq!(envelope(&mut sub)["id"], first["id"]);
    assert_eq!(envelope(&mut sub)["id"], other["id"]);
    assert!(sub.recv_within(Duration::from_millis(200)).is_none(), "once each");
    assert_eq!(post(a.addr, "\"\"", b"z").status, 400);
}

#[test]
fn a_receipt_counts_the_subscribers_of_every_node() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    let (ws1, _) = Client::upgrade_at(a.addr, "/ws/counted", "");
    let (_ws2, _) = Client::upgrade_at(a.addr, "/ws/counted", "");
    let mut sse = Client::connect(b.addr);
    sse.write(b"GET /sse/counted HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(sse.read_response().status, 200);
    // Three clients on two nodes, whichever node publishes.
    assert_eq!(publish(&mut Client::connect(b.addr), "counted", "x")["subscribers"], 3);
    assert_eq!(publish(&mut Client::connect(a.addr), "counted", "y")["subscribers"], 3);
    drop(ws1);
    let t0 = Instant::now();
    while publish(&mut Client::connect(b.addr), "counted", "z")["subscribers"] != 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "a subscriber that left is still counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn max_channels_holds_over_every_node_and_forgotten_ids_are_not_reused() {
    let redis = Redis::start();
    let mut s = settings();
    s.pubsub.hub.max_channels = 2;
    s.pubsub.hub.id_memory_channels = 1;
    s.pubsub.hub.history_ttl = Duration::from_millis(600);
    let (a, b) = (node_with(&redis, s.clone()), node_with(&redis, s));
    // A refusal closes its connection: each publish on a new one.
    let (pa, pb) = (a.addr, b.addr);
    let post = |addr, channel: &str| Client::connect(addr).request("POST", &format!("/pub/{channel}"), &[], b"x");
    let id = |r: Response| {
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let mut last_of_one = 0;
    for _ in 0..3 {
        last_of_one = id(post(pa, "one"));
    }
    assert_eq!(post(pb, "two").status, 200);
    // Two channels exist, made on two nodes: a third is refused on both,
    // to a publisher and to a subscriber, while the two go on.
    for addr in [pa, pb] {
        let r = post(addr, "three");
        assert_eq!(r.status, 503, "{r:?}");
        assert!(String::from_utf8_lossy(&r.body).contains("too many channels"), "{r:?}");
    }
    let mut sub = Client::connect(b.addr);
    let r = sub.request("GET", "/sse/four", &[], b"");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(post(pb, "two").status, 200);

    // Their history expires: they leave the table, and new channels fit.
    std::thread::sleep(Duration::from_millis(800));
    assert!(id(post(pa, "three")) > last_of_one);
    // A fourth name passes the memory of 2 + 1 ids: the oldest (one) is
    // forgotten, and a channel made anew starts above its last id.
    let four = id(post(pb, "four"));
    assert!(four > last_of_one, "after the forgotten channel's last id");
    let (mut raw, _) = Client::upgrade_at(a.addr, "/ws/four", "");
    assert_eq!(id(post(pa, "four")), four + 1);
    assert_eq!(raw.recv().payload, b"x");
}

/// Subscriptions to `topic` that Redis counts.
fn numsub(redis: &Redis, topic: &str) -> u64 {
    let mut con = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let (_, n): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(topic)
        .query::<Vec<(String, u64)>>(&mut con)
        .unwrap()
        .remove(0);
    n
}

#[test]
fn a_node_lingers_about_a_second_before_it_lets_go_of_an_idle_channel() {
    let redis = Redis::start();
    let a = node(&redis);
    let (sub, _) = Client::upgrade_at(a.addr, "/ws/warm", "");
    assert_eq!(numsub(&redis, "wsr:{warm}"), 1);
    drop(sub);
    // A subscriber that comes back at once finds the channel still heard.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(numsub(&redis, "wsr:{warm}"), 1, "lingering");
    let t0 = Instant::now();
    while numsub(&redis, "wsr:{warm}") == 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the node never let go of the channel"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = t0.elapsed() + Duration::from_millis(300);
    assert!(after >= Duration::from_millis(900), "let go after {after:?}");
}

/// A TCP relay to Redis whose connections can be wedged: they stay open
/// and carry nothing more, as a connection left by a failover can.
/// Connections made after the wedge work.
struct Wedge {
    url: String,
    wedged: Arc<std::sync::atomic::AtomicU64>,
    made: Arc<std::sync::atomic::AtomicU64>,
}

impl Wedge {
    fn to(redis: &Redis) -> Wedge {
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        let upstream: SocketAddr = redis.url["redis://".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (wedged, made) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (w, m) = (wedged.clone(), made.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { return };
                let generation = m.fetch_add(1, SeqCst) + 1;
                let Ok(up) = TcpStream::connect(upstream) else { return };
                for (mut from, mut to) in [(down.try_clone().unwrap(), up.try_clone().unwrap()), (up, down)] {
                    let w = w.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16384];
                        loop {
                            if w.load(SeqCst) >= generation {
                                // Wedged: open, and deaf, for the rest of the test.
                                std::thread::sleep(Duration::from_millis(50));
                                continue;
                            }
                            from.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                            match from.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) if w.load(SeqCst) < generation => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Ok(_) => {}
                                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Wedge {
            url: format!("redis://127.0.0.1:{port}/0"),
            wedged,
            made,
        }
    }

    /// Every connection made so far goes deaf.
    fn wedge(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.wedged.store(self.made.load(SeqCst), SeqCst);
    }
}

#[test]
fn a_wedged_subscription_connection_is_found_by_its_probe_and_made_again() {
    let redis = Redis::start();
    let relay = Wedge::to(&redis);
    let settings = settings();
    let hub = settings.pubsub.hub.clone();
    let url = relay.url.clone();
    let a = Server::from_handle(
        Builder::new(settings)
            .threads(1)
            .try_broker(Box::new(move |inboxes| {
                let broker = RedisBroker::start(&url, hub, inboxes).map_err(io::Error::other)?;
                Ok(Arc::new(broker) as Arc<dyn Broker>)
            }))
            .start("127.0.0.1:0".parse().unwrap())
            .unwrap(),
    );
    let b = node(&redis);
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/deaf", "");
    let mut publisher = Client::connect(b.addr);
    publish(&mut publisher, "deaf", "m1");
    assert_eq!(sub.recv().payload, b"m1");
    // Node a's connections to Redis stay open and hear nothing: m2 is in
    // Redis, and a does not know it missed it until its probe is lost.
    relay.wedge();
    let t0 = Instant::now();
    publish(&mut publisher, "deaf", "m2");
    let got = sub
        .recv_within(Duration::from_secs(15))
        .expect("m2 after the probe was lost");
    assert_eq!(got.payload, b"m2");
    let took = t0.elapsed();
    // Silence (3 s), the probe's time-out (2 s), then a new connection.
    assert!(
        took >= Duration::from_secs(4),
        "m2 after {took:?}: the relay did not wedge"
    );
    publish(&mut publisher, "deaf", "m3");
    assert_eq!(sub.recv().payload, b"m3");
}

#[test]
fn metrics_count_the_broker() {
    let redis = Redis::start();
    let a = node(&redis);
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/counted", "");
    let mut c = Client::connect(a.addr);
    publish(&mut c, "counted", "1");
    publish(&mut c, "counted", "2");
    assert_eq!(sub.recv().payload, b"1");
    assert_eq!(sub.recv().payload, b"2");
    let page = String::from_utf8(c.request("GET", "/metrics", &[], b"").body).unwrap();
    let value = |name: &str| -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{page}"))
    };
    assert_eq!(value("wsreactor_broker_connected"), 1.0);
    assert_eq!(value("wsreactor_broker_publishes_total"), 2.0);
    assert_eq!(value("wsreactor_broker_messages_in_total"), 2.0);
    assert_eq!(value("wsreactor_broker_publish_errors_total"), 0.0);
    assert!(value("wsreactor_broker_publish_seconds_total") > 0.0);
    // A message in the channel's topic that is not wsreactor's is dropped, and counted.
    let mut con = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: u64 = redis::cmd("PUBLISH")
        .arg("wsr:{counted}")
        .arg("junk")
        .query(&mut con)
        .unwrap();
    publish(&mut c, "counted", "3");
    assert_eq!(sub.recv().payload, b"3");
    let page = String::from_utf8(c.request("GET", "/metrics", &[], b"").body).unwrap();
    assert!(page.contains("\nwsreactor_broker_dropped_total 1\n"), "{page}");
    // The local hub has no broker families.
    let local = Server::start(settings());
    let page = String::from_utf8(Client::connect(local.addr).request("GET", "/metrics", &[], b"").body).unwrap();
    assert!(!page.contains("wsreactor_broker_"), "{page}");
}

#[test]
fn a_redis_password_can_come_from_the_environment_and_is_never_logged() {
    let (redis, port) = Redis::start_free(&["--appendonly", "no", "--requirepass", "s3cret-pw"], true);
    // Without it: the node does not start, and says why.
    let log = Node::spawn_args(&redis.url, &[], &[])
        .err()
        .expect("no password: no start");
    assert!(log.contains("NOAUTH") || log.to_lowercase().contains("auth"), "{log}");
    // A wrong one in the URL: refused, and the log does not show it.
    let wrong = format!("redis://:not-it-pw@127.0.0.1:{port}/0");
    let log = Node::spawn_args(&wrong, &[], &[])
        .err()
        .expect("a wrong password: no start");
    assert!(!log.contains("not-it-pw") && log.contains(":***@"), "{log}");
    // From the environment: it starts, and works.
    let node = Node::spawn_args(&redis.url, &[("WSREACTOR_REDIS_PASSWORD", "s3cret-pw")], &[]).unwrap();
    let (mut sub, _) = Client::upgrade_at(node.addr, "/ws/guarded", "");
    publish(&mut Client::connect(node.addr), "guarded", "in");
    assert_eq!(sub.recv().payload, b"in");
}

/// A certificate authority and a server certificate for 127.0.0.1 it
/// signed, as PEM files in `dir`: (ca, cert, key).
fn certificates(dir: &std::path::Path, name: &str) -> [std::path::PathBuf; 3] {
    let c = common::certs::make(dir, name);
    [c.ca, c.cert, c.key]
}

#[test]
fn rediss_checks_the_servers_certificate_against_the_configured_authority() {
    let dir = std::env::temp_dir().join(format!("wsreactor-rediss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let [ca, cert, key] = certificates(&dir, "redis");
    let [other_ca, _, _] = certificates(&dir, "other");
    let s = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    // A free port for the TLS one (the plain port is off); tried again if
    // another test took it first.
    let (redis, port) = (0..10)
        .find_map(|_| {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let tls = [
                "--appendonly".into(),
                "no".into(),
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                s(&cert),
                "--tls-key-file".into(),
                s(&key),
                "--tls-ca-cert-file".into(),
                s(&ca),
                "--tls-auth-clients".into(),
                "no".into(),
            ];
            let args: Vec<&str> = tls.iter().map(String::as_str).collect();
            Redis::try_launch(port, &args, false).map(|r| (r, port))
        })
        .expect("a free port for redis-server in 10 tries");
    let url = format!("rediss://127.0.0.1:{port}/0");
    let start = |ca: &std::path::PathBuf| {
        let settings = settings();
        let hub = settings.pubsub.hub.clone();
        let (url, pem) = (url.clone(), std::fs::read(ca).unwrap());
        Builder::new(settings)
            .threads(1)
            .try_broker(Box::new(move |inboxes| {
                let broker = RedisBroker::start_with_ca(&url, Some(pem), hub, inboxes).map_err(io::Error::other)?;
                Ok(Arc::new(broker) as Arc<dyn Broker>)
            }))
            .start("127.0.0.1:0".parse().unwrap())
    };
    // Signed by another authority: no start.
    let err = start(&other_ca).err().expect("a certificate from another authority");
    assert!(
        err.to_string().contains(&format!("rediss://127.0.0.1:{port}/0")),
        "{err}"
    );
    // Signed by the configured one: one channel space over TLS.
    let a = Server::from_handle(start(&ca).unwrap());
    let b = Server::from_handle(start(&ca).unwrap());
    let (mut sub, _) = Client::upgrade_at(a.addr, "/ws/sealed", "");
    assert!(publish(&mut Client::connect(b.addr), "sealed", "over tls")["id"].is_u64());
    assert_eq!(sub.recv().payload, b"over tls");
    drop((a, b, redis));
    let _ = std::fs::remove_dir_all(&dir);
}
