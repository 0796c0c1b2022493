//! Who a subscriber is in a channel's presence (`[presence] channels`),
//! one rule for every transport: a subscriber of a channel that keeps
//! presence is a member, as its token's `sub` and `info` say (without a
//! good token, a member with neither); and it gets the channel's join and
//! leave events when it asks (`join_leave`).

use super::query::query_values;
use crate::auth::glob_match;
use crate::pubsub::Presence;
use crate::reactor::settings::Settings;

/// Does `channel` keep presence (`[presence] channels`)?
pub fn keeps_presence(settings: &Settings, channel: &str) -> bool {
    settings
        .pubsub
        .presence_channels
        .iter()
        .any(|pattern| glob_match(pattern, channel))
}

/// The member a subscriber of `channel` with `token` is, if the channel
/// keeps presence.
pub fn member(settings: &Settings, channel: &str, token: Option<&[u8]>, unix_time: u64) -> Option<Presence> {
    if !keeps_presence(settings, channel) {
        return None;
    }
    let identity = token
        .filter(|t| !t.is_empty())
        .and_then(|t| settings.auth.identity(t, unix_time).ok())
        .unwrap_or_default();
    Some(Presence {
        user: identity.user.map(Into::into),
        info: identity.info.map(Into::into),
    })
}

/// Did the request ask for join and leave events (`?join_leave=1` or
/// `=true`)? `Err` for another value.
pub fn join_leave(query: Option<&str>) -> Result<bool, &'static str> {
    match query_values(query, "join_leave").last() {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true" | "") => Ok(true),
        Some(_) => Err("join_leave must be 1 or 0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_leave_is_asked_for_by_the_query() {
        assert_eq!(join_leave(None), Ok(false));
        assert_eq!(join_leave(Some("since=3")), Ok(false));
        assert_eq!(join_leave(Some("join_leave=1")), Ok(true));
        assert_eq!(join_leave(Some("join_leave=true&since=2")), Ok(true));
        assert_eq!(join_leave(Some("join_leave=0")), Ok(false));
        assert!(join_leave(Some("join_leave=yes")).is_err());
    }
}
