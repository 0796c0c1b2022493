//! Presence: who is subscribed to a channel that keeps it, and the join
//! and leave events its subscribers may ask for.
//!
//! A subscribe that asks for presence ([`Request::Subscribe`]'s
//! `presence`) makes its subscriber a [`Member`] of the channel for as long
//! as the subscription lives; the broker names it with a client id of its
//! own. Both bounds are the broker's, so that no client can make them grow:
//! members per channel (a subscribe over it is refused,
//! [`super::HubError::PresenceFull`]), and join and leave events per channel
//! and second (the rest are dropped and counted, never queued).
//!
//! [`Request::Subscribe`]: super::Request::Subscribe

use super::message::push_json_string;
use std::time::Duration;

/// Who a subscriber is, as the application (from its token) tells the broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// The user: a token's `sub`.
    pub user: Option<Box<str>>,
    /// What the application tells about it: a token's `info` claim, as
    /// JSON text.
    pub info: Option<Box<str>>,
}

/// A channel's member: a subscriber, its client id, and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The broker's id of this subscription, unique over every node.
    pub client: Box<str>,
    /// Who it is.
    pub presence: Presence,
}

impl Member {
    /// `{"client":"..","user":"..","info":{..}}` (`user` and `info` only
    /// when there is one).
    pub fn json(&self) -> String {
        let mut s = String::from("{\"client\":");
        push_json_string(&self.client, &mut s);
        if let Some(user) = &self.presence.user {
            s.push_str(",\"user\":");
            push_json_string(user, &mut s);
        }
        if let Some(info) = &self.presence.info {
            s.push_str(",\"info\":");
            s.push_str(info);
        }
        s.push('}');
        s
    }

    /// A member as [`Member::json`] wrote it (the Redis broker keeps them
    /// so), or `None` if it is not one.
    pub fn from_json(json: &str) -> Option<Member> {
        #[derive(serde::Deserialize)]
        struct Wire<'a> {
            #[serde(borrow)]
            client: std::borrow::Cow<'a, str>,
            user: Option<String>,
            info: Option<Box<serde_json::value::RawValue>>,
        }
        let wire: Wire<'_> = serde_json::from_str(json).ok()?;
        Some(Member {
            client: wire.client.into(),
            presence: Presence {
                user: wire.user.map(Into::into),
                info: wire.info.map(|raw| raw.get().into()),
            },
        })
    }
}

/// A channel's presence counted: `clients` members, `users` distinct users
/// among them (members without a user are not counted there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PresenceStats {
    /// Members.
    pub clients: usize,
    /// Distinct users.
    pub users: usize,
}

impl PresenceStats {
    /// The counts of `members`.
    pub fn of<'a>(members: impl Iterator<Item = &'a Member>) -> PresenceStats {
        let mut users = std::collections::HashSet::new();
        let mut clients = 0;
        for m in members {
            clients += 1;
            if let Some(user) = &m.presence.user {
                users.insert(&**user);
            }
        }
        PresenceStats {
            clients,
            users: users.len(),
        }
    }
}

/// The broker's presence bounds (from `[presence]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLimits {
    /// Members one channel may have; a subscribe beyond is refused.
    pub max_members: usize,
    /// Join and leave events one channel may send per second; the rest
    /// are dropped and counted.
    pub max_events_per_second: u32,
    /// How long a node's members stay in Redis without the node renewing
    /// them (every third of it): a node that died leaves presence within
    /// this. The local hub needs none: its members leave with their
    /// connections.
    pub ttl: Duration,
}

impl Default for PresenceLimits {
    fn default() -> Self {
        PresenceLimits {
            max_members: 100_000,
            max_events_per_second: 100,
            ttl: Duration::from_secs(30),
        }
    }
}

/// Events a channel sent in the current second: a fixed window, so that
/// no second holds more than the limit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EventRate {
    second: u64,
    sent: u32,
}

impl EventRate {
    /// May an event go out in second `second` under `limit`? Counted if so.
    pub(crate) fn take(&mut self, second: u64, limit: u32) -> bool {
        if second != self.second {
            *self = EventRate { second, sent: 0 };
        }
        let ok = self.sent < limit;
        self.sent += u32::from(ok);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_reads_back_as_written() {
        let m = Member {
            client: "n1-7".into(),
            presence: Presence {
                user: Some("ann \"a\"".into()),
                info: Some("{\"name\":\"Ann\",\"n\":[1,2]}".into()),
            },
        };
        let json = m.json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"client": "n1-7", "user": "ann \"a\"", "info": {"name": "Ann", "n": [1, 2]}})
        );
        assert_eq!(Member::from_json(&json), Some(m));
        let bare = Member {
            client: "c".into(),
            presence: Presence::default(),
        };
        assert_eq!(bare.json(), "{\"client\":\"c\"}");
        assert_eq!(Member::from_json(&bare.json()), Some(bare));
        assert_eq!(Member::from_json("{}"), None);
        assert_eq!(Member::from_json("junk"), None);
    }

    #[test]
    fn stats_count_distinct_users() {
        let member = |client: &str, user: Option<&str>| Member {
            client: client.into(),
            presence: Presence {
                user: user.map(Into::into),
                info: None,
            },
        };
        let members = [
            member("1", Some("ann")),
            member("2", Some("ann")),
            member("3", Some("bob")),
            member("4", None),
        ];
        assert_eq!(
            PresenceStats::of(members.iter()),
            PresenceStats { clients: 4, users: 2 }
        );
    }

    #[test]
    fn no_second_sends_more_events_than_the_limit() {
        let mut rate = EventRate::default();
        let sent = (0..10).filter(|_| rate.take(5, 3)).count();
        assert_eq!(sent, 3);
        assert!(rate.take(6, 3));
        assert!(!rate.take(6, 0));
    }
}
