//! Presence over real sockets (`[presence]`, issue 26): members with their
//! user and info from the token, on every transport; join and leave events
//! to the subscribers that ask; the server API's view; the member bound.

use super::common::mux::MuxClient;
use super::*;
use serde_json::{json, Value};

const SECRET: &str = "the presence test's secret, 32 b";
const KEY: &str = "an-api-key-of-the-operator";

fn presence_server(max_members: usize) -> Server {
    Server::start(with_pubsub(|s| {
        s.auth = wsreactor::auth::Auth::new(vec!["private-*".into()], SECRET.as_bytes());
        s.api.key = Some(KEY.to_owned());
        s.pubsub.presence_channels = vec!["room-*".into()];
        s.pubsub.hub.presence.max_members = max_members;
    }))
}

fn token(user: &str, info: Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jwt(SECRET, json!({"exp": exp, "sub": user, "info": info}))
}

fn api(server: &Server, path: &str) -> (u16, Value) {
    let r = Client::connect(server.addr).request("GET", path, &[&format!("X-API-Key: {KEY}")], b"");
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

/// Wait until `channel`'s members are `want` (joins travel through the
/// broker's inboxes).
fn members_become(server: &Server, channel: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = presence_users(server.addr, KEY, channel);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{channel}: {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next join or leave a mux client is given: (change, member).
fn event(m: &mut MuxClient) -> (String, Value) {
    let v = m.pushed.pop_front().unwrap_or_else(|| m.next());
    for change in ["join", "leave"] {
        if let Some(member) = v.get(change) {
            return (change.to_owned(), member.clone());
        }
    }
    panic!("a join or leave expected, got {v}");
}

#[test]
fn members_on_every_transport_with_their_user_and_info_and_their_events() {
    let server = presence_server(100);
    // A watcher asks for the events; it is a member too (no token: no user).
    let mut watcher = MuxClient::connect(server.addr, "");
    let reply = watcher.call(json!({"id": 1, "subscribe": "room-1", "join_leave": true}));
    assert_eq!(reply, json!({"reply": 1, "ok": true, "last_id": 0}));
    assert_eq!(event(&mut watcher).0, "join", "it hears of itself");
    // Ann over mux with a token that has info; Bob over /ws/room-1; Cy
    // over SSE.
    let ann = token("ann", json!({"name": "Ann", "color": "red"}));
    let mut a = MuxClient::connect(server.addr, &format!("?token={ann}"));
    a.subscribe(1, "room-1", None);
    let (change, member) = event(&mut watcher);
    assert_eq!(change, "join");
    assert_eq!(member["user"], "ann");
    assert_eq!(member["info"], json!({"name": "Ann", "color": "red"}));
    assert!(member["client"].is_string());
    let bob = token("bob", json!(null));
    let (mut b, _) = Client::upgrade_at(server.addr, &format!("/ws/room-1?token={bob}"), "");
    assert_eq!(event(&mut watcher).1["user"], "bob");
    let cy = token("cy", json!(7));
    let mut sse = open_sse(server.addr, &format!("/sse/room-1?token={cy}&join_leave=1"), "");
    assert_eq!(event(&mut watcher).1["user"], "cy");
    // The stream asked for events: it hears of itself, then of Ann leaving.
    let joined = String::from_utf8(sse.read_until(b"\n\n")).unwrap();
    assert!(
        joined.starts_with("event: join\ndata: {\"channel\":\"room-1\",\"join\":{"),
        "{joined}"
    );
    assert!(joined.contains("\"user\":\"cy\""), "{joined}");
    members_become(&server, "room-1", &["-", "ann", "bob", "cy"]);
    // The same from a subscriber over its mux connection.
    let reply = watcher.call(json!({"id": 7, "presence_stats": "room-1"}));
    assert_eq!(reply, json!({"reply": 7, "ok": true, "clients": 4, "users": 3}));
    let reply = watcher.call(json!({"id": 8, "presence": "room-1"}));
    let mut listed: Vec<&str> = reply["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap_or("-"))
        .collect();
    listed.sort();
    assert_eq!(listed, ["-", "ann", "bob", "cy"], "{reply}");
    // Not of a channel it is not subscribed to, nor of one without presence.
    let reply = watcher.call(json!({"id": 9, "presence": "room-2"}));
    assert_eq!(reply, json!({"reply": 9, "error": "not subscribed to this channel"}));
    let reply = watcher.call(json!({"id": 10, "presence": "news"}));
    assert!(
        reply["error"].as_str().unwrap().contains("keeps no presence"),
        "{reply}"
    );
    let (status, stats) = api(&server, "/api/presence/room-1/stats");
    assert_eq!(
        (status, stats),
        (200, json!({"channel": "room-1", "clients": 4, "users": 3}))
    );
    // Leaving: an unsubscribe, a close, a stream's end.
    assert_eq!(
        a.call(json!({"id": 2, "unsubscribe": "room-1"})),
        json!({"reply": 2, "ok": true})
    );
    let (change, member) = event(&mut watcher);
    assert_eq!((change.as_str(), &member["user"]), ("leave", &json!("ann")));
    let left = String::from_utf8(sse.read_until(b"\n\n")).unwrap();
    assert!(left.starts_with("event: leave\ndata: "), "{left}");
    assert!(left.contains("\"user\":\"ann\""), "{left}");
    b.close(1000);
    assert_eq!(event(&mut watcher).1["user"], "bob");
    drop(sse);
    assert_eq!(event(&mut watcher).1["user"], "cy");
    members_become(&server, "room-1", &["-"]);
    // Messages still come with their ids among the events.
    let mut p = Client::connect(server.addr);
    publish(&mut p, "room-1", "hello");
    let v = watcher.next();
    assert_eq!((v["id"].as_u64(), &v["data"]), (Some(1), &json!("hello")));
}

#[test]
fn a_channel_outside_presence_has_none_and_the_bound_refuses_the_member_over_it() {
    let server = presence_server(2);
    // Not a presence channel: no member, and the API says so.
    let mut m = MuxClient::connect(server.addr, "");
    m.subscribe(1, "news", None);
    let (status, body) = api(&server, "/api/presence/news");
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("[presence] channels"),
        "{body}"
    );
    let (status, _) = api(&server, "/api/presence/a%2Fb");
    assert_eq!(status, 400);
    let r = Client::connect(server.addr).request("GET", "/api/presence/room-1", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
    // Two members fit; the third is refused on every transport, and is
    // not a member or a subscriber.
    m.subscribe(2, "room-1", None);
    let mut second = MuxClient::connect(server.addr, "");
    second.subscribe(1, "room-1", None);
    let mut third = MuxClient::connect(server.addr, "");
    let reply = third.call(json!({"id": 1, "subscribe": "room-1"}));
    assert_eq!(reply, json!({"reply": 1, "error": "the channel's presence is full"}));
    let r = upgrade_answer(server.addr, "/ws/room-1");
    assert_eq!(r.status, 503, "{r:?}");
    let r = Client::connect(server.addr).request("GET", "/sse/room-1", &[], b"");
    assert_eq!(r.status, 503, "{r:?}");
    members_become(&server, "room-1", &["-", "-"]);
    let (_, state) = api(&server, "/api/channels/room-1");
    assert_eq!(state["subscribers"], 2, "{state}");
    // A long poll is no member: it is not refused, and sees the events
    // it asked for while parked.
    let poller = std::thread::spawn({
        let addr = server.addr;
        move || Client::connect(addr).request("GET", "/poll/room-1?join_leave=1&wait=5", &[], b"")
    });
    wait_gauge(&server, Transport::Poll, 1);
    second.c.close(1000);
    let r = poller.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["messages"], json!([]));
    assert_eq!(answer["events"][0]["channel"], "room-1", "{answer}");
    assert!(answer["events"][0]["leave"]["client"].is_string(), "{answer}");
    // Room again after the leave.
    third.subscribe(2, "room-1", None);
    // Bad asks change nothing.
    let r = upgrade_answer(server.addr, "/ws/room-1?join_leave=1");
    assert_eq!(r.status, 400, "join_leave needs the envelope: {r:?}");
    let r = Client::connect(server.addr).request("GET", "/sse/room-1?join_leave=maybe", &[], b"");
    assert_eq!(r.status, 400, "{r:?}");
    let reply = third.call(json!({"id": 3, "unsubscribe": "room-1", "join_leave": true}));
    assert!(reply["error"].as_str().unwrap().contains("join_leave"), "{reply}");
    members_become(&server, "room-1", &["-", "-"]);
}
