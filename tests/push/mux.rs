//! Several channels on one WebSocket (`wsreactor.mux` at `/ws`) over real
//! sockets: every message of each channel once and in order, across an
//! unsubscribe and a resubscribe from the channel's own cursor; the limit;
//! a publish from the connection with the pub scope.

use super::common::mux::MuxClient;
use super::*;
use serde_json::json;

/// Publish `n` messages to each of `channels`, interleaved, over HTTP.
fn publish_round(addr: SocketAddr, channels: &[&str], from: u64, n: u64) {
    let mut publisher = Client::connect(addr);
    for i in from..from + n {
        for c in channels {
            publish(&mut publisher, c, &format!("{c}{i}"));
        }
    }
}

#[test]
fn three_channels_on_one_connection_each_once_in_order_across_an_unsubscribe() {
    let server = Server::with_threads(2, settings());
    let mut m = MuxClient::connect(server.addr, "");
    for (id, c) in ["a", "b", "c"].iter().enumerate() {
        m.subscribe(id as u64 + 1, c, None);
    }
    publish_round(server.addr, &["a", "b", "c"], 1, 20);
    let mut last = std::collections::HashMap::new();
    for _ in 0..60 {
        let (channel, id, data) = m.message();
        let before = last.insert(channel.clone(), id).unwrap_or(0);
        assert_eq!(id, before + 1, "{channel}: each id once, in order");
        assert_eq!(data, json!(format!("{channel}{id}")));
    }
    // b is given up; what is published meanwhile comes back on the
    // resubscribe from b's cursor, then live, nothing twice.
    assert_eq!(
        m.call(json!({"id": 4, "unsubscribe": "b"})),
        json!({"reply": 4, "ok": true})
    );
    publish_round(server.addr, &["a", "b", "c"], 21, 5);
    m.subscribe(5, "b", Some(last["b"]));
    publish_round(server.addr, &["a", "b", "c"], 26, 5);
    for _ in 0..30 {
        let (channel, id, _) = m.message();
        let before = last.insert(channel.clone(), id).unwrap();
        assert_eq!(id, before + 1, "{channel}: each id once, in order");
    }
    assert_eq!((last["a"], last["b"], last["c"]), (30, 30, 30));
    assert!(m.c.recv_within(Duration::from_millis(50)).is_none(), "nothing more");
}

#[test]
fn the_channel_limit_refuses_the_one_over_it_and_keeps_the_rest() {
    let server = Server::start(with_pubsub(|s| s.max_topics_per_connection = 2));
    let mut m = MuxClient::connect(server.addr, "");
    m.subscribe(1, "a", None);
    m.subscribe(2, "b", None);
    let reply = m.call(json!({"id": 3, "subscribe": "c"}));
    assert!(
        reply["error"].as_str().unwrap().contains("max_channels_per_connection"),
        "{reply}"
    );
    publish_round(server.addr, &["c", "a"], 1, 1);
    assert_eq!(m.message(), ("a".to_owned(), 1, json!("a1")));
    // Room again after an unsubscribe.
    m.call(json!({"id": 4, "unsubscribe": "a"}));
    m.subscribe(5, "c", Some(0));
    assert_eq!(m.message(), ("c".to_owned(), 1, json!("c1")));
}

#[test]
fn a_connection_publishes_with_the_pub_scope_and_not_without() {
    const SECRET: &str = "the mux test's secret, 32 bytes!";
    let server = Server::start(with_pubsub(|s| {
        s.auth = wsreactor::auth::Auth::new(vec!["private-*".into()], SECRET.as_bytes())
    }));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let subscriber = jwt(SECRET, json!({"exp": exp, "channels": ["private-*"]}));
    let publisher = jwt(SECRET, json!({"exp": exp, "channels": ["private-*"], "scope": "pub"}));
    let mut m = MuxClient::connect(server.addr, &format!("?token={subscriber}"));
    m.subscribe(1, "private-a", None);
    let refused = m.call(json!({"id": 2, "publish": "private-a", "data": {"n": 1}}));
    assert_eq!(refused, json!({"reply": 2, "error": "the token has no pub scope"}));
    let ok = m.call(json!({"id": 3, "publish": "private-a", "data": {"n": 2}, "token": publisher}));
    assert_eq!(ok, json!({"reply": 3, "ok": true, "message_id": 1}));
    // Its own message comes back on the channel it is subscribed to;
    // the refused one was never published.
    assert_eq!(m.message(), ("private-a".to_owned(), 1, json!("{\"n\":2}")));
    // Without the token, the private channel is refused, and nothing changes.
    let mut other = MuxClient::connect(server.addr, "");
    let reply = other.call(json!({"id": 1, "subscribe": "private-a"}));
    assert!(reply["error"].as_str().unwrap().contains("private"), "{reply}");
}
