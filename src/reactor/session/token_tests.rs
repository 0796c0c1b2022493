//! Subscriber tokens on every transport, with made-up time: the refusals
//! before any answer head, the expiry while subscribed, the refresh.

use super::*;
use crate::auth::Auth;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"the session tests' token secret!";

/// A bench whose channel `c` is private.
fn private() -> Bench {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec!["c".into()], SECRET);
    b
}

fn token(claims: serde_json::Value) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

/// A token for `c` that ends `secs` after the bench's start.
fn good(secs: u64) -> String {
    token(json!({"exp": secs, "channel": "c"}))
}

fn alg_none() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({"exp": 60, "channel": "c"}).to_string());
    format!("{header}.{claims}.")
}

/// The request for `c` on `route` with the token given `how`.
fn request(route: &str, how: &str, token: &str) -> Vec<u8> {
    let upgrade = if route == "ws" { UPGRADE } else { "" };
    match how {
        "query" => get(&format!("/{route}/c?token={token}"), upgrade),
        "bearer" => get(
            &format!("/{route}/c"),
            &format!("{upgrade}Authorization: Bearer {token}\r\n"),
        ),
        _ => get(&format!("/{route}/c"), upgrade),
    }
}

#[test]
fn test_request_every_bad_token_is_403_on_every_transport() {
    let wrong_key = encode(
        &Header::default(),
        &json!({"exp": 60, "channel": "c"}),
        &EncodingKey::from_secret(b"some other secret"),
    )
    .unwrap();
    let cases = [
        ("none", String::new(), "send a token"),
        ("query", "garbage".into(), "not a JWT"),
        ("bearer", wrong_key, "signature is wrong"),
        ("query", alg_none(), "algorithm \"none\""),
        (
            "bearer",
            token(json!({"exp": 60, "channel": "d"})),
            "does not grant this channel",
        ),
        (
            "query",
            token(json!({"exp": 60, "channels": ["d*"]})),
            "does not grant this channel",
        ),
        ("query", good(0), "expired"),
        ("bearer", token(json!({"channel": "c"})), "no exp"),
    ];
    for route in ["ws", "poll", "sse"] {
        for (how, t, why) in &cases {
            let mut b = private();
            let mut s = Session::new(b.now);
            b.input(&mut s, &request(route, how, t));
            let answer = b.text(&mut s);
            assert!(answer.starts_with("HTTP/1.1 403 "), "{route} {how} {why}: {answer}");
            assert!(answer.contains(why), "{route} {how}: {answer}");
            assert!(b.actions.is_empty(), "{route} {why}: subscribed anyway");
        }
    }
}

#[test]
fn test_request_no_secret_no_private_channel() {
    let mut b = Bench::new();
    b.settings.auth = Auth::new(vec!["c".into()], b"");
    let mut s = Session::new(b.now);
    b.input(&mut s, &request("sse", "query", &good(60)));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 403 "));
    assert!(b.actions.is_empty());
}

#[test]
fn test_request_good_token_subscribes_on_every_transport() {
    for (route, how) in [("ws", "query"), ("ws", "bearer"), ("poll", "query"), ("sse", "bearer")] {
        let mut b = private();
        let mut s = Session::new(b.now);
        b.input(&mut s, &request(route, how, &good(60)));
        assert!(matches!(b.submitted(), Request::Subscribe { .. }), "{route} {how}");
        b.answer(&mut s, subscribed(0, vec![], None));
        let head = b.text(&mut s);
        assert!(
            head.starts_with("HTTP/1.1 101 ") || head.is_empty() || head.starts_with("HTTP/1.1 200 "),
            "{head}"
        );
    }
}

/// An open WebSocket subscriber of `c` whose token ends at `exp`.
fn ws_subscriber(b: &mut Bench, exp: u64) -> Session {
    let mut s = subscriber(
        b,
        &format!("/ws/c?token={}", good(exp)),
        UPGRADE,
        subscribed(0, vec![], None),
    );
    assert!(b.text(&mut s).starts_with("HTTP/1.1 101 "));
    s
}

#[test]
fn test_open_token_expiry_closes_with_4001() {
    let mut b = private();
    let mut s = ws_subscriber(&mut b, 10);
    // The timer is set for the expiry, not for the idle ping.
    assert_eq!(s.deadline(&b.settings), b.now.plus(Duration::from_secs(10)));
    b.later(Duration::from_millis(9_500));
    assert_eq!(b.deliver(&mut s, &message(1, "in time")), Delivered::Queued);
    assert_eq!(frames(b.output(&mut s)), [("Text".into(), b"in time".to_vec())]);
    b.later(Duration::from_millis(500));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert_eq!(frames(b.output(&mut s)), [close_code(4001)]);
    assert_eq!(&*b.unsubscribed(), "c");
}

#[test]
fn test_open_no_message_goes_out_after_exp() {
    let mut b = private();
    let mut s = ws_subscriber(&mut b, 10);
    // The timer has not run yet, but the token is over.
    b.later(Duration::from_secs(10));
    b.deliver(&mut s, &message(1, "too late"));
    assert_eq!(frames(b.output(&mut s)), [close_code(4001)]);
}

#[test]
fn test_open_refresh_extends_the_subscription() {
    let mut b = private();
    let mut s = ws_subscriber(&mut b, 10);
    b.later(Duration::from_secs(5));
    let refresh = json!({"token": good(20)}).to_string();
    b.input(&mut s, &masked(MessageKind::Text, refresh.as_bytes()));
    assert!(b.output(&mut s).is_empty());
    b.later(Duration::from_secs(6));
    assert_eq!(b.timeout(&mut s), Ok(()));
    b.deliver(&mut s, &message(1, "after the first exp"));
    assert_eq!(
        frames(b.output(&mut s)),
        [("Text".into(), b"after the first exp".to_vec())]
    );
    b.later(Duration::from_secs(9));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert_eq!(frames(b.output(&mut s)), [close_code(4001)]);
}

#[test]
fn test_open_bad_refresh_closes_with_1008() {
    for bad in [
        token(json!({"exp": 20, "channel": "d"})),
        good(0),
        alg_none(),
        "junk".to_owned(),
    ] {
        let mut b = private();
        let mut s = ws_subscriber(&mut b, 10);
        let refresh = json!({ "token": bad }).to_string();
        b.input(&mut s, &masked(MessageKind::Text, refresh.as_bytes()));
        assert_eq!(frames(b.output(&mut s)), [close_code(1008)]);
    }
}

#[test]
fn test_open_public_subscriber_ignores_token_messages() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/ws/c", UPGRADE, subscribed(0, vec![], None));
    b.output(&mut s);
    let refresh = json!({"token": "junk"}).to_string();
    b.input(&mut s, &masked(MessageKind::Text, refresh.as_bytes()));
    assert!(b.output(&mut s).is_empty());
    assert!(is(&s, Transport::WebSocket));
}

#[test]
fn test_sse_token_expiry_ends_the_stream() {
    let mut b = private();
    let mut s = subscriber(
        &mut b,
        &format!("/sse/c?token={}", good(10)),
        "",
        subscribed(0, vec![], None),
    );
    b.output(&mut s);
    // Before the first heartbeat is due.
    assert_eq!(s.deadline(&b.settings), b.now.plus(Duration::from_secs(10)));
    b.later(Duration::from_secs(10));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert_eq!(b.text(&mut s), "event: expired\ndata: token expired\n\n");
    assert_eq!(&*b.unsubscribed(), "c");
    assert!(is(&s, Transport::Closing));
}

#[test]
fn test_poll_token_expiry_answers_204_and_the_next_poll_is_refused() {
    let mut b = private();
    let t = good(10);
    let mut s = subscriber(&mut b, &format!("/poll/c?token={t}"), "", subscribed(0, vec![], None));
    b.later(Duration::from_secs(10));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 204 "));
    assert_eq!(&*b.unsubscribed(), "c");
    b.input(&mut s, &request("poll", "query", &t));
    let answer = b.text(&mut s);
    assert!(
        answer.starts_with("HTTP/1.1 403 ") && answer.contains("expired"),
        "{answer}"
    );
}

#[test]
fn test_request_publish_by_a_pub_scoped_token() {
    let post = |t: &str| {
        format!("POST /pub/c HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {t}\r\nContent-Length: 2\r\n\r\nhi")
            .into_bytes()
    };
    let mut b = private();
    b.settings.pubsub.publish_token = Some("static-token".into());
    let mut s = Session::new(b.now);
    b.input(
        &mut s,
        &post(&token(json!({"exp": 60, "channel": "c", "scope": "pub"}))),
    );
    assert!(matches!(b.submitted(), Request::Publish { .. }));
    for (t, why) in [
        (token(json!({"exp": 60, "channel": "c"})), "no pub scope"),
        (
            token(json!({"exp": 60, "channel": "d", "scope": "pub"})),
            "does not grant",
        ),
        ("nope".to_owned(), "wrong publish token"),
    ] {
        let mut s = Session::new(b.now);
        b.input(&mut s, &post(&t));
        let answer = b.text(&mut s);
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains(why), "{answer}");
        assert!(b.actions.is_empty());
    }
}
