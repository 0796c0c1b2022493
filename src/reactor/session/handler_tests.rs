//! A user's HTTP handler misusing the API cannot break the session: a
//! response the session cannot frame is a 500, a late broker answer never
//! reaches the next request, waits and heartbeats are kept within what the
//! clock measures, a HEAD stream has no body, the session's own answers
//! carry a layer's headers, a dropped subscription is given back, and a
//! message of another channel is not delivered. (Findings of the review of
//! issue 25's stage 2, each a test that failed before its fix.)

use super::*;
use crate::app::{Context, HttpHandler, Next, Request as HttpRequest, Response as HttpResponse, Wake};
use crate::pubsub::Request as BrokerRequest;

/// A handler that answers each path its own way.
struct Misuse;

impl HttpHandler for Misuse {
    type Data = ();

    fn request(&self, request: &HttpRequest<'_, '_>, cx: &mut Context<'_>) -> Next<()> {
        match request.rest() {
            "nocontent" => Next::Respond(HttpResponse::new(Status::NO_CONTENT).body("SMUGGLED")),
            "inject" => Next::Respond(HttpResponse::ok("text/plain", "ok").header("X-A", "1\r\nSet-Cookie: evil=1")),
            "length" => Next::Respond(HttpResponse::ok("text/plain", "ok").header("Content-Length", "0")),
            "ask" => Next::Ask {
                data: (),
                request: BrokerRequest::Publish {
                    channel: format!("c{}", request.query().unwrap_or("")).into(),
                    kind: MessageKind::Text,
                    payload: Box::new(*b"x"),
                    idempotency_key: None,
                },
            },
            _ => {
                let _ = cx;
                Next::Respond(HttpResponse::new(Status::NOT_FOUND))
            }
        }
    }

    fn answer(&self, _: (), answer: Answer, _: &mut Context<'_>) -> Next<()> {
        let body = match answer {
            Answer::Published(Ok(r)) => format!("id {}", r.id),
            other => format!("{other:?}"),
        };
        Next::Respond(HttpResponse::ok("text/plain", body))
    }

    /// The broker did not answer in time: a plain 503, keep-alive.
    fn wake(&self, _: (), _: Wake, _: &mut Context<'_>) -> Next<()> {
        Next::Respond(HttpResponse::new(Status::SERVICE_UNAVAILABLE))
    }
}

fn bench() -> Bench {
    let mut b = Bench::new();
    b.app = App::new().http("/m/", Misuse);
    b
}

/// A 204 with a body: the body goes out with no framing, and the
/// client reads it as the start of the next response.
#[test]
fn a_204_with_a_body_desyncs_the_next_response() {
    let mut b = bench();
    let mut s = Session::new(b.now);
    let mut two = get("/m/nocontent", "");
    two.extend_from_slice(&get("/m/other", ""));
    b.input(&mut s, &two);
    let out = b.text(&mut s);
    assert!(!out.contains("SMUGGLED"), "{out}");
}

#[test]
fn a_header_value_with_crlf_injects_a_header() {
    let mut b = bench();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/m/inject", ""));
    let out = b.text(&mut s);
    assert!(!out.contains("\r\nSet-Cookie: evil=1\r\n"), "{out}");
}

#[test]
fn a_handler_content_length_duplicates_the_sessions() {
    let mut b = bench();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/m/length", ""));
    let out = b.text(&mut s);
    assert_eq!(out.matches("Content-Length").count(), 1, "{out}");
}

/// The broker answers the first request late, after the handler's
/// keep-alive 503 (before its fix, the answer was taken as the second
/// request's): after a broker deadline the connection closes, the second
/// request is never read, and the late answer reaches no one.
#[test]
fn a_late_answer_is_not_the_next_requests() {
    let mut b = bench();
    let mut s = Session::new(b.now);
    let mut two = get("/m/ask?1", "");
    two.extend_from_slice(&get("/m/ask?2", ""));
    b.input(&mut s, &two);
    b.submitted();
    b.later(b.settings.request_timeout);
    assert_eq!(b.timeout(&mut s), Ok(()));
    let first = b.text(&mut s);
    assert!(first.starts_with("HTTP/1.1 503 "), "{first}");
    assert!(first.contains("Connection: close\r\n"), "{first}");
    assert!(is(&s, Transport::Closing), "closed, not kept alive");
    s.handle_input(&mut b.env());
    assert!(b.actions.is_empty(), "the second request is not read: {:?}", b.actions);
    // The first publish's late answer.
    b.answer(
        &mut s,
        Answer::Published(Ok(Receipt {
            id: 111,
            subscribers: 0,
            duplicate: false,
        })),
    );
    let second = b.text(&mut s);
    assert!(!second.contains("id 111"), "the first one's answer went out: {second}");
}

struct Forever;

impl HttpHandler for Forever {
    type Data = ();

    fn request(&self, request: &HttpRequest<'_, '_>, _: &mut Context<'_>) -> Next<()> {
        let subscription = crate::pubsub::Subscription::new("c".into(), 0);
        match request.rest() {
            "park" => Next::Park {
                data: (),
                subscription,
                wait: Duration::MAX,
                expires: None,
            },
            "zero" => Next::Stream {
                data: (),
                subscription,
                head: HttpResponse::ok("text/plain", ""),
                heartbeat: Duration::ZERO,
                expires: None,
            },
            _ => Next::Stream {
                data: (),
                subscription,
                head: HttpResponse::ok("text/plain", "BODY"),
                heartbeat: Duration::from_secs(15),
                expires: None,
            },
        }
    }
}

/// "Park with no limit" (Duration::MAX): the deadline wraps to before now.
#[test]
fn a_long_park_deadline_is_not_in_the_past() {
    let mut b = Bench::new();
    b.app = App::new().http("/f/", Forever);
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/f/park", ""));
    assert!(is(&s, Transport::Poll));
    let deadline = s.deadline(&b.settings);
    assert!(
        !deadline.is_before(b.now.plus(Duration::from_secs(1))),
        "deadline {deadline:?} now {:?}",
        b.now
    );
}

/// A zero heartbeat: the deadline is always now, the timer spins.
#[test]
fn a_zero_heartbeat_does_not_spin() {
    let mut b = Bench::new();
    b.app = App::new().http("/f/", Forever);
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/f/zero", ""));
    assert!(is(&s, Transport::Sse));
    b.timeout(&mut s).unwrap();
    assert!(
        b.now.is_before(s.deadline(&b.settings)),
        "deadline is now: a timer that fires every iteration"
    );
}

/// HEAD answered by a stream: its body goes out all the same.
#[test]
fn a_head_stream_has_no_body() {
    let mut b = Bench::new();
    b.app = App::new().http("/f/", Forever);
    let mut s = Session::new(b.now);
    b.input(&mut s, b"HEAD /f/s HTTP/1.1\r\nHost: t\r\n\r\n");
    let out = b.text(&mut s);
    assert!(!out.ends_with("BODY"), "{out}");
}

/// c18685d: a publish whose body timed out (408) carried the CORS
/// headers of its request, so a page could read it.
#[test]
fn a_publish_body_timeout_keeps_its_cors_headers() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(
        &mut s,
        b"POST /pub/c HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\nContent-Length: 5\r\n\r\nh",
    );
    b.later(b.settings.request_timeout);
    assert_eq!(b.timeout(&mut s), Ok(()));
    let out = b.text(&mut s);
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(out.contains("Access-Control-Allow-Origin"), "{out}");
}

/// c18685d: a publish's broker wait counted from the request's start.
#[test]
fn a_publish_broker_wait_counts_from_the_request_start() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    let start = b.now;
    b.input(&mut s, b"POST /pub/c HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nh");
    b.later(Duration::from_secs(5));
    b.input(&mut s, b"i");
    b.submitted();
    assert_eq!(s.deadline(&b.settings), start.plus(b.settings.request_timeout));
}

/// Subscribes to the channel its path names, then answers without
/// keeping or giving back the subscription.
struct Careless;

impl HttpHandler for Careless {
    type Data = ();

    fn request(&self, request: &HttpRequest<'_, '_>, _: &mut Context<'_>) -> Next<()> {
        let request = BrokerRequest::subscribe(request.rest(), None);
        Next::Ask { data: (), request }
    }

    fn answer(&self, _: (), _: Answer, _: &mut Context<'_>) -> Next<()> {
        Next::Respond(HttpResponse::ok("text/plain", "dropped it"))
    }
}

#[test]
fn test_waiting_answer_whose_subscription_the_handler_drops_gives_it_back() {
    let mut b = Bench::new();
    b.app = App::new().http("/c/", Careless);
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/c/c", ""));
    b.submitted();
    b.answer(&mut s, subscribed(0, vec![], None));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert_eq!(&*b.unsubscribed(), "c");
}

#[test]
fn test_parked_message_of_another_channel_is_not_delivered() {
    let mut b = Bench::new();
    let mut s = subscriber(&mut b, "/poll/c", "", subscribed(0, vec![], None));
    let mut other = message(1, "elsewhere");
    Arc::get_mut(&mut other).unwrap().channel = "d".into();
    assert_eq!(b.deliver(&mut s, &other), Delivered::Nothing);
    assert!(is(&s, Transport::Poll), "still parked");
}
