//! The publisher's HTTP/1.1, without I/O: a `POST /pub/{channel}` request
//! with its `Content-Length`, and the response read from a buffer with
//! httparse (RFC 9112). Only what a keep-alive publisher needs: a response
//! body must be delimited by `Content-Length` (a chunked one is refused),
//! and `Connection: close` or HTTP/1.0 ends the connection after it.

use std::io::Write as _;
use std::ops::Range;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 8192;
/// Largest response body accepted (a publish answer is a few dozen bytes).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 32;

/// Append a publish request's head for a body of `len` bytes, with
/// `headers` (checked by [`super::options::parse_header`]); the body
/// follows it.
pub fn write_head(out: &mut Vec<u8>, host: &str, path: &str, len: usize, headers: &[(String, String)]) {
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n"
    );
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete response at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Where the body is in the buffer.
    pub body: Range<usize>,
    /// The server closes the connection after this response.
    pub close: bool,
}

impl Response {
    /// Bytes of the buffer this response takes, head and body.
    pub fn len(&self) -> usize {
        self.body.end
    }

    /// Whether the response is empty (never: it has a status line).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Why a response cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.x response.
    Malformed,
    /// Head over [`MAX_HEAD`] or body over [`MAX_BODY`].
    TooLarge,
    /// A body without `Content-Length` (chunked or close-delimited).
    NoLength,
}

impl ResponseError {
    /// A short stable name for the report.
    pub fn kind(self) -> &'static str {
        match self {
            ResponseError::Malformed => "malformed_response",
            ResponseError::TooLarge => "response_too_large",
            ResponseError::NoLength => "response_without_length",
        }
    }
}

/// Read the response at the front of `buf`; `Ok(None)` while incomplete.
pub fn read_response(buf: &[u8]) -> Result<Option<Response>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(ResponseError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let status = resp.code.ok_or(ResponseError::Malformed)?;
    let header = |name: &str| {
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .next()
    };
    let has_token = |name: &str, token: &[u8]| {
        header(name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    // RFC 9112 §6.3: 1xx, 204 and 304 have no body.
    let no_body = status < 200 || status == 204 || status == 304;
    let len = match header("content-length") {
        _ if no_body => 0,
        _ if header("transfer-encoding").is_some() => return Err(ResponseError::NoLength),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(ResponseError::Malformed)?,
        None => return Err(ResponseError::NoLength),
    };
    if len > MAX_BODY {
        return Err(ResponseError::TooLarge);
    }
    if buf.len() < head_len + len {
        return Ok(None);
    }
    let close = resp.version == Some(0) || has_token("connection", b"close");
    Ok(Some(Response {
        status,
        body: head_len..head_len + len,
        close,
    }))
}

/// The answer to an accepted publish: `{"id": N, "subscribers": K}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's id in its channel.
    pub id: u64,
    /// Subscribers it went to.
    pub subscribers: u64,
}

/// Read a 200's body; `None` unless it is the JSON the API promises.
pub fn published(body: &[u8]) -> Option<Published> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(Published {
        id: v.get("id")?.as_u64()?,
        subscribers: v.get("subscribers")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"id\":7,\"subscribers\":1000}";

    #[test]
    fn request_head_has_the_length() {
        let mut out = Vec::new();
        write_head(&mut out, "127.0.0.1:9001", "/pub/news", 64, &[]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /pub/news HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
        assert!(text.ends_with("Content-Length: 64\r\n\r\n"));
    }

    #[test]
    fn a_response_is_read_whole_at_any_split() {
        for cut in 0..OK.len() {
            assert_eq!(read_response(&OK[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = OK.to_vec();
        two.extend_from_slice(b"HTTP/1.1 4");
        let r = read_response(&two).unwrap().unwrap();
        assert_eq!((r.status, r.len(), r.close), (200, OK.len(), false));
        assert_eq!(
            published(&two[r.body]),
            Some(Published {
                id: 7,
                subscribers: 1000
            })
        );
    }

    #[test]
    fn errors_close_and_bodies() {
        let r = read_response(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(r.unwrap().unwrap().close);
        let r = read_response(b"HTTP/1.0 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.status, r.close, r.len()), (204, true, 27));
        assert_eq!(
            read_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ResponseError::NoLength)
        );
        assert_eq!(read_response(b"HTTP/1.1 200 OK\r\n\r\n"), Err(ResponseError::NoLength));
        assert_eq!(read_response(b"SSH-2.0-x\r\n\r\n"), Err(ResponseError::Malformed));
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.resize(MAX_HEAD, b'a');
        assert_eq!(read_response(&huge), Err(ResponseError::TooLarge));
        assert_eq!(
            read_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
            Err(ResponseError::TooLarge)
        );
        assert_eq!(published(b"{\"id\":\"x\"}"), None);
        assert_eq!(published(b"not json"), None);
    }
}
