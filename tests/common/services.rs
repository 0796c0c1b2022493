//! Services the Redis tests start and stop themselves: processes of their
//! own (stopped by pid when dropped), on free loopback ports, in a
//! temporary directory; `wsreactor serve` nodes; subscribers on every
//! transport that keep what they get.

use super::{Client, Response};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A process of the test's own, killed (by pid) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free now (another process may take it before it is
/// used: a server that fails to bind says so).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `redis-cli -p port args...`: its output (empty if it failed).
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli comes with redis-server (tests/run-all.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait until `ok`, checking every 50 ms; fails after `within`.
pub fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A directory of the test's own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wsreactor-{what}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` on `port` with `args`, its files in `dir`, answering.
pub fn redis_server(port: u16, dir: &Path, args: &[&str]) -> Proc {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir", dir.to_str().unwrap()])
        .args(["--dbfilename", &format!("dump-{port}.rdb")])
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed (Debian: apt-get install redis-server; tests/run-all.sh does it)");
    let proc = Proc(child);
    until("redis-server up", Duration::from_secs(10), || {
        cli(port, &["PING"]).trim() == "PONG"
    });
    proc
}

/// A `wsreactor serve` process on a free loopback port, its broker
/// `url`, with the configuration file `config`.
pub struct Node {
    _proc: Proc,
    pub addr: SocketAddr,
}

impl Node {
    /// With the configuration file `config`; panics with its log if it
    /// exits instead of listening.
    pub fn spawn(url: &str, config: &Path) -> Node {
        Node::spawn_args(url, &[], &["--config", config.to_str().unwrap()])
            .unwrap_or_else(|log| panic!("the node exited:\n{log}"))
    }

    /// With `env` and more arguments; `Err` with its log if it exited
    /// instead of listening.
    pub fn spawn_args(url: &str, env: &[(&str, &str)], args: &[&str]) -> Result<Node, String> {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
            .args(["serve", "--bind", "127.0.0.1:0", "--threads", "2", "--broker", url])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let (mut line, mut log) = (String::new(), String::new());
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                return Err(log);
            }
            log.push_str(&line);
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split(' ').next().unwrap().parse().unwrap();
            }
        };
        // Keep reading its log so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Ok(Node {
            _proc: Proc(child),
            addr,
        })
    }
}

/// One request on a connection of its own (a refusal may close it);
/// `None` if the connection failed.
pub fn request(addr: SocketAddr, method: &str, target: &str, body: &str) -> Option<Response> {
    std::panic::catch_unwind(|| {
        Client::connect(addr).request(method, target, &["Content-Type: text/plain"], body.as_bytes())
    })
    .ok()
}

/// What a subscriber got: its payloads in the order they came.
pub type Got = Arc<Mutex<Vec<String>>>;

/// A subscriber on `/ws/{channel}` (the payloads as they were published),
/// until the payload `end`.
pub fn websocket(addr: SocketAddr, channel: &str, got: Got) -> std::thread::JoinHandle<()> {
    let (mut c, _) = Client::upgrade_at(addr, &format!("/ws/{channel}"), "");
    c.stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::thread::spawn(move || loop {
        let f = c.recv();
        if f.opcode == super::PING {
            c.send(super::PONG, &f.payload);
            continue;
        }
        let p = String::from_utf8(f.payload).unwrap();
        let end = p == "end";
        got.lock().unwrap().push(p);
        if end {
            return;
        }
    })
}

/// A subscriber on `/sse/{channel}`, until the payload `end`.
pub fn event_stream(addr: SocketAddr, channel: &str, got: Got) -> std::thread::JoinHandle<()> {
    let mut c = Client::connect(addr);
    c.write(format!("GET /sse/{channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
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

/// A long-poll subscriber of `channel` from the cursor `since`, until the
/// payload `end`.
pub fn long_poll(addr: SocketAddr, channel: &str, since: u64, got: Got) -> std::thread::JoinHandle<()> {
    let channel = channel.to_owned();
    std::thread::spawn(move || {
        let mut cursor = since;
        let t0 = Instant::now();
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the long poll never got the end"
            );
            let Some(r) = request(addr, "GET", &format!("/poll/{channel}?since={cursor}"), "") else {
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

/// `got` holds every payload of `accepted` once, in that order (what else
/// it holds, a refused publish that went out anyway, is let be).
pub fn every_accepted_once_in_order(what: &str, got: &[String], accepted: &[String]) {
    let wanted: std::collections::HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let theirs: Vec<&str> = got.iter().map(String::as_str).filter(|p| wanted.contains(p)).collect();
    let want: Vec<&str> = accepted.iter().map(String::as_str).collect();
    assert_eq!(theirs, want, "{what}: every accepted message once, in order");
}
