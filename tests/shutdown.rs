//! Graceful shutdown (RFC 6455 §7.4.1, 1001 "going away"): the real binary
//! on SIGTERM, and the in-process `ServerHandle::shutdown`. Every WebSocket
//! gets a close 1001, the server stops accepting, and it is done once the
//! clients have answered, or after the close timeout if they do not.

mod common;

use common::*;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A port that was free a moment ago (the listener is dropped at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Is nobody listening on `addr`? Retries for up to a second, since the
/// workers close their listeners independently.
fn refused_within_a_second(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            Err(e) => panic!("connect: {e}"),
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(_) => return false,
        }
    }
}

/// Each client must get a close 1001 from the server.
fn expect_going_away(clients: &mut [Client]) {
    for c in clients.iter_mut() {
        c.expect_close(1001);
    }
}

/// Each client answers the close; the server then closes TCP, and so does
/// the client (the server reads until our FIN, so its own is not lost to a
/// reset).
fn reply_close(clients: Vec<Client>) {
    for mut c in clients {
        c.send(CLOSE, &close_payload(1001, b""));
        c.expect_eof();
    }
}

/// The server binary, killed (by its own pid) if a test leaves it running.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    fn spawn() -> Binary {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_wsreactor"))
            .args(["serve", "--bind", &addr.to_string(), "--threads", "2"])
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Binary { child, addr };
        b.wait_ready();
        b
    }

    /// Wait until /healthz answers (the workers are accepting).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited before accepting: {status}");
            }
            if let Ok(mut s) = TcpStream::connect(self.addr) {
                use std::io::Write;
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer);
                if answer.starts_with(b"HTTP/1.1 200 ") {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("server not accepting on {} after 10 s", self.addr);
    }

    fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid we spawned and have not reaped, so it
        // cannot have been reused.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Wait up to `within` for the process to exit.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn sigterm_closes_websockets_with_1001_and_exits_0() {
    let mut server = Binary::spawn();
    let mut clients: Vec<Client> = (0..3).map(|_| Client::upgrade(server.addr)).collect();
    for c in &mut clients {
        c.echo(TEXT, b"before the signal");
    }
    let t0 = Instant::now();
    server.terminate();
    expect_going_away(&mut clients);
    // The listeners are closed while the close handshakes are in progress.
    assert!(refused_within_a_second(server.addr), "still accepting during shutdown");
    reply_close(clients);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("still running 5 s after SIGTERM");
    assert!(status.success(), "{status}");
    // Every client answered, so the close timeout (5 s) was not needed.
    assert!(t0.elapsed() < Duration::from_secs(3), "exited after {:?}", t0.elapsed());
    assert!(refused_within_a_second(server.addr), "accepting after exit");
}

#[test]
fn handle_shutdown_closes_websockets_with_1001() {
    let server = Server::with_threads(2, settings());
    let addr = server.addr;
    let mut clients: Vec<Client> = (0..3).map(|_| Client::upgrade(addr)).collect();
    for c in &mut clients {
        c.echo(BINARY, b"before shutdown");
    }
    // A connection still in its handshake is simply dropped. Wait until the
    // server has read its bytes: a socket closed with unread input sends a
    // reset instead of a FIN (RFC 1122 §4.2.2.13), which is not the point here.
    let mut pending = Client::connect(addr);
    let before = server.total(|s| &s.bytes_in);
    let partial = b"GET / HTTP/1.1\r\n";
    pending.write(partial);
    let read = before + partial.len() as u64;
    assert!(
        server.wait_for(|s| &s.bytes_in, read, IO_TIMEOUT),
        "partial head not read"
    );
    server.handle().shutdown();
    expect_going_away(&mut clients);
    reply_close(clients);
    assert!(pending.wait_eof(IO_TIMEOUT).is_some());
    let joined = server.stop();
    assert!(joined < Duration::from_millis(500), "join took {joined:?}");
    assert!(refused_within_a_second(addr));
}

#[test]
fn handle_shutdown_gives_up_on_silent_clients_after_close_timeout() {
    let server = Server::start(settings());
    let addr = server.addr;
    let mut silent = Client::upgrade(addr);
    let t0 = Instant::now();
    server.handle().shutdown();
    silent.expect_close(1001);
    // We never reply; the server waits the close timeout (1 s), no more.
    let joined = server.stop();
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "stopped after {elapsed:?} (join {joined:?})"
    );
    assert!(silent.wait_eof(IO_TIMEOUT).is_some());
    assert!(refused_within_a_second(addr));
}
