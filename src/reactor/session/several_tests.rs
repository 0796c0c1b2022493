//! Requests on several channels (`/sse?channel=..`, `/poll?channel=..`):
//! the channels subscribed one after another, the first ones held, and
//! what is published to them meanwhile given out once everything is
//! subscribed, each channel by its own cursor; every subscription given
//! back at the end.

use super::*;

/// The subscribe just submitted: its channel and cursor.
fn asked(b: &mut Bench) -> (String, Option<u64>) {
    match b.submitted() {
        Request::Subscribe { channel, since, .. } => (channel.to_string(), since),
        other => panic!("{other:?}"),
    }
}

#[test]
fn test_several_sse_holds_the_first_channel_while_the_next_is_subscribed_and_loses_nothing() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/sse?channel=a&channel=b&since=a=1,b=5", ""));
    assert_eq!(asked(&mut b), ("a".to_owned(), Some(1)));
    b.answer(&mut s, live("a", 2, vec![message_of("a", 2, "a2")], None));
    // The head waits for b; a is held, and what comes on it meanwhile
    // is kept, not lost.
    assert_eq!(asked(&mut b), ("b".to_owned(), Some(5)));
    assert!(
        b.output(&mut s).is_empty(),
        "no head before every channel is subscribed"
    );
    b.deliver(&mut s, &message_of("a", 3, "a3"));
    b.deliver(&mut s, &message_of("a", 2, "a2 again"));
    b.answer(
        &mut s,
        live("b", 7, vec![message_of("b", 7, "b7")], Some(Gap::trimmed(6, 6))),
    );
    let out = b.text(&mut s);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let body = out.split("\r\n\r\n").nth(1).unwrap();
    // Gaps first; each event's id is every channel's place after it (b's
    // past the gap it was told of).
    assert_eq!(
        body,
        "event: gap\ndata: {\"channel\":\"b\",\"gap\":{\"from\":6,\"to\":6}}\n\n\
         id: a=2,b=6\ndata: {\"id\":2,\"channel\":\"a\",\"data\":\"a2\"}\n\n\
         id: a=3,b=6\ndata: {\"id\":3,\"channel\":\"a\",\"data\":\"a3\"}\n\n\
         id: a=3,b=7\ndata: {\"id\":7,\"channel\":\"b\",\"data\":\"b7\"}\n\n\
         id: a=3,b=7\n\n"
    );
    // Live: each channel by its own cursor.
    b.deliver(&mut s, &message_of("b", 8, "b8"));
    b.deliver(&mut s, &message_of("a", 3, "dup"));
    b.deliver(&mut s, &message_of("z", 1, "not its"));
    assert_eq!(
        b.text(&mut s),
        "id: a=3,b=8\ndata: {\"id\":8,\"channel\":\"b\",\"data\":\"b8\"}\n\n"
    );
    // Both subscriptions go back when it ends.
    let mut back = Vec::new();
    while let Some(sub) = s.take_subscription() {
        back.push(sub.channel().to_string());
    }
    back.sort();
    assert_eq!(back, ["a", "b"]);
}

#[test]
fn test_several_poll_parks_on_every_channel_and_answers_with_the_cursor() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/poll?channel=a&channel=b&since=a=4,b=9&wait=5", ""));
    assert_eq!(asked(&mut b).0, "a");
    b.answer(&mut s, live("a", 4, vec![], None));
    assert_eq!(asked(&mut b).0, "b");
    b.answer(&mut s, live("b", 9, vec![], None));
    assert!(b.output(&mut s).is_empty(), "parked");
    assert!(b.actions.is_empty(), "both kept");
    b.deliver(&mut s, &message_of("b", 10, "b10"));
    let out = b.text(&mut s);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let body: serde_json::Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"messages": [{"id": 10, "channel": "b", "data": "b10"}], "cursor": "a=4,b=10", "gaps": []})
    );
    // Both subscriptions went back with the answer.
    let mut back: Vec<String> = std::mem::take(&mut b.actions)
        .into_iter()
        .filter_map(|a| match a {
            Action::Unsubscribe(sub) => Some(sub.channel().to_string()),
            _ => None,
        })
        .collect();
    back.sort();
    assert_eq!(back, ["a", "b"]);
    // Nothing in time: 204 with the cursor.
    b.input(&mut s, &get("/poll?channel=a&channel=b&since=a=4,b=10&wait=0", ""));
    assert_eq!(asked(&mut b).0, "a");
    b.answer(&mut s, live("a", 4, vec![], None));
    assert_eq!(asked(&mut b).0, "b");
    b.answer(&mut s, live("b", 10, vec![], None));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 204 ") && out.contains("X-Cursor: a=4,b=10\r\n"),
        "{out}"
    );
}

#[test]
fn test_several_a_refused_second_channel_gives_the_first_back() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/sse?channel=a&channel=b", ""));
    asked(&mut b);
    b.answer(&mut s, live("a", 0, vec![], None));
    asked(&mut b);
    b.answer(&mut s, Answer::Subscribed(Err(HubError::TooManyChannels)));
    let out = b.text(&mut s);
    assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
    assert_eq!(&*b.unsubscribed(), "a");
}

#[test]
fn test_several_bad_requests_are_400() {
    let mut b = Bench::new();
    for target in [
        "/sse?channel=a&channel=a",
        "/sse",
        "/poll?channel=a&since=7",
        "/poll?channel=a&since=b=7",
        "/sse?channel=a%2Fb",
    ] {
        let mut s = Session::new(b.now);
        b.input(&mut s, &get(target, ""));
        let out = b.text(&mut s);
        assert!(out.starts_with("HTTP/1.1 400 "), "{target}: {out}");
        assert!(b.actions.is_empty(), "{target}: nothing asked");
    }
}
