//! The client behind a trusted proxy: which address a proxied request
//! comes from, for the per-address limits ([`crate::reactor::per_ip`]).
//!
//! Only a peer listed in `[limits] trusted_proxies` is believed, and only
//! for what it wrote itself: the one header it sets (`[limits]
//! forwarded_header`: `X-Forwarded-For` by default, or `Forwarded`, RFC
//! 7239 §4) is read from the right, skipping the trusted proxies' own hops;
//! the first other address is the client. The other header is the
//! client's own and never read (it would otherwise let a client choose the
//! address it is counted under), nor is anything a client wrote to the
//! left of its address. A client that cannot be read (no header, RFC 7239
//! §6.2's `unknown` or §6.3's `_hidden`, junk) is counted against the
//! proxy's own address (fail closed, [`PerIp::admit_unnamed`]).

use super::{Env, Io, State};
use crate::protocol::http::{RequestHead, Status};
use crate::reactor::per_ip::{ForwardedHeader, PerIp, PerIpSettings};
use std::net::{IpAddr, SocketAddr};

impl Io {
    /// A request through a trusted proxy: its client is counted in the
    /// connection's hold (the connection is its until another request
    /// comes on it), or the request refused with 429 (and the connection,
    /// holding nothing, closed). [`PerIp::recount`] keeps the rule.
    pub(super) fn count_client(&mut self, head: &RequestHead<'_, '_>, env: &mut Env<'_>) -> Result<(), State> {
        let per_ip: &PerIp = env.per_ip;
        let client = forwarded_client(head, per_ip.settings());
        match per_ip.recount(&mut self.hold, client, env.instant) {
            Ok(()) => Ok(()),
            Err((over, _)) => Err(self.refuse(Status::TOO_MANY_REQUESTS, &[("Retry-After", "1")], over.reason(), env)),
        }
    }
}

/// The client a trusted proxy names in its header, if it names one that
/// can be read. Hops are read from the right: the trusted proxies' own are
/// skipped, the first other is the client; if every hop is a trusted
/// proxy, the leftmost is (a client on the proxies' own network).
pub(super) fn forwarded_client(head: &RequestHead<'_, '_>, settings: &PerIpSettings) -> Option<IpAddr> {
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    match settings.forwarded_header {
        ForwardedHeader::Forwarded => {
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
        }
        ForwardedHeader::XForwardedFor => {
            for value in head.values("x-forwarded-for") {
                let value = std::str::from_utf8(value).ok()?;
                hops.extend(value.split(',').map(node_address));
            }
        }
    }
    let mut last_trusted = None;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if settings.is_trusted_proxy(*ip) => last_trusted = Some(*ip),
            Some(ip) => return Some(*ip),
            // A hop that names no address (`unknown`, `_hidden`, junk):
            // the client is not known, and nothing left of it is ours.
            None => return None,
        }
    }
    last_trusted
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:80`,
/// `"[2001:db8::1]:80"`, `"[2001:db8::1]"`, `2001:db8::1`. RFC 7239 §6's
/// obfuscated forms (`unknown`, `_hidden`, `"[::1"`) are none.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = node.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(node);
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| node.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::MAX_HEADERS;

    fn client_by(header: ForwardedHeader, headers: &str) -> Option<IpAddr> {
        let text = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = RequestHead::parse(text.as_bytes(), &mut storage).unwrap();
        let settings = PerIpSettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()],
            forwarded_header: header,
            ..PerIpSettings::default()
        };
        forwarded_client(&head, &settings)
    }

    fn client(headers: &str) -> Option<IpAddr> {
        client_by(ForwardedHeader::XForwardedFor, headers)
    }

    fn forwarded(headers: &str) -> Option<IpAddr> {
        client_by(ForwardedHeader::Forwarded, headers)
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
        // Only trusted hops: the leftmost is the client.
        assert_eq!(client("X-Forwarded-For: 10.0.0.7, 127.0.0.1\r\n"), ip("10.0.0.7"));
    }

    #[test]
    fn the_header_the_proxy_does_not_set_is_the_clients_and_ignored() {
        // The proxy sets X-Forwarded-For; the client wrote Forwarded.
        let both = "X-Forwarded-For: 203.0.113.9\r\nForwarded: for=198.51.100.77\r\n";
        assert_eq!(client(both), ip("203.0.113.9"));
        assert_eq!(client("Forwarded: for=198.51.100.77\r\n"), None);
        // And the other way round.
        assert_eq!(forwarded(both), ip("198.51.100.77"));
        assert_eq!(forwarded("X-Forwarded-For: 203.0.113.9\r\n"), None);
    }

    #[test]
    fn forwarded_takes_its_quoted_forms_and_not_its_obfuscated_ones() {
        assert_eq!(
            forwarded("Forwarded: for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\"\r\n"),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(forwarded("Forwarded: for=\"[2001:db8::1]\"\r\n"), ip("2001:db8::1"));
        assert_eq!(
            forwarded("Forwarded: for=198.51.100.17, for=127.0.0.1\r\n"),
            ip("198.51.100.17")
        );
        for hidden in ["for=unknown", "for=_hidden", "for=\"[::1\"", "for=\"", "proto=https"] {
            assert_eq!(forwarded(&format!("Forwarded: {hidden}\r\n")), None, "{hidden}");
        }
        // An obfuscated hop right of a real one hides what is left of it.
        assert_eq!(forwarded("Forwarded: for=198.51.100.17, for=_hidden\r\n"), None);
    }
}
