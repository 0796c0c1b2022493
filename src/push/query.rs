//! Numbers in a query string (`?since=N`, `?wait=S`).

/// A query parameter that should be a number is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotANumber;

/// The value of `key` in a query string as a number: `Ok(None)` when absent,
/// `Err` when present but not a non-negative integer.
pub fn query_u64(query: Option<&str>, key: &str) -> Result<Option<u64>, NotANumber> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            return v.parse().map(Some).map_err(|_| NotANumber);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers() {
        assert_eq!(query_u64(None, "since"), Ok(None));
        assert_eq!(query_u64(Some("since=5"), "since"), Ok(Some(5)));
        assert_eq!(query_u64(Some("a=1&since=0&b"), "since"), Ok(Some(0)));
        assert_eq!(query_u64(Some("sincere=1"), "since"), Ok(None));
        assert_eq!(query_u64(Some("since="), "since"), Err(NotANumber));
        assert_eq!(query_u64(Some("since=-1"), "since"), Err(NotANumber));
    }
}
