//! The floor (issue 31): a WebSocket echo server that makes only the
//! system calls an echoed message needs, to measure the others against.
//! One thread, level-triggered epoll; per readable connection one `read`,
//! every complete frame in it answered unmasked, and one `write` of all
//! the answers. The opening handshake is the least RFC 6455 §4.2.2 allows
//! (the key, the accept hash); nothing else is checked: no limits, no
//! UTF-8, no fragments, no timers. Not a server to use: a yardstick.
//!
//!     floor_echo --port PORT        (binds 127.0.0.1)

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct Conn {
    stream: TcpStream,
    open: bool,
    /// Bytes of a frame (or a handshake) not complete yet.
    pending: Vec<u8>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(p)) => p.parse().expect("a port"),
        _ => {
            eprintln!("usage: floor_echo --port PORT");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener.set_nonblocking(true).unwrap();
    // SAFETY: plain epoll calls on descriptors this process owns.
    let epoll = unsafe { libc::epoll_create1(0) };
    assert!(epoll >= 0, "epoll_create1");
    add(epoll, listener.as_raw_fd());
    let mut conns: HashMap<i32, Conn> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue; // EINTR
        }
        for e in &events[..n as usize] {
            let fd = e.u64 as i32;
            if fd == listener.as_raw_fd() {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).unwrap();
                    stream.set_nodelay(true).unwrap();
                    add(epoll, stream.as_raw_fd());
                    conns.insert(stream.as_raw_fd(), Conn { stream, open: false, pending: Vec::new() });
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&fd) else { continue };
            let got = match conn.stream.read(&mut buf) {
                Ok(0) => 0,
                Ok(k) => k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => 0,
            };
            let close = got == 0 || !serve(conn, &buf[..got], &mut out);
            if !out.is_empty() {
                write_all(&mut conn.stream, &out);
                out.clear();
            }
            if close {
                conns.remove(&fd); // closes it, and epoll forgets it
            }
        }
    }
}

fn add(epoll: i32, fd: i32) {
    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: fd as u64 };
    let r = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "epoll_ctl");
}

/// What `bytes` ask of `conn`, appended to `out`; false once it is to close.
fn serve(conn: &mut Conn, bytes: &[u8], out: &mut Vec<u8>) -> bool {
    let data: &[u8] = if conn.pending.is_empty() {
        bytes
    } else {
        conn.pending.extend_from_slice(bytes);
        &conn.pending
    };
    let mut at = 0;
    let mut keep_open = true;
    if !conn.open {
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            let rest = data.to_vec();
            conn.pending = rest;
            return true;
        };
        let head = String::from_utf8_lossy(&data[..end]);
        let key = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key")))
            .map(|(_, v)| v.trim().to_owned());
        let Some(key) = key else { return false };
        let accept = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(format!("{key}{GUID}")));
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        out.extend_from_slice(accept.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        conn.open = true;
        at = end + 4;
    }
    while let Some((opcode, mask, start, len)) = frame(&data[at..]) {
        let payload = &data[at + start..at + start + len];
        out.push(0x80 | opcode);
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
        let from = out.len();
        out.extend_from_slice(payload);
        unmask(&mut out[from..], mask);
        at += start + len;
        if opcode == 0x8 {
            keep_open = false; // the close echoed; the server closes first
            break;
        }
    }
    let rest = data[at..].to_vec();
    conn.pending = rest;
    keep_open
}

/// XOR `b` with `mask` (RFC 6455 §5.3), eight bytes at a time.
fn unmask(b: &mut [u8], mask: [u8; 4]) {
    let m = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let whole = b.len() & !7;
    let (words, rest) = b.split_at_mut(whole);
    for w in words.chunks_exact_mut(8) {
        let v = u64::from_ne_bytes(w.try_into().unwrap()) ^ m;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    // `whole` is a multiple of 4: the mask's phase starts again at 0.
    for (i, x) in rest.iter_mut().enumerate() {
        *x ^= mask[i & 3];
    }
}

/// A complete masked frame at the start of `b`: its opcode, mask key,
/// payload offset and length.
fn frame(b: &[u8]) -> Option<(u8, [u8; 4], usize, usize)> {
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
fn write_all(stream: &mut TcpStream, mut out: &[u8]) {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(k) => out = &out[k..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut p = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                unsafe { libc::poll(&mut p, 1, 1000) };
            }
            Err(_) => return,
        }
    }
}
