//! Running out of file descriptors must not spin the accept loop.
//!
//! The server is started with a hard limit of 64 descriptors (`ulimit -n`
//! in the shell that execs it, so its own raise to the hard limit cannot
//! lift it), then offered far more connections than it can accept. Its CPU
//! time over the following seconds must stay low (an edge-triggered listener
//! retried in a loop would burn a whole core), and once connections close it
//! must accept again.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// utime + stime of a process, in clock ticks (/proc/PID/stat fields 14, 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state): utime is field 14, stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn healthz(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn emfile_does_not_spin_and_recovers() {
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_wsreactor");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {bin} serve --bind 127.0.0.1:{port} --threads 1"
        ))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthz(port).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Far more connections than 64 descriptors: the kernel completes them
    // into the backlog, the server runs into EMFILE accepting them.
    let mut held: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(held.len() > 100, "only {} connections made", held.len());
    std::thread::sleep(Duration::from_millis(300));

    let t0 = cpu_ticks(pid);
    let wall = Duration::from_secs(2);
    std::thread::sleep(wall);
    let used = cpu_ticks(pid) - t0;
    // Clock ticks are 1/100 s: 2 s of spinning would be ~200 ticks.
    assert!(
        used < 40,
        "server used {used} ticks of CPU in {wall:?} while out of descriptors"
    );

    // Free the descriptors: the server accepts and serves again.
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match healthz(port) {
            Ok(resp) if resp.starts_with("HTTP/1.1 200") => break,
            other => assert!(Instant::now() < deadline, "server did not recover: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
