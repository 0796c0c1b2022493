//! Plain HTTP on the server's connections: which request target is what.
//!
//! The reactor parses a request head and asks [`route`] what it means; the
//! protocol layer ([`crate::protocol::handshake`]) then validates upgrades.

/// What a request target names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/`: the WebSocket echo endpoint.
    Echo,
    /// `/healthz`: liveness, a plain 200.
    Health,
    /// Anything else: 404.
    NotFound,
}

/// Map a request path (without query) to its route.
pub fn route(path: &str) -> Route {
    match path {
        "/" => Route::Echo,
        "/healthz" => Route::Health,
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_paths() {
        assert_eq!(route("/"), Route::Echo);
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(route("/nope"), Route::NotFound);
        assert_eq!(route("/healthz/"), Route::NotFound);
    }
}
