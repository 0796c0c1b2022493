//! Several topics on one open WebSocket (the push server's `wsreactor.mux`
//! at `/ws`), with byte slices and made-up answers: subscribe, reply then
//! replay, per-channel delivery, unsubscribe, the limit, refusals, the
//! end of one private channel.

use super::*;
use crate::auth::Auth;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const MUX: &str = "Sec-WebSocket-Protocol: wsreactor.mux\r\n";
const SECRET: &[u8] = b"the session tests' token secret!";

fn token(claims: Value) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

/// A session open at `/ws` with the mux subprotocol, its 101 read.
fn mux(b: &mut Bench) -> Session {
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/ws", &format!("{UPGRADE}{MUX}")));
    let out = b.text(&mut s);
    assert!(out.starts_with("HTTP/1.1 101 "), "{out}");
    assert!(out.contains("Sec-WebSocket-Protocol: wsreactor.mux\r\n"), "{out}");
    assert!(b.actions.is_empty(), "nothing asked of the broker yet");
    s
}

/// Send a command; the JSON messages the session sent back.
fn command(b: &mut Bench, s: &mut Session, json: Value) -> Vec<Value> {
    b.input(s, &masked(MessageKind::Text, json.to_string().as_bytes()));
    read(b, s)
}

fn read(b: &mut Bench, s: &mut Session) -> Vec<Value> {
    frames(b.output(s))
        .into_iter()
        .map(|(kind, p)| {
            assert_eq!(kind, "Text");
            serde_json::from_slice(&p).unwrap()
        })
        .collect()
}

/// Subscribe to `channel` and have the broker answer with nothing missed.
fn subscribe(b: &mut Bench, s: &mut Session, id: u64, channel: &str) {
    assert!(command(b, s, json!({"id": id, "subscribe": channel})).is_empty());
    assert!(matches!(b.submitted(), Request::Subscribe { channel: c, .. } if &*c == channel));
    b.answer(s, live(channel, 0, vec![], None));
    assert_eq!(read(b, s), [json!({"reply": id, "ok": true, "last_id": 0})]);
}

#[test]
fn test_open_mux_subscribe_replies_then_replays_then_delivers_per_channel() {
    let mut b = Bench::new();
    let mut s = mux(&mut b);
    assert!(command(&mut b, &mut s, json!({"id": 1, "subscribe": "a", "since": 3})).is_empty());
    match b.submitted() {
        Request::Subscribe { channel, since, .. } => assert_eq!((&*channel, since), ("a", Some(3))),
        other => panic!("{other:?}"),
    }
    let gap = Some(Gap::trimmed(4, 4));
    b.answer(&mut s, live("a", 5, vec![message_of("a", 5, "five")], gap));
    assert_eq!(
        read(&mut b, &mut s),
        [
            json!({"reply": 1, "ok": true}),
            json!({"channel": "a", "gap": {"from": 4, "to": 4}}),
            json!({"id": 5, "channel": "a", "data": "five"}),
        ]
    );
    subscribe(&mut b, &mut s, 2, "b");
    // Each channel's messages, each once, by its own cursor.
    for m in [
        message_of("a", 5, "again"),
        message_of("b", 1, "b1"),
        message_of("a", 6, "a6"),
    ] {
        b.deliver(&mut s, &m);
    }
    b.deliver(&mut s, &message_of("z", 1, "not subscribed"));
    assert_eq!(
        read(&mut b, &mut s),
        [
            json!({"id": 1, "channel": "b", "data": "b1"}),
            json!({"id": 6, "channel": "a", "data": "a6"}),
        ]
    );
}

#[test]
fn test_open_mux_unsubscribe_gives_the_subscription_back() {
    let mut b = Bench::new();
    let mut s = mux(&mut b);
    subscribe(&mut b, &mut s, 1, "a");
    subscribe(&mut b, &mut s, 2, "b");
    assert_eq!(
        command(&mut b, &mut s, json!({"id": 3, "unsubscribe": "a"})),
        [json!({"reply": 3, "ok": true})]
    );
    assert_eq!(&*b.unsubscribed(), "a");
    b.deliver(&mut s, &message_of("a", 1, "gone"));
    assert!(read(&mut b, &mut s).is_empty());
    assert_eq!(
        command(&mut b, &mut s, json!({"id": 4, "unsubscribe": "a"})),
        [json!({"reply": 4, "error": "not subscribed to this channel"})]
    );
    // Closing gives back what is left.
    let mut left = Vec::new();
    while let Some(sub) = s.take_subscription() {
        left.push(sub.channel().to_string());
    }
    assert_eq!(left, ["b"]);
}

#[test]
fn test_open_mux_unsubscribe_while_out_answers_both_and_gives_back_the_late_one() {
    let mut b = Bench::new();
    let mut s = mux(&mut b);
    assert!(command(&mut b, &mut s, json!({"id": 1, "subscribe": "a"})).is_empty());
    b.submitted();
    assert_eq!(
        command(&mut b, &mut s, json!({"id": 2, "unsubscribe": "a"})),
        [
            json!({"reply": 1, "error": "unsubscribed before it was live"}),
            json!({"reply": 2, "ok": true}),
        ]
    );
    b.answer(&mut s, live("a", 0, vec![message_of("a", 1, "x")], None));
    assert_eq!(&*b.unsubscribed(), "a");
    assert!(read(&mut b, &mut s).is_empty());
    assert!(s.take_subscription().is_none());
}

#[test]
fn test_open_mux_bad_commands_are_answered_and_change_nothing() {
    let mut b = Bench::new();
    b.settings.max_topics_per_connection = 2;
    let mut s = mux(&mut b);
    subscribe(&mut b, &mut s, 1, "a");
    let refused = |b: &mut Bench, s: &mut Session, json: &[u8]| {
        b.input(s, &masked(MessageKind::Text, json));
        let got = read(b, s);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0]["error"].is_string(), "{got:?}");
        assert!(b.actions.is_empty(), "{:?}", b.actions);
        got[0].clone()
    };
    assert_eq!(refused(&mut b, &mut s, b"{not json")["reply"], Value::Null);
    assert_eq!(refused(&mut b, &mut s, b"[1]")["reply"], Value::Null);
    assert_eq!(refused(&mut b, &mut s, br#"{"subscribe":"b"}"#)["reply"], Value::Null);
    let unknown = refused(&mut b, &mut s, br#"{"id":7,"join":"b"}"#);
    assert_eq!(unknown["reply"], 7);
    assert!(unknown["error"].as_str().unwrap().starts_with("unknown command"));
    refused(&mut b, &mut s, br#"{"id":8,"subscribe":"a/b"}"#);
    refused(&mut b, &mut s, br#"{"id":9,"subscribe":"a"}"#);
    // A publish without a token, or with one without the pub scope.
    let why = refused(&mut b, &mut s, br#"{"id":10,"publish":"a","data":1}"#);
    assert!(why["error"].as_str().unwrap().contains("pub scope"), "{why}");
    b.settings.auth = Auth::new(vec![], SECRET);
    let t = token(json!({"exp": 60, "channels": ["*"]}));
    let publish = json!({"id": 11, "publish": "a", "data": 1, "token": t}).to_string();
    let why = refused(&mut b, &mut s, publish.as_bytes());
    assert_eq!(why["error"], "the token has no pub scope");
    // The limit: one more is taken, the next refused.
    subscribe(&mut b, &mut s, 12, "b");
    let why = refused(&mut b, &mut s, br#"{"id":13,"subscribe":"c"}"#);
    assert!(
        why["error"].as_str().unwrap().contains("max_channels_per_connection"),
        "{why}"
    );
    b.input(&mut s, &masked(MessageKind::Binary, b"{}"));
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"reply": null, "error": "commands are JSON text"})]
    );
    // Still open, still subscribed to both.
    assert!(is(&s, Transport::WebSocket));
    b.deliver(&mut s, &message_of("b", 1, "b1"));
    assert_eq!(read(&mut b, &mut s), [json!({"id": 1, "channel": "b", "data": "b1"})]);
}

#[test]
fn test_open_mux_publish_with_the_scope_is_answered_with_its_id() {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec![], SECRET);
    let mut s = mux(&mut b);
    let t = token(json!({"exp": 60, "channels": ["news-*"], "scope": "pub"}));
    let refused = command(
        &mut b,
        &mut s,
        json!({"id": 1, "publish": "other", "data": 1, "token": t}),
    );
    assert_eq!(
        refused,
        [json!({"reply": 1, "error": "the token does not grant this channel"})]
    );
    let publish = json!({"id": 2, "publish": "news-a", "data": {"x": [1, 2]}, "token": t});
    assert!(command(&mut b, &mut s, publish).is_empty());
    match b.submitted() {
        Request::Publish { channel, payload, .. } => {
            assert_eq!((&*channel, &*payload), ("news-a", &br#"{"x":[1,2]}"#[..]))
        }
        other => panic!("{other:?}"),
    }
    let receipt = Receipt {
        id: 41,
        subscribers: 0,
        duplicate: false,
    };
    b.answer(&mut s, Answer::Published(Ok(receipt)));
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"reply": 2, "ok": true, "message_id": 41})]
    );
    // A refusal by the broker is the reply's.
    let publish = json!({"id": 3, "publish": "news-a", "data": "x", "token": t});
    command(&mut b, &mut s, publish);
    b.submitted();
    b.answer(&mut s, Answer::Published(Err(HubError::Unavailable("down"))));
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"reply": 3, "error": "the broker is unavailable: down"})]
    );
}

#[test]
fn test_open_mux_a_refused_subscribe_is_the_oldest_out() {
    let mut b = Bench::new();
    let mut s = mux(&mut b);
    command(&mut b, &mut s, json!({"id": 1, "subscribe": "a"}));
    command(&mut b, &mut s, json!({"id": 2, "subscribe": "b"}));
    b.actions.clear();
    b.answer(&mut s, Answer::Subscribed(Err(HubError::TooManyChannels)));
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"reply": 1, "error": "too many channels"})]
    );
    b.answer(&mut s, live("b", 0, vec![], None));
    assert_eq!(read(&mut b, &mut s), [json!({"reply": 2, "ok": true, "last_id": 0})]);
    // "a" may be asked for again.
    subscribe(&mut b, &mut s, 3, "a");
}

#[test]
fn test_open_mux_a_private_channel_ends_alone_and_refresh_extends_it() {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec!["p-*".into()], SECRET);
    let mut s = mux(&mut b);
    subscribe(&mut b, &mut s, 1, "public");
    let refused = command(&mut b, &mut s, json!({"id": 2, "subscribe": "p-1"}));
    assert!(refused[0]["error"].as_str().unwrap().contains("private"), "{refused:?}");
    let t = token(json!({"exp": 10, "channels": ["p-*"]}));
    assert!(command(&mut b, &mut s, json!({"id": 3, "subscribe": "p-1", "token": t})).is_empty());
    b.submitted();
    b.answer(&mut s, live("p-1", 0, vec![], None));
    assert_eq!(read(&mut b, &mut s), [json!({"reply": 3, "ok": true, "last_id": 0})]);
    assert!(command(&mut b, &mut s, json!({"id": 4, "subscribe": "p-2", "token": t})).is_empty());
    b.submitted();
    b.answer(&mut s, live("p-2", 0, vec![], None));
    read(&mut b, &mut s);
    // A refresh that does not grant every private channel changes nothing.
    let narrow = token(json!({"exp": 100, "channel": "p-1"}));
    let why = command(&mut b, &mut s, json!({"id": 5, "refresh": narrow}));
    assert_eq!(
        why,
        [json!({"reply": 5, "error": "p-2: the token does not grant this channel"})]
    );
    let p1_only = token(json!({"exp": 100, "channels": ["p-1", "p-2"]}));
    // p-2 is given up first; then the refresh extends p-1.
    command(&mut b, &mut s, json!({"id": 6, "unsubscribe": "p-2"}));
    b.actions.clear();
    assert_eq!(
        command(&mut b, &mut s, json!({"id": 7, "refresh": p1_only})),
        [json!({"reply": 7, "ok": true})]
    );
    // Another private channel subscribed with the old token ends at 10 s,
    // alone; the connection and the others go on.
    assert!(command(&mut b, &mut s, json!({"id": 8, "subscribe": "p-3", "token": t})).is_empty());
    b.submitted();
    b.answer(&mut s, live("p-3", 0, vec![], None));
    read(&mut b, &mut s);
    b.later(Duration::from_secs(10));
    assert!(s.deadline(&b.settings).is_before(b.now.plus(Duration::from_millis(1))));
    b.timeout(&mut s).unwrap();
    assert_eq!(&*b.unsubscribed(), "p-3");
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"channel": "p-3", "unsubscribed": "token expired"})]
    );
    assert!(is(&s, Transport::WebSocket));
    for (channel, text) in [("p-3", "late"), ("p-1", "kept"), ("public", "too")] {
        b.deliver(&mut s, &message_of(channel, 1, text));
    }
    assert_eq!(
        read(&mut b, &mut s),
        [
            json!({"id": 1, "channel": "p-1", "data": "kept"}),
            json!({"id": 1, "channel": "public", "data": "too"}),
        ]
    );
}

#[test]
fn test_request_mux_without_the_subprotocol_is_refused() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/ws", UPGRADE));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 400 ") && out.contains("wsreactor.mux"),
        "{out}"
    );
}

#[test]
fn test_open_mux_a_signal_for_its_user_closes_or_unsubscribes_it_and_no_other() {
    use crate::push::UserOrder;
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec![], SECRET);
    let t = token(json!({"exp": 60, "sub": "ada"}));
    let mut s = Session::new(b.now);
    b.input(&mut s, &get(&format!("/ws?token={t}"), &format!("{UPGRADE}{MUX}")));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 101 "));
    subscribe(&mut b, &mut s, 1, "a");
    let signal = |b: &mut Bench, s: &mut Session, order: UserOrder| {
        s.handle_signal(&order.encode(), &mut b.env());
    };
    signal(&mut b, &mut s, UserOrder::Disconnect { user: "bob".into() });
    assert!(b.output(&mut s).is_empty(), "another user's order does nothing");
    signal(
        &mut b,
        &mut s,
        UserOrder::Unsubscribe {
            user: "ada".into(),
            channel: "a".into(),
        },
    );
    assert_eq!(&*b.unsubscribed(), "a");
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"channel": "a", "unsubscribed": "by the server"})]
    );
    signal(&mut b, &mut s, UserOrder::Disconnect { user: "ada".into() });
    assert_eq!(frames(b.output(&mut s)), [close_code(4002)]);
    // A bad token on the upgrade is refused before the 101.
    let mut bad = Session::new(b.now);
    let expired = token(json!({"exp": 0, "sub": "ada"}));
    b.input(
        &mut bad,
        &get(&format!("/ws?token={expired}"), &format!("{UPGRADE}{MUX}")),
    );
    assert!(b.text(&mut bad).starts_with("HTTP/1.1 403 "));
}

#[test]
fn test_open_mux_a_delivery_as_another_channel_ends_is_still_delivered() {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec!["p-*".into()], SECRET);
    let mut s = mux(&mut b);
    subscribe(&mut b, &mut s, 1, "public");
    let t = token(json!({"exp": 10, "channels": ["p-*"]}));
    assert!(command(&mut b, &mut s, json!({"id": 2, "subscribe": "p-1", "token": t})).is_empty());
    b.submitted();
    b.answer(&mut s, live("p-1", 0, vec![], None));
    read(&mut b, &mut s);
    // The token's end comes; before the timer looks, a message of the
    // public channel: the private one ends and the message goes out.
    b.later(Duration::from_secs(10));
    let d = s.handle_delivery(&message_of("public", 1, "on"), &mut b.env());
    assert_eq!(d, Delivered::Queued);
    assert_eq!(&*b.unsubscribed(), "p-1");
    assert_eq!(
        read(&mut b, &mut s),
        [
            json!({"channel": "p-1", "unsubscribed": "token expired"}),
            json!({"id": 1, "channel": "public", "data": "on"}),
        ]
    );
}

#[test]
fn test_open_mux_a_command_token_names_the_connection_user_once() {
    use crate::push::UserOrder;
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec![], SECRET);
    let mut s = mux(&mut b);
    // No token on the upgrade: the first command token's sub is its user.
    let bob = token(json!({"exp": 60, "sub": "bob"}));
    assert!(command(&mut b, &mut s, json!({"id": 1, "subscribe": "a", "token": bob})).is_empty());
    b.submitted();
    b.answer(&mut s, live("a", 0, vec![], None));
    read(&mut b, &mut s);
    let eve = token(json!({"exp": 60, "sub": "eve"}));
    let why = command(&mut b, &mut s, json!({"id": 2, "subscribe": "b", "token": eve}));
    assert_eq!(
        why,
        [json!({"reply": 2, "error": "the token names another user than the connection's"})]
    );
    assert!(b.actions.is_empty());
    s.handle_signal(&UserOrder::Disconnect { user: "bob".into() }.encode(), &mut b.env());
    assert_eq!(frames(b.output(&mut s)), [close_code(4002)]);
}

#[test]
fn test_open_mux_a_refresh_reaches_a_subscribe_still_out() {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec!["p-*".into()], SECRET);
    let mut s = mux(&mut b);
    let short = token(json!({"exp": 10, "channels": ["p-*"]}));
    assert!(command(&mut b, &mut s, json!({"id": 1, "subscribe": "p-1", "token": short})).is_empty());
    b.submitted();
    let long = token(json!({"exp": 100, "channels": ["p-*"]}));
    assert_eq!(
        command(&mut b, &mut s, json!({"id": 2, "refresh": long})),
        [json!({"reply": 2, "ok": true})]
    );
    b.answer(&mut s, live("p-1", 0, vec![], None));
    assert_eq!(read(&mut b, &mut s), [json!({"reply": 1, "ok": true, "last_id": 0})]);
    b.later(Duration::from_secs(10));
    b.timeout(&mut s).unwrap();
    assert!(b.actions.is_empty(), "{:?}", b.actions);
    b.deliver(&mut s, &message_of("p-1", 1, "still"));
    assert_eq!(
        read(&mut b, &mut s),
        [json!({"id": 1, "channel": "p-1", "data": "still"})]
    );
    // An end that came while the subscribe was out: nothing of it goes
    // out, not even its history.
    let mid = token(json!({"exp": 50, "channels": ["p-*"]}));
    assert!(command(&mut b, &mut s, json!({"id": 3, "subscribe": "p-2", "token": mid})).is_empty());
    b.submitted();
    b.later(Duration::from_secs(45));
    b.answer(&mut s, live("p-2", 1, vec![message_of("p-2", 1, "old")], None));
    assert_eq!(
        read(&mut b, &mut s),
        [
            json!({"reply": 3, "ok": true, "last_id": 1}),
            json!({"channel": "p-2", "unsubscribed": "token expired"}),
        ]
    );
}

#[test]
fn test_open_mux_join_leave_goes_to_the_channels_that_asked_and_moves_no_cursor() {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec![], SECRET);
    b.settings.pubsub.presence_channels = vec!["room-*".into()];
    let mut s = mux(&mut b);
    // In a presence channel with a token: a member, as the token says.
    let ann = token(json!({"exp": 4_000_000_000u64, "sub": "ann", "info": {"n": 1}}));
    let asked = json!({"id": 1, "subscribe": "room-1", "join_leave": true, "token": ann});
    assert!(command(&mut b, &mut s, asked).is_empty());
    match b.submitted() {
        Request::Subscribe { presence, .. } => {
            let p = presence.expect("a member");
            assert_eq!((p.user.as_deref(), p.info.as_deref()), (Some("ann"), Some("{\"n\":1}")));
        }
        other => panic!("{other:?}"),
    }
    b.answer(&mut s, live("room-1", 0, vec![], None));
    assert_eq!(read(&mut b, &mut s), [json!({"reply": 1, "ok": true, "last_id": 0})]);
    // Outside presence: no member; no events asked for.
    assert!(command(&mut b, &mut s, json!({"id": 2, "subscribe": "news"})).is_empty());
    assert!(matches!(b.submitted(), Request::Subscribe { presence: None, .. }));
    b.answer(&mut s, live("news", 0, vec![], None));
    read(&mut b, &mut s);
    let event = |channel: &str| {
        Arc::new(Message::presence(
            channel.into(),
            crate::pubsub::Change::Join,
            "{\"client\":\"9\"}",
            Instant::now(),
        ))
    };
    b.deliver(&mut s, &event("room-1"));
    b.deliver(&mut s, &event("news"));
    // The cursors did not move: message 1 of each still comes.
    b.deliver(&mut s, &message_of("room-1", 1, "r1"));
    b.deliver(&mut s, &message_of("news", 1, "n1"));
    assert_eq!(
        read(&mut b, &mut s),
        [
            json!({"channel": "room-1", "join": {"client": "9"}}),
            json!({"id": 1, "channel": "room-1", "data": "r1"}),
            json!({"id": 1, "channel": "news", "data": "n1"}),
        ]
    );
}
