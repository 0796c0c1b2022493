//! What every request must satisfy before it is routed, decided in one
//! place whatever its route: its `Host` (RFC 9112 §3.2) and how its body is
//! delimited (RFC 9112 §6.3).
//!
//! Framing is where request smuggling lives: if two readers of one byte
//! stream disagree on where a body ends, the rest of the body becomes a
//! second request for one of them. So there is one function,
//! [`RequestHead::check`], and the reactor calls it for every request before
//! it looks at the route; a route then only decides whether it takes the
//! body it was told about.

use super::{HttpError, RequestHead};

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither `Transfer-Encoding` nor `Content-Length` (rule 7).
    None,
    /// Exactly this many bytes follow the head (rule 6), maybe 0. A claim
    /// of the peer's: it bounds what is read, it sizes nothing.
    Length(u64),
}

impl BodyFraming {
    /// Bytes of body that follow the head.
    pub fn len(self) -> u64 {
        match self {
            BodyFraming::None => 0,
            BodyFraming::Length(n) => n,
        }
    }

    /// No byte of body follows the head.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl<'b> RequestHead<'b, '_> {
    /// The checks every request passes before routing: a `Host` (one, a
    /// valid host and port, and in HTTP/1.1 present: RFC 9112 §3.2, "MUST
    /// respond with a 400"), and its body's framing.
    ///
    /// - Any `Transfer-Encoding`: we implement none (chunked included), so
    ///   501 (RFC 9112 §6.1: a server that does not understand a transfer
    ///   coding SHOULD answer 501); the connection then closes, because the
    ///   body's end cannot be found (§6.3 rule 4).
    /// - `Content-Length` must be `1*DIGIT` (RFC 9110 §8.6): `+5`, `-5`,
    ///   `0x5` and an empty value are 400. Several values (repeated lines or
    ///   a list) must all be the same number, else 400 (§6.3 rule 5: an
    ///   unrecoverable error); the same number repeated is that number.
    /// - A number too large to represent is [`HttpError::BodyTooLarge`].
    pub fn check(&self) -> Result<BodyFraming, HttpError> {
        let mut hosts = self.values("host");
        match (hosts.next(), hosts.next()) {
            (_, Some(_)) => return Err(HttpError::Host),
            (None, None) if self.minor_version >= 1 => return Err(HttpError::Host),
            (Some(host), None) if !host.iter().all(|&b| is_host_byte(b)) => return Err(HttpError::Host),
            _ => {}
        }
        if self.values("transfer-encoding").next().is_some() {
            return Err(HttpError::TransferEncoding);
        }
        let mut length = None;
        for value in self.values("content-length") {
            for item in value.split(|&b| b == b',') {
                let n = content_length(item.trim_ascii())?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::ContentLength);
                }
                length = Some(n);
            }
        }
        Ok(length.map_or(BodyFraming::None, BodyFraming::Length))
    }
}

/// A byte that may appear in `Host` = uri-host [ ":" port ] (RFC 3986
/// §3.2.2: reg-name's unreserved, pct-encoded and sub-delims, an IP
/// literal's brackets, and the port's colon). Anything else is "a Host
/// header field with an invalid field value" (RFC 9112 §3.2): 400.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b)
}

/// One `Content-Length` value: digits only, at least one.
fn content_length(v: &[u8]) -> Result<u64, HttpError> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::ContentLength);
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(HttpError::BodyTooLarge)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::MAX_HEADERS;

    fn check(raw: &str) -> Result<BodyFraming, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        RequestHead::parse(raw.as_bytes(), &mut headers)?.check()
    }

    fn with(lines: &str) -> Result<BodyFraming, HttpError> {
        check(&format!("POST /pub/a HTTP/1.1\r\nHost: x\r\n{lines}\r\n"))
    }

    #[test]
    fn lengths() {
        assert_eq!(with(""), Ok(BodyFraming::None));
        assert_eq!(with("Content-Length: 0\r\n"), Ok(BodyFraming::Length(0)));
        assert_eq!(with("Content-Length: 5\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(with("Content-Length:  005 \r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(with("Content-Length: 5, 5\r\n"), Ok(BodyFraming::Length(5)));
        assert_eq!(
            with("Content-Length: 5\r\ncontent-length: 5\r\n"),
            Ok(BodyFraming::Length(5))
        );
        assert_eq!(
            with("Content-Length: 18446744073709551615\r\n"),
            Ok(BodyFraming::Length(u64::MAX))
        );
    }

    #[test]
    fn bad_lengths() {
        for bad in ["+5", "-5", "5 5", "0x5", "", "5.0", "5,", ",5", "٥"] {
            assert_eq!(
                with(&format!("Content-Length: {bad}\r\n")),
                Err(HttpError::ContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            with("Content-Length: 0\r\nContent-Length: 65\r\n"),
            Err(HttpError::ContentLength)
        );
        assert_eq!(with("Content-Length: 0, 65\r\n"), Err(HttpError::ContentLength));
        assert_eq!(
            with("Content-Length: 18446744073709551616\r\n"),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn transfer_encoding_is_not_implemented() {
        for te in ["chunked", "gzip, chunked", "identity", ""] {
            assert_eq!(
                with(&format!("Transfer-Encoding: {te}\r\n")),
                Err(HttpError::TransferEncoding),
                "{te:?}"
            );
        }
        assert_eq!(
            with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(HttpError::TransferEncoding)
        );
    }

    #[test]
    fn host_once_and_in_http_1_1_required() {
        assert_eq!(check("GET / HTTP/1.1\r\n\r\n"), Err(HttpError::Host));
        assert_eq!(
            check("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HttpError::Host)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            Err(HttpError::Host)
        );
        assert_eq!(check("GET / HTTP/1.0\r\n\r\n"), Ok(BodyFraming::None));
        assert_eq!(
            check("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HttpError::Host)
        );
        // An empty Host is allowed (RFC 9112 §3.2: no authority in the target).
        assert_eq!(check("GET / HTTP/1.1\r\nHost:\r\n\r\n"), Ok(BodyFraming::None));
        for good in [
            "example.com:80",
            "127.0.0.1:9001",
            "[::1]:9001",
            "xn--bcher-kva.example",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert_eq!(check(&raw), Ok(BodyFraming::None), "{good}");
        }
        for bad in ["a b", "a/b", "a@b", "a\"b", "<x>"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(check(&raw), Err(HttpError::Host), "{bad}");
        }
    }
}
