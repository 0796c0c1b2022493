//! Redis Cluster: which master serves a channel, read from the cluster
//! itself (`CLUSTER SLOTS`), and read again whenever a connection is made
//! (after a failure, a failover or a slot's move) or a `MOVED` answer says
//! the node's copy is out of date.
//!
//! A channel's keys share its slot (the hash tag `{channel}`), so its
//! publish is one script on one master. The node's work is split by the
//! masters the cluster had when it started: shard `i` is "whoever serves
//! slot `homes[i]`", so a replica promoted in a master's place takes its
//! shard over. A cluster given more masters later is served by the ones
//! the node knows only for the slots those still serve (a restart uses
//! the new ones).

use super::connect;
use super::nodes::{at, client, is_master, with_protocol, Protocol};
use super::slots::{channel_slot, SlotMap, SLOTS};
use super::url::host_port;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// What reading the slots again found.
pub(super) struct Refreshed {
    /// Each shard's master now (`None`: none serves its home slot).
    pub(super) masters: Vec<Option<String>>,
    /// The shards whose slots changed (gained or lost some).
    pub(super) changed: Vec<usize>,
}

/// The slots are read at most this often: every connection made asks,
/// and a failover makes many at once.
const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// A cluster: its seed nodes, how to talk to a node, and its slots.
pub(super) struct Cluster {
    /// The nodes the URL names.
    seeds: Vec<redis::ConnectionInfo>,
    /// How to talk to a node (its address replaced): password, TLS.
    node: redis::ConnectionInfo,
    ca_pem: Option<Vec<u8>>,
    /// The slots as last read.
    map: Mutex<SlotMap>,
    /// Each slot's shard ([`NONE`]: a master the node does not know).
    shard_by_slot: RwLock<Vec<u16>>,
    /// Each shard's home slot: the lowest its master served at start.
    homes: Vec<u16>,
    /// When the slots were last read: one read at a time.
    refreshed: Mutex<Option<Instant>>,
}

/// No shard.
const NONE: u16 = u16::MAX;

impl Cluster {
    /// Read the cluster's slots from its seeds: each master makes a shard.
    pub(super) fn discover(
        seeds: Vec<redis::ConnectionInfo>,
        node: redis::ConnectionInfo,
        ca_pem: Option<Vec<u8>>,
    ) -> redis::RedisResult<Cluster> {
        let mut cluster = Cluster {
            seeds,
            node,
            ca_pem,
            map: Mutex::new(SlotMap::default()),
            shard_by_slot: RwLock::new(vec![NONE; usize::from(SLOTS)]),
            homes: Vec::new(),
            refreshed: Mutex::new(None),
        };
        let map = cluster.read_slots()?;
        if !map.covers_all() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the cluster does not serve every slot (CLUSTER SLOTS): is it made yet?",
            )));
        }
        cluster.homes = map.masters().iter().filter_map(|m| map.home(m)).collect();
        cluster.take(map);
        Ok(cluster)
    }

    /// How many shards.
    pub(super) fn shards(&self) -> usize {
        self.homes.len()
    }

    /// Shard `shard`'s home slot.
    pub(super) fn home(&self, shard: usize) -> u16 {
        self.homes.get(shard).copied().unwrap_or(0)
    }

    /// Each shard's master now.
    pub(super) fn masters(&self) -> Vec<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.home_masters(&map)
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// Each shard's master in `map` (`None`: none serves its home slot).
    fn home_masters(&self, map: &SlotMap) -> Vec<Option<String>> {
        self.homes
            .iter()
            .map(|&h| map.master_of(h).map(str::to_owned))
            .collect()
    }

    /// The shard whose master serves `channel` now.
    pub(super) fn shard_of(&self, channel: &str) -> Option<usize> {
        let by_slot = self.shard_by_slot.read().unwrap_or_else(|e| e.into_inner());
        match by_slot[usize::from(channel_slot(channel))] {
            NONE => None,
            shard => Some(usize::from(shard)),
        }
    }

    /// Read the slots again, unless they were just read (one read at a
    /// time: two at once could apply the older map last).
    pub(super) fn refresh(&self) -> Option<Refreshed> {
        let mut last = self.refreshed.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return None;
        }
        *last = Some(Instant::now());
        match self.read_slots() {
            Ok(map) => Some(self.take(map)),
            Err(e) => {
                log::debug!("redis cluster slots: {e}");
                None
            }
        }
    }

    /// A connection to shard `shard`'s master, checked to be one.
    pub(super) fn connect_master(&self, shard: usize, protocol: Protocol) -> redis::RedisResult<redis::Connection> {
        let master = {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.master_of(self.home(shard)).map(str::to_owned)
        };
        let master = master.ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "no master serves the shard's slots (a failover under way)",
            ))
        })?;
        let mut con = self.connect_node(&master, protocol)?;
        is_master(&mut con)?;
        Ok(con)
    }

    /// A connection to the node at `addr` (`host:port`).
    fn connect_node(&self, addr: &str, protocol: Protocol) -> redis::RedisResult<redis::Connection> {
        let (host, port) = host_port(addr)
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "a node address not understood")))?;
        connect(&client(
            with_protocol(at(&self.node, host, port), protocol),
            self.ca_pem.clone(),
        )?)
    }

    /// `CLUSTER SLOTS` of the first node that answers: the nodes of the
    /// last map (masters first), then the seeds.
    fn read_slots(&self) -> redis::RedisResult<SlotMap> {
        let known: Vec<String> = self.map.lock().unwrap_or_else(|e| e.into_inner()).nodes().to_vec();
        let mut last_error = None;
        let seeds = self.seeds.iter().map(|s| {
            let host = match s.addr() {
                redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } => host.clone(),
                _ => String::new(),
            };
            (host, client(s.clone(), self.ca_pem.clone()))
        });
        let nodes = known
            .iter()
            .filter_map(|a| host_port(a))
            .map(|(host, port)| (host.to_owned(), client(at(&self.node, host, port), self.ca_pem.clone())));
        for (host, candidate) in nodes.chain(seeds) {
            let answer = candidate
                .and_then(|c| connect(&c))
                .and_then(|mut con| redis::cmd("CLUSTER").arg("SLOTS").query::<redis::Value>(&mut con));
            match answer {
                Ok(value) => match SlotMap::from_cluster_slots(&value, &host) {
                    Some(map) if !map.masters().is_empty() => return Ok(map),
                    _ => {
                        last_error = Some(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "CLUSTER SLOTS answered with no slot",
                        )))
                    }
                },
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no cluster node answered"))))
    }

    /// `map` is the cluster's slots now: each shard's master in it, and the
    /// shards whose slots changed.
    fn take(&self, map: SlotMap) -> Refreshed {
        let home_masters = self.home_masters(&map);
        let by_slot: Vec<u16> = (0..SLOTS)
            .map(|slot| {
                map.master_of(slot)
                    .and_then(|m| home_masters.iter().position(|h| h.as_deref() == Some(m)))
                    .map_or(NONE, |i| i as u16)
            })
            .collect();
        let mut old = self.shard_by_slot.write().unwrap_or_else(|e| e.into_inner());
        let mut changed: Vec<usize> = Vec::new();
        for (&was, &now) in old.iter().zip(&by_slot) {
            for shard in [was, now] {
                if was != now && shard != NONE && !changed.contains(&usize::from(shard)) {
                    changed.push(usize::from(shard));
                }
            }
        }
        *old = by_slot;
        drop(old);
        *self.map.lock().unwrap_or_else(|e| e.into_inner()) = map;
        Refreshed {
            masters: home_masters,
            changed,
        }
    }
}
