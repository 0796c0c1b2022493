//! Browser origins (RFC 6454; the Fetch standard's `Origin` header): which
//! pages may use a route. One rule for every route that checks it: the
//! WebSocket upgrades (RFC 6455 §10.2: a server that is not for every
//! page checks `Origin`) and the push server's cross-origin HTTP routes.
//!
//! The list is `[http] allowed_origins`; none configured means any. A
//! request without `Origin` is not a page's and is not checked; one with
//! two is refused.

use crate::protocol::http::RequestHead;

/// What a request's `Origin` is to the configured list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// No `Origin` header: not a browser page's request.
    Absent,
    /// Any origin may (no list is configured).
    Any,
    /// The origin listed at this index (echoed back, not `*`).
    Listed(usize),
    /// An origin not listed, or more than one `Origin`.
    Refused,
}

impl Origin {
    /// The `Origin` of `head` against `allowed` (`None`: any origin).
    pub fn of(head: &RequestHead<'_, '_>, allowed: Option<&[String]>) -> Origin {
        let mut origins = head.values("origin");
        let origin = match (origins.next(), origins.next()) {
            (None, _) => return Origin::Absent,
            (Some(origin), None) => origin,
            (Some(_), Some(_)) => return Origin::Refused,
        };
        let Some(allowed) = allowed else {
            return Origin::Any;
        };
        match allowed.iter().position(|a| a.as_bytes().eq_ignore_ascii_case(origin)) {
            Some(i) => Origin::Listed(i),
            None => Origin::Refused,
        }
    }
}
