//! The client behind a trusted proxy: which address a proxied request
//! comes from, for the per-address limits ([`crate::reactor::per_ip`]).
//!
//! Only a peer listed in `[limits] trusted_proxies` is believed, and only
//! for what it added itself: `Forwarded` (RFC 7239 §4) or, without it,
//! `X-Forwarded-For` is read from the right, skipping the trusted proxies'
//! own hops; the first other address is the client. What a client wrote to
//! the left of that is its own claim and is never used.

use super::{Action, Env, Io, State};
use crate::protocol::http::{RequestHead, Status};
use crate::reactor::per_ip::PerIpSettings;
use std::net::{IpAddr, SocketAddr};

impl Io {
    /// A request through a trusted proxy: count its client against the
    /// per-address limits (the connection is its until another client's
    /// request comes on it), or refuse it with 429.
    pub(super) fn count_client(&mut self, head: &RequestHead<'_, '_>, env: &mut Env<'_>) -> Result<(), State> {
        let per_ip = env.per_ip;
        let Some(client) = forwarded_client(head, per_ip.settings()) else {
            env.actions.push(Action::Client(None));
            return Ok(());
        };
        match per_ip.admit(client, env.instant) {
            Ok(slot) => {
                env.actions.push(Action::Client(slot));
                Ok(())
            }
            Err(over) => {
                per_ip.refused(over, client);
                Err(self.refuse(Status::TOO_MANY_REQUESTS, &[("Retry-After", "1")], over.reason(), env))
            }
        }
    }
}

/// The client a trusted proxy names, if it names one.
pub(super) fn forwarded_client(head: &RequestHead<'_, '_>, settings: &PerIpSettings) -> Option<IpAddr> {
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    for value in head.values("forwarded") {
        let value = std::str::from_utf8(value).ok()?;
        for element in value.split(',') {
            let node = element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| name.eq_ignore_ascii_case("for"))
                .map(|(_, node)| node);
            hops.push(node.and_then(node_address));
        }
    }
    if hops.is_empty() {
        for value in head.values("x-forwarded-for") {
            let value = std::str::from_utf8(value).ok()?;
            hops.extend(value.split(',').map(node_address));
        }
    }
    // From the right: the trusted proxies' own hops, then the client.
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if settings.is_trusted_proxy(*ip) => continue,
            Some(ip) => return Some(*ip),
            // A hop no proxy of ours wrote: nothing further left is ours.
            None => return None,
        }
    }
    None
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| node.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::MAX_HEADERS;

    fn client(headers: &str) -> Option<IpAddr> {
        let text = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = RequestHead::parse(text.as_bytes(), &mut storage).unwrap();
        let settings = PerIpSettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()],
            ..PerIpSettings::default()
        };
        forwarded_client(&head, &settings)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right() {
        assert_eq!(client("X-Forwarded-For: 203.0.113.9\r\n"), ip("203.0.113.9"));
        // The client forged the left part; our proxies added the right.
        assert_eq!(
            client("X-Forwarded-For: 1.1.1.1, 203.0.113.9, 10.0.0.2\r\n"),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 203.0.113.9:5555, 10.1.2.3\r\n"),
            ip("203.0.113.9")
        );
        assert_eq!(client("X-Forwarded-For: 2001:db8::7\r\n"), ip("2001:db8::7"));
        assert_eq!(client("X-Forwarded-For: junk, 10.0.0.2\r\n"), None);
        assert_eq!(client(""), None);
    }

    #[test]
    fn forwarded_wins_and_takes_its_quoted_forms() {
        assert_eq!(
            client("Forwarded: for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\"\r\nX-Forwarded-For: 1.2.3.4\r\n"),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            client("Forwarded: for=198.51.100.17, for=127.0.0.1\r\n"),
            ip("198.51.100.17")
        );
        assert_eq!(client("Forwarded: for=unknown\r\n"), None);
        assert_eq!(client("Forwarded: proto=https\r\n"), None);
    }
}
