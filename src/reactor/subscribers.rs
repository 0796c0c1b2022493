//! One worker's subscribers by channel: who gets each message that arrives
//! in the worker's inbox.

use std::collections::HashMap;
use std::sync::Arc;

/// Channel name to the slab keys of this worker's connections subscribed to it.
#[derive(Debug, Default)]
pub struct Subscribers {
    by_channel: HashMap<Arc<str>, Vec<usize>>,
}

impl Subscribers {
    /// Add connection `key` to the subscribers of `channel` (the
    /// subscription's shared name).
    pub fn add(&mut self, channel: &Arc<str>, key: usize) {
        self.by_channel.entry(channel.clone()).or_default().push(key);
    }

    /// Remove connection `key` (order among subscribers does not matter).
    pub fn remove(&mut self, channel: &str, key: usize) {
        if let Some(keys) = self.by_channel.get_mut(channel) {
            if let Some(i) = keys.iter().position(|&k| k == key) {
                keys.swap_remove(i);
            }
            if keys.is_empty() {
                self.by_channel.remove(channel);
            }
        }
    }

    /// Copy the subscribers of `channel` into `into` (cleared first), so the
    /// caller may change subscriptions while it delivers.
    pub fn copy_into(&self, channel: &str, into: &mut Vec<usize>) {
        into.clear();
        if let Some(keys) = self.by_channel.get(channel) {
            into.extend_from_slice(keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_share_and_remove() {
        let mut s = Subscribers::default();
        let c: Arc<str> = "c".into();
        s.add(&c, 1);
        s.add(&c, 2);
        let mut keys = Vec::new();
        s.copy_into("c", &mut keys);
        assert_eq!(keys, [1, 2]);
        s.remove("c", 1);
        s.copy_into("c", &mut keys);
        assert_eq!(keys, [2]);
        s.remove("c", 2);
        assert!(s.by_channel.is_empty());
        s.copy_into("c", &mut keys);
        assert!(keys.is_empty());
    }
}
