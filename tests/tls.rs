//! TLS in the reactor: `wss://` and `https://` on the same workers, every
//! state of the session unchanged over it. A certificate authority and a
//! server certificate for 127.0.0.1 are made at run time (rcgen); the
//! client is rustls over a blocking socket, speaking the protocol by hand
//! as `tests/common` does over plain TCP.

mod common;

use common::settings;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wsreactor::reactor::settings::Settings;
use wsreactor::reactor::{tls, Builder, ServerHandle};

/// An authority, and a certificate for 127.0.0.1 it signed, as PEM files
/// in a directory of the test's own: (authority DER, cert, key).
fn certificates(name: &str) -> (CertificateDer<'static>, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("wsreactor-tls-{}-{name}", std::process::id()));
    let c = common::certs::make(&dir, "test");
    (c.ca_der, c.cert, c.key)
}

struct TlsServer {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    client: Arc<ClientConfig>,
    /// The authority's PEM file, for other clients (Python, curl).
    ca_file: PathBuf,
}

impl TlsServer {
    fn start(name: &str, settings: Settings) -> TlsServer {
        let (ca, cert, key) = certificates(name);
        let config = tls::server_config(&cert, &key).unwrap();
        let handle = Builder::new(settings)
            .threads(2)
            .tls(config)
            .start("127.0.0.1:0".parse().unwrap())
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(wsreactor::reactor::tls::crypto_provider());
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsServer {
            addr: handle.local_addr(),
            handle: Some(handle),
            client: Arc::new(client),
            ca_file: cert.with_file_name("test-ca.pem"),
        }
    }

    fn connect(&self) -> Peer {
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = ClientConnection::new(self.client.clone(), name).unwrap();
        Peer {
            tls: StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            let _ = h.join();
        }
    }
}

/// A client over TLS.
struct Peer {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Peer {
    fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = self.tls.read(&mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Read up to and including `end`.
    fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(end.len()).position(|w| w == end) {
                return self.buf.drain(..i + end.len()).collect();
            }
            assert!(self.fill() > 0, "EOF before {:?}", String::from_utf8_lossy(end));
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill() > 0, "EOF with {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    /// A response head and its `Content-Length` body: (head, body).
    fn response(&mut self) -> (String, Vec<u8>) {
        let head = String::from_utf8(self.read_until(b"\r\n\r\n")).unwrap();
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        (head, self.take(len))
    }

    fn upgrade(&mut self, path: &str) {
        self.send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        );
        let head = String::from_utf8(self.read_until(b"\r\n\r\n")).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        // RFC 6455 §1.3's example key and accept value.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    }

    /// A masked frame (RFC 6455 §5.3), payload under 126 bytes.
    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.send(&f);
    }

    /// A server frame: (opcode, payload).
    fn recv(&mut self) -> (u8, Vec<u8>) {
        let head = self.take(2);
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => u16::from_be_bytes(self.take(2).try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.take(8).try_into().unwrap()) as usize,
            n => n as usize,
        };
        (head[0] & 0x0F, self.take(len))
    }

    fn post(&mut self, path: &str, body: &[u8]) -> (String, Vec<u8>) {
        self.send(
            format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.send(body);
        self.response()
    }
}

#[test]
fn wss_echo_and_a_clean_close_with_close_notify() {
    let server = TlsServer::start("echo", settings());
    let mut peer = server.connect();
    peer.upgrade("/");
    assert_eq!(peer.tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for text in ["hello", "over tls", ""] {
        peer.frame(0x1, text.as_bytes());
        assert_eq!(peer.recv(), (0x1, text.as_bytes().to_vec()));
    }
    // The close handshake, then the server's close_notify: a clean EOF,
    // which rustls tells from a truncation.
    peer.frame(0x8, &1000u16.to_be_bytes());
    let (op, payload) = peer.recv();
    assert_eq!((op, &payload[..2]), (0x8, &1000u16.to_be_bytes()[..]));
    let mut rest = [0u8; 16];
    assert_eq!(peer.tls.read(&mut rest).unwrap(), 0, "close_notify, then EOF");
}

#[test]
fn https_publish_reaches_wss_sse_and_long_poll_subscribers() {
    let server = TlsServer::start("push", settings());
    let mut ws = server.connect();
    ws.upgrade("/ws/secure");
    let mut sse = server.connect();
    sse.send(b"GET /sse/secure HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let head = String::from_utf8(sse.read_until(b"\r\n\r\n")).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200 ") && head.contains("text/event-stream"),
        "{head}"
    );
    let mut publisher = server.connect();
    let (head, body) = publisher.post("/pub/secure", b"sealed");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("\"id\":1"), "{body:?}");
    assert_eq!(ws.recv(), (0x1, b"sealed".to_vec()));
    let event = String::from_utf8(sse.read_until(b"\n\n")).unwrap();
    let event = if event.starts_with(':') {
        String::from_utf8(sse.read_until(b"\n\n")).unwrap()
    } else {
        event
    };
    assert!(
        event.contains("id: 1\n") && event.contains("data: sealed\n"),
        "{event:?}"
    );
    // Long polling from a cursor, on the publisher's keep-alive connection.
    publisher.send(b"GET /poll/secure?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (head, body) = publisher.response();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["messages"][0]["data"], "sealed", "{v}");
}

#[test]
fn a_large_message_crosses_many_records_both_ways() {
    let server = TlsServer::start("large", settings());
    let mut peer = server.connect();
    peer.upgrade("/");
    // 1 MiB, masked, in one frame: 64 records or more each way.
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mask = [9u8, 8, 7, 6];
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    peer.send(&f);
    let (op, echoed) = peer.recv();
    assert_eq!(op, 0x2);
    assert!(echoed == payload, "the echo differs ({} bytes)", echoed.len());
}

/// Wait until the server closes `tcp` (EOF or reset), at most `within`.
fn closed_within(tcp: &mut TcpStream, within: Duration) -> Duration {
    let t0 = Instant::now();
    tcp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return t0.elapsed(),
        }
        assert!(t0.elapsed() < within, "still open after {within:?}");
    }
}

#[test]
fn plaintext_on_the_tls_port_is_refused_at_once() {
    let server = TlsServer::start("plain", settings());
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(2));
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
}

#[test]
fn a_tls_handshake_that_does_not_finish_is_closed_at_the_handshake_timeout() {
    let mut s = settings();
    s.handshake_timeout = Duration::from_millis(400);
    let server = TlsServer::start("slow", s);
    // Silent, and one that starts a ClientHello and stops mid-record.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let t0 = Instant::now();
    for tcp in [&mut silent, &mut partial] {
        closed_within(tcp, Duration::from_secs(3));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(300),
            "closed after {took:?}, before the timeout"
        );
    }
    // The server serves on.
    let mut peer = server.connect();
    peer.upgrade("/");
}

#[test]
fn a_peer_that_closes_mid_record_ends_its_connection_and_nothing_spins() {
    let server = TlsServer::start("midrecord", settings());
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    // A record header that promises 512 bytes, 3 of them, then EOF
    // (CVE-2019-15541: rustls's mio example once spun on this).
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    closed_within(&mut tcp, Duration::from_secs(2));
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    // Over half a second the process (this test and the server) stays
    // near idle: no worker loops on the dead connection.
    let before = cpu(std::process::id());
    std::thread::sleep(Duration::from_millis(500));
    let ticks = cpu(std::process::id()) - before;
    assert!(ticks < 20, "{ticks} ticks of CPU in 0.5 s: something spins");
    let mut peer = server.connect();
    peer.upgrade("/");
}

#[test]
fn serve_refuses_a_bad_certificate_naming_the_file_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("wsreactor-tls-{}-bad", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--bind", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(cert.to_str().unwrap()) && err.contains("tls.cert"),
        "{err}"
    );
}

fn load(url: String, mode: wsreactor::load::Mode, insecure: bool) -> wsreactor::load::report::Summary {
    let options = wsreactor::load::Options {
        url,
        mode,
        connections: 20,
        connect_rate: 0.0,
        threads: 2,
        duration: Duration::from_secs(1),
        size: 64,
        rate: Some(200.0),
        insecure,
        timeout: Duration::from_secs(3),
        ..wsreactor::load::Options::default()
    };
    wsreactor::load::run(&options).unwrap()
}

#[test]
fn the_load_generator_speaks_wss_for_echo_and_for_subscribe_over_https() {
    use wsreactor::load::Mode;
    let server = TlsServer::start("load", settings());
    let echo = load(format!("wss://{}/", server.addr), Mode::Echo, true);
    assert_eq!(echo.errors.total, 0, "{:?}", echo.errors);
    assert_eq!(echo.connections.opened, 20);
    assert_eq!(
        (echo.messages.sent, echo.messages.received),
        (200, 200),
        "{:?}",
        echo.messages
    );
    let sub = load(format!("wss://{}/ws/over-tls", server.addr), Mode::Subscribe, true);
    assert_eq!(sub.errors.total, 0, "{:?}", sub.errors);
    let s = sub.subscribe.as_ref().unwrap();
    assert!(s.publish_url.starts_with("https://"), "{}", s.publish_url);
    assert_eq!(s.published.accepted, 200, "{:?}", s.published);
    assert_eq!(s.deliveries.received, 200 * 20, "{:?}", s.deliveries);
    assert_eq!(s.deliveries.missing, 0);
    // Without --insecure the test authority is no system root: every
    // handshake fails, and the run says so.
    let refused = load(format!("wss://{}/", server.addr), Mode::Echo, false);
    assert_eq!(refused.connections.opened, 0, "{:?}", refused.connections);
    assert!(refused.errors.total >= 20, "{:?}", refused.errors);
}

#[test]
fn a_tls_listener_beside_the_plain_one_shares_the_workers_and_the_channels() {
    let (ca, cert, key) = certificates("beside");
    let config = tls::server_config(&cert, &key).unwrap();
    let handle = Builder::new(settings())
        .threads(2)
        .tls_listener("127.0.0.1:0".parse().unwrap(), config)
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let tls_addr = handle.tls_addr().expect("a TLS listener");
    assert_ne!(tls_addr, handle.local_addr());
    let mut server = TlsServer::start("beside-client", settings());
    // Reuse the client side of a TlsServer, pointed at this server.
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(wsreactor::reactor::tls::crypto_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    server.client = Arc::new(client);
    server.addr = tls_addr;
    let mut wss = server.connect();
    wss.upgrade("/ws/both");
    // Plain on the main address: a publish there reaches the TLS subscriber.
    let mut plain = TcpStream::connect(handle.local_addr()).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain
        .write_all(
            b"POST /pub/both HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nmixed",
        )
        .unwrap();
    let mut answer = [0u8; 512];
    let n = plain.read(&mut answer).unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert_eq!(wss.recv(), (0x1, b"mixed".to_vec()));
    drop(wss);
    handle.shutdown();
    handle.join().unwrap();
}

/// `curl` over https, trusting the test's authority, bounded in time:
/// (exit status, stdout).
fn curl(server: &TlsServer, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "3", "--cacert"])
        .arg(&server.ca_file)
        .args(args)
        .output()
        .expect("curl is needed (Debian: apt-get install curl)");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn python_websockets_and_curl_are_peers_over_tls() {
    let server = TlsServer::start("peers", settings());
    // Python's websockets client over ssl: echoes on wss://.
    let python = common::venv::venv_python();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls_client.py");
    let url = format!("wss://{}", server.addr);
    let mut cmd = std::process::Command::new(python);
    cmd.arg(&script).arg(&url).arg(&server.ca_file);
    let (ok, out, err) = common::venv::run_bounded(&mut cmd, Duration::from_secs(30));
    assert!(ok && out.trim() == "ok", "python wss client:\n{out}\n{err}");
    // curl publishes over https; a wss subscriber gets it.
    let mut sub = server.connect();
    sub.upgrade("/ws/curled");
    let base = format!("https://{}", server.addr);
    let (code, body) = curl(
        &server,
        &[
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "from curl",
            &format!("{base}/pub/curled"),
        ],
    );
    assert_eq!(code, Some(0), "{body}");
    assert!(body.contains("\"id\":1"), "{body}");
    assert_eq!(sub.recv(), (0x1, b"from curl".to_vec()));
    // curl long-polls from a cursor, and reads the event stream from its
    // history (until its --max-time: exit 28).
    let (code, body) = curl(&server, &[&format!("{base}/poll/curled?since=0")]);
    assert_eq!(code, Some(0), "{body}");
    assert!(body.contains("from curl"), "{body}");
    let (code, body) = curl(
        &server,
        &[
            "-N",
            "-H",
            "Last-Event-ID: 0",
            "--max-time",
            "1",
            &format!("{base}/sse/curled"),
        ],
    );
    assert_eq!(code, Some(28), "{body}");
    assert!(body.contains("id: 1\ndata: from curl\n"), "{body:?}");
}

/// Read `peer` to its end: `Ok` when the server's `close_notify` came
/// before the TCP EOF (rustls's reader then says `Ok(0)`), else how it
/// ended (`UnexpectedEof`: a bare FIN, a truncation; RFC 8446 §6.1).
fn read_to_close_notify(peer: &mut Peer) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    loop {
        match peer.tls.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("{:?} ({e})", e.kind())),
        }
    }
}

/// Short timers, so that the idle ends come within the peer's read timeout.
fn quick_settings() -> Settings {
    let mut s = settings();
    s.handshake_timeout = Duration::from_millis(300);
    s.idle_timeout = Duration::from_millis(600);
    s.close_timeout = Duration::from_millis(300);
    s
}

#[test]
fn every_end_of_a_tls_connection_sends_close_notify() {
    let server = TlsServer::start("ends", quick_settings());
    let mut failed = Vec::new();
    let mut check = |what: &str, peer: &mut Peer| {
        if let Err(how) = read_to_close_notify(peer) {
            failed.push(format!("{what}: {how}"));
        }
    };
    // The peer's close_notify on a WebSocket: ours answers it (§6.1).
    let mut peer = server.connect();
    peer.upgrade("/");
    peer.tls.conn.send_close_notify();
    peer.tls.flush().unwrap();
    check("after the peer's close_notify", &mut peer);
    // A bare FIN from the peer, without close_notify.
    let mut peer = server.connect();
    peer.upgrade("/");
    peer.tls.sock.shutdown(std::net::Shutdown::Write).unwrap();
    check("after the peer's FIN", &mut peer);
    // A kept-alive connection idle past the handshake timeout.
    let mut peer = server.connect();
    peer.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (head, _) = peer.response();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    check("an idle keep-alive connection", &mut peer);
    // A WebSocket idle past the idle timeout that does not answer the
    // server's ping nor its close (1001): dropped at the close timeout.
    let mut peer = server.connect();
    peer.upgrade("/");
    check("an idle WebSocket", &mut peer);
    // An HTTP error closes the connection after its answer.
    let mut peer = server.connect();
    peer.send(b"NOT HTTP\r\n\r\n");
    check("an HTTP error", &mut peer);
    // The WebSocket close handshake.
    let mut peer = server.connect();
    peer.upgrade("/");
    peer.frame(0x8, &1000u16.to_be_bytes());
    check("the close handshake", &mut peer);
    assert!(failed.is_empty(), "no close_notify before the EOF: {failed:#?}");
}

#[test]
fn server_shutdown_sends_close_notify_on_every_tls_connection() {
    let mut server = TlsServer::start("stop", settings());
    // A kept-alive HTTP connection (dropped at once), and a WebSocket that
    // does not answer the server's close (dropped when the workers stop).
    let mut http = server.connect();
    http.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (head, _) = http.response();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let mut ws = server.connect();
    ws.upgrade("/");
    let handle = server.handle.take().unwrap();
    let stopping = std::thread::spawn(move || {
        handle.shutdown();
        handle.join()
    });
    let http = read_to_close_notify(&mut http);
    let ws = read_to_close_notify(&mut ws);
    stopping.join().unwrap().unwrap();
    assert_eq!((http, ws), (Ok(()), Ok(())), "(HTTP, WebSocket)");
}

#[test]
fn the_load_command_names_an_untrusted_certificate_and_suggests_insecure() {
    // A self-signed certificate for 127.0.0.1, as a test server has.
    let dir = std::env::temp_dir().join(format!("wsreactor-tls-{}-selfsigned", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["serve", "--threads", "1", "--bind", &addr.to_string(), "--tls-cert"])
        .arg(&cert_file)
        .arg("--tls-key")
        .arg(&key_file)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "wsreactor serve did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsreactor"))
        .args(["load", "--url", &format!("wss://{addr}/"), "--connections", "4"])
        .args(["--duration", "1s", "--quiet"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("certificate not trusted (unknown issuer") && text.contains("--insecure"),
        "{text}"
    );
    assert!(!text.contains("socket: other"), "{text}");
}
