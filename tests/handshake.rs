//! The opening handshake and plain HTTP over real sockets (RFC 6455 §4.2,
//! RFC 9112): the 101 and its accept value, each refusal with its status,
//! and the connection closed after every refusal.

mod common;

use common::{upgrade_request, Client, Response, Server, ACCEPT};

/// Send `raw` on a fresh connection; the answer must be `status`, marked
/// `Connection: close`, and followed by EOF.
fn refused(server: &Server, raw: &[u8], status: u16) -> Response {
    let mut c = Client::connect(server.addr);
    c.write(raw);
    let r = c.read_response();
    assert_eq!(r.status, status, "{r:?} for {:?}", String::from_utf8_lossy(raw));
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    c.expect_eof();
    r
}

/// The good upgrade request with `find` replaced by `replace`.
fn with(find: &str, replace: &str) -> Vec<u8> {
    let good = upgrade_request();
    assert!(good.contains(find), "{find:?}");
    good.replace(find, replace).into_bytes()
}

#[test]
fn handshake_upgrade_answers_101_with_rfc_accept() {
    let server = Server::start(common::settings());
    let mut c = Client::connect(server.addr);
    c.write(upgrade_request().as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 101);
    // §1.3 and §4.2.2 step 5.4: the RFC's own example.
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    assert!(r.header("upgrade").unwrap().eq_ignore_ascii_case("websocket"));
    assert!(r.header("connection").unwrap().eq_ignore_ascii_case("upgrade"));
    // A 101 has no body: the next bytes are frames.
    assert!(r.body.is_empty());
    c.echo(common::TEXT, b"after the handshake");
    assert!(server.wait_for(|s| &s.upgrades, 1, common::IO_TIMEOUT));
}

#[test]
fn handshake_frames_in_the_same_segment_as_the_request() {
    // The upgrade hands its leftover bytes to the WebSocket.
    let server = Server::start(common::settings());
    let mut c = Client::connect(server.addr);
    let mut bytes = upgrade_request().into_bytes();
    bytes.extend_from_slice(&common::frame(common::TEXT, b"early"));
    c.write(&bytes);
    assert_eq!(c.read_response().status, 101);
    let f = c.recv();
    assert_eq!((f.opcode, f.payload.as_slice()), (common::TEXT, &b"early"[..]));
}

#[test]
fn handshake_with_tungstenite_client() {
    use tungstenite::Message;
    let server = Server::start(common::settings());
    let stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let url = format!("ws://{}/", server.addr);
    let (mut ws, resp) = tungstenite::client(url, stream).unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::Text("hello".into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Text("hello".into()));
    ws.send(Message::Binary(vec![0, 1, 2, 255])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(vec![0, 1, 2, 255]));
    ws.close(None).unwrap();
    // The server's close reply, then the end of the stream.
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn handshake_missing_key_is_400() {
    let server = Server::start(common::settings());
    refused(
        &server,
        &with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        400,
    );
}

#[test]
fn handshake_malformed_key_is_400() {
    let server = Server::start(common::settings());
    // Not base64, and base64 of 5 bytes instead of 16 (§4.1 item 7).
    refused(&server, &with("dGhlIHNhbXBsZSBub25jZQ==", "!!not base64!!"), 400);
    refused(&server, &with("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400);
}

#[test]
fn handshake_version_8_is_426_naming_13() {
    let server = Server::start(common::settings());
    // §4.4: answer with the versions we speak.
    let r = refused(&server, &with("Version: 13", "Version: 8"), 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"), "{r:?}");
}

#[test]
fn handshake_post_is_405() {
    let server = Server::start(common::settings());
    let r = refused(&server, &with("GET /", "POST /"), 405);
    assert_eq!(r.header("allow"), Some("GET"), "{r:?}");
}

#[test]
fn handshake_head_over_8_kib_is_431() {
    let server = Server::start(common::settings());
    let big = format!("Host: 127.0.0.1\r\nX-Pad: {}\r\n", "a".repeat(9000));
    refused(&server, &with("Host: 127.0.0.1\r\n", &big), 431);
}

#[test]
fn handshake_head_of_exactly_the_limit_is_accepted() {
    let server = Server::start(common::settings());
    let limit = common::settings().max_request_head;
    let padded = |n: usize| {
        with(
            "Host: 127.0.0.1\r\n",
            &format!("Host: 127.0.0.1\r\nX-Pad: {}\r\n", "a".repeat(n)),
        )
    };
    let n = limit - padded(0).len();
    let raw = padded(n);
    assert_eq!(raw.len(), limit);
    let mut c = Client::connect(server.addr);
    c.write(&raw);
    assert_eq!(c.read_response().status, 101);
    // One byte more is refused.
    let raw = padded(n + 1);
    refused(&server, &raw, 431);
}

#[test]
fn handshake_unknown_path_is_404() {
    let server = Server::start(common::settings());
    refused(&server, &with("GET / ", "GET /nowhere "), 404);
}

#[test]
fn handshake_garbage_is_400() {
    let server = Server::start(common::settings());
    refused(&server, b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400);
    refused(&server, b"HELLO THERE\r\n\r\n", 400);
}

#[test]
fn handshake_tls_client_hello_is_400_at_once() {
    // No blank line ever comes: the answer must not wait for the handshake
    // timeout (10 s by default).
    let server = Server::start(wsreactor::reactor::settings::Settings::default());
    let started = std::time::Instant::now();
    refused(&server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn handshake_not_an_upgrade_is_400() {
    let server = Server::start(common::settings());
    refused(&server, &with("Upgrade: websocket\r\n", ""), 400);
    refused(&server, &with("HTTP/1.1", "HTTP/1.0"), 400);
}

#[test]
fn healthz_answers_200_and_keeps_the_connection() {
    let server = Server::start(common::settings());
    let mut c = Client::connect(server.addr);
    for _ in 0..2 {
        c.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{r:?}");
        assert_eq!(r.header("connection"), None, "{r:?}");
    }
    // Asking for the close gets it.
    c.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    c.expect_eof();
}

#[test]
fn healthz_pipelined_requests_are_all_answered() {
    let server = Server::start(common::settings());
    let mut c = Client::connect(server.addr);
    // Both requests in one write: the second is already buffered when the
    // first is answered.
    c.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    let r = c.read_response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    c.expect_eof();
}

#[test]
fn healthz_post_is_405() {
    let server = Server::start(common::settings());
    refused(
        &server,
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        405,
    );
}
