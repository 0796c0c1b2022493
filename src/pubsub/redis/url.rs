//! The broker URLs that name several hosts: `redis+sentinel://` (the
//! sentinels and the master's name) and `redis+cluster://` (seed nodes),
//! taken apart. Nothing here connects: `Config::validate` checks a URL
//! with [`check_url`].

/// `host:port` taken apart.
pub(super) fn host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok().filter(|&p| p > 0)?;
    (!host.is_empty() && !host.contains(['/', '@', ',', ' '])).then_some((host, port))
}

/// `redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`
/// or `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]`
/// (`rediss+...` for TLS), taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HostsUrl {
    /// `redis` or `rediss`: how the hosts are spoken to.
    pub(super) scheme: &'static str,
    /// The sentinels, or the cluster's seed nodes.
    pub(super) hosts: Vec<String>,
    /// Under Sentinel, the master's name.
    pub(super) name: Option<String>,
    /// The URL of a master but for its address (the first host's stands
    /// in): its password, database and TLS.
    pub(super) node_url: String,
}

impl HostsUrl {
    /// `None` for a URL of one server.
    pub(super) fn parse(url: &str) -> redis::RedisResult<Option<HostsUrl>> {
        let bad = |why: &'static str| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, why));
        let (scheme, sentinel, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            ("redis", true, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            ("rediss", true, rest)
        } else if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis", false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            ("rediss", false, rest)
        } else {
            return Ok(None);
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let hosts: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        if hosts.iter().any(|h| host_port(h).is_none()) {
            return Err(bad("the hosts are HOST:PORT[,HOST:PORT...], each port 1 to 65535"));
        }
        let (name, db) = if sentinel {
            let (name, db) = path.split_once('/').unwrap_or((path, "0"));
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
                return Err(bad("redis+sentinel:// needs the master's name: /MASTER_NAME"));
            }
            if db.parse::<u32>().is_err() {
                return Err(bad("redis+sentinel://.../MASTER_NAME/DB: the database is a number"));
            }
            (Some(name.to_owned()), db)
        } else {
            // A cluster has one database, 0.
            if !path.is_empty() {
                return Err(bad("redis+cluster:// names its seed nodes only: no /PATH"));
            }
            (None, "0")
        };
        Ok(Some(HostsUrl {
            scheme,
            node_url: format!("{scheme}://{user}{}/{db}", hosts[0]),
            hosts,
            name,
        }))
    }
}

/// Run by `Config::validate` on a broker URL: `Err` says what is wrong
/// with it.
pub fn check_url(url: &str) -> Result<(), String> {
    HostsUrl::parse(url).map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::HostsUrl;

    #[test]
    fn a_sentinel_url_names_its_sentinels_the_master_and_how_to_reach_it() {
        let u = HostsUrl::parse("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26380/mymaster")
            .unwrap()
            .unwrap();
        assert_eq!(u.hosts, ["10.0.0.1:26379", "10.0.0.2:26380"]);
        assert_eq!(u.name.as_deref(), Some("mymaster"));
        assert_eq!(u.scheme, "redis");
        assert_eq!(u.node_url, "redis://:pw@10.0.0.1:26379/0");
        let tls = HostsUrl::parse("rediss+sentinel://h:1/m/3").unwrap().unwrap();
        assert_eq!((tls.scheme, tls.node_url.as_str()), ("rediss", "rediss://h:1/3"));
        assert_eq!(HostsUrl::parse("redis://h:1/0").unwrap(), None);
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h/m",
            "redis+sentinel://h:/m",
            "redis+sentinel://h:0/m",
            "redis+sentinel://h:70000/m",
            "redis+sentinel://h:1,/m",
            "redis+sentinel://h:1/m/x",
        ] {
            assert!(HostsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cluster_url_names_its_seed_nodes() {
        let u = HostsUrl::parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001")
            .unwrap()
            .unwrap();
        assert_eq!(u.hosts, ["10.0.0.1:7000", "10.0.0.2:7001"]);
        assert_eq!(u.name, None);
        assert_eq!(u.node_url, "redis://:pw@10.0.0.1:7000/0");
        assert!(HostsUrl::parse("rediss+cluster://h:1").unwrap().is_some());
        for bad in ["redis+cluster://h:1/0", "redis+cluster://h", "redis+cluster://"] {
            assert!(HostsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
