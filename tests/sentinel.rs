//! Redis Sentinel: two wsreactor nodes find their Redis through three
//! sentinels (`redis+sentinel://`), and when the master is SIGKILLed they
//! follow the failover. The test starts its own master, two replicas and
//! three sentinels (`redis-server --sentinel`, the binary Debian's
//! `redis-sentinel` runs) on free loopback ports, and stops them by pid.

mod common;

use common::*;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A process of this test's own, killed (by pid) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `redis-cli -p port args...`, its output (empty if it failed).
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli comes with redis-server (tests/run-all.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A master, two replicas and three sentinels watching them as `mymaster`.
struct Group {
    servers: Vec<(u16, Option<Proc>)>,
    sentinels: Vec<(u16, Proc)>,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Group {
    fn start() -> Group {
        let dir = std::env::temp_dir().join(format!("wsreactor-sentinel-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut servers = Vec::new();
        let master = free_port();
        for i in 0..3 {
            let port = if i == 0 { master } else { free_port() };
            let mut cmd = Command::new("redis-server");
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--dir", dir.to_str().unwrap()])
                .args(["--dbfilename", &format!("dump-{port}.rdb")])
                .stdout(Stdio::null());
            if i > 0 {
                cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            }
            servers.push((port, Some(Proc(cmd.spawn().expect("redis-server")))));
            until("redis-server up", Duration::from_secs(10), || {
                cli(port, &["PING"]).trim() == "PONG"
            });
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
            _dir: TempDir(dir),
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
        cli(self.sentinels[0].0, &["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .lines()
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A wsreactor process on a free loopback port, its broker `url`, with
/// the configuration `toml` (written beside it).
struct Node {
    _proc: Proc,
    addr: SocketAddr,
}

impl Node {
    fn spawn(url: &str, config: &Path) -> Node {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
            .args(["serve", "--bind", "127.0.0.1:0", "--threads", "2", "--broker", url])
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let (mut line, mut log) = (String::new(), String::new());
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!("the node exited:\n{log}");
            }
            log.push_str(&line);
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split(' ').next().unwrap().parse().unwrap();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Node {
            _proc: Proc(child),
            addr,
        }
    }
}

/// One request on a connection of its own (a refusal may close it).
fn request(addr: SocketAddr, method: &str, target: &str, body: &str) -> Option<Response> {
    std::panic::catch_unwind(|| {
        Client::connect(addr).request(method, target, &["Content-Type: text/plain"], body.as_bytes())
    })
    .ok()
}

/// What a subscriber got: its payloads in the order they came.
type Got = Arc<Mutex<Vec<String>>>;

/// A subscriber on `/ws/k` (the payloads as they were published).
fn websocket(addr: SocketAddr, got: Got) -> std::thread::JoinHandle<()> {
    let (mut c, _) = Client::upgrade_at(addr, "/ws/k", "");
    c.stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::thread::spawn(move || loop {
        let f = c.recv();
        let p = String::from_utf8(f.payload).unwrap();
        let end = p == "end";
        got.lock().unwrap().push(p);
        if end {
            return;
        }
    })
}

/// A subscriber on `/sse/k`.
fn event_stream(addr: SocketAddr, got: Got) -> std::thread::JoinHandle<()> {
    let mut c = Client::connect(addr);
    c.write(b"GET /sse/k HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    c.stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::thread::spawn(move || loop {
        let raw = String::from_utf8(c.read_until(b"\n\n")).unwrap();
        let data: Vec<&str> = raw.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        if raw.starts_with(':') || raw.starts_with("event: ") || data.is_empty() {
            continue;
        }
        let p = data.join("\n");
        let end = p == "end";
        got.lock().unwrap().push(p);
        if end {
            return;
        }
    })
}

/// A long-poll subscriber, from the cursor `since`.
fn long_poll(addr: SocketAddr, since: u64, got: Got) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut cursor = since;
        let t0 = Instant::now();
        loop {
            assert!(t0.elapsed() < Duration::from_secs(120), "the long poll never got the end");
            let Some(r) = request(addr, "GET", &format!("/poll/k?since={cursor}"), "") else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            if r.status != 200 {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            for m in v["messages"].as_array().unwrap() {
                let p = m["data"].as_str().unwrap().to_owned();
                let end = p == "end";
                got.lock().unwrap().push(p);
                if end {
                    return;
                }
            }
            cursor = v["last_id"].as_u64().unwrap();
        }
    })
}

#[test]
fn a_master_killed_under_a_steady_publisher_loses_no_message_answered_200_on_any_transport() {
    let mut group = Group::start();
    let dir = std::env::temp_dir().join(format!("wsreactor-sentinel-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        "[pubsub]\nbroker_replicas = 1\nbroker_replicas_timeout = \"500ms\"\n",
    )
    .unwrap();
    let nodes = [Node::spawn(&group.url(), &config), Node::spawn(&group.url(), &config)];
    let _ = std::fs::remove_dir_all(&dir);
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
    let since: u64 = serde_json::from_slice::<Value>(&first.body).unwrap()["id"].as_u64().unwrap();

    let mut subscribers = Vec::new();
    for n in &nodes {
        for kind in 0..3 {
            let got: Got = Arc::default();
            let handle = match kind {
                0 => websocket(n.addr, got.clone()),
                1 => event_stream(n.addr, got.clone()),
                _ => long_poll(n.addr, since, got.clone()),
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

    // A publisher at 50 a second, alternately through both nodes.
    let mut accepted: Vec<(u64, String)> = Vec::new();
    let mut refused = 0;
    let mut killed: Option<Instant> = None;
    let mut back: Option<Instant> = None;
    let t0 = Instant::now();
    for i in 0.. {
        let now = Instant::now();
        if killed.is_none() && now - t0 >= Duration::from_millis(1500) {
            group.kill_master();
            killed = Some(Instant::now());
        }
        if back.is_some_and(|b| now - b >= Duration::from_secs(2)) {
            break;
        }
        assert!(now - t0 < Duration::from_secs(60), "publishing never resumed after the failover");
        let payload = format!("m{i}");
        let r = request(nodes[i % 2].addr, "POST", "/pub/k", &payload);
        match r {
            Some(r) if r.status == 200 => {
                let id = serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_u64().unwrap();
                accepted.push((id, payload));
                if killed.is_some() && back.is_none() {
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
    let (killed, back) = (killed.unwrap(), back.unwrap());
    let took = back - killed;
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
        handle.join().unwrap_or_else(|_| panic!("{what} subscriber of {addr} failed"));
        let got = got.lock().unwrap();
        // Every message answered 200, once and in the order of its id
        // (published one after another, so in the order they were sent).
        // A refused or unconfirmed publish may or may not be there.
        let accepted_payloads: std::collections::HashSet<&str> = accepted.iter().map(|(_, p)| p.as_str()).collect();
        let theirs: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|p| accepted_payloads.contains(p))
            .collect();
        let want: Vec<&str> = accepted.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(theirs, want, "{what} of {addr}: every accepted message once, in order");
    }
    assert!(
        accepted.windows(2).all(|w| w[0].0 < w[1].0),
        "ids rise in the order publishes were answered"
    );
    // Not ready during the failover, ready after it, on the new master.
    let after_kill: Vec<u16> = readyz.iter().filter(|(t, _)| *t > killed).map(|&(_, s)| s).collect();
    assert!(after_kill.contains(&503), "/readyz said 503 during the failover: {after_kill:?}");
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
        assert!(metrics.contains("wsreactor_broker_failovers_total 1"), "{metrics}");
        assert!(
            metrics.contains(&format!("address=\"{master_after}\"}} 1")),
            "{metrics}"
        );
    }
    eprintln!(
        "sentinel failover: {} publishes accepted, {refused} refused; from the kill to the first accepted publish: {} ms",
        accepted.len(),
        took.as_millis()
    );
}
