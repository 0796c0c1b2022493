//! Where the broker's Redis is: the one server a `redis://` URL names, the
//! master the sentinels of a `redis+sentinel://` URL name, or the masters
//! of a `redis+cluster://` URL's cluster; each found again after a
//! failover.
//!
//! The node's work is split by master into shards ([`super::Shard`]): one,
//! or one per master the cluster had when the node started, each known
//! by its home slot (the lowest slot it served then), so that a replica
//! promoted in a master's place takes its shard over.

use super::cluster::Cluster;
use super::sentinel::Sentinels;
use super::store::Tables;
use super::{connect, lock};
use crate::pubsub::BrokerTopology;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The Redis the broker talks to.
pub(super) struct Target {
    kind: Kind,
    /// Each shard's master (`host:port`) as last found.
    masters: Mutex<Vec<String>>,
    /// Per shard, bumped whenever its master changes or its slots do: a
    /// connection made under an older generation may be to a server that
    /// is no longer its master, or listen to channels no longer its own.
    generations: Vec<AtomicU64>,
    /// Masters that changed since the node started.
    failovers: AtomicU64,
}

enum Kind {
    /// One server: the client for commands, and the one for subscriptions
    /// ([`Protocol::Push`]).
    Direct(redis::Client, redis::Client),
    Sentinel(Sentinels),
    Cluster(Cluster),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("masters", &*lock(&self.masters))
            .field("failovers", &self.failovers.load(Relaxed))
            .finish()
    }
}

impl Target {
    /// The Redis `url` names (`redis://`, `rediss://`, `redis+sentinel://`,
    /// `rediss+sentinel://`, `redis+cluster://`, `rediss+cluster://`), its
    /// password from the environment if the URL has none (`password`), TLS
    /// checked against `ca_pem` if given. A cluster is asked for its slots
    /// here: its masters make the shards.
    pub(super) fn new(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        password: impl Fn(redis::ConnectionInfo) -> redis::RedisResult<redis::ConnectionInfo>,
    ) -> redis::RedisResult<Target> {
        let (kind, masters) = match HostsUrl::parse(url)? {
            None => {
                let info = password(redis::IntoConnectionInfo::into_connection_info(url)?)?;
                let master = address(info.addr());
                let pushes = with_protocol(info.clone(), Protocol::Push);
                (
                    Kind::Direct(client(info, ca_pem.clone())?, client(pushes, ca_pem)?),
                    vec![master],
                )
            }
            Some(u) => {
                let node = password(redis::IntoConnectionInfo::into_connection_info(u.node_url.as_str())?)?;
                let hosts = u
                    .hosts
                    .iter()
                    .map(|a| redis::IntoConnectionInfo::into_connection_info(format!("{}://{a}", u.scheme).as_str()))
                    .collect::<redis::RedisResult<Vec<_>>>()?;
                match u.name {
                    Some(name) => (
                        Kind::Sentinel(Sentinels::new(hosts, name, node, ca_pem)),
                        vec![String::new()],
                    ),
                    None => {
                        let cluster = Cluster::discover(hosts, node, ca_pem)?;
                        let masters = cluster.masters();
                        (Kind::Cluster(cluster), masters)
                    }
                }
            }
        };
        Ok(Target {
            generations: masters.iter().map(|_| AtomicU64::new(0)).collect(),
            kind,
            masters: Mutex::new(masters),
            failovers: AtomicU64::new(0),
        })
    }

    /// How many shards: one, or the cluster's masters at start.
    pub(super) fn shards(&self) -> usize {
        match &self.kind {
            Kind::Cluster(c) => c.shards(),
            _ => 1,
        }
    }

    /// A Redis Cluster: channels are spread over masters, messages go out
    /// by sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// How a script or the node publishes.
    pub(super) fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// The shard whose master serves `channel` now.
    pub(super) fn shard_of(&self, channel: &str) -> Option<usize> {
        match &self.kind {
            Kind::Cluster(c) => c.shard_of(channel),
            _ => Some(0),
        }
    }

    /// Shard `shard`'s tables ([`Tables`]).
    pub(super) fn tables(&self, shard: usize) -> Tables {
        match &self.kind {
            Kind::Cluster(c) => Tables::in_slot(c.home(shard)),
            _ => Tables::global(),
        }
    }

    /// This node's probe topic on shard `shard`'s master, `token` its own:
    /// under a cluster a shard channel in the shard's home slot.
    pub(super) fn probe_topic(&self, shard: usize, token: &str) -> String {
        match &self.kind {
            Kind::Cluster(c) => format!("wsr:{{{}}}:probe:{token}", super::slots::tag(c.home(shard))),
            _ => format!("wsr:probe:{token}"),
        }
    }

    /// A connection to shard `shard`'s master (found again through the
    /// sentinels, or the cluster's slots), and the generation it was made
    /// under.
    pub(super) fn connect_shard(
        &self,
        shard: usize,
        protocol: Protocol,
    ) -> redis::RedisResult<(redis::Connection, u64)> {
        // Read before the master is looked for: news that comes meanwhile
        // makes this connection out of date, never the other way round.
        let generation = self.generation(shard);
        match &self.kind {
            Kind::Direct(commands, pushes) => {
                let client = match protocol {
                    Protocol::Replies => commands,
                    Protocol::Push => pushes,
                };
                Ok((connect(client)?, generation))
            }
            Kind::Sentinel(s) => {
                let (con, at) = s.master(protocol)?;
                if self.found(0, &at) {
                    return Ok((con, self.generation(0)));
                }
                Ok((con, generation))
            }
            Kind::Cluster(c) => {
                // The cluster's slots are read again first: a connection is
                // made after a failure, or a failover, or a slot's move.
                self.refresh(c);
                let generation = self.generation(shard);
                Ok((c.connect_master(shard, protocol)?, generation))
            }
        }
    }

    /// A cluster's slots moved (a `MOVED` answer): read them again.
    pub(super) fn moved(&self) {
        if let Kind::Cluster(c) = &self.kind {
            self.refresh(c);
        }
    }

    /// Read a cluster's slots again: a shard whose master changed counts a
    /// failover, and one whose slots changed (a failover, a slot's move to
    /// or from it) has its connections made again.
    fn refresh(&self, c: &Cluster) {
        if let Some(read) = c.refresh() {
            for (shard, at) in read.masters.iter().enumerate() {
                if let Some(at) = at {
                    self.found(shard, at);
                }
            }
            for shard in read.changed {
                if let Some(g) = self.generations.get(shard) {
                    g.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// The generation shard `shard`'s connections are to be of now.
    pub(super) fn generation(&self, shard: usize) -> u64 {
        self.generations.get(shard).map_or(0, |g| g.load(Relaxed))
    }

    /// Shard `shard`'s master is at `at`: if that is news, a failover is
    /// counted and every connection made before is to be made again.
    /// `true` if it was news.
    pub(super) fn found(&self, shard: usize, at: &str) -> bool {
        let mut masters = lock(&self.masters);
        let Some(master) = masters.get_mut(shard) else {
            return false;
        };
        if *master == at {
            return false;
        }
        if !master.is_empty() {
            self.failovers.fetch_add(1, Relaxed);
            log::warn!("redis: the master is now {at} (was {master})");
        } else {
            log::info!("redis: the master is {at}");
        }
        *master = at.to_owned();
        if let Some(g) = self.generations.get(shard) {
            g.fetch_add(1, Relaxed);
        }
        true
    }

    /// What the broker's Redis is now.
    pub(super) fn topology(&self) -> BrokerTopology {
        let (kind, name) = match &self.kind {
            Kind::Direct(..) => ("redis", String::new()),
            Kind::Sentinel(s) => ("sentinel", s.name().to_owned()),
            Kind::Cluster(_) => ("cluster", String::new()),
        };
        BrokerTopology {
            kind,
            name,
            masters: lock(&self.masters).clone(),
            failovers: self.failovers.load(Relaxed),
        }
    }

    /// Under Sentinel: a thread that listens to the sentinels'
    /// `+switch-master` announcements, so that a failover is followed as
    /// soon as it is done, not only when a connection fails.
    pub(super) fn watch(target: &Arc<Target>) -> std::io::Result<()> {
        if !matches!(target.kind, Kind::Sentinel(_)) {
            return Ok(());
        }
        let weak = Arc::downgrade(target);
        std::thread::Builder::new()
            .name("redis-sentinel".into())
            .spawn(move || {
                super::sentinel::watch_switches(&weak, |t| match &t.kind {
                    Kind::Sentinel(s) => Some(s),
                    _ => None,
                })
            })
            .map(drop)
    }
}

/// `ROLE` says master: a sentinel may still name a server that was
/// demoted, and a cluster's slots a master that failed.
pub(super) fn is_master(con: &mut redis::Connection) -> redis::RedisResult<()> {
    let role: redis::Value = redis::cmd("ROLE").query(con)?;
    let first = match &role {
        redis::Value::Array(items) => items.first(),
        _ => None,
    };
    match first {
        Some(redis::Value::BulkString(b)) if b == b"master" => Ok(()),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "the server named the master is not a master (a failover under way)",
        ))),
    }
}

/// A client for `info`; with TLS, its certificate checked against `ca_pem`.
pub(super) fn client(info: redis::ConnectionInfo, ca_pem: Option<Vec<u8>>) -> redis::RedisResult<redis::Client> {
    match ca_pem {
        Some(pem) if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) => {
            let roots = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, roots)
        }
        _ => redis::Client::open(info),
    }
}

/// How a connection's answers come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// RESP2: one reply per command.
    Replies,
    /// RESP3, for subscriptions: what is published, and the confirmations
    /// of subscribes, come as push messages. The redis crate's blocking
    /// connection counts a read that timed out as a reply to skip later,
    /// but never skips a push: a subscription connection can wait for
    /// messages a little at a time, and its sharded messages (`smessage`,
    /// which the crate's blocking `PubSub` does not read) are read too.
    Push,
}

/// `info` speaking `protocol`.
pub(super) fn with_protocol(info: redis::ConnectionInfo, protocol: Protocol) -> redis::ConnectionInfo {
    match protocol {
        Protocol::Replies => info,
        Protocol::Push => {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            info.set_redis_settings(settings)
        }
    }
}

/// `node` (a URL's password, database and TLS) at `host:port`.
pub(super) fn at(node: &redis::ConnectionInfo, host: &str, port: u16) -> redis::ConnectionInfo {
    let addr = match node.addr() {
        redis::ConnectionAddr::TcpTls { insecure, .. } => redis::ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
    };
    node.clone().set_addr(addr)
}

fn address(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

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
struct HostsUrl {
    /// `redis` or `rediss`: how the hosts are spoken to.
    scheme: &'static str,
    /// The sentinels, or the cluster's seed nodes.
    hosts: Vec<String>,
    /// Under Sentinel, the master's name.
    name: Option<String>,
    /// The URL of a master but for its address (the first host's stands
    /// in): its password, database and TLS.
    node_url: String,
}

impl HostsUrl {
    /// `None` for a URL of one server.
    fn parse(url: &str) -> redis::RedisResult<Option<HostsUrl>> {
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
