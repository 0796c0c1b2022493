//! Values in a query string (`?since=N`, `?wait=S`, `?channel=c`).

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

/// Every value of `key` in a query string, in order, as sent (not
/// percent-decoded).
pub fn query_values<'q>(query: Option<&'q str>, key: &'q str) -> impl Iterator<Item = &'q str> + 'q {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(move |pair| match pair.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if pair == key => Some(""),
            _ => None,
        })
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

    #[test]
    fn every_value_of_a_key() {
        let got: Vec<_> = query_values(Some("channel=a&x=1&channel=b%3Ac&channel"), "channel").collect();
        assert_eq!(got, ["a", "b%3Ac", ""]);
        assert_eq!(query_values(None, "channel").count(), 0);
        assert_eq!(query_values(Some("channels=a"), "channel").count(), 0);
    }
}
