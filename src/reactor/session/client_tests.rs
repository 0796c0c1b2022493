//! A session behind a trusted proxy: each request's client is counted
//! against the per-address limits in the connection's hold, and one over
//! them gets 429.

use super::*;
use crate::reactor::per_ip::{ForwardedHeader, Hold, PerIpSettings};

const PROXY: &str = "10.0.0.1";

fn proxied(connections: u32) -> Bench {
    let mut b = Bench::new();
    b.per_ip = PerIp::new(PerIpSettings {
        connections,
        connect_rate: 0,
        exempt: vec![],
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        forwarded_header: ForwardedHeader::XForwardedFor,
    });
    b
}

/// A session on a connection from the trusted proxy.
fn from_proxy(b: &Bench) -> Session {
    Session::holding(b.now, Hold::proxy(PROXY.parse().unwrap()))
}

/// Does the session hold a count for its current client?
fn counted(s: &mut Session) -> bool {
    let hold = s.take_hold();
    let held = matches!(&hold, Hold::Proxy(p) if p.client.is_some());
    s.io.hold = hold;
    held
}

#[test]
fn test_request_the_forwarded_client_is_counted_and_refused_over_its_limit() {
    let mut b = proxied(1);
    let mut s = from_proxy(&b);
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert!(counted(&mut s));
    let mut other = from_proxy(&b);
    b.input(&mut other, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    let answer = b.text(&mut other);
    assert!(
        answer.starts_with("HTTP/1.1 429 ") && answer.contains("Retry-After: 1\r\n"),
        "{answer}"
    );
    assert!(is(&other, Transport::Closing));
    assert!(!counted(&mut other));
    // Another client through the same proxy is its own count.
    let mut third = from_proxy(&b);
    b.input(&mut third, &get("/healthz", "X-Forwarded-For: 203.0.113.6\r\n"));
    assert!(b.text(&mut third).starts_with("HTTP/1.1 200 "));
    // The first connection's next request, from the same client, is not
    // refused for the hold it already has: that hold is given back first.
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    // Its end gives the hold back: the client may come again elsewhere.
    b.per_ip.give_back(s.take_hold());
    let mut fourth = from_proxy(&b);
    b.input(&mut fourth, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    assert!(b.text(&mut fourth).starts_with("HTTP/1.1 200 "));
    // Nothing of this goes to the worker as an action.
    assert!(b.actions.is_empty(), "{:?}", b.actions);
}

#[test]
fn test_request_without_a_forwarded_client_counts_against_the_proxy() {
    let mut b = proxied(1);
    let mut s = from_proxy(&b);
    b.input(&mut s, &get("/healthz", ""));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert!(counted(&mut s));
    // A second connection of the proxy with no readable client shares it.
    let mut other = from_proxy(&b);
    b.input(&mut other, &get("/healthz", "X-Forwarded-For: unknown\r\n"));
    assert!(b.text(&mut other).starts_with("HTTP/1.1 429 "));
}

#[test]
fn test_request_a_direct_peer_forwarding_headers_mean_nothing() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert!(b.actions.is_empty());
    assert_eq!(s.take_hold(), Hold::Nothing);
}
