//! Redis Sentinel: two wsreactor nodes find their Redis through three
//! sentinels (`redis+sentinel://`), and when the master is SIGKILLed they
//! follow the failover. The test starts its own master, two replicas and
//! three sentinels (`redis-server --sentinel`, the binary Debian's
//! `redis-sentinel` runs) on free loopback ports, and stops them by pid.

mod common;

use common::services::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A master, two replicas and three sentinels watching them as `mymaster`.
struct Group {
    servers: Vec<(u16, Option<Proc>)>,
    sentinels: Vec<(u16, Proc)>,
    _dir: TempDir,
}

impl Group {
    fn start() -> Group {
        let tmp = TempDir::new("sentinel");
        let dir = tmp.0.clone();
        let mut servers = Vec::new();
        let master = free_port();
        for i in 0..3 {
            let port = if i == 0 { master } else { free_port() };
            let master = master.to_string();
            let replica: &[&str] = if i > 0 {
                &["--replicaof", "127.0.0.1", &master]
            } else {
                &[]
            };
            servers.push((port, Some(redis_server(port, &dir, replica))));
        }
        until("both replicas in sync", Duration::from_secs(20), || {
            servers[1..].iter().all(|(port, _)| {
                let info = cli(*port, &["INFO", "replication"]);
                info.contains("master_link_status:up")
            })
        });
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor mymaster 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\n\
                     sentinel failover-timeout mymaster 5000\n\
                     sentinel parallel-syncs mymaster 1\n",
                    dir.display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            sentinels.push((port, Proc(child)));
        }
        // Each sentinel knows the replicas and the other two sentinels
        // (their hellos go every 2 s): a failover can reach its quorum.
        until("the sentinels know each other", Duration::from_secs(30), || {
            sentinels.iter().all(|(port, _)| {
                let m = cli(*port, &["SENTINEL", "MASTER", "mymaster"]);
                let lines: Vec<&str> = m.lines().collect();
                let field = |name: &str| {
                    lines
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| lines.get(i + 1))
                        .copied()
                };
                field("num-slaves") == Some("2") && field("num-other-sentinels") == Some("2")
            })
        });
        Group {
            servers,
            sentinels,
            _dir: tmp,
        }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/mymaster", hosts.join(","))
    }

    /// SIGKILL the master, as a crash would: its port.
    fn kill_master(&mut self) -> u16 {
        let (port, proc) = &mut self.servers[0];
        drop(proc.take());
        *port
    }

    /// The master's address as the sentinels have it now.
    fn master(&self) -> String {
        cli(
            self.sentinels[0].0,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        )
        .lines()
        .collect::<Vec<_>>()
        .join(":")
    }
}

#[test]
fn a_master_killed_under_a_steady_publisher_loses_no_message_answered_200_on_any_transport() {
    let mut group = Group::start();
    let dir = TempDir::new("sentinel-node");
    let config = dir.0.join("node.toml");
    std::fs::write(
        &config,
        "[pubsub]\nbroker_replicas = 1\nbroker_replicas_timeout = \"500ms\"\n",
    )
    .unwrap();
    let nodes = [Node::spawn(&group.url(), &config), Node::spawn(&group.url(), &config)];
    let master_before = group.master();
    for n in &nodes {
        let r = request(n.addr, "GET", "/readyz", "").unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(&format!("redis master {master_before}")), "{body}");
    }
    // The channel's numbering, so that the long polls start before it.
    let first = request(nodes[0].addr, "POST", "/pub/k", "start").unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let since: u64 = serde_json::from_slice::<Value>(&first.body).unwrap()["id"]
        .as_u64()
        .unwrap();

    let mut subscribers = Vec::new();
    for n in &nodes {
        for kind in 0..3 {
            let got: Got = Arc::default();
            let handle = match kind {
                0 => websocket(n.addr, "k", got.clone()),
                1 => event_stream(n.addr, "k", got.clone()),
                _ => long_poll(n.addr, "k", since, got.clone()),
            };
            subscribers.push((["websocket", "sse", "long poll"][kind], n.addr, got, handle));
        }
    }

    // /readyz of node 0, every 50 ms, as a load balancer would ask.
    let stop = Arc::new(AtomicBool::new(false));
    let readyz = {
        let (addr, stop) = (nodes[0].addr, stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let status = request(addr, "GET", "/readyz", "").map_or(0, |r| r.status);
                seen.push((Instant::now(), status));
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };

    // Two publishers at once, one through each node, 50 a second each:
    // their publishes meet in the command queues, and with broker_replicas
    // wait for the replicas together.
    let killed: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let publishers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(p, n)| {
            let (addr, killed) = (n.addr, killed.clone());
            std::thread::spawn(move || publish_steadily(addr, &format!("p{p}-"), &killed))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    group.kill_master();
    let kill_time = Instant::now();
    *killed.lock().unwrap() = Some(kill_time);
    let runs: Vec<Published> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    let killed = kill_time;
    let back = runs.iter().map(|r| r.back).min().unwrap();
    let took = back - killed;
    let refused: usize = runs.iter().map(|r| r.refused).sum();
    stop.store(true, Ordering::Relaxed);
    let readyz = readyz.join().unwrap();
    for n in &nodes {
        let t = Instant::now();
        loop {
            let r = request(n.addr, "POST", "/pub/k", "end");
            if r.is_some_and(|r| r.status == 200) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "the end was not accepted");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for (what, addr, got, handle) in subscribers {
        handle
            .join()
            .unwrap_or_else(|_| panic!("{what} subscriber of {addr} failed"));
        let got = got.lock().unwrap();
        // Each publisher's messages answered 200, once and in the order
        // they were answered. A refused or unconfirmed publish may or may
        // not be there.
        for run in &runs {
            let accepted: Vec<String> = run.accepted.iter().map(|(_, p)| p.clone()).collect();
            every_accepted_once_in_order(&format!("{what} of {addr}"), &got, &accepted);
        }
    }
    for run in &runs {
        assert!(
            run.accepted.windows(2).all(|w| w[0].0 < w[1].0),
            "ids rise in the order a publisher's publishes were answered"
        );
    }
    // Not ready during the failover, ready after it, on the new master.
    let after_kill: Vec<u16> = readyz.iter().filter(|(t, _)| *t > killed).map(|&(_, s)| s).collect();
    assert!(
        after_kill.contains(&503),
        "/readyz said 503 during the failover: {after_kill:?}"
    );
    assert_eq!(after_kill.last(), Some(&200), "/readyz is 200 after it: {after_kill:?}");
    let master_after = group.master();
    assert_ne!(master_after, master_before, "the sentinels promoted a replica");
    for n in &nodes {
        let r = request(n.addr, "GET", "/readyz", "").unwrap();
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert!(
            r.status == 200 && body.contains(&format!("redis master {master_after}")),
            "{body}"
        );
        let metrics = String::from_utf8(request(n.addr, "GET", "/metrics", "").unwrap().body).unwrap();
        let failovers: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("wsreactor_broker_failovers_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(failovers >= 1, "{metrics}");
        assert!(
            metrics.contains(&format!("address=\"{master_after}\"}} 1")),
            "{metrics}"
        );
    }
    eprintln!(
        "sentinel failover: {} publishes accepted, {refused} refused; from the kill to the first accepted publish: {} ms",
        runs.iter().map(|r| r.accepted.len()).sum::<usize>(),
        took.as_millis()
    );
}

/// What a publisher got: its accepted publishes (id, payload) in the order
/// they were answered, how many were refused, and when the first was
/// accepted after the kill.
struct Published {
    accepted: Vec<(u64, String)>,
    refused: usize,
    back: Instant,
}

/// Publish `{prefix}{i}` to `k` through `addr` 50 times a second, until 2 s
/// after the first publish accepted after the kill (`killed`).
fn publish_steadily(addr: std::net::SocketAddr, prefix: &str, killed: &std::sync::Mutex<Option<Instant>>) -> Published {
    let (mut accepted, mut refused, mut back) = (Vec::new(), 0, None);
    let t0 = Instant::now();
    for i in 0.. {
        let now = Instant::now();
        if back.is_some_and(|b| now - b >= Duration::from_secs(2)) {
            break;
        }
        assert!(
            now - t0 < Duration::from_secs(60),
            "publishing never resumed after the failover"
        );
        let payload = format!("{prefix}{i}");
        let was_killed = killed.lock().unwrap().is_some();
        match request(addr, "POST", "/pub/k", &payload) {
            Some(r) if r.status == 200 => {
                let id = serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
                    .as_u64()
                    .unwrap();
                accepted.push((id, payload));
                if was_killed && back.is_none() {
                    back = Some(Instant::now());
                }
            }
            Some(r) => {
                assert!(matches!(r.status, 503 | 504), "a publish during the failover: {r:?}");
                refused += 1;
            }
            None => refused += 1,
        }
        std::thread::sleep(Duration::from_millis(20).saturating_sub(now.elapsed()));
    }
    Published {
        accepted,
        refused,
        back: back.unwrap(),
    }
}
