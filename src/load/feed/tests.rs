//! The HTTP subscriber with byte slices and made-up time.

use super::*;

fn plan(transport: Transport, keep_alive: bool, cursor: CursorStyle) -> FeedPlan {
    FeedPlan {
        transport,
        path: transport.path("news"),
        query: String::new(),
        host: "127.0.0.1:9001".into(),
        interval: Duration::from_secs(1),
        keep_alive,
        cursor,
        headers: vec![("X-Run".into(), "7".into())],
        max_body: 1 << 16,
    }
}

/// Send a request; its text.
fn request(feed: &mut Feed, plan: &FeedPlan, now: Instant) -> String {
    let mut out = Vec::new();
    feed.request(plan, &mut out, now);
    String::from_utf8(out).unwrap()
}

/// Feed `input` in one piece; what was used, what next, what was delivered.
fn read(feed: &mut Feed, plan: &FeedPlan, input: &[u8], now: Instant) -> (usize, Next, Vec<String>) {
    let mut got = Vec::new();
    let (used, next) = feed
        .read(plan, input, now, &mut |d| {
            got.push(String::from_utf8(d.payload).unwrap())
        })
        .unwrap();
    (used, next, got)
}

#[test]
fn a_short_poll_follows_its_cursor_at_its_interval() {
    let p = plan(Transport::Poll, true, CursorStyle::Wsreactor);
    let t0 = Instant::now();
    let mut feed = Feed::new();
    let first = request(&mut feed, &p, t0);
    assert_eq!(
        first,
        "GET /poll/news?wait=0 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nX-Run: 7\r\n\r\n"
    );
    // Nothing yet: 204 with the cursor to ask from.
    let nothing = b"HTTP/1.1 204 No Content\r\nX-Last-Id: 4\r\n\r\n";
    let (used, next, got) = read(&mut feed, &p, nothing, t0 + Duration::from_millis(2));
    assert_eq!(
        (used, next, got.len()),
        (nothing.len(), Next::Request(t0 + p.interval), 0)
    );
    assert!(feed.idle());
    let t1 = t0 + p.interval;
    assert!(request(&mut feed, &p, t1).starts_with("GET /poll/news?since=4&wait=0 HTTP/1.1\r\n"));
    // Two messages, the response split across reads, a late answer: the
    // next poll is due one interval after this one went, or at once.
    let body = br#"{"messages":[{"id":5,"data":"a"},{"id":6,"data":"b"}],"last_id":6,"gap":false}"#;
    let wire = [
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
    ]
    .concat();
    let (used, next, got) = read(&mut feed, &p, &wire[..30], t1);
    assert_eq!((used, next, got.len()), (0, Next::Read, 0));
    let late = t1 + Duration::from_secs(3);
    let (used, next, got) = read(&mut feed, &p, &wire, late);
    assert_eq!(
        (used, next, got),
        (wire.len(), Next::Request(late), vec!["a".into(), "b".into()])
    );
    assert!(request(&mut feed, &p, late).starts_with("GET /poll/news?since=6&wait=0 "));
}

#[test]
fn without_keep_alive_each_poll_asks_to_close_and_redials() {
    let p = plan(Transport::LongPoll, false, CursorStyle::Wsreactor);
    let t0 = Instant::now();
    let mut feed = Feed::new();
    let req = request(&mut feed, &p, t0);
    // The first poll is short: its answer gives the cursor.
    assert!(req.starts_with("GET /poll/news?wait=0 HTTP/1.1\r\n") && req.contains("\r\nConnection: close\r\n"));
    let wire = b"HTTP/1.1 204 No Content\r\nConnection: close\r\nX-Last-Id: 0\r\n\r\n";
    assert_eq!(read(&mut feed, &p, wire, t0).1, Next::Redial(t0));
    // The EOF after the response is no error: the next poll is due now.
    assert_eq!(feed.at_eof(&p, t0, &mut |_| {}), Ok(t0));
    assert!(feed.ready(&p));
    assert!(request(&mut feed, &p, t0).starts_with("GET /poll/news?since=0 HTTP/1.1\r\n"));
}

#[test]
fn an_event_stream_delivers_as_it_goes_and_resumes_from_its_last_id() {
    let p = plan(Transport::Sse, true, CursorStyle::Wsreactor);
    let t0 = Instant::now();
    let mut feed = Feed::new();
    let req = request(&mut feed, &p, t0);
    assert!(req.contains("\r\nAccept: text/event-stream\r\n") && !req.contains("Last-Event-ID"));
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let (used, next, got) = read(&mut feed, &p, head, t0);
    assert_eq!((used, next, got.len()), (head.len(), Next::Read, 0));
    let events = b"id: 1\ndata: one\n\nid: 2\nevent: base64\ndata: dHdv\n\nevent: gap\ndata: {}\n\nid: 3\ndata: thr";
    let (used, _, got) = read(&mut feed, &p, events, t0);
    assert_eq!((used, got), (events.len(), vec!["one".to_owned(), "two".to_owned()]));
    // The stream ends (the server went away): the half event is dropped,
    // and the subscriber asks again from the last event it had whole (an
    // `id:` line alone moves no cursor: WHATWG HTML §9.2.6 sets the last
    // event id as an event is dispatched), so event 3 comes again.
    assert_eq!(feed.at_eof(&p, t0, &mut |_| {}), Ok(t0));
    let req = request(&mut feed, &p, t0);
    assert!(req.contains("\r\nLast-Event-ID: 2\r\n"), "{req}");
}

#[test]
fn against_nchan_polls_carry_etag_and_last_modified_and_bodies_are_messages() {
    let p = plan(Transport::LongPoll, true, CursorStyle::Nchan);
    let t0 = Instant::now();
    let mut feed = Feed::new();
    let req = request(&mut feed, &p, t0);
    assert!(!req.contains('?') && !req.contains("If-None-Match"));
    let wire =
        b"HTTP/1.1 200 OK\r\nEtag: 0\r\nLast-Modified: Tue, 01 Dec 2026 20:00:00 GMT\r\nContent-Length: 5\r\n\r\nhello";
    let (_, next, got) = read(&mut feed, &p, wire, t0);
    assert_eq!((next, got), (Next::Request(t0), vec!["hello".to_owned()]));
    let req = request(&mut feed, &p, t0);
    assert!(req.contains("\r\nIf-None-Match: 0\r\nIf-Modified-Since: Tue, 01 Dec 2026 20:00:00 GMT\r\n"));
    // Subscribed once sent, and held as long as nchan likes.
    assert!(feed.ready(&p) && feed.awaiting_since(&p).is_none());
    // A short poll that brought a message asks again at once (more may be
    // there: one message an answer); a 304 waits for the interval.
    let p = plan(Transport::Poll, true, CursorStyle::Nchan);
    let mut feed = Feed::new();
    assert!(request(&mut feed, &p, t0).starts_with("GET /poll/news?wait=0 "));
    let (_, next, _) = read(&mut feed, &p, wire, t0);
    assert_eq!(next, Next::Request(t0));
    request(&mut feed, &p, t0);
    let (_, next, _) = read(
        &mut feed,
        &p,
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n",
        t0,
    );
    assert_eq!(next, Next::Request(t0 + p.interval));
}

#[test]
fn bad_answers_end_the_subscriber_with_a_reason() {
    let p = plan(Transport::LongPoll, true, CursorStyle::Wsreactor);
    let t0 = Instant::now();
    let fail = |wire: &[u8]| {
        let mut feed = Feed::new();
        request(&mut feed, &p, t0);
        feed.read(&p, wire, t0, &mut |_| {}).unwrap_err()
    };
    assert_eq!(fail(b"HTTP/1.1 403 Forbidden\r\n\r\n"), FeedError::Status(403));
    assert_eq!(
        fail(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        FeedError::Body("bad_poll_body")
    );
    // A body over the limit is refused as it arrives, whatever it declares.
    let mut feed = Feed::new();
    request(&mut feed, &p, t0);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 40);
    assert_eq!(
        feed.read(&p, head.as_bytes(), t0, &mut |_| {}).map(|r| r.1),
        Ok(Next::Read)
    );
    let err = feed.read(&p, &vec![b'x'; (1 << 16) + 1], t0, &mut |_| {}).unwrap_err();
    assert_eq!(err, FeedError::Response(ResponseError::TooLarge));
    // A connection that ends inside a declared body is truncated.
    let mut feed = Feed::new();
    request(&mut feed, &p, t0);
    feed.read(&p, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{", t0, &mut |_| {})
        .unwrap();
    assert_eq!(
        feed.at_eof(&p, t0, &mut |_| {}),
        Err(FeedError::Response(ResponseError::Truncated))
    );
}
