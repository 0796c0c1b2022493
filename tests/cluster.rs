//! Redis Cluster: two wsreactor nodes on a cluster of three masters with a
//! replica each (`redis+cluster://`), 1,000 channels spread over the
//! masters' slots, messages through sharded pub/sub; one master SIGKILLed
//! under a steady publisher. The test makes its own cluster of
//! `redis-server`s on free loopback ports (`redis-cli --cluster create`)
//! and stops them by pid.

mod common;

use common::mux::MuxClient;
use common::services::*;
use common::{PING, PONG, TEXT};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cluster of `redis-server`s of this test's own.
struct Cluster {
    /// Each node's port, cluster bus port and process.
    nodes: Vec<(u16, u16, Option<Proc>)>,
    dir: TempDir,
}

impl Cluster {
    /// `masters` masters with `replicas` replicas each, every slot served.
    fn start(masters: usize, replicas: usize) -> Cluster {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_port();
            let bus = free_port();
            nodes.push((port, bus, Some(cluster_node(port, bus, &dir))));
        }
        let addrs: Vec<String> = nodes.iter().map(|(p, _, _)| format!("127.0.0.1:{p}")).collect();
        let made = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(made.success(), "redis-cli --cluster create failed");
        until("the cluster serves every slot", Duration::from_secs(30), || {
            nodes
                .iter()
                .all(|(port, _, _)| cli(*port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
        until("every replica in sync", Duration::from_secs(30), || {
            nodes.iter().all(|(port, _, _)| {
                let info = cli(*port, &["INFO", "replication"]);
                info.contains("role:master") && info.contains(&format!("connected_slaves:{replicas}"))
                    || info.contains("master_link_status:up")
            })
        });
        Cluster { nodes, dir }
    }

    fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[..2]
            .iter()
            .map(|(p, _, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Each master's port and slot ranges, as a live node sees them.
    fn masters(&self) -> Vec<(u16, Vec<(u16, u16)>)> {
        let live = self.nodes.iter().find(|(_, _, p)| p.is_some()).unwrap().0;
        let mut masters = Vec::new();
        for line in cli(live, &["CLUSTER", "NODES"]).lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let port: u16 = f[1]
                .split('@')
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let ranges = f[8..]
                .iter()
                .filter(|r| !r.starts_with('['))
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (r.parse().unwrap(), r.parse().unwrap()),
                })
                .collect();
            masters.push((port, ranges));
        }
        masters
    }

    /// SIGKILL the node on `port`, as a crash would.
    fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|(p, _, _)| *p == port).unwrap();
        drop(node.2.take());
    }

    /// Start the node on `port` again, as an operator would after a
    /// crash: with its cluster configuration, it comes back as a replica
    /// of the master that took its place.
    fn restart(&mut self, port: u16) {
        let bus = self.nodes.iter().find(|n| n.0 == port).unwrap().1;
        let proc = cluster_node(port, bus, &self.dir);
        self.nodes.iter_mut().find(|(p, _, _)| *p == port).unwrap().2 = Some(proc);
    }
}

/// A cluster node on `port`, its files (`nodes-PORT.conf`) in `dir`, its
/// cluster bus on `bus` (by default the port + 10000, which a port above
/// 55535 cannot have).
fn cluster_node(port: u16, bus: u16, dir: &TempDir) -> Proc {
    let conf = format!("nodes-{port}.conf");
    let bus = bus.to_string();
    let args = [
        "--cluster-port",
        &bus,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &conf,
        "--cluster-node-timeout",
        "1000",
        // The other masters serve their slots while one is down (Redis's
        // default stops the whole cluster until every slot is served).
        "--cluster-require-full-coverage",
        "no",
    ];
    redis_server(port, &dir.0, &args)
}

/// Redis Cluster's key slot (CRC16-XMODEM of the hash tag, mod 16384):
/// a channel's keys are `wsr:{channel}:...`. Written here from the
/// cluster specification, not taken from the crate, so that the test
/// checks the broker against Redis rather than against itself.
fn slot(channel: &str) -> u16 {
    let mut crc: u16 = 0;
    for &b in channel.as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

fn master_of(masters: &[(u16, Vec<(u16, u16)>)], channel: &str) -> u16 {
    let s = slot(channel);
    masters
        .iter()
        .find(|(_, ranges)| ranges.iter().any(|&(a, b)| (a..=b).contains(&s)))
        .map(|(port, _)| *port)
        .expect("every slot is served")
}

/// A `wsreactor.mux` connection subscribed to every channel of `channels`,
/// keeping (channel, payload) of each message until `stop`.
fn mux_subscriber(
    addr: SocketAddr,
    channels: &[String],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, String)>> {
    let mut mux = MuxClient::connect(addr, "");
    for (i, channel) in channels.iter().enumerate() {
        mux.subscribe(i as u64 + 1, channel, None);
    }
    assert!(mux.pushed.is_empty(), "nothing published yet");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(f) = mux.c.recv_within(Duration::from_millis(200)) else {
                continue;
            };
            if f.opcode == PING {
                mux.c.send(PONG, &f.payload);
                continue;
            }
            assert_eq!(f.opcode, TEXT);
            let v: Value = serde_json::from_slice(&f.payload).unwrap();
            if let (Some(channel), Some(data)) = (v["channel"].as_str(), v["data"].as_str()) {
                got.push((channel.to_owned(), data.to_owned()));
            }
        }
        got
    })
}

#[test]
fn a_master_killed_loses_no_accepted_message_on_any_shard_and_the_others_go_on() {
    let mut cluster = Cluster::start(3, 1);
    let dir = TempDir::new("cluster-node");
    let config = dir.0.join("node.toml");
    std::fs::write(
        &config,
        "[pubsub]\nbroker_replicas = 1\n[limits]\nmax_channels_per_connection = 1000\n",
    )
    .unwrap();
    let nodes = [
        Node::spawn(&cluster.url(), &config),
        Node::spawn(&cluster.url(), &config),
    ];
    for n in &nodes {
        let r = request(n.addr, "GET", "/readyz", "").unwrap();
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert!(r.status == 200 && body.contains("(3 shard(s))"), "{body}");
    }
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let channels: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
    let shard: HashMap<&str, u16> = channels.iter().map(|c| (c.as_str(), master_of(&masters, c))).collect();
    for (port, _) in &masters {
        let n = shard.values().filter(|p| *p == port).count();
        assert!(n > 250, "the channels are spread over the masters: {n} on {port}");
    }
    // One channel of each master gets subscribers on every transport.
    let samples: Vec<String> = masters
        .iter()
        .map(|(port, _)| channels.iter().find(|c| shard[c.as_str()] == *port).unwrap().clone())
        .collect();
    let victim = shard[samples[0].as_str()];

    let stop = Arc::new(AtomicBool::new(false));
    let muxes: Vec<_> = nodes
        .iter()
        .map(|n| mux_subscriber(n.addr, &channels, stop.clone()))
        .collect();
    let mut subscribers = Vec::new();
    for n in &nodes {
        for channel in &samples {
            let first = request(n.addr, "POST", &format!("/pub/{channel}"), "start").unwrap();
            assert_eq!(first.status, 200, "{first:?}");
            let since = serde_json::from_slice::<Value>(&first.body).unwrap()["id"]
                .as_u64()
                .unwrap();
            for kind in 0..3 {
                let got: Got = Arc::default();
                let handle = match kind {
                    0 => websocket(n.addr, channel, got.clone()),
                    1 => event_stream(n.addr, channel, got.clone()),
                    _ => long_poll(n.addr, channel, since, got.clone()),
                };
                let what = format!("{} of {channel} on {}", ["websocket", "sse", "long poll"][kind], n.addr);
                subscribers.push((what, channel.clone(), got, handle));
            }
        }
    }

    let readyz = {
        let (addrs, stop) = ([nodes[0].addr, nodes[1].addr], stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for addr in addrs {
                    let status = request(addr, "GET", "/readyz", "").map_or(0, |r| r.status);
                    seen.push((Instant::now(), status));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };

    // Two publishers, one through each node, 100 a second each: every
    // other publish to one of the sample channels, the rest over all.
    let killed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let on_victim: Arc<Vec<String>> = Arc::new(
        channels
            .iter()
            .filter(|c| shard[c.as_str()] == victim)
            .cloned()
            .collect(),
    );
    let publishers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(p, n)| {
            let (addr, killed, samples, channels, on_victim) = (
                n.addr,
                killed.clone(),
                samples.clone(),
                channels.clone(),
                on_victim.clone(),
            );
            std::thread::spawn(move || {
                let mut accepted: Vec<(String, String)> = Vec::new();
                let mut refused = Vec::new();
                let mut back = None;
                let t0 = Instant::now();
                for i in 0.. {
                    let now = Instant::now();
                    if back.is_some_and(|b: Instant| now - b >= Duration::from_secs(2)) {
                        break;
                    }
                    assert!(now - t0 < Duration::from_secs(60), "the victim's shard never came back");
                    let channel = if i % 2 == 0 {
                        samples[(i / 2) % samples.len()].clone()
                    } else {
                        channels[(i * 7 + p) % channels.len()].clone()
                    };
                    let payload = format!("p{p}-{i}");
                    let was_killed = *killed.lock().unwrap();
                    match request(addr, "POST", &format!("/pub/{channel}"), &payload) {
                        Some(r) if r.status == 200 => {
                            if was_killed.is_some() && back.is_none() && on_victim.contains(&channel) {
                                back = Some(Instant::now());
                            }
                            accepted.push((channel, payload));
                        }
                        Some(r) => {
                            assert!(matches!(r.status, 503 | 504), "{r:?}");
                            let why = String::from_utf8_lossy(&r.body).into_owned();
                            refused.push((channel, format!("{} {why}", r.status)));
                        }
                        None => refused.push((channel, "no answer".into())),
                    }
                    std::thread::sleep(Duration::from_millis(10).saturating_sub(now.elapsed()));
                }
                (accepted, refused, back.unwrap())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.kill(victim);
    let kill_time = Instant::now();
    *killed.lock().unwrap() = Some(kill_time);
    // The cluster promotes the victim's replica. That master has no
    // replica left, so with broker_replicas = 1 its shard's publishes are
    // refused until the victim, started again, is its replica.
    until("a replica promoted", Duration::from_secs(30), || {
        let ports: Vec<u16> = cluster.masters().iter().map(|(p, _)| *p).collect();
        ports.len() == 3 && !ports.contains(&victim)
    });
    let promoted_after = kill_time.elapsed();
    cluster.restart(victim);
    let runs: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    let took = runs.iter().map(|r| r.2).min().unwrap() - kill_time;
    // Only the victim's shard refused: the others went on.
    for (_, refused, _) in &runs {
        for (channel, why) in refused {
            assert_eq!(
                shard[channel.as_str()],
                victim,
                "{channel}, of a live master, was refused: {why}"
            );
        }
    }
    for channel in &samples {
        let t = Instant::now();
        while request(nodes[0].addr, "POST", &format!("/pub/{channel}"), "end").is_none_or(|r| r.status != 200) {
            assert!(t.elapsed() < Duration::from_secs(20), "the end was not accepted");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for (what, channel, got, handle) in subscribers {
        handle.join().unwrap_or_else(|_| panic!("{what} failed"));
        let got = got.lock().unwrap();
        for (accepted, _, _) in &runs {
            let mine: Vec<String> = accepted
                .iter()
                .filter(|(c, _)| *c == channel)
                .map(|(_, p)| p.clone())
                .collect();
            every_accepted_once_in_order(&what, &got, &mine);
        }
    }
    // The mux subscribers: every channel's accepted messages, once, in order.
    let expected: usize = runs.iter().map(|r| r.0.len()).sum::<usize>() + samples.len();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let readyz = readyz.join().unwrap();
    for (m, mux) in muxes.into_iter().enumerate() {
        let got = mux.join().unwrap();
        assert!(
            got.len() >= expected,
            "mux {m}: {} of {expected} within {:?}",
            got.len(),
            t.elapsed()
        );
        let mut by_channel: HashMap<&str, Vec<String>> = HashMap::new();
        for (channel, payload) in &got {
            by_channel.entry(channel.as_str()).or_default().push(payload.clone());
        }
        for (accepted, _, _) in &runs {
            let mut mine: HashMap<&str, Vec<String>> = HashMap::new();
            for (channel, payload) in accepted {
                mine.entry(channel.as_str()).or_default().push(payload.clone());
            }
            for (channel, want) in mine {
                let got = by_channel.get(channel).cloned().unwrap_or_default();
                every_accepted_once_in_order(&format!("mux {m}, {channel}"), &got, &want);
            }
        }
    }
    let after: Vec<u16> = readyz.iter().filter(|(t, _)| *t > kill_time).map(|&(_, s)| s).collect();
    assert!(after.contains(&503), "/readyz said 503 during the failover: {after:?}");
    assert!(after.ends_with(&[200, 200]), "/readyz is 200 after it: {after:?}");
    let promoted: Vec<u16> = cluster.masters().iter().map(|(p, _)| *p).collect();
    assert!(!promoted.contains(&victim) && promoted.len() == 3, "{promoted:?}");
    for n in &nodes {
        let body = String::from_utf8(request(n.addr, "GET", "/readyz", "").unwrap().body).unwrap();
        for port in &promoted {
            assert!(body.contains(&format!("127.0.0.1:{port}")), "{body}");
        }
        let metrics = String::from_utf8(request(n.addr, "GET", "/metrics", "").unwrap().body).unwrap();
        assert!(metrics.contains("wsreactor_broker_failovers_total 1\n"), "{metrics}");
    }
    let accepted: usize = runs.iter().map(|r| r.0.len()).sum();
    let refused: usize = runs.iter().map(|r| r.1.len()).sum();
    eprintln!(
        "cluster failover: {accepted} publishes accepted, {refused} refused (all on the killed master's shard); \
         from the kill: its replica promoted {} ms, the first accepted publish on its shard (the killed node \
         started again as the new master's replica) {} ms",
        promoted_after.as_millis(),
        took.as_millis()
    );
}

/// Move slot `slot` from the master on `from` to the one on `to`, keys
/// and all, as `redis-cli --cluster reshard` does (the cluster
/// specification's "Live resharding").
fn move_slot(cluster: &Cluster, slot: u16, from: u16, to: u16) {
    let id = |port: u16| cli(port, &["CLUSTER", "MYID"]).trim().to_owned();
    let (from_id, to_id, slot) = (id(from), id(to), slot.to_string());
    assert_eq!(
        cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]).trim(),
        "OK"
    );
    assert_eq!(
        cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]).trim(),
        "OK"
    );
    loop {
        let keys = cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let to = to.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &to, "", "0", "5000", "KEYS"];
        args.extend(&keys);
        assert_eq!(cli(from, &args).trim(), "OK");
    }
    for (port, _, proc) in &cluster.nodes {
        if proc.is_some() {
            cli(*port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
    }
}

#[test]
fn a_channel_whose_slot_moves_to_another_master_goes_on_there_for_publishers_and_subscribers() {
    let cluster = Cluster::start(3, 0);
    let dir = TempDir::new("cluster-move");
    let config = dir.0.join("node.toml");
    std::fs::write(&config, "").unwrap();
    let node = Node::spawn(&cluster.url(), &config);
    let masters = cluster.masters();
    // A channel of the first master, not in its lowest slot (the one its
    // shard is known by).
    let (from, ranges) = &masters[0];
    let channel = (0..)
        .map(|i| format!("moving{i}"))
        .find(|c| {
            let s = slot(c);
            ranges.iter().any(|&(a, b)| (a..=b).contains(&s)) && s != ranges[0].0
        })
        .unwrap();
    let to = masters[1].0;
    let publish = |payload: &str| {
        let t = Instant::now();
        loop {
            let r = request(node.addr, "POST", &format!("/pub/{channel}"), payload).unwrap();
            if r.status == 200 {
                return serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
                    .as_u64()
                    .unwrap();
            }
            assert_eq!(r.status, 503, "{r:?}");
            assert!(t.elapsed() < Duration::from_secs(20), "publishing never resumed: {r:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = publish("before-0");
    let got: Got = Arc::default();
    let ws = websocket(node.addr, &channel, got.clone());
    let sse_got: Got = Arc::default();
    let sse = event_stream(node.addr, &channel, sse_got.clone());
    let mut sent = vec!["before-1".to_owned()];
    let mut ids = vec![first, publish("before-1")];
    move_slot(&cluster, slot(&channel), *from, to);
    assert_eq!(master_of(&cluster.masters(), &channel), to, "the slot moved");
    for i in 0..20 {
        let payload = format!("after-{i}");
        ids.push(publish(&payload));
        sent.push(payload);
    }
    publish("end");
    sent.push("end".to_owned());
    ws.join().unwrap();
    sse.join().unwrap();
    // The ids go on from where they were (the keys moved with the slot).
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    every_accepted_once_in_order("websocket", &got.lock().unwrap(), &sent);
    every_accepted_once_in_order("sse", &sse_got.lock().unwrap(), &sent);
    let metrics = String::from_utf8(request(node.addr, "GET", "/metrics", "").unwrap().body).unwrap();
    assert!(
        metrics.contains("wsreactor_broker_failovers_total 0"),
        "a move is no failover: {metrics}"
    );
}
