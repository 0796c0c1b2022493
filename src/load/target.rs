//! Where the load goes: the `ws://` or `wss://` URL (RFC 6455 §3), or in
//! subscribe mode an `http://` or `https://` one, and the local addresses
//! it comes from (`--source-ips`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Where to connect, from a `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resolved address.
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority as written.
    pub host: String,
    /// The request target: path and query.
    pub path: String,
    /// `wss://`: TLS, for the certificate of `name`.
    pub tls: bool,
    /// The host as the certificate names it (no port, no brackets).
    pub name: String,
    /// The scheme was `http` or `https` (a server's root, for subscribe mode).
    pub http: bool,
}

impl Target {
    /// Parse `ws://HOST[:PORT][/PATH]` (or `wss://`, `http://`, `https://`)
    /// and resolve the host.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("not a ws:// URL: {url}"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (tls, http) = match scheme.as_str() {
            "ws" => (false, false),
            "wss" => (true, false),
            "http" => (false, true),
            "https" => (true, true),
            _ => return Err(format!("not a ws://, wss://, http:// or https:// URL: {url}")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("no usable host in {url}"));
        }
        // "[::1]:8080", "[::1]", "host:8080", "host".
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| format!("bad port in {url}"))?),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host_name = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host_name, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host_name}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host_name} has no address"))?;
        Ok(Target {
            addr,
            host: authority.to_string(),
            path,
            tls,
            name: host_name.to_string(),
            http,
        })
    }
}

/// Parse `--source-ips`: addresses and inclusive IPv4 ranges, comma
/// separated (`127.0.0.1-127.0.0.32,127.0.1.1`).
pub fn parse_source_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((a, b)) = part.split_once('-') else {
            out.push(part.parse().map_err(|_| format!("not an IP address: {part}"))?);
            continue;
        };
        let parse = |x: &str| {
            x.trim()
                .parse::<Ipv4Addr>()
                .map(u32::from)
                .map_err(|_| format!("not an IPv4 address: {x}"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b || b - a >= 1 << 16 {
            return Err(format!("bad range {part}: first above last, or over 65536 addresses"));
        }
        out.extend((a..=b).map(|ip| IpAddr::from(Ipv4Addr::from(ip))));
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls() {
        let t = Target::parse("ws://127.0.0.1:9001/chat?x=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!((t.host.as_str(), t.path.as_str()), ("127.0.0.1:9001", "/chat?x=1"));
        let t = Target::parse("WS://127.0.0.1").unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/"));
        let t = Target::parse("ws://[::1]:8080?q").unwrap();
        assert_eq!(t.addr, "[::1]:8080".parse().unwrap());
        assert_eq!(t.path, "/?q");
        let t = Target::parse("wss://localhost/").unwrap();
        assert_eq!((t.addr.port(), t.tls, t.name.as_str()), (443, true, "localhost"));
        assert!(!Target::parse("ws://[::1]/").unwrap().tls);
        assert_eq!(Target::parse("wss://[::1]:9/").unwrap().name, "::1");
        let t = Target::parse("HTTPS://127.0.0.1/").unwrap();
        assert!(t.http && t.tls && t.addr.port() == 443);
        assert!(Target::parse("ftp://127.0.0.1/").is_err());
        assert!(Target::parse("ws://127.0.0.1:x/").is_err());
        assert!(Target::parse("ws:///").is_err());
    }

    #[test]
    fn parses_source_ip_ranges() {
        let ips = parse_source_ips("127.0.0.1-127.0.0.32").unwrap();
        assert_eq!(ips.len(), 32);
        assert_eq!(ips[31], "127.0.0.32".parse::<IpAddr>().unwrap());
        let ips = parse_source_ips("127.0.0.255-127.0.1.1, ::1").unwrap();
        assert_eq!(ips.len(), 4);
        assert!(parse_source_ips("127.0.0.9-127.0.0.1").is_err());
        assert!(parse_source_ips("nope").is_err());
        assert!(parse_source_ips("").is_err());
    }
}
