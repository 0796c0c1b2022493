//! Redis Cluster's key space: which of the 16,384 slots a key is in, and
//! which master serves each slot (the cluster specification, "Keys
//! distribution model": <https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/>).

use std::sync::OnceLock;

/// Slots in a Redis Cluster.
pub(super) const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: of its hash tag (what is between its first `{` and
/// the first `}` after it) when that is not empty, else of all of it.
pub(super) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// The slot of a channel's keys (`wsr:{channel}:...`).
pub(super) fn channel_slot(channel: &str) -> u16 {
    if channel.is_empty() {
        // `wsr:{}:meta` has an empty tag: the whole key is hashed. No
        // channel is named so (the name rules); any slot would do.
        return slot(b"wsr:{}:meta");
    }
    crc16(channel.as_bytes()) % SLOTS
}

/// A hash tag for each slot: `tag(s)` is a short string whose slot is `s`,
/// so that a key `wsr:{TAG}:...` lives in the slot chosen.
pub(super) fn tag(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<Box<str>>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags: Vec<Option<Box<str>>> = vec![None; usize::from(SLOTS)];
        let mut left = usize::from(SLOTS);
        // About 160,000 tries (the coupon collector's ln(n)·n), once.
        let mut n = 0u64;
        while left > 0 {
            let candidate = format!("s{n:x}");
            let s = usize::from(crc16(candidate.as_bytes()) % SLOTS);
            if tags[s].is_none() {
                tags[s] = Some(candidate.into());
                left -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(|t| t.unwrap_or_default()).collect()
    });
    &tags[usize::from(slot % SLOTS)]
}

/// Which master serves each slot, as `CLUSTER SLOTS` tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SlotMap {
    /// `(first, last, master)`, sorted by `first`; `master` is `host:port`.
    ranges: Vec<(u16, u16, String)>,
    /// Every node named, masters and replicas, each once.
    nodes: Vec<String>,
}

impl SlotMap {
    /// From `CLUSTER SLOTS`' answer: per range, its first and last slot,
    /// then the master (`[host, port, id, ...]`) and its replicas.
    /// `asked` is the host of the node that answered: a node that never
    /// met another does not know its address, and names itself by an
    /// empty host (the one it was asked on).
    pub(super) fn from_cluster_slots(value: &redis::Value, asked: &str) -> Option<SlotMap> {
        let redis::Value::Array(ranges) = value else {
            return None;
        };
        let mut map = Vec::with_capacity(ranges.len());
        let mut nodes: Vec<String> = Vec::new();
        for range in ranges {
            let redis::Value::Array(fields) = range else {
                return None;
            };
            let first = int(fields.first()?)?;
            let last = int(fields.get(1)?)?;
            if first > last || last >= SLOTS {
                return None;
            }
            let mut served_by = fields[2..].iter().map(|n| node_address(n, asked));
            let master = served_by.next()??;
            for node in served_by.flatten() {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
            if !nodes.contains(&master) {
                nodes.insert(0, master.clone());
            }
            map.push((first, last, master));
        }
        map.sort_unstable();
        Some(SlotMap { ranges: map, nodes })
    }

    /// Every node the map names, masters first.
    pub(super) fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The master serving `slot`, if any does.
    pub(super) fn master_of(&self, slot: u16) -> Option<&str> {
        let i = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (_, last, master) = self.ranges.get(i.checked_sub(1)?)?;
        (slot <= *last).then_some(master.as_str())
    }

    /// Every master, each once, in the order of its lowest slot.
    pub(super) fn masters(&self) -> Vec<String> {
        let mut masters: Vec<String> = Vec::new();
        for (_, _, m) in &self.ranges {
            if !masters.contains(m) {
                masters.push(m.clone());
            }
        }
        masters
    }

    /// The lowest slot `master` serves.
    pub(super) fn home(&self, master: &str) -> Option<u16> {
        self.ranges
            .iter()
            .find(|(_, _, m)| m == master)
            .map(|(first, _, _)| *first)
    }

    /// Every slot is served.
    pub(super) fn covers_all(&self) -> bool {
        let mut next = 0u32;
        for (first, last, _) in &self.ranges {
            if u32::from(*first) != next {
                return false;
            }
            next = u32::from(*last) + 1;
        }
        next == u32::from(SLOTS)
    }
}

/// A node of `CLUSTER SLOTS`' answer (`[host, port, id, ...]`) as `host:port`.
fn node_address(node: &redis::Value, asked: &str) -> Option<String> {
    let redis::Value::Array(node) = node else {
        return None;
    };
    let host = match node.first()? {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        redis::Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    // "?": a node whose address is not known yet; "": the one answering
    // (the cluster specification's preferred endpoint).
    let host = match host.as_str() {
        "?" => return None,
        "" => asked.to_owned(),
        _ => host,
    };
    Some(format!("{host}:{}", int(node.get(1)?)?))
}

fn int(v: &redis::Value) -> Option<u16> {
    match v {
        redis::Value::Int(n) => u16::try_from(*n).ok(),
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_to_the_slots_redis_gives_them() {
        // The cluster specification's check value, and slots `CLUSTER
        // KEYSLOT` gives (redis-server 7).
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
        assert_eq!(slot(b"wsr:{news}:meta"), channel_slot("news"));
    }

    #[test]
    fn every_slot_has_a_tag_of_its_own() {
        for s in [0, 1, 5460, 5461, 10922, 16383] {
            assert_eq!(slot(format!("wsr:{{{}}}:channels", tag(s)).as_bytes()), s);
        }
    }

    #[test]
    fn the_map_names_the_master_of_each_slot() {
        use redis::Value::{Array, BulkString, Int};
        let node = |port: i64| {
            Array(vec![
                BulkString(b"127.0.0.1".to_vec()),
                Int(port),
                BulkString(b"id".to_vec()),
            ])
        };
        let answer = Array(vec![
            Array(vec![Int(5461), Int(10922), node(7001), node(7004)]),
            Array(vec![Int(0), Int(5460), node(7000), node(7003)]),
            Array(vec![Int(10923), Int(16383), node(7002)]),
        ]);
        let map = SlotMap::from_cluster_slots(&answer, "h").unwrap();
        assert!(map.covers_all());
        assert_eq!(map.master_of(0), Some("127.0.0.1:7000"));
        assert_eq!(map.master_of(5461), Some("127.0.0.1:7001"));
        assert_eq!(map.master_of(16383), Some("127.0.0.1:7002"));
        assert_eq!(map.masters(), ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(map.home("127.0.0.1:7001"), Some(5461));
        assert_eq!(map.nodes().len(), 5, "{:?}", map.nodes());
        let partial = Array(vec![Array(vec![Int(0), Int(100), node(7000)])]);
        let partial = SlotMap::from_cluster_slots(&partial, "h").unwrap();
        assert!(!partial.covers_all());
        assert_eq!(partial.master_of(101), None);
        assert_eq!(SlotMap::from_cluster_slots(&Int(1), "h"), None);
        // A lone node names itself with an empty host: the one it was asked on.
        let lone = Array(vec![Array(vec![
            Int(0),
            Int(16383),
            Array(vec![BulkString(Vec::new()), Int(7000), BulkString(b"id".to_vec())]),
        ])]);
        let lone = SlotMap::from_cluster_slots(&lone, "10.0.0.9").unwrap();
        assert_eq!(lone.master_of(99), Some("10.0.0.9:7000"));
    }
}
