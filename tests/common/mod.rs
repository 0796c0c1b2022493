//! Shared by the integration tests: an in-process server on `127.0.0.1:0`,
//! and a raw blocking client over `std::net::TcpStream`.
//!
//! The client's frame codec is written here from RFC 6455 §5.2 and §5.3 and
//! does not use the crate's encoder or decoder, so the tests check the
//! server against the RFC rather than against itself. Every read and write
//! has a timeout: a test that waits for something that never comes fails
//! instead of hanging.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod certs;
pub mod chromium;
pub mod example;
pub mod js_page;
pub mod mux;
pub mod proxy;
pub mod services;
pub mod venv;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use wsreactor::reactor::settings::Settings;
use wsreactor::reactor::ServerHandle;
use wsreactor::stats::WorkerStats;

/// How long any single read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The RFC's example key (§1.3) and the accept value it must produce.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of the RFC's §5.7 examples, used for every client frame.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opcodes (§5.2).
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The production defaults with a short close timeout, so a test server
/// shuts down within a second even with connections left open, and the
/// local hub's ids from 1, so that tests can name them (the clock
/// numbering the server runs with is tested on its own:
/// `tests/push`'s `ids_never_go_back_across_a_restart`).
pub fn settings() -> Settings {
    let mut s = Settings {
        close_timeout: Duration::from_secs(1),
        ..Settings::default()
    };
    s.pubsub.hub.numbering = wsreactor::pubsub::Numbering::FromOne;
    s
}

/// An in-process server; dropping it shuts it down and joins its workers.
pub struct Server {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl Server {
    /// One worker with `settings`.
    pub fn start(settings: Settings) -> Server {
        Server::with_threads(1, settings)
    }

    pub fn with_threads(threads: usize, settings: Settings) -> Server {
        let bind = "127.0.0.1:0".parse().unwrap();
        let handle = wsreactor::reactor::start(bind, threads, 128, settings).unwrap();
        let addr = handle.local_addr();
        Server {
            handle: Some(handle),
            addr,
        }
    }

    /// A server started on a handle made elsewhere (e.g. with its own broker).
    pub fn from_handle(handle: ServerHandle) -> Server {
        let addr = handle.local_addr();
        Server {
            handle: Some(handle),
            addr,
        }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    /// A counter summed over the workers.
    pub fn total(&self, counter: fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.handle().stats().iter().map(|s| WorkerStats::get(counter(s))).sum()
    }

    /// Wait up to `within` for `counter` to reach `value`.
    pub fn wait_for(&self, counter: fn(&WorkerStats) -> &AtomicU64, value: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.total(counter) == value {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.total(counter) == value
    }

    /// Shut down and join; returns how long the join took.
    pub fn stop(mut self) -> Duration {
        let handle = self.handle.take().unwrap();
        let t0 = Instant::now();
        handle.shutdown();
        handle.join().unwrap();
        t0.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
            let _ = handle.join();
        }
    }
}

/// Encode one frame (§5.2): FIN, RSV bits (RSV1 = 0b100), opcode, the
/// shortest length form, the masking key if any, the masked payload (§5.3).
pub fn encode(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A final, masked client frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode(true, 0, opcode, Some(MASK), payload)
}

/// A close payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A frame from the server, decoded by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame (§5.5.1), `None` if it has none.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// An HTTP response: status, headers (names lowercased), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// A JWT (HS256) with `claims`, signed with `secret`.
pub fn jwt(secret: &str, claims: serde_json::Value) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An upgrade request for `/` with the RFC's example key.
pub fn upgrade_request() -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Publish `body` as text to `channel` on `c`'s connection; the 200's JSON
/// receipt (`{"id":N,"subscribers":K}`).
pub fn publish(c: &mut Client, channel: &str, body: &str) -> serde_json::Value {
    let r = c.request(
        "POST",
        &format!("/pub/{channel}"),
        &["Content-Type: text/plain"],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_slice(&r.body).unwrap()
}

/// A blocking client: a socket with timeouts and the bytes read but not yet used.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// A TCP connection, nothing sent.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connect and complete the opening handshake, checking the 101 (§4.2.2).
    pub fn upgrade(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        c.write(upgrade_request().as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 101, "{r:?}");
        assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT), "{r:?}");
        assert!(r.header("upgrade").unwrap().eq_ignore_ascii_case("websocket"), "{r:?}");
        assert!(r.header("connection").unwrap().eq_ignore_ascii_case("upgrade"), "{r:?}");
        c
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Send a final, masked frame.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.write(&frame(opcode, payload));
    }

    /// Read until at least `n` bytes are buffered; panics on EOF or timeout.
    fn fill(&mut self, n: usize) {
        let mut chunk = [0u8; 65536];
        while self.buf.len() < n {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("EOF with {} of {n} bytes buffered", self.buf.len()),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read with {} of {n} bytes buffered: {e}", self.buf.len()),
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.fill(n);
        self.buf.drain(..n).collect()
    }

    /// Read up to and including the first `delim`.
    pub fn read_until(&mut self, delim: &[u8]) -> Vec<u8> {
        let end = loop {
            if let Some(i) = self.buf.windows(delim.len()).position(|w| w == delim) {
                break i + delim.len();
            }
            let have = self.buf.len();
            self.fill(have + 1);
        };
        self.take(end)
    }

    /// Connect and upgrade at `path` with `extra` header lines (each ending
    /// in CRLF); returns the client and the 101 response, checked.
    pub fn upgrade_at(addr: SocketAddr, path: &str, extra: &str) -> (Client, Response) {
        let mut c = Client::connect(addr);
        let request = upgrade_request().replacen("GET / ", &format!("GET {path} "), 1);
        let request = request.replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
        c.write(request.as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 101, "{r:?}");
        assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT), "{r:?}");
        (c, r)
    }

    /// Send one HTTP/1.1 request on this connection (kept alive) and read
    /// the response. `headers` are whole lines without CRLF.
    pub fn request(&mut self, method: &str, target: &str, headers: &[&str], body: &[u8]) -> Response {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.write(&bytes);
        self.read_response()
    }

    /// Read one HTTP response head and its `Content-Length` body.
    pub fn read_response(&mut self) -> Response {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let have = self.buf.len();
            self.fill(have + 1);
        };
        let head = String::from_utf8(self.take(end)).unwrap();
        let mut lines = head.trim_end().split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{head}");
        let status = parts.next().unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = r.header("content-length") {
            let len = len.parse().unwrap();
            r.body = self.take(len);
        }
        r
    }

    /// Read one frame, decoding it by hand; server frames must not be masked (§5.1).
    pub fn recv(&mut self) -> Frame {
        let head = self.take(2);
        assert_eq!(head[1] & 0x80, 0, "server frame is masked");
        let len = match head[1] & 0x7F {
            126 => u16::from_be_bytes(self.take(2).try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.take(8).try_into().unwrap()) as usize,
            n => n as usize,
        };
        Frame {
            fin: head[0] & 0x80 != 0,
            rsv: (head[0] >> 4) & 0x7,
            opcode: head[0] & 0x0F,
            payload: self.take(len),
        }
    }

    /// Wait up to `within` for a frame; `None` if no byte of one arrived.
    pub fn recv_within(&mut self, within: Duration) -> Option<Frame> {
        if self.buf.is_empty() {
            self.stream
                .set_read_timeout(Some(within.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            let got = self.stream.read(&mut chunk);
            self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            match got {
                Ok(0) => panic!("EOF while waiting for a frame"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
                Err(e) => panic!("waiting for a frame: {e}"),
            }
        }
        Some(self.recv())
    }

    /// The next frame must be a close with `code`; returns it.
    pub fn expect_close(&mut self, code: u16) -> Frame {
        let f = self.recv();
        assert_eq!(f.opcode, CLOSE, "expected close {code}, got {f:?}");
        assert_eq!(f.close_code(), Some(code), "{:?}", String::from_utf8_lossy(&f.payload));
        assert!(f.fin);
        f
    }

    /// The server must have closed: nothing more, then EOF.
    pub fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes before EOF: {:?}", self.buf);
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("expected EOF, got byte {:#x}", byte[0]),
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    /// Wait up to `within` for EOF, skipping any bytes that arrive first.
    /// Returns what was skipped and when EOF came, or `None` if it did not.
    pub fn wait_eof(&mut self, within: Duration) -> Option<(Vec<u8>, Duration)> {
        let t0 = Instant::now();
        let mut skipped = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 4096];
        while t0.elapsed() < within {
            let left = within.saturating_sub(t0.elapsed()).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some((skipped, t0.elapsed())),
                Ok(n) => skipped.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("waiting for EOF: {e}"),
            }
        }
        None
    }

    /// Echo round trip of one message.
    pub fn echo(&mut self, opcode: u8, payload: &[u8]) {
        self.send(opcode, payload);
        let f = self.recv();
        assert_eq!((f.fin, f.rsv, f.opcode), (true, 0, opcode));
        assert!(f.payload == payload, "echo differs ({} bytes sent)", payload.len());
    }

    /// Clean close from our side (§7.1.2): send close `code`, get it back, EOF.
    pub fn close(&mut self, code: u16) {
        self.send(CLOSE, &close_payload(code, b""));
        self.expect_close(code);
        self.expect_eof();
    }
}

/// The users of `channel`'s members as the server API at `addr` lists
/// them (`GET /api/presence/{channel}` with `key`), sorted; `-` for a
/// member without one.
pub fn presence_users(addr: SocketAddr, key: &str, channel: &str) -> Vec<String> {
    let r = Client::connect(addr).request(
        "GET",
        &format!("/api/presence/{channel}"),
        &[&format!("X-API-Key: {key}")],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let mut users: Vec<String> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap_or("-").to_owned())
        .collect();
    users.sort();
    users
}
