//! Idempotency keys of publishes: `POST /pub/{channel}` with an
//! `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header)
//! publishes at most once per key and channel while the key is remembered
//! (`pubsub.idempotency_ttl`); a retry with the same key gets the first
//! publish's receipt, marked as a duplicate. A publisher that got no answer,
//! or a `504` (the broker did not confirm), retries safely this way.
//!
//! The keys are the publisher's choice, so their table is bounded: by age,
//! and in number per channel (`pubsub.idempotency_keys`, the oldest
//! forgotten first). The local hub keeps one [`Seen`] per channel; the
//! Redis broker keeps the same table in Redis, so that it holds on every
//! node ([`super::redis`]).

use super::Receipt;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The longest key taken, in bytes (the draft sets none; a UUID is 36).
pub const MAX_KEY_LEN: usize = 255;

/// The key in an `Idempotency-Key` value: the draft's form, a quoted
/// string (RFC 8941 §3.3.3, `"8e03978e-40d5"`), or the same characters
/// unquoted; 1 to [`MAX_KEY_LEN`] of visible ASCII, no `"` or `\` inside.
/// `None`: not a key (the publish is refused with 400).
pub fn parse_key(value: &[u8]) -> Option<&str> {
    let value = value.trim_ascii();
    let inner = match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    };
    let ok = (1..=MAX_KEY_LEN).contains(&inner.len())
        && inner.iter().all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    ok.then(|| std::str::from_utf8(inner).ok()).flatten()
}

/// One channel's remembered keys and the receipts they got.
#[derive(Debug, Default)]
pub struct Seen {
    receipts: HashMap<Box<str>, Receipt>,
    /// Keys oldest first, each once (a key is added only when not present).
    order: VecDeque<(Instant, Box<str>)>,
}

impl Seen {
    /// The receipt a publish with `key` got, if it is remembered at `now`.
    pub fn get(&mut self, key: &str, now: Instant, ttl: Duration) -> Option<Receipt> {
        self.expire(now, ttl);
        self.receipts.get(key).map(|r| Receipt { duplicate: true, ..*r })
    }

    /// Remember that the publish with `key` got `receipt`, forgetting the
    /// oldest keys beyond `max`.
    pub fn insert(&mut self, key: &str, receipt: Receipt, now: Instant, max: usize) {
        if max == 0 || self.receipts.contains_key(key) {
            return;
        }
        while self.order.len() >= max {
            self.pop_oldest();
        }
        self.receipts.insert(key.into(), receipt);
        self.order.push_back((now, key.into()));
    }

    /// Forget the keys older than `ttl`.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        while self.order.front().is_some_and(|(at, _)| now.duration_since(*at) >= ttl) {
            self.pop_oldest();
        }
    }

    /// No key remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn pop_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.receipts.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: u64) -> Receipt {
        Receipt {
            id,
            subscribers: 3,
            duplicate: false,
        }
    }

    #[test]
    fn keys_are_parsed_as_the_draft_writes_them() {
        assert_eq!(parse_key(b"\"8e03978e-40d5\""), Some("8e03978e-40d5"));
        assert_eq!(parse_key(b" abc "), Some("abc"));
        assert_eq!(parse_key(b"\"\""), None);
        assert_eq!(parse_key(b""), None);
        assert_eq!(parse_key(b"a b"), None);
        assert_eq!(parse_key(b"\"a\"b\""), None);
        assert_eq!(parse_key(b"a\\b"), None);
        assert_eq!(parse_key("é".as_bytes()), None);
        assert!(parse_key(&[b'k'; MAX_KEY_LEN]).is_some());
        assert_eq!(parse_key(&[b'k'; MAX_KEY_LEN + 1]), None);
    }

    #[test]
    fn a_key_is_answered_with_its_first_receipt_until_it_expires() {
        let (t0, ttl) = (Instant::now(), Duration::from_secs(60));
        let mut seen = Seen::default();
        assert_eq!(seen.get("k", t0, ttl), None);
        seen.insert("k", receipt(7), t0, 10);
        let again = seen.get("k", t0 + Duration::from_secs(59), ttl).unwrap();
        assert_eq!((again.id, again.subscribers, again.duplicate), (7, 3, true));
        assert_eq!(seen.get("k", t0 + ttl, ttl), None);
        assert!(seen.is_empty());
    }

    #[test]
    fn the_table_is_bounded_oldest_first() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut seen = Seen::default();
        for i in 0..1000u64 {
            seen.insert(&i.to_string(), receipt(i), t0, 3);
        }
        assert_eq!((seen.order.len(), seen.receipts.len()), (3, 3));
        assert!(seen.get("996", t0, ttl).is_none());
        assert_eq!(seen.get("999", t0, ttl).map(|r| r.id), Some(999));
        // Inserting a key again changes nothing.
        seen.insert("999", receipt(1), t0, 3);
        assert_eq!(seen.get("999", t0, ttl).map(|r| r.id), Some(999));
        seen.insert("x", receipt(1), t0, 0);
        assert!(seen.get("x", t0, ttl).is_none());
    }
}
