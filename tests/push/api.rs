//! The server API over real sockets (`/api/`, issue 26): its key, and
//! `POST /api/broadcast` with what it answers and what it publishes.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use wsreactor::reactor::settings::Settings;

const KEY: &str = "an-api-key-of-the-operator";

fn server_with(f: impl FnOnce(&mut Settings)) -> Server {
    let mut s = settings();
    s.api.key = Some(KEY.to_owned());
    f(&mut s);
    Server::start(s)
}

fn body(r: &Response) -> Value {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    serde_json::from_slice(&r.body).unwrap()
}

/// Nothing was published on `channel` (a short poll finds nothing).
fn nothing_on(server: &Server, channel: &str) {
    let r = Client::connect(server.addr).request("GET", &format!("/poll/{channel}?since=0&wait=0"), &[], b"");
    assert_eq!(r.status, 204, "{channel}: {r:?}");
}

fn broadcast(c: &mut Client, headers: &[&str], payload: &Value) -> Response {
    c.request("POST", "/api/broadcast", headers, payload.to_string().as_bytes())
}

#[test]
fn without_a_key_configured_the_api_is_off() {
    let server = Server::start(settings());
    let r = broadcast(
        &mut Client::connect(server.addr),
        &[&format!("X-API-Key: {KEY}")],
        &json!({"channels": ["a"], "data": 1}),
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(body(&r)["error"].as_str().unwrap().contains("[api] key"));
    nothing_on(&server, "a");
}

#[test]
fn a_missing_key_is_401_a_wrong_one_403_and_neither_publishes() {
    let server = server_with(|_| {});
    let payload = json!({"channels": ["a"], "data": "x"});
    let mut c = Client::connect(server.addr);
    let r = broadcast(&mut c, &[], &payload);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("www-authenticate").is_some());
    assert!(body(&r)["error"].is_string());
    for wrong in [
        "X-API-Key: an-api-key-of-the-operatoR",
        "X-API-Key: an-api-key-of-the-operator-",
        "Authorization: Bearer an-api-key-of-the-operator",
        "Authorization: apikey nope",
    ] {
        let r = broadcast(&mut Client::connect(server.addr), &[wrong], &payload);
        let expected = if wrong.starts_with("Authorization: Bearer") {
            401
        } else {
            403
        };
        assert_eq!(r.status, expected, "{wrong}: {r:?}");
        assert!(body(&r)["error"].is_string());
    }
    // Every route checks the key first: an unknown one says nothing more.
    let r = Client::connect(server.addr).request("GET", "/api/nothing-here", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
    nothing_on(&server, "a");
}

#[test]
fn a_broadcast_reaches_every_channel_once_with_its_id() {
    let server = server_with(|_| {});
    let (mut a, _) = Client::upgrade_at(server.addr, "/ws/news", "");
    let (mut b, _) = Client::upgrade_at(server.addr, "/ws/sport", "");
    let mut c = Client::connect(server.addr);
    let data = json!({"headline": "rain", "n": 1});
    let r = broadcast(
        &mut c,
        &[&format!("X-API-Key: {KEY}")],
        &json!({"channels": ["news", "sport"], "data": data}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        body(&r),
        json!({"results": [
            {"channel": "news", "id": 1, "subscribers": 1},
            {"channel": "sport", "id": 1, "subscribers": 1},
        ]})
    );
    for sub in [&mut a, &mut b] {
        let frame = sub.recv();
        assert_eq!(frame.opcode, TEXT);
        assert_eq!(serde_json::from_slice::<Value>(&frame.payload).unwrap(), data);
        assert!(sub.recv_within(Duration::from_millis(100)).is_none(), "delivered twice");
    }
    // The other header form, on the same kept-alive connection; the ids go on.
    let r = broadcast(
        &mut c,
        &[&format!("Authorization: ApiKey {KEY}")],
        &json!({"channels": ["sport"], "data": "two"}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(body(&r)["results"][0]["id"], 2);
    assert_eq!(b.recv().payload, b"\"two\"");
    // A plain publish numbers after the broadcast's.
    assert_eq!(publish(&mut Client::connect(server.addr), "news", "three")["id"], 2);
}

#[test]
fn a_bad_broadcast_is_a_json_400_and_publishes_nothing() {
    let server = server_with(|s| s.api.max_broadcast_channels = 3);
    let key = format!("X-API-Key: {KEY}");
    let mut c = Client::connect(server.addr);
    for (payload, why) in [
        (&b"{\"channels\":[\"a\"],"[..], "malformed JSON"),
        (b"[1,2]", "malformed JSON"),
        (br#"{"channels":["a"]}"#, "malformed JSON"),
        (br#"{"channels":["a"],"data":1,"ttl":5}"#, "malformed JSON"),
        (br#"{"channels":[],"data":1}"#, "channels is empty"),
        (br#"{"channels":["a","b","c","d"],"data":1}"#, "max_broadcast_channels"),
        (br#"{"channels":["a","a/b"],"data":1}"#, "names are"),
        (br#"{"channels":["a",".."],"data":1}"#, "names are"),
        (br#"{"channels":["a","a"],"data":1}"#, "listed twice"),
    ] {
        let r = c.request("POST", "/api/broadcast", &[&key], payload);
        assert_eq!(r.status, 400, "{}: {r:?}", String::from_utf8_lossy(payload));
        let error = body(&r)["error"].as_str().unwrap().to_owned();
        assert!(error.contains(why), "{error} lacks {why}");
    }
    let r = c.request("GET", "/api/broadcast", &[&key], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")), "{r:?}");
    let r = c.request("GET", "/api/channels-of-someday", &[&key], b"");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(body(&r)["error"].as_str().unwrap().contains("/api/channels-of-someday"));
    // Declared over the body limit: refused before a byte of it is read.
    let mut big = Client::connect(server.addr);
    big.write(
        format!("POST /api/broadcast HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Length: 99999999999\r\n\r\n").as_bytes(),
    );
    let r = big.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    nothing_on(&server, "a");
}

#[test]
fn a_broadcast_partly_refused_is_207_and_says_which() {
    // One channel may exist: "old" does, so "new" is refused (503 inside).
    let server = server_with(|s| s.pubsub.hub.max_channels = 1);
    publish(&mut Client::connect(server.addr), "old", "first");
    let key = format!("X-API-Key: {KEY}");
    let mut c = Client::connect(server.addr);
    let r = broadcast(&mut c, &[&key], &json!({"channels": ["old", "new"], "data": 7}));
    assert_eq!(r.status, 207, "{r:?}");
    let results = body(&r)["results"].clone();
    assert_eq!(results[0], json!({"channel": "old", "id": 2, "subscribers": 0}));
    assert_eq!(results[1]["channel"], "new");
    assert_eq!(results[1]["status"], 503);
    assert!(results[1]["error"].is_string());
    // Refused everywhere: the refusal's own status, not a 207.
    let r = broadcast(&mut c, &[&key], &json!({"channels": ["new"], "data": 7}));
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
}

/// docs/operating.md's example of the server API, run as written (its key from
/// the environment, its address this server's): the answer has the shape
/// the document shows, channel by channel.
/// The operators' document's section on the server API, to its next heading.
fn readme_api_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md")).unwrap();
    let section = readme.split("\n## The server API\n").nth(1).expect("the section");
    section.split("\n## ").next().unwrap().to_owned()
}

/// Run a documented example's shell `command` against `server` (the key in
/// `WSREACTOR_API_KEY`, as the examples read it): its JSON answer.
fn run_example(command: &str, server: &Server) -> Value {
    let command = command.replace("127.0.0.1:9001", &server.addr.to_string());
    let out = std::process::Command::new("sh")
        .args(["-c", &command])
        .env("WSREACTOR_API_KEY", KEY)
        .output()
        .expect("sh and curl");
    assert!(out.status.success(), "{command}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{command}: {e}: {out:?}"))
}

#[test]
fn the_readme_curl_example_answers_as_shown() {
    let section = readme_api_section();
    let block = section.split("```").nth(1).expect("its example").trim();
    let (command, shown) = block.split_once("\n{").expect("a command, then its answer");
    let command = command
        .trim()
        .strip_prefix("$ ")
        .expect("a shell prompt")
        .replace("\\\n", " ");
    let shown: Value = serde_json::from_str(&format!("{{{shown}")).unwrap();
    let server = server_with(|_| {});
    let got = run_example(&command, &server);
    let (got, shown) = (got["results"].as_array().unwrap(), shown["results"].as_array().unwrap());
    assert_eq!(got.len(), shown.len());
    for (got, shown) in got.iter().zip(shown) {
        assert_eq!(got["channel"], shown["channel"]);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(got), keys(shown));
        assert!(got["id"].as_u64().is_some_and(|id| id > 0));
    }
}

#[test]
fn history_reads_what_the_channel_keeps_in_pages() {
    let server = server_with(|_| {});
    let key = format!("X-API-Key: {KEY}");
    let mut c = Client::connect(server.addr);
    for n in 1..=5 {
        publish(&mut Client::connect(server.addr), "log", &format!("m{n}"));
    }
    // All of it, in the form a poll answers.
    let r = c.request("GET", "/api/history/log", &[&key], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let all = body(&r);
    let ids: Vec<u64> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(all["messages"][0]["data"], "m1");
    assert_eq!(
        (all["last_id"].as_u64(), all["gap"].as_bool(), all["more"].as_bool()),
        (Some(5), Some(false), Some(false))
    );
    // A page: the cursor is the last message given, and there is more.
    let r = c.request("GET", "/api/history/log?since=1&limit=2", &[&key], b"");
    let page = body(&r);
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        (page["last_id"].as_u64(), page["more"].as_bool()),
        (Some(3), Some(true))
    );
    let r = c.request("GET", "/api/history/log?since=3&limit=2", &[&key], b"");
    let page = body(&r);
    assert_eq!(page["messages"][1]["id"], 5);
    assert_eq!(
        (page["last_id"].as_u64(), page["more"].as_bool()),
        (Some(5), Some(false))
    );
    // Reading is not subscribing: nothing stays open on the channel.
    let r = c.request("GET", "/api/history/log?since=5", &[&key], b"");
    assert_eq!(body(&r)["messages"], json!([]));
    assert_eq!(
        publish(&mut Client::connect(server.addr), "log", "m6")["subscribers"],
        0
    );
}

#[test]
fn a_bad_history_read_is_a_json_400_405_or_401() {
    let server = server_with(|_| {});
    let key = format!("X-API-Key: {KEY}");
    let mut c = Client::connect(server.addr);
    for (target, why) in [
        ("/api/history/a%2Fb", "channel names"),
        ("/api/history/", "channel names"),
        ("/api/history/log?since=x", "since"),
        ("/api/history/log?limit=0", "limit"),
        ("/api/history/log?limit=1001", "limit"),
    ] {
        let r = c.request("GET", target, &[&key], b"");
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert!(body(&r)["error"].as_str().unwrap().contains(why), "{target}: {r:?}");
    }
    let r = c.request("DELETE", "/api/history/log", &[&key], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")), "{r:?}");
    let r = Client::connect(server.addr).request("GET", "/api/history/log", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
}

/// The channel names of a `GET /api/channels` page, and its cursor.
fn page(c: &mut Client, query: &str) -> (Vec<String>, Value) {
    let r = c.request(
        "GET",
        &format!("/api/channels{query}"),
        &[&format!("X-API-Key: {KEY}")],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = body(&r);
    let names = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap().to_owned())
        .collect();
    (names, v["cursor"].clone())
}

#[test]
fn channels_are_listed_by_pattern_in_pages_and_each_read_whole() {
    let server = server_with(|_| {});
    let key = format!("X-API-Key: {KEY}");
    let mut c = Client::connect(server.addr);
    for name in ["news.b", "news.a", "sport", "news.c"] {
        publish(&mut Client::connect(server.addr), name, "x");
    }
    publish(&mut Client::connect(server.addr), "news.a", "y");
    // A subscriber makes a channel exist too.
    let (_sub, _) = Client::upgrade_at(server.addr, "/ws/quiet", "");
    let (all, cursor) = page(&mut c, "");
    assert_eq!(all, ["news.a", "news.b", "news.c", "quiet", "sport"]);
    assert_eq!(cursor, Value::Null, "one page holds them all");
    // Two at a time, by pattern, each page's cursor to the next.
    let (first, cursor) = page(&mut c, "?pattern=news.*&limit=2");
    assert_eq!(first, ["news.a", "news.b"]);
    let cursor = cursor.as_str().expect("a cursor while more follow").to_owned();
    let (second, last) = page(&mut c, &format!("?pattern=news.%2A&limit=2&cursor={cursor}"));
    assert_eq!((second, last), (vec!["news.c".to_owned()], Value::Null));
    // One channel, whole.
    let r = c.request("GET", "/api/channels/news.a", &[&key], b"");
    assert_eq!(
        body(&r),
        json!({"channel": "news.a", "subscribers": 0, "last_id": 2, "epoch_start": 0,
               "transports": {"websocket": 0, "sse": 0, "poll": 0},
               "history": {"kept": 2, "first_id": 1}})
    );
    // Per transport: the WebSocket, an event stream and a parked poll.
    let mut sse = Client::connect(server.addr);
    sse.write(b"GET /sse/quiet HTTP/1.1\r\nHost: t\r\n\r\n");
    sse.read_until(b"\r\n\r\n");
    let mut poll = Client::connect(server.addr);
    poll.write(b"GET /poll/quiet?wait=10 HTTP/1.1\r\nHost: t\r\n\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let quiet = loop {
        let r = c.request("GET", "/api/channels/quiet", &[&key], b"");
        let v = body(&r);
        if v["subscribers"] == 3 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        quiet,
        json!({"channel": "quiet", "subscribers": 3, "last_id": 0, "epoch_start": 0,
               "transports": {"websocket": 1, "sse": 1, "poll": 1},
               "history": {"kept": 0, "first_id": null}})
    );
    drop((sse, poll));
    // Looking makes no channel.
    let r = c.request("GET", "/api/channels/nowhere", &[&key], b"");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(body(&r)["error"].is_string());
    assert_eq!(page(&mut c, "?pattern=now*").0, Vec::<String>::new());
}

#[test]
fn a_bad_channels_request_is_a_json_400_405_or_401_and_a_made_up_cursor_is_refused() {
    let server = server_with(|_| {});
    let key = format!("X-API-Key: {KEY}");
    let mut c = Client::connect(server.addr);
    publish(&mut Client::connect(server.addr), "a", "x");
    for query in [
        "?limit=0",
        "?limit=1001",
        "?pattern=a/b",
        "?pattern=",
        "?cursor=not*base64",
        // base64url of "a/b": not a name any page could end on.
        "?cursor=YS9i",
        "?limit=1&limit=2",
    ] {
        let r = c.request("GET", &format!("/api/channels{query}"), &[&key], b"");
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(body(&r)["error"].is_string(), "{query}");
    }
    let r = c.request("GET", "/api/channels/a%2Fb", &[&key], b"");
    assert_eq!(r.status, 400, "{r:?}");
    let r = c.request("POST", "/api/channels", &[&key, "Content-Length: 0"], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")), "{r:?}");
    let r = c.request("GET", "/api/channels", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
    let r = c.request("GET", "/api/channels/a", &["X-API-Key: wrong-key-of-some-length"], b"");
    assert_eq!(r.status, 403, "{r:?}");
}

const SECRET: &str = "the api tests' token secret, 32b";

/// A token for user `sub` (no channel granted: it names the user only).
fn user_token(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jwt(SECRET, json!({"exp": exp, "sub": sub}))
}

#[test]
fn disconnect_closes_every_connection_of_the_user_and_no_one_elses() {
    use crate::common::mux::MuxClient;
    let server = server_with(|s| s.auth = wsreactor::auth::Auth::new(vec![], SECRET.as_bytes()));
    let (ada, bob) = (user_token("ada"), user_token("bob"));
    let mut ada_mux = MuxClient::connect(server.addr, &format!("?token={ada}"));
    ada_mux.subscribe(1, "a", None);
    let (mut ada_one, _) = Client::upgrade_at(server.addr, &format!("/ws/a?token={ada}"), "");
    let mut bob_mux = MuxClient::connect(server.addr, &format!("?token={bob}"));
    bob_mux.subscribe(1, "a", None);
    // An event stream of hers, too.
    let mut ada_sse = Client::connect(server.addr);
    ada_sse.write(format!("GET /sse/a?token={ada} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let head = String::from_utf8(ada_sse.read_until(b"\r\n\r\n")).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let mut c = Client::connect(server.addr);
    let key = format!("X-API-Key: {KEY}");
    let r = c.request("POST", "/api/disconnect", &[&key], br#"{"user":"ada"}"#);
    assert_eq!((r.status, body(&r)), (200, json!({})), "{r:?}");
    ada_mux.c.expect_close(4002);
    ada_one.expect_close(4002);
    let said = String::from_utf8(ada_sse.read_until(b"\n\n")).unwrap();
    assert_eq!(said, "event: disconnected\ndata: disconnected by the server\n\n");
    assert!(ada_sse.wait_eof(Duration::from_secs(2)).is_some(), "the stream ends");
    // Bob goes on.
    publish(&mut Client::connect(server.addr), "a", "still here");
    assert_eq!(bob_mux.message().2, json!("still here"));
    // Bad bodies change nothing.
    for bad in [
        &br#"{"user":""}"#[..],
        br#"{"user":"bob","extra":1}"#,
        b"not json",
        br#"{"users":["bob"]}"#,
    ] {
        let r = c.request("POST", "/api/disconnect", &[&key], bad);
        assert_eq!(r.status, 400, "{r:?}");
        assert!(body(&r)["error"].is_string());
    }
    let r = c.request("POST", "/api/disconnect", &[], br#"{"user":"bob"}"#);
    assert_eq!(r.status, 401, "{r:?}");
    publish(&mut Client::connect(server.addr), "a", "and on");
    assert_eq!(bob_mux.message().2, json!("and on"));
}

#[test]
fn unsubscribe_ends_one_channel_of_the_user() {
    use crate::common::mux::MuxClient;
    let server = server_with(|s| s.auth = wsreactor::auth::Auth::new(vec![], SECRET.as_bytes()));
    let ada = user_token("ada");
    let mut m = MuxClient::connect(server.addr, &format!("?token={ada}"));
    m.subscribe(1, "a", None);
    m.subscribe(2, "b", None);
    let (mut one, _) = Client::upgrade_at(server.addr, &format!("/ws/a?token={ada}"), "");
    let (mut other, _) = Client::upgrade_at(server.addr, &format!("/ws/b?token={ada}"), "");
    let r = Client::connect(server.addr).request(
        "POST",
        "/api/unsubscribe",
        &[&format!("X-API-Key: {KEY}")],
        br#"{"user":"ada","channel":"a"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(m.next(), json!({"channel": "a", "unsubscribed": "by the server"}));
    one.expect_close(4003);
    publish(&mut Client::connect(server.addr), "a", "gone");
    publish(&mut Client::connect(server.addr), "b", "kept");
    assert_eq!(m.message(), ("b".to_owned(), 1, json!("kept")));
    assert_eq!(text_of(&other.recv()), "kept");
    // The connection may subscribe again: the order ended a subscription,
    // not the user's right to one.
    m.subscribe(3, "a", Some(0));
    assert_eq!(m.message(), ("a".to_owned(), 1, json!("gone")));
}

fn text_of(f: &Frame) -> String {
    String::from_utf8(f.payload.clone()).unwrap()
}

/// Same shape: the same keys in every object, the first items of arrays
/// alike, and values of the same JSON type.
fn same_shape(got: &Value, shown: &Value) -> bool {
    match (got, shown) {
        (Value::Object(g), Value::Object(s)) => {
            g.len() == s.len() && g.iter().all(|(k, v)| s.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::Array(g), Value::Array(s)) => match (g.first(), s.first()) {
            (Some(g), Some(s)) => same_shape(g, s),
            (None, None) => true,
            _ => false,
        },
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        _ => false,
    }
}

#[test]
fn every_curl_example_of_the_server_api_answers_in_the_shape_shown() {
    let section = readme_api_section();
    // Each example: a `$ ` command (its lines joined at `\`), then the
    // answer shown on the line after it.
    let mut examples = Vec::new();
    for block in section.split("```").skip(1).step_by(2) {
        let mut lines = block.lines().filter(|l| !l.trim().is_empty()).peekable();
        while let Some(line) = lines.next() {
            let Some(mut command) = line.strip_prefix("$ ").map(str::to_owned) else {
                panic!("a command first: {line}");
            };
            while command.ends_with('\\') {
                command.pop();
                command.push_str(lines.next().expect("the command goes on"));
            }
            let shown: Value = serde_json::from_str(lines.next().expect("its answer")).unwrap();
            examples.push((command, shown));
        }
    }
    let routes: Vec<&str> = examples
        .iter()
        .filter_map(|(c, _)| c.split("/api/").nth(1)?.split(['/', '?', '\'', ' ']).next())
        .collect();
    for route in [
        "broadcast",
        "history",
        "channels",
        "presence",
        "disconnect",
        "unsubscribe",
    ] {
        assert!(routes.contains(&route), "no example of /api/{route}: {routes:?}");
    }
    let server = server_with(|s| {
        s.auth = wsreactor::auth::Auth::new(vec![], SECRET.as_bytes());
        s.pubsub.presence_channels = vec!["news".into()];
    });
    for (i, name) in ["news", "newsroom", "sport"].iter().enumerate() {
        for n in 0..12 - i {
            publish(&mut Client::connect(server.addr), name, &format!("m{n}"));
        }
    }
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let ada = jwt(SECRET, json!({"exp": exp, "sub": "ada", "info": {"name": "Ada"}}));
    let (_ada, _) = Client::upgrade_at(server.addr, &format!("/ws/news?token={ada}"), "");
    for (command, shown) in examples {
        // The example's ids are of a numbering after the clock; this
        // server's are from 1.
        let command = command.replace("since=1796601600000010", "since=10");
        let got = run_example(&command, &server);
        assert!(same_shape(&got, &shown), "{command}\n got {got}\nshown {shown}");
        // A page's cursor is the one shown: where the page after "news" starts.
        if shown["cursor"].is_string() {
            assert_eq!(got["cursor"], shown["cursor"], "{command}");
        }
    }
}
