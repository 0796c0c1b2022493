//! The HTTP/1.1 request head and response head (RFC 9112), as much as the
//! opening handshake and plain endpoints need.
//!
//! The end of a head is found incrementally ([`HeadScanner`]) so that a head
//! trickling in a byte at a time is not re-scanned from its start on every
//! read; httparse then parses the complete head once. [`framing`] holds the
//! checks every request passes before it is routed (its `Host`, its body's
//! length), [`date`] the `Date` header's format.

pub mod date;
pub mod framing;

pub use date::{rfc3339, HttpDate};
pub use framing::BodyFraming;

use std::fmt;

/// Headers accepted in one request; more gets 431.
pub const MAX_HEADERS: usize = 64;

/// Why a request head could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP/1.x.
    Malformed,
    /// The head is larger than the configured limit, or has too many headers.
    HeadTooLarge,
    /// No `Host` in HTTP/1.1, or more than one (RFC 9112 §3.2).
    Host,
    /// A `Content-Length` that is not one number (RFC 9110 §8.6, RFC 9112 §6.3).
    ContentLength,
    /// A `Transfer-Encoding`, which we do not implement (RFC 9112 §6.1).
    TransferEncoding,
    /// A body declared larger than anything we would read.
    BodyTooLarge,
}

impl HttpError {
    /// A short stable name for metrics and logs.
    pub fn kind(self) -> &'static str {
        match self {
            HttpError::Malformed => "malformed_http",
            HttpError::HeadTooLarge => "head_too_large",
            HttpError::Host => "bad_host",
            HttpError::ContentLength => "bad_content_length",
            HttpError::TransferEncoding => "transfer_encoding",
            HttpError::BodyTooLarge => "body_too_large",
        }
    }

    /// The status this error is answered with.
    pub fn status(self) -> Status {
        match self {
            HttpError::Malformed | HttpError::Host | HttpError::ContentLength => Status::BAD_REQUEST,
            HttpError::HeadTooLarge => Status::HEADERS_TOO_LARGE,
            HttpError::TransferEncoding => Status::NOT_IMPLEMENTED,
            HttpError::BodyTooLarge => Status::PAYLOAD_TOO_LARGE,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::Malformed => "malformed request head",
            HttpError::HeadTooLarge => "request head too large",
            HttpError::Host => "an HTTP/1.1 request needs exactly one Host header",
            HttpError::ContentLength => "Content-Length must be one number of digits",
            HttpError::TransferEncoding => "Transfer-Encoding is not supported: send the body with Content-Length",
            HttpError::BodyTooLarge => "request body too large",
        })
    }
}

impl std::error::Error for HttpError {}

/// Finds the blank line that ends a head, resuming where the last call stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadScanner {
    scanned: usize,
}

impl HeadScanner {
    /// Look for `\r\n\r\n` in `buf`, which holds everything received so far
    /// for this head. Returns the head's length including the blank line.
    /// Over `limit` bytes without an end is [`HttpError::HeadTooLarge`].
    pub fn scan(&mut self, buf: &[u8], limit: usize) -> Result<Option<usize>, HttpError> {
        // Back up 3 bytes: the terminator may straddle two reads.
        let from = self.scanned.saturating_sub(3);
        let window = &buf[from..buf.len().min(limit)];
        if let Some(i) = window.windows(4).position(|w| w == b"\r\n\r\n") {
            self.scanned = 0;
            return Ok(Some(from + i + 4));
        }
        if buf.len() >= limit {
            return Err(HttpError::HeadTooLarge);
        }
        self.scanned = buf.len();
        Ok(None)
    }
}

/// A parsed request head, borrowing from the receive buffer.
#[derive(Debug)]
pub struct RequestHead<'b, 'h> {
    /// Request method, e.g. `GET`.
    pub method: &'b str,
    /// Request target as sent (path and query).
    pub target: &'b str,
    /// Minor version: 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The headers in order.
    pub headers: &'h [httparse::Header<'b>],
}

impl<'b, 'h> RequestHead<'b, 'h> {
    /// Parse a complete head (as delimited by [`HeadScanner`]).
    pub fn parse(head: &'b [u8], headers: &'h mut [httparse::Header<'b>]) -> Result<Self, HttpError> {
        let mut req = httparse::Request::new(headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HttpError::Malformed),
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
            Err(_) => return Err(HttpError::Malformed),
        }
        let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version) else {
            return Err(HttpError::Malformed);
        };
        let headers = req.headers;
        Ok(RequestHead {
            method,
            target,
            minor_version,
            headers,
        })
    }

    /// The target in origin form: an absolute-form target
    /// (`http://host:port/path?q`, RFC 9112 §3.2.2, which a server MUST
    /// accept) without its scheme and authority.
    fn origin_form(&self) -> &'b str {
        let t = self.target;
        let Some((scheme, rest)) = t.split_once("://") else {
            return t;
        };
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return t;
        }
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            // `http://host?q` and `http://host` name the path `/`.
            _ => "/",
        }
    }

    /// The path, without the query.
    pub fn path(&self) -> &'b str {
        let t = self.origin_form();
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// The query string, without `?` (an authority holds no `?`, so this
    /// is the same in absolute form).
    pub fn query(&self) -> Option<&'b str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// All values of a header (case-insensitive name).
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The single value of a header; `Err` if it appears more than once.
    pub fn single(&self, name: &str) -> Result<Option<&'b [u8]>, HttpError> {
        let mut values = self.values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(HttpError::Malformed);
        }
        Ok(first)
    }

    /// Does a comma-separated header (any of its occurrences) list `token`,
    /// case-insensitively (RFC 9110 §5.6.1)?
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Does the client want the connection closed after the response?
    pub fn wants_close(&self) -> bool {
        self.minor_version == 0 && !self.has_token("connection", "keep-alive") || self.has_token("connection", "close")
    }
}

/// An HTTP status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// 101
    pub const SWITCHING_PROTOCOLS: Status = Status(101);
    /// 200
    pub const OK: Status = Status(200);
    /// 204
    pub const NO_CONTENT: Status = Status(204);
    /// 207 (RFC 4918 §11.1): the body says what became of each part.
    pub const MULTI_STATUS: Status = Status(207);
    /// 304 (RFC 9110 §15.4.5): the client's cached copy is current.
    pub const NOT_MODIFIED: Status = Status(304);
    /// 400
    pub const BAD_REQUEST: Status = Status(400);
    /// 401
    pub const UNAUTHORIZED: Status = Status(401);
    /// 403
    pub const FORBIDDEN: Status = Status(403);
    /// 404
    pub const NOT_FOUND: Status = Status(404);
    /// 405
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 408
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 411
    pub const LENGTH_REQUIRED: Status = Status(411);
    /// 413
    pub const PAYLOAD_TOO_LARGE: Status = Status(413);
    /// 426
    pub const UPGRADE_REQUIRED: Status = Status(426);
    /// 429 (RFC 6585 §4)
    pub const TOO_MANY_REQUESTS: Status = Status(429);
    /// 431
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    /// 500
    pub const INTERNAL_ERROR: Status = Status(500);
    /// 501
    pub const NOT_IMPLEMENTED: Status = Status(501);
    /// 503
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    /// 504
    pub const GATEWAY_TIMEOUT: Status = Status(504);

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self.0 {
            101 => "Switching Protocols",
            200 => "OK",
            204 => "No Content",
            207 => "Multi-Status",
            304 => "Not Modified",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            429 => "Too Many Requests",
            _ => "Unknown",
        }
    }
}

/// Append a response head: status line, `headers`, `Date` (RFC 9110
/// §6.6.1: an origin server with a clock MUST send it in 2xx to 4xx
/// responses), `Content-Length` if given, `Connection: close` when `close`,
/// and the blank line. For a response whose body is queued separately.
pub fn write_head(
    out: &mut Vec<u8>,
    status: Status,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
    close: bool,
    date: &HttpDate,
) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status.0, status.reason());
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if status.0 >= 200 {
        let _ = write!(out, "Date: {}\r\n", date.as_str());
    }
    if let Some(n) = content_length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_end_split_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        for cut in 0..head.len() {
            let mut s = HeadScanner::default();
            let first = s.scan(&head[..cut], 8192).unwrap();
            let end = first.or_else(|| s.scan(head, 8192).unwrap());
            assert_eq!(end, Some(head.len() - 4), "cut {cut}");
        }
    }

    #[test]
    fn scanner_enforces_limit() {
        let mut s = HeadScanner::default();
        assert_eq!(s.scan(&[b'a'; 100], 100), Err(HttpError::HeadTooLarge));
        // A head that ends exactly at the limit is fine.
        let mut s = HeadScanner::default();
        assert_eq!(s.scan(b"GET / HTTP/1.1\r\n\r\n", 18), Ok(Some(18)));
    }

    #[test]
    fn parses_head_and_tokens() {
        let raw = b"GET /a?b=1 HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nX: 1\r\nX: 2\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = RequestHead::parse(raw, &mut headers).unwrap();
        assert_eq!((head.method, head.path(), head.query()), ("GET", "/a", Some("b=1")));
        assert!(head.has_token("connection", "upgrade"));
        assert!(!head.has_token("connection", "close"));
        assert_eq!(head.single("x"), Err(HttpError::Malformed));
        assert!(!head.wants_close());
    }

    #[test]
    fn rejects_garbage_and_too_many_headers() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert_eq!(
            RequestHead::parse(b"\x16\x03\x01garbage\r\n\r\n", &mut headers).unwrap_err(),
            HttpError::Malformed
        );
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert_eq!(
            RequestHead::parse(&raw, &mut headers).unwrap_err(),
            HttpError::HeadTooLarge
        );
    }

    #[test]
    fn writes_response() {
        let mut out = Vec::new();
        let date = HttpDate::from_unix(784_111_777);
        write_head(
            &mut out,
            Status::NOT_FOUND,
            &[("Content-Type", "text/plain")],
            Some(3),
            true,
            &date,
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
               Content-Length: 3\r\nConnection: close\r\n\r\n"[..]
        );
    }

    #[test]
    fn absolute_form_targets_are_origin_form_underneath() {
        let cases = [
            ("/a?b=1", "/a", Some("b=1")),
            ("http://h:1/a?b=1", "/a", Some("b=1")),
            ("HTTPS://h/a/b", "/a/b", None),
            ("http://h", "/", None),
            ("http://h?x=1", "/", Some("x=1")),
            ("http://h/?since=5", "/", Some("since=5")),
            ("ftp://h/a", "ftp://h/a", None),
            ("*", "*", None),
        ];
        for (target, path, query) in cases {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let head = RequestHead::parse(raw.as_bytes(), &mut headers).unwrap();
            assert_eq!((head.path(), head.query()), (path, query), "{target}");
        }
    }
}
