//! `[presence]`: which channels keep a list of their subscribers, and the
//! bounds that keep it, and its join and leave events, from growing.

use serde::Deserialize;
use std::time::Duration;

/// `[presence]`: who is subscribed to a channel, for the channels that
/// keep it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Glob patterns (`*`: any run of characters) of the channels whose
    /// subscribers are members of their presence. Default `[]` (none).
    pub channels: Vec<String>,
    /// Members one channel may have; a subscribe beyond is refused.
    /// Default 100000.
    pub max_members: usize,
    /// Join and leave events one channel may send per second (on every
    /// node together); the rest are dropped and counted. Default 100.
    pub max_events_per_second: u32,
    /// With a Redis broker: how long a node's members stay without the
    /// node renewing them (it does every third of this), so a node that
    /// died leaves presence within it. Default "30s".
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        let limits = crate::pubsub::PresenceLimits::default();
        PresenceConfig {
            channels: Vec::new(),
            max_members: limits.max_members,
            max_events_per_second: limits.max_events_per_second,
            ttl: limits.ttl,
        }
    }
}

impl PresenceConfig {
    /// The key that is out of range and why, if one is.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(bad) = self.channels.iter().find(|p| !crate::auth::valid_pattern(p)) {
            return Err((
                "presence.channels",
                format!("expected channel names with * (1 to 128 of A-Z a-z 0-9 _ . : - *), got {bad:?}"),
            ));
        }
        if self.channels.len() > 1000 {
            return Err((
                "presence.channels",
                format!("must list at most 1000 patterns, got {}", self.channels.len()),
            ));
        }
        if !(1..=1_000_000).contains(&self.max_members) {
            return Err((
                "presence.max_members",
                format!("must be 1 to 1000000, got {}", self.max_members),
            ));
        }
        if !(1..=100_000).contains(&self.max_events_per_second) {
            return Err((
                "presence.max_events_per_second",
                format!("must be 1 to 100000, got {}", self.max_events_per_second),
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.ttl) {
            let got = humantime_serde::re::humantime::format_duration(self.ttl);
            return Err(("presence.ttl", format!("must be 1s to 1h, got {got}")));
        }
        Ok(())
    }
}
