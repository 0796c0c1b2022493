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
use super::nodes::{address, client, with_protocol, Protocol};
use super::sentinel::Sentinels;
use super::store::Tables;
use super::url::HostsUrl;
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
                let Some(t) = weak.upgrade() else { return };
                let Kind::Sentinel(s) = &t.kind else { return };
                let s = s.clone();
                drop(t);
                let alive = || weak.strong_count() > 0;
                s.watch_switches(alive, |at| {
                    if let Some(t) = weak.upgrade() {
                        t.found(0, at);
                    }
                });
            })
            .map(drop)
    }
}
