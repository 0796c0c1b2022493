//! The load generator's HTTP/1.1 responses (a subscriber's, the
//! publisher's), without I/O: the head read with httparse and the body
//! framed by one [`Body`] (RFC 9112 §6.3), whatever the route: `Content-Length`, `chunked`, or until the server closes
//! (an event stream without either). What the server declares is a claim:
//! a length or a chunk size only says how many bytes to expect, and the
//! caller bounds what it keeps.

/// Largest response head accepted.
pub const MAX_HEAD: usize = 8192;
/// Longest chunk-size line (with its extensions) or trailer line.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_HEADERS: usize = 32;

/// Why a response cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.x response, or a body framing that breaks RFC 9112.
    Malformed,
    /// A head over [`MAX_HEAD`], or a body over what the caller keeps.
    TooLarge,
    /// The connection ended inside a body whose end was declared.
    Truncated,
}

impl ResponseError {
    /// A short stable name for the report.
    pub fn kind(self) -> &'static str {
        match self {
            ResponseError::Malformed => "malformed_response",
            ResponseError::TooLarge => "response_too_large",
            ResponseError::Truncated => "truncated_response",
        }
    }
}

/// The head of a response, and what a subscriber needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// The status code.
    pub status: u16,
    /// How the body ends.
    pub body: Body,
    /// The server closes the connection after this response.
    pub close: bool,
    /// `X-Last-Id` (wsreactor's cursor on a 204).
    pub last_id: Option<u64>,
    /// `Etag` and `Last-Modified` (nchan's long-poll cursor).
    pub etag: Option<String>,
    /// See `etag`.
    pub last_modified: Option<String>,
}

/// Read the head at the front of `buf`; `Ok(None)` while incomplete.
pub fn read_head(buf: &[u8]) -> Result<Option<Head>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(ResponseError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let status = resp.code.ok_or(ResponseError::Malformed)?;
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let body = if status < 200 || status == 204 || status == 304 {
        // RFC 9112 §6.3 (1): no body, whatever the headers say.
        Body::Length(0)
    } else if let Some(te) = header("transfer-encoding") {
        // §6.3 (4): chunked must be the last coding; anything else runs
        // until the close.
        match te.rsplit(',').next().map(str::trim) {
            Some(last) if last.eq_ignore_ascii_case("chunked") => Body::Chunked(Chunk::Size),
            _ => Body::UntilClose,
        }
    } else if let Some(v) = header("content-length") {
        Body::Length(v.parse().map_err(|_| ResponseError::Malformed)?)
    } else {
        Body::UntilClose
    };
    let close = resp.version == Some(0) || has_token("connection", "close") || body == Body::UntilClose;
    Ok(Some(Head {
        len,
        status,
        body,
        close,
        last_id: header("x-last-id").and_then(|v| v.parse().ok()),
        etag: header("etag").map(str::to_owned),
        last_modified: header("last-modified").map(str::to_owned),
    }))
}

/// Where a body's framing is, as its bytes go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// This many bytes are left.
    Length(u64),
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1).
    Chunked(Chunk),
    /// Until the server closes the connection.
    UntilClose,
    /// The body is complete.
    Done,
}

/// Within a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the chunk are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until the empty one.
    Trailer,
}

impl Body {
    /// Take the body bytes at the front of `input`: the payload bytes go to
    /// `data` (with chunked framing removed); returns the bytes of `input`
    /// used. Stops at the end of the body ([`Body::Done`]), leaving what
    /// follows for the next response.
    pub fn read(&mut self, input: &[u8], data: &mut dyn FnMut(&[u8])) -> Result<usize, ResponseError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match *self {
                Body::Done => return Ok(at),
                Body::Length(0) => *self = Body::Done,
                _ if rest.is_empty() => return Ok(at),
                Body::Length(left) => {
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    data(&rest[..n]);
                    at += n;
                    *self = Body::Length(left - n as u64);
                }
                Body::UntilClose => {
                    data(rest);
                    return Ok(input.len());
                }
                Body::Chunked(chunk) => match chunk {
                    Chunk::Data(0) => *self = Body::Chunked(Chunk::DataEnd),
                    Chunk::Data(left) => {
                        let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        data(&rest[..n]);
                        at += n;
                        *self = Body::Chunked(Chunk::Data(left - n as u64));
                    }
                    Chunk::Size | Chunk::DataEnd | Chunk::Trailer => {
                        let Some(line) = line(rest)? else { return Ok(at) };
                        at += line.len() + 2;
                        *self = match chunk {
                            Chunk::Size => match chunk_size(line)? {
                                0 => Body::Chunked(Chunk::Trailer),
                                n => Body::Chunked(Chunk::Data(n)),
                            },
                            Chunk::DataEnd if line.is_empty() => Body::Chunked(Chunk::Size),
                            Chunk::DataEnd => return Err(ResponseError::Malformed),
                            _ if line.is_empty() => Body::Done,
                            _ => Body::Chunked(Chunk::Trailer),
                        };
                    }
                },
            }
        }
    }

    /// The connection ended: complete if the body ran until the close.
    pub fn at_eof(&mut self) -> Result<(), ResponseError> {
        match self {
            Body::UntilClose | Body::Done => {
                *self = Body::Done;
                Ok(())
            }
            _ => Err(ResponseError::Truncated),
        }
    }
}

/// A CRLF-ended line at the front of `buf` (without the CRLF); `None`
/// while incomplete.
fn line(buf: &[u8]) -> Result<Option<&[u8]>, ResponseError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i <= MAX_CHUNK_LINE => Ok(Some(&buf[..i])),
        Some(_) => Err(ResponseError::TooLarge),
        None if buf.len() > MAX_CHUNK_LINE + 1 => Err(ResponseError::TooLarge),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, at most 15 of
/// them so that the size fits in 60 bits whatever the server claims.
fn chunk_size(line: &[u8]) -> Result<u64, ResponseError> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = line[..end].trim_ascii();
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(ResponseError::Malformed);
    }
    // Checked as hex digits just above.
    u64::from_str_radix(std::str::from_utf8(hex).map_err(|_| ResponseError::Malformed)?, 16)
        .map_err(|_| ResponseError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` to `body` in pieces of `step` bytes; the data and the
    /// bytes used.
    fn read_in_steps(mut body: Body, input: &[u8], step: usize) -> (Body, Vec<u8>, usize) {
        let mut data = Vec::new();
        let mut buf = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            let n = body.read(&buf, &mut |d| data.extend_from_slice(d)).unwrap();
            buf.drain(..n);
            used += n;
        }
        (body, data, used)
    }

    #[test]
    fn heads_say_how_the_body_ends() {
        let head = |s: &str| read_head(s.as_bytes()).unwrap().unwrap();
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
        assert_eq!((h.status, h.body, h.close), (200, Body::Length(12), false));
        let h = head("HTTP/1.1 204 No Content\r\nX-Last-Id: 41\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((h.body, h.last_id), (Body::Length(0), Some(41)));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.body, Body::Chunked(Chunk::Size));
        let h = head("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
        assert_eq!((h.body, h.close), (Body::UntilClose, true));
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nEtag: 7\r\nLast-Modified: Tue\r\n\r\n");
        assert!(h.close);
        assert_eq!(
            (h.etag.as_deref(), h.last_modified.as_deref()),
            (Some("7"), Some("Tue"))
        );
        assert_eq!(read_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(
            read_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ResponseError::Malformed)
        );
        assert_eq!(read_head(b"SSH-2.0\r\n\r\n"), Err(ResponseError::Malformed));
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(read_head(long.as_bytes()), Err(ResponseError::TooLarge));
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces_and_stop_at_their_end() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, data, used) = read_in_steps(Body::Chunked(Chunk::Size), wire, step);
            assert_eq!(
                (body, data.as_slice()),
                (Body::Done, &b"hello, world"[..]),
                "step {step}"
            );
            assert_eq!(used, wire.len() - b"HTTP/1.1".len());
        }
    }

    #[test]
    fn lengths_stop_at_their_end_and_until_close_takes_all() {
        let (body, data, used) = read_in_steps(Body::Length(4), b"abcdefg", 3);
        assert_eq!((body, data.as_slice(), used), (Body::Done, &b"abcd"[..], 4));
        let (mut body, data, _) = read_in_steps(Body::UntilClose, b"data: 1\n\n", 4);
        assert_eq!(data, b"data: 1\n\n");
        assert_eq!(body.at_eof(), Ok(()));
        assert_eq!(Body::Length(3).at_eof(), Err(ResponseError::Truncated));
        assert_eq!(Body::Chunked(Chunk::Data(1)).at_eof(), Err(ResponseError::Truncated));
    }

    #[test]
    fn hostile_chunk_framing_is_refused_not_believed() {
        let refuse = |wire: &[u8]| Body::Chunked(Chunk::Size).read(wire, &mut |_| {}).unwrap_err();
        // A size that does not fit, or is not hex, or is missing.
        assert_eq!(refuse(b"fffffffffffffffff\r\n"), ResponseError::Malformed);
        assert_eq!(refuse(b"-1\r\n"), ResponseError::Malformed);
        assert_eq!(refuse(b"\r\n"), ResponseError::Malformed);
        // No CRLF after the data.
        assert_eq!(refuse(b"2\r\nabXY\r\n"), ResponseError::Malformed);
        // A size line that never ends.
        assert_eq!(refuse(&[b'1'; MAX_CHUNK_LINE + 2]), ResponseError::TooLarge);
        // A large declared size allocates nothing: the data goes by as it comes.
        let mut body = Body::Chunked(Chunk::Size);
        let used = body
            .read(b"fffffffffffffff\r\nab", &mut |d| assert_eq!(d, b"ab"))
            .unwrap();
        assert_eq!((used, body), (19, Body::Chunked(Chunk::Data(0xfff_ffff_ffff_fffd))));
    }
}
