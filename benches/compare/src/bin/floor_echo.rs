//! The floor (issue 31): a WebSocket echo server that makes only the
//! system calls an echoed message needs, to measure the others against.
//! One thread, level-triggered epoll; per readable connection one `read`,
//! every complete frame in it answered unmasked, and one `write` of all
//! the answers. The opening handshake is the least RFC 6455 §4.2.2 allows
//! (the key, the accept hash); nothing else is checked: no limits, no
//! UTF-8, no fragments, no timers. Not a server to use: a yardstick.
//!
//!     floor_echo --port PORT        (binds 127.0.0.1)

use compare_peers::floor::{accept_all, masked_frame, push_len, switching_protocols, write_all, Epoll};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

struct Conn {
    stream: TcpStream,
    open: bool,
    /// Bytes of a frame (or a handshake) not complete yet.
    pending: Vec<u8>,
}

fn main() {
    let listener = compare_peers::floor::listen("floor_echo");
    let mut epoll = Epoll::new();
    epoll.add(listener.as_raw_fd());
    let mut conns: HashMap<i32, Conn> = HashMap::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::with_capacity(1 << 16);
    let mut ready = Vec::new();
    loop {
        epoll.wait(&mut ready);
        for &fd in &ready {
            if fd == listener.as_raw_fd() {
                accept_all(&listener, &epoll, |stream| {
                    conns.insert(
                        stream.as_raw_fd(),
                        Conn {
                            stream,
                            open: false,
                            pending: Vec::new(),
                        },
                    );
                });
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
        let Some(answer) = switching_protocols(&head) else {
            return false;
        };
        out.extend_from_slice(answer.as_bytes());
        conn.open = true;
        at = end + 4;
    }
    while let Some((opcode, mask, start, len)) = masked_frame(&data[at..]) {
        let payload = &data[at + start..at + start + len];
        out.push(0x80 | opcode);
        push_len(out, len);
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
