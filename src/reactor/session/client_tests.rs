//! A session behind a trusted proxy: each request's client is counted
//! against the per-address limits, and one over them gets 429.

use super::*;
use crate::reactor::per_ip::{ForwardedHeader, PerIpSettings, Slot};

fn proxied(connections: u32) -> Bench {
    let mut b = Bench::new();
    b.per_ip = PerIp::new(PerIpSettings {
        connections,
        connect_rate: 0,
        exempt: vec![],
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        forwarded_header: ForwardedHeader::XForwardedFor,
    });
    b.proxied = Some(Proxied {
        proxy: "10.0.0.1".parse().unwrap(),
        held: None,
    });
    b
}

/// The hold the step took, kept as the worker keeps it on the connection.
fn slot(b: &mut Bench) -> Option<Slot> {
    let slot = match std::mem::take(&mut b.actions).as_slice() {
        [Action::Client(slot), ..] => *slot,
        other => panic!("a client hold expected, got {other:?}"),
    };
    if let Some(p) = b.proxied.as_mut() {
        p.held = slot;
    }
    slot
}

#[test]
fn test_request_the_forwarded_client_is_counted_and_refused_over_its_limit() {
    let mut b = proxied(1);
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    // The worker would keep this hold on the connection.
    assert!(slot(&mut b).is_some());
    let kept = b.proxied.take();
    b.proxied = Some(Proxied {
        proxy: "10.0.0.1".parse().unwrap(),
        held: None,
    });
    let mut other = Session::new(b.now);
    b.input(&mut other, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    let answer = b.text(&mut other);
    assert!(
        answer.starts_with("HTTP/1.1 429 ") && answer.contains("Retry-After: 1\r\n"),
        "{answer}"
    );
    assert!(is(&other, Transport::Closing));
    assert_eq!(slot(&mut b), None);
    // Another client through the same proxy is its own count.
    let mut third = Session::new(b.now);
    b.input(&mut third, &get("/healthz", "X-Forwarded-For: 203.0.113.6\r\n"));
    assert!(b.text(&mut third).starts_with("HTTP/1.1 200 "));
    // The first connection's next request, from the same client, is not
    // refused for the hold it already has: that hold is given back first.
    b.proxied = kept;
    b.input(&mut s, &get("/healthz", "X-Forwarded-For: 203.0.113.5\r\n"));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
}

#[test]
fn test_request_without_a_forwarded_client_counts_against_the_proxy() {
    let mut b = proxied(1);
    let mut s = Session::new(b.now);
    b.input(&mut s, &get("/healthz", ""));
    assert!(b.text(&mut s).starts_with("HTTP/1.1 200 "));
    assert!(slot(&mut b).is_some());
    // A second connection of the proxy with no readable client shares it.
    b.proxied = Some(Proxied {
        proxy: "10.0.0.1".parse().unwrap(),
        held: None,
    });
    let mut other = Session::new(b.now);
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
}
