//! The opening handshake (RFC 6455 §4), both sides.
//!
//! Server: [`validate_upgrade`] checks a parsed request head against §4.2.1
//! and yields the `Sec-WebSocket-Accept` value; [`write_switching_protocols`]
//! writes the 101. Routing (which paths upgrade) is the server's business.
//! Client: [`ClientHandshake`] writes the request and checks the 101 against
//! the key it sent (§4.1, "the client MUST _Fail the WebSocket Connection_").

use super::http::{HttpError, RequestHead, Status, MAX_HEADERS};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};
use std::fmt;

/// The GUID appended to the key (§1.3).
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Length of an accept value: base64 of a 20-byte SHA-1.
pub const ACCEPT_LEN: usize = 28;

/// `base64(SHA-1(key + GUID))` (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; ACCEPT_LEN];
    // 20 bytes always encode to exactly 28.
    let n = BASE64.encode_slice(digest, &mut out).unwrap_or(0);
    debug_assert_eq!(n, ACCEPT_LEN);
    out
}

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head itself is unusable.
    Http(HttpError),
    /// Not GET (§4.1: "The method of the request MUST be GET").
    MethodNotAllowed,
    /// HTTP/1.0, or no `Upgrade: websocket` / `Connection: Upgrade`.
    NotUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13 (§4.2.2: 426 with the version we speak).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64 (§4.1).
    BadKey,
}

impl HandshakeError {
    /// The status this refusal is answered with.
    pub fn status(self) -> Status {
        match self {
            HandshakeError::Http(e) => e.status(),
            HandshakeError::MethodNotAllowed => Status::METHOD_NOT_ALLOWED,
            HandshakeError::NotUpgrade | HandshakeError::BadKey => Status::BAD_REQUEST,
            HandshakeError::UnsupportedVersion => Status::UPGRADE_REQUIRED,
        }
    }

    /// Headers the refusal must carry.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::MethodNotAllowed => &[("Allow", "GET")],
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")],
            _ => &[],
        }
    }

    /// A short stable name for metrics and logs.
    pub fn kind(self) -> &'static str {
        match self {
            HandshakeError::Http(e) => e.kind(),
            HandshakeError::MethodNotAllowed => "method_not_allowed",
            HandshakeError::NotUpgrade => "not_upgrade",
            HandshakeError::UnsupportedVersion => "unsupported_version",
            HandshakeError::BadKey => "bad_key",
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Http(e) => e.fmt(f),
            HandshakeError::MethodNotAllowed => f.write_str("method is not GET"),
            HandshakeError::NotUpgrade => f.write_str("not a WebSocket upgrade request"),
            HandshakeError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            HandshakeError::BadKey => f.write_str("missing or malformed Sec-WebSocket-Key"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<HttpError> for HandshakeError {
    fn from(e: HttpError) -> Self {
        HandshakeError::Http(e)
    }
}

/// An acceptable upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade<'b> {
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub accept: [u8; ACCEPT_LEN],
    /// Subprotocols the client offers, in its order of preference (§4.1 item 10).
    pub protocols: Vec<&'b str>,
    /// Each `Sec-WebSocket-Extensions` value, in order (§9.1).
    pub extensions: Vec<&'b str>,
}

/// Check a request head against §4.2.1.
pub fn validate_upgrade<'b>(head: &RequestHead<'b, '_>) -> Result<Upgrade<'b>, HandshakeError> {
    if head.method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    // §4.2.1 items 1, 3, 4: HTTP/1.1 or higher, Upgrade and Connection tokens.
    if head.minor_version < 1 || !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        return Err(HandshakeError::NotUpgrade);
    }
    // Item 6, and §4.4: a version we do not speak gets 426 and ours.
    if head.single("sec-websocket-version")?.map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    // Item 5: a base64-encoded value that decodes to 16 bytes.
    let key = head
        .single("sec-websocket-key")
        .map_err(|_| HandshakeError::BadKey)?
        .map(<[u8]>::trim_ascii)
        .ok_or(HandshakeError::BadKey)?;
    let mut decoded = [0u8; 18];
    match BASE64.decode_slice(key, &mut decoded) {
        Ok(16) => {}
        _ => return Err(HandshakeError::BadKey),
    }
    let protocols = head
        .values("sec-websocket-protocol")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let extensions = head
        .values("sec-websocket-extensions")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    Ok(Upgrade {
        accept: accept_key(key),
        protocols,
        extensions,
    })
}

/// Append the 101 response (§4.2.2 step 5), with the chosen subprotocol and
/// extension response if any.
pub fn write_switching_protocols(
    out: &mut Vec<u8>,
    upgrade: &Upgrade<'_>,
    protocol: Option<&str>,
    extensions: Option<&str>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&upgrade.accept);
    out.extend_from_slice(b"\r\n");
    for (name, value) in [
        ("Sec-WebSocket-Protocol", protocol),
        ("Sec-WebSocket-Extensions", extensions),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Why a server's answer to our upgrade request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// Not an HTTP/1.1 response, or too large.
    Http(HttpError),
    /// A status other than 101.
    Status(u16),
    /// 101 without `Upgrade: websocket` and `Connection: Upgrade` (§4.1).
    NotUpgrade,
    /// `Sec-WebSocket-Accept` missing or not the value for our key (§4.1).
    BadAccept,
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Http(e) => e.fmt(f),
            ClientHandshakeError::Status(s) => write!(f, "handshake answered with status {s}"),
            ClientHandshakeError::NotUpgrade => f.write_str("101 without the upgrade headers"),
            ClientHandshakeError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

impl ClientHandshakeError {
    /// A short stable name for metrics and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientHandshakeError::Http(e) => e.kind(),
            ClientHandshakeError::Status(_) => "status",
            ClientHandshakeError::NotUpgrade => "not_upgrade",
            ClientHandshakeError::BadAccept => "bad_accept",
        }
    }
}

/// The server's accepted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// Bytes of the response head; what follows is WebSocket data.
    pub head_len: usize,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
}

/// The client side of the opening handshake.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: [u8; 24],
    accept: [u8; ACCEPT_LEN],
}

impl ClientHandshake {
    /// A handshake with `nonce` as the key (§4.1: 16 random bytes, chosen by the caller).
    pub fn new(nonce: [u8; 16]) -> Self {
        let mut key = [0u8; 24];
        let _ = BASE64.encode_slice(nonce, &mut key);
        ClientHandshake {
            accept: accept_key(&key),
            key,
        }
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        std::str::from_utf8(&self.key).unwrap_or_default()
    }

    /// Append the upgrade request for `target` (path and query) on `host`.
    pub fn write_request(&self, out: &mut Vec<u8>, host: &str, target: &str, extra_headers: &[(&str, &str)]) {
        use std::io::Write;
        let _ = write!(
            out,
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.key()
        );
        for (name, value) in extra_headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Check the response at the front of `buf`; `Ok(None)` means incomplete.
    pub fn read_response(&self, buf: &[u8], limit: usize) -> Result<Option<ClientAccepted>, ClientHandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() >= limit => {
                return Err(ClientHandshakeError::Http(HttpError::HeadTooLarge))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ClientHandshakeError::Http(HttpError::Malformed)),
        };
        match resp.code {
            Some(101) => {}
            Some(code) => return Err(ClientHandshakeError::Status(code)),
            None => return Err(ClientHandshakeError::Http(HttpError::Malformed)),
        }
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let has = |name: &str, token: &str| {
            header(name).is_some_and(|v| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        if !has("upgrade", "websocket") || !has("connection", "upgrade") {
            return Err(ClientHandshakeError::NotUpgrade);
        }
        if header("sec-websocket-accept").map(<[u8]>::trim_ascii) != Some(&self.accept[..]) {
            return Err(ClientHandshakeError::BadAccept);
        }
        let protocol = header("sec-websocket-protocol")
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|s| s.trim().to_string());
        Ok(Some(ClientAccepted { head_len, protocol }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_and_validate(raw: &[u8]) -> Result<[u8; ACCEPT_LEN], HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = RequestHead::parse(raw, &mut headers)?;
        validate_upgrade(&head).map(|u| u.accept)
    }

    const GOOD: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn accept_key_matches_rfc_example() {
        // §1.3: "dGhlIHNhbXBsZSBub25jZQ==" → "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(&parse_and_validate(GOOD).unwrap(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn with(find: &str, replace: &str) -> Vec<u8> {
        String::from_utf8(GOOD.to_vec())
            .unwrap()
            .replace(find, replace)
            .into_bytes()
    }

    #[test]
    fn refusals_map_to_statuses() {
        let cases: [(Vec<u8>, u16); 8] = [
            (with("GET", "POST"), 405),
            (with("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400),
            (with("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (with("dGhlIHNhbXBsZSBub25jZQ==", "!!!not base64!!!!!!!!!!="), 400),
            (with("Version: 13", "Version: 8"), 426),
            (with("Sec-WebSocket-Version: 13\r\n", ""), 426),
            (with("Upgrade: websocket\r\n", ""), 400),
            (with("HTTP/1.1", "HTTP/1.0"), 400),
        ];
        for (raw, status) in cases {
            let err = parse_and_validate(&raw).unwrap_err();
            assert_eq!(err.status().0, status, "{}", String::from_utf8_lossy(&raw));
        }
    }

    #[test]
    fn collects_offered_subprotocols() {
        let raw = with(
            "Version: 13\r\n",
            "Version: 13\r\nSec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n",
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = RequestHead::parse(&raw, &mut headers).unwrap();
        assert_eq!(validate_upgrade(&head).unwrap().protocols, ["a", "b", "c"]);
    }

    #[test]
    fn client_and_server_agree() {
        let client = ClientHandshake::new(*b"0123456789abcdef");
        let mut request = Vec::new();
        client.write_request(&mut request, "127.0.0.1:9001", "/", &[]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = RequestHead::parse(&request, &mut headers).unwrap();
        let upgrade = validate_upgrade(&head).unwrap();
        let mut response = Vec::new();
        write_switching_protocols(&mut response, &upgrade, None, None);
        let n = response.len();
        response.extend_from_slice(b"\x81\x00");
        for cut in 0..n {
            assert_eq!(client.read_response(&response[..cut], 8192), Ok(None));
        }
        let accepted = client.read_response(&response, 8192).unwrap().unwrap();
        assert_eq!(accepted.head_len, n);
    }

    #[test]
    fn client_rejects_wrong_accept_and_status() {
        let client = ClientHandshake::new([7; 16]);
        let other = ClientHandshake::new([8; 16]);
        let upgrade = Upgrade {
            accept: accept_key(other.key().as_bytes()),
            protocols: vec![],
            extensions: vec![],
        };
        let mut response = Vec::new();
        write_switching_protocols(&mut response, &upgrade, None, None);
        assert_eq!(
            client.read_response(&response, 8192),
            Err(ClientHandshakeError::BadAccept)
        );
        let refused = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            client.read_response(refused, 8192),
            Err(ClientHandshakeError::Status(503))
        );
    }
}
