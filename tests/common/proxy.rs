//! A proxy on 127.0.0.1 in front of a test's server that misbehaves as
//! proxies in the field do, switched at run time: it refuses WebSocket
//! upgrades (a 400, as a proxy that does not know them answers), or holds
//! back event streams (it forwards nothing of the answer until the server
//! ends it, as a buffering proxy does). Every connection carries one
//! request (the proxy asks the server to close after it), so that each
//! request meets the proxy's behaviour of the moment. Threads end with
//! their connections; the listener's thread ends when the value is dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to what passes.
#[derive(Debug, Default)]
pub struct Blocks {
    /// Answer WebSocket upgrades with 400.
    pub upgrades: AtomicBool,
    /// Close WebSocket upgrades without a word, as a proxy that kills them.
    pub close_upgrades: AtomicBool,
    /// Let upgrades through, then hold back every frame the server sends.
    pub hold_upgrades: AtomicBool,
    /// Hold back the answers of event streams (`/sse`).
    pub streams: AtomicBool,
    /// Upgrades refused so far.
    pub refused: AtomicU64,
}

/// The proxy: its address, and its switches.
pub struct Proxy {
    pub addr: SocketAddr,
    pub blocks: Arc<Blocks>,
    upstream: Arc<Mutex<SocketAddr>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to `upstream`, letting everything through until told.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let blocks = Arc::new(Blocks::default());
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = Arc::new(Mutex::new(upstream));
        let (b, s, to) = (blocks.clone(), stop.clone(), upstream.clone());
        std::thread::spawn(move || {
            while !s.load(SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let b = b.clone();
                        let upstream = *to.lock().unwrap();
                        std::thread::spawn(move || serve(client, upstream, &b));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            blocks,
            upstream,
            stop,
        }
    }

    /// New connections go to `upstream` from now on (a server restarted
    /// elsewhere, another node): as a load balancer would send them.
    pub fn point(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

/// One client connection: its request head read, then refused, or passed
/// on (with `Connection: close` unless it is an upgrade) and the bytes
/// copied both ways.
fn serve(mut client: TcpStream, upstream: SocketAddr, blocks: &Blocks) {
    client.set_nonblocking(false).unwrap();
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut byte = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    let upgrade = text.contains("\r\nupgrade: websocket");
    if upgrade && blocks.close_upgrades.load(SeqCst) {
        blocks.refused.fetch_add(1, SeqCst);
        return;
    }
    if upgrade && blocks.upgrades.load(SeqCst) {
        blocks.refused.fetch_add(1, SeqCst);
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let stream = text.starts_with("get /sse");
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    // One request per connection: the next meets the switches of then.
    let mut first = head[..end].to_vec();
    if !upgrade {
        let lines: Vec<&[u8]> = first
            .split(|&b| b == b'\n')
            .filter(|l| !l.to_ascii_lowercase().starts_with(b"connection:"))
            .collect();
        let mut rewritten = lines.join(&b'\n');
        // The blank line is last: the header goes before it.
        let at = rewritten.len() - 2;
        rewritten.splice(at..at, b"Connection: close\r\n".iter().copied());
        first = rewritten;
    }
    if server.write_all(&first).is_err() || server.write_all(&head[end..]).is_err() {
        return;
    }
    let hold = stream && blocks.streams.load(SeqCst);
    let hold_frames = upgrade && blocks.hold_upgrades.load(SeqCst);
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    if hold_frames {
        // The 101 goes through; the frames after it are kept.
        let mut answer = Vec::new();
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match server.read(&mut byte) {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&byte[..n]),
            }
        }
        let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        if client.write_all(&answer[..end]).is_err() {
            return;
        }
        let mut held = Vec::new();
        let _ = server.read_to_end(&mut held);
    } else if hold {
        // Everything the server sends is kept until it ends the answer.
        let mut held = Vec::new();
        let _ = server.read_to_end(&mut held);
        let _ = client.write_all(&held);
    } else {
        let _ = std::io::copy(&mut server, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
}
