//! A session behind a trusted proxy: each request's client is counted
//! against the per-address limits, and one over them gets 429.

use super::*;
use crate::reactor::per_ip::PerIpSettings;

fn proxied(connections: u32) -> (Bench, Session) {
    let mut b = Bench::new();
    b.per_ip = PerIp::new(PerIpSettings {
        connections,
        connect_rate: 0,
        exempt: vec![],
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
    });
    let mut s = Session::new(b.now);
    s.set_behind_proxy();
    (b, s)
}

fn slot(b: &mut Bench) -> Option<crate::reactor::per_ip::Slot> {
    match std::mem::take(&mut b.actions).as_slice() {
        [Action::Client(slot), ..] => *slot,
        other => panic!("a client hold expected, got {other:?}"),
    }
}

#[test]
fn test_request_the_forwarded_client_is_counted_and_refused_over_its_limit() {
    let (mut b, mut s) = proxied(1);
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    // The worker would keep this hold on the connection.
    assert!(slot(&mut b).is_some());
    let mut other = Session::new(b.now);
    other.set_behind_proxy();
    b.input(&mut other, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    let answer = b.text(&mut other);
    assert!(
        answer.starts_with("HTTP/1.1 429 ") && answer.contains("Retry-After: 1\r\n"),
        "{answer}"
    );
    assert!(is(&other, Transport::Closing));
    // Another client through the same proxy is its own count.
    let mut third = Session::new(b.now);
    third.set_behind_proxy();
    b.input(&mut third, &get("/healthz", "X-Forwarded-For: 203.0.113.6\r\n"));
    assert!(b.text(&mut third).starts_with("HTTP/1.1 200 "));
}

#[test]
fn test_request_without_a_forwarded_client_counts_nobody() {
    let (mut b, mut s) = proxied(1);
    b.input(&mut s, &get("/healthz", ""));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert_eq!(slot(&mut b), None);
}

#[test]
fn test_request_a_direct_peer_forwarding_headers_mean_nothing() {
    let mut b = Bench::new();
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert!(b.actions.is_empty());
}
