//! The publisher's HTTP/1.1, without I/O: a `POST /pub/{channel}` request
//! with its `Content-Length`, and the response read from a buffer
//! ([`super::response`], RFC 9112). Only what a keep-alive publisher needs: a response
//! body must be delimited by `Content-Length` (a chunked one is refused),
//! and `Connection: close` or HTTP/1.0 ends the connection after it.

use super::response::{self, Body};
use std::io::Write as _;
use std::ops::Range;

/// Largest response body accepted (a publish answer is a few dozen bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// Append a publish request's head for a body of `len` bytes (text or
/// binary, as `text` says), with `headers` (checked by
/// [`super::options::parse_header`]); the body follows it.
pub fn write_head(out: &mut Vec<u8>, host: &str, path: &str, len: usize, text: bool, headers: &[(String, String)]) {
    let kind = if text {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\n"
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
    /// Head over [`response::MAX_HEAD`] or body over [`MAX_BODY`].
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
    let head = match response::read_head(buf) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(response::ResponseError::TooLarge) => return Err(ResponseError::TooLarge),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let Body::Length(len) = head.body else {
        return Err(ResponseError::NoLength);
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_BODY {
        return Err(ResponseError::TooLarge);
    }
    if buf.len() < head.len + len {
        return Ok(None);
    }
    Ok(Some(Response {
        status: head.status,
        body: head.len..head.len + len,
        close: head.close,
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

/// nchan's answer to a publish (`Accept: application/json`): `201` or
/// `202` with `{"messages": N, "subscribers": K, "last_message_id": "T:I"}`;
/// its ids are strings of a time and an index, not numbers, so only the
/// subscribers are taken. `None` unless it is that JSON.
pub fn nchan_published(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("last_message_id")?.as_str()?;
    v.get("subscribers")?.as_u64()
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

    #[test]
    fn nchan_answers_are_read_for_their_subscribers() {
        let body = br#"{"messages": 3, "requested": -1, "subscribers": 12, "last_message_id": "1796156099:0" }"#;
        assert_eq!(nchan_published(body), Some(12));
        assert_eq!(nchan_published(br#"{"id":7,"subscribers":1000}"#), None);
    }

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"id\":7,\"subscribers\":1000}";

    #[test]
    fn request_head_has_the_length() {
        let mut out = Vec::new();
        write_head(&mut out, "127.0.0.1:9001", "/pub/news", 64, false, &[]);
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
        huge.resize(response::MAX_HEAD, b'a');
        assert_eq!(read_response(&huge), Err(ResponseError::TooLarge));
        assert_eq!(
            read_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
            Err(ResponseError::TooLarge)
        );
        assert_eq!(published(b"{\"id\":\"x\"}"), None);
        assert_eq!(published(b"not json"), None);
    }
}
