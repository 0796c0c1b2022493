//! The fan-out floor (issue 31): a pub/sub server that makes only the
//! system calls a delivery needs, to measure the others against. One
//! thread, level-triggered epoll. `GET /ws/{ch}` subscribes (the least
//! opening handshake RFC 6455 §4.2.2 allows); `POST /pub/{ch}` sends the
//! body as one unmasked text frame to every subscriber of `ch`, with one
//! `write` per subscriber, and answers `{"id":N,"subscribers":K}` as
//! `uws-pubsub` does. A subscriber's own frames are read and dropped (a
//! close is answered and the connection closed). No history, no ids in
//! the frames, no limits, no timers. Not a server to use: a yardstick.
//!
//!     floor_pubsub --port PORT        (binds 127.0.0.1)

use compare_peers::floor::{accept_all, header, masked_frame, push_len, switching_protocols, write_all, Epoll};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

enum Role {
    /// Before its request head is complete, and a publisher after.
    Http,
    /// A WebSocket subscriber of this channel.
    Subscriber(String),
}

struct Conn {
    stream: TcpStream,
    role: Role,
    /// Bytes not acted on yet.
    pending: Vec<u8>,
}

/// What a connection's bytes asked for.
enum Action {
    Nothing,
    Close,
    Subscribe(String, Vec<u8>),
    Publish(String, Vec<u8>),
}

fn main() {
    let listener = compare_peers::floor::listen("floor_pubsub");
    let mut epoll = Epoll::new();
    epoll.add(listener.as_raw_fd());
    let mut conns: HashMap<i32, Conn> = HashMap::new();
    let mut channels: HashMap<String, Vec<i32>> = HashMap::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut ready = Vec::new();
    loop {
        epoll.wait(&mut ready);
        for &fd in &ready {
            if fd == listener.as_raw_fd() {
                accept_all(&listener, &epoll, |stream| {
                    let role = Role::Http;
                    conns.insert(
                        stream.as_raw_fd(),
                        Conn {
                            stream,
                            role,
                            pending: Vec::new(),
                        },
                    );
                });
                continue;
            }
            let Some(conn) = conns.get_mut(&fd) else { continue };
            let got = match conn.stream.read(&mut buf) {
                Ok(k) => k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => 0,
            };
            conn.pending.extend_from_slice(&buf[..got]);
            // Every request the bytes hold, in order (a pipelined one too).
            while let Some(conn) = conns.get_mut(&fd) {
                let action = if got == 0 { Action::Close } else { serve(conn) };
                match action {
                    Action::Nothing => break,
                    Action::Close => {
                        if let Some(Conn {
                            role: Role::Subscriber(ch),
                            ..
                        }) = conns.remove(&fd)
                        {
                            if let Some(subs) = channels.get_mut(&ch) {
                                subs.retain(|&s| s != fd);
                            }
                        }
                        break;
                    }
                    Action::Subscribe(ch, answer) => {
                        write_all(&mut conn.stream, &answer);
                        conn.role = Role::Subscriber(ch.clone());
                        channels.entry(ch).or_default().push(fd);
                    }
                    Action::Publish(ch, body) => {
                        let mut frame = Vec::with_capacity(body.len() + 10);
                        frame.push(0x81);
                        push_len(&mut frame, body.len());
                        frame.extend_from_slice(&body);
                        let subs = channels.get(&ch).map(Vec::as_slice).unwrap_or(&[]);
                        for s in subs {
                            if let Some(sub) = conns.get_mut(s) {
                                write_all(&mut sub.stream, &frame);
                            }
                        }
                        let id = ids.entry(ch).or_default();
                        *id += 1;
                        let json = format!("{{\"id\":{id},\"subscribers\":{}}}", subs.len());
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                            json.len()
                        );
                        if let Some(publisher) = conns.get_mut(&fd) {
                            write_all(&mut publisher.stream, answer.as_bytes());
                        }
                    }
                }
            }
        }
    }
}

/// What `conn.pending` asks for; what it acted on is taken from it.
fn serve(conn: &mut Conn) -> Action {
    if let Role::Subscriber(_) = conn.role {
        return subscriber_frames(conn);
    }
    let data = &conn.pending;
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Action::Nothing;
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut words = head.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path.strip_prefix("/ws/"), path.strip_prefix("/pub/")) {
        ("GET", Some(ch), _) => {
            let Some(answer) = switching_protocols(&head) else {
                return Action::Close;
            };
            let ch = ch.to_owned();
            conn.pending.drain(..end + 4);
            Action::Subscribe(ch, answer.into_bytes())
        }
        ("POST", _, Some(ch)) => {
            let len: usize = header(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if data.len() < end + 4 + len {
                return Action::Nothing;
            }
            let body = data[end + 4..end + 4 + len].to_vec();
            let ch = ch.to_owned();
            conn.pending.drain(..end + 4 + len);
            Action::Publish(ch, body)
        }
        _ => Action::Close,
    }
}

/// A subscriber's frames are dropped; its close frame closes it (after the
/// close is answered, RFC 6455 §5.5.1).
fn subscriber_frames(conn: &mut Conn) -> Action {
    let mut at = 0;
    while let Some((opcode, _, start, len)) = masked_frame(&conn.pending[at..]) {
        at += start + len;
        if opcode == 0x8 {
            write_all(&mut conn.stream, &[0x88, 0]);
            return Action::Close;
        }
    }
    conn.pending.drain(..at);
    Action::Nothing
}
