//! Short polling over real sockets: `wait=0` answers at once (200 with
//! what is new, 204 with `X-Last-Id` when nothing is), `wait=S` parks at
//! most S seconds, on a kept-alive connection and on one per poll.

use crate::common::*;
use std::io::Read;
use std::time::{Duration, Instant};
use wsreactor::reactor::settings::Settings;

fn server() -> Server {
    let mut s: Settings = settings();
    s.pubsub.poll_timeout = Duration::from_secs(20);
    Server::start(s)
}

#[test]
fn wait_0_answers_at_once_on_a_kept_alive_connection() {
    let server = server();
    let mut c = Client::connect(server.addr);
    let started = Instant::now();
    let r = c.request("GET", "/poll/short?wait=0", &[], b"");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("x-last-id"), Some("0"));
    publish(&mut Client::connect(server.addr), "short", "one");
    // The same connection: the cursor from the 204, then the message.
    let r = c.request("GET", "/poll/short?since=0&wait=0", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["messages"][0]["data"], "one");
    assert_eq!(body["last_id"], 1);
    let r = c.request("GET", "/poll/short?since=1&wait=0", &[], b"");
    assert_eq!((r.status, r.header("x-last-id")), (204, Some("1")));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a short poll waited: {:?}",
        started.elapsed()
    );
}

#[test]
fn wait_0_on_a_connection_per_poll() {
    let server = server();
    publish(&mut Client::connect(server.addr), "fresh", "a");
    for (since, status) in [("0", 200), ("1", 204)] {
        let mut c = Client::connect(server.addr);
        let r = c.request(
            "GET",
            &format!("/poll/fresh?since={since}&wait=0"),
            &["Connection: close"],
            b"",
        );
        assert_eq!(r.status, status, "since={since}: {r:?}");
        assert_eq!(r.header("connection"), Some("close"));
        // The server closes after the answer.
        let mut rest = Vec::new();
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.stream.read_to_end(&mut rest).unwrap(), 0);
    }
}

#[test]
fn wait_s_parks_that_long_then_answers_204_or_the_message() {
    let server = server();
    for close in [false, true] {
        let headers: &[&str] = if close { &["Connection: close"] } else { &[] };
        let mut c = Client::connect(server.addr);
        let started = Instant::now();
        let r = c.request("GET", "/poll/parked?since=0&wait=1", headers, b"");
        let waited = started.elapsed();
        assert_eq!(r.status, 204, "{r:?}");
        assert!(
            waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }
    // A message during the wait answers it at once.
    let addr = server.addr;
    let poller = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.request("GET", "/poll/parked?since=0&wait=10", &[], b"")
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    publish(&mut Client::connect(server.addr), "parked", "now");
    let r = poller.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}
