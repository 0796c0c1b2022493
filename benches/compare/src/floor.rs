//! What the two floors (`floor_echo`, `floor_pubsub`) share: the command
//! line, a level-triggered epoll, the opening handshake's answer and a
//! write that waits for room. Only the system calls a message needs.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `NAME --port PORT`: a listener on 127.0.0.1:PORT, non-blocking; exits
/// with a usage line otherwise.
pub fn listen(name: &str) -> TcpListener {
    let mut args = std::env::args().skip(1);
    let port: u16 = match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(p)) => p.parse().expect("a port"),
        _ => {
            eprintln!("usage: {name} --port PORT");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener.set_nonblocking(true).unwrap();
    listener
}

/// A level-triggered epoll instance, each descriptor registered for input.
pub struct Epoll {
    fd: i32,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> Epoll {
        // SAFETY: plain epoll calls on descriptors this process owns.
        let fd = unsafe { libc::epoll_create1(0) };
        assert!(fd >= 0, "epoll_create1");
        Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        }
    }

    pub fn add(&self, fd: i32) {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        let r = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        assert_eq!(r, 0, "epoll_ctl");
    }

    /// The descriptors ready now into `ready` (waits for one; no
    /// allocation once `ready` has grown).
    pub fn wait(&mut self, ready: &mut Vec<i32>) {
        let n = unsafe { libc::epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as i32, -1) };
        // n < 0: EINTR, nothing ready.
        ready.clear();
        ready.extend(self.events[..n.max(0) as usize].iter().map(|e| e.u64 as i32));
    }
}

impl Default for Epoll {
    fn default() -> Self {
        Epoll::new()
    }
}

/// Every connection waiting on `listener`, non-blocking, `TCP_NODELAY`,
/// registered with `epoll`.
pub fn accept_all(listener: &TcpListener, epoll: &Epoll, mut each: impl FnMut(TcpStream)) {
    while let Ok((stream, _)) = listener.accept() {
        stream.set_nonblocking(true).unwrap();
        stream.set_nodelay(true).unwrap();
        epoll.add(stream.as_raw_fd());
        each(stream);
    }
}

/// The `101 Switching Protocols` answer to a request head that has a
/// `Sec-WebSocket-Key` (RFC 6455 §4.2.2); `None` without one.
pub fn switching_protocols(head: &str) -> Option<String> {
    let key = header(head, "sec-websocket-key")?;
    let accept = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(format!("{key}{GUID}")));
    Some(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    ))
}

/// A header's value in a request head, by name in any case.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v.trim().to_owned())
}

/// A frame header's length field (RFC 6455 §5.2), appended to `out`.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=125 => out.push(len as u8),
        126..=65535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// A complete masked frame at the start of `b`: its opcode, mask key,
/// payload offset and length.
pub fn masked_frame(b: &[u8]) -> Option<(u8, [u8; 4], usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let (len, at) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    (b.len() >= at + 4 + len).then_some((opcode, mask, at + 4, len))
}

/// Write all of `out`: one `write` when the socket takes it (it does for
/// the workloads' sizes); otherwise wait for room (poll) and go on.
pub fn write_all(stream: &mut TcpStream, mut out: &[u8]) {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(k) => out = &out[k..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut p = libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                unsafe { libc::poll(&mut p, 1, 1000) };
            }
            Err(_) => return,
        }
    }
}
