//! Short polling (`wait=0`) and a long poll's own wait (`wait=S`).

use super::*;

#[test]
fn test_poll_wait_0_with_nothing_answers_204_at_once() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c?since=7&wait=0", "", subscribed(7, vec![], None));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 204 ") && out.contains("X-Last-Id: 7\r\n"),
        "{out}"
    );
    assert_eq!(&*b.unsubscribed(), "c");
    assert!(matches!(s.state, State::Request { .. }), "kept alive");
}

#[test]
fn test_poll_wait_0_with_history_answers_200() {
    let mut b = Bench::new();
    let mut s = subscriber(
        &mut b,
        "/poll/c?since=1&wait=0",
        "",
        subscribed(2, vec![message(2, "two")], None),
    );
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.contains("\"data\":\"two\""),
        "{out}"
    );
}

#[test]
fn test_poll_wait_s_parks_that_long_capped_by_poll_timeout() {
    let mut b = Bench::new();
    b.settings.pubsub.poll_timeout = Duration::from_secs(30);
    let mut s = subscriber(&mut b, "/poll/c?wait=2", "", subscribed(3, vec![], None));
    assert_eq!(s.deadline(&b.settings), b.now.plus(Duration::from_secs(2)));
    b.later(Duration::from_millis(1_999));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.output(&mut s).is_empty(), "answered before its wait");
    b.later(Duration::from_millis(1));
    assert_eq!(b.timeout(&mut s), Ok(()));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 204 "));
    assert_eq!(&*b.unsubscribed(), "c");
    // A wait over poll_timeout is poll_timeout.
    let s = subscriber(&mut b, "/poll/c?wait=3600", "", subscribed(3, vec![], None));
    assert_eq!(s.deadline(&b.settings), b.now.plus(Duration::from_secs(30)));
}

#[test]
fn test_poll_a_bad_wait_is_400() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/poll/c?wait=soon", ""));
    let out = b.text(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 400 ") && out.contains("wait must be"),
        "{out}"
    );
    assert!(b.actions.is_empty());
}
