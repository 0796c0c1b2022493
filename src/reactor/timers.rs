//! When to look at a connection's timers: a hashed timing wheel of slab
//! keys (Varghese and Lauck, "Hashed and Hierarchical Timing Wheels").
//!
//! Scanning the whole slab on every tick costs each idle connection a visit
//! per tick; the wheel visits a connection only when its next deadline is
//! near. A connection keeps its own deadline (`scheduled`, a [`Stamp`]);
//! the wheel holds 4 bytes per entry, the key, in the slot of that
//! deadline. Entries are never removed early: when a connection's deadline
//! moves later (every input pushes the idle deadline back) nothing happens
//! until the old entry comes due, and the connection is then filed again at
//! its real deadline; when it moves earlier (a transition to a shorter
//! timer) a second entry is added and the first goes stale. An entry is
//! live when the connection's `scheduled` falls in the entry's slot:
//! anything else (a stale entry, a key whose slot was reused) is dropped
//! when its slot is visited. A spurious visit is harmless: checking timers
//! that are not due does nothing.

use super::stamp::Stamp;
use std::time::Duration;

/// Slots in a wheel; with a one-second tick it turns once in 68 minutes, so
/// nearly every deadline is met on its first pass.
const SLOTS: usize = 4096;

/// The wheel of one worker.
#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<u32>>,
    /// Milliseconds one slot covers: a power of two at most the worker's
    /// tick, so that slots stay aligned across the stamps' 32-bit wrap.
    granularity: u32,
    /// The start of the next slot to visit; it is visited once its whole
    /// span has passed, so every deadline in it is due.
    next: Stamp,
}

impl TimerWheel {
    /// A wheel whose slots cover about `tick` each, starting at `now`.
    pub fn new(tick: Duration, now: Stamp) -> Self {
        let ms = tick.as_millis().clamp(1, 1 << 20) as u32;
        // The largest power of two not above the tick.
        let granularity = 1 << (31 - ms.leading_zeros());
        let mut wheel = TimerWheel {
            slots: vec![Vec::new(); SLOTS],
            granularity,
            next: now,
        };
        wheel.next = wheel.align(now);
        wheel
    }

    /// The start of the slot `at` falls in.
    fn align(&self, at: Stamp) -> Stamp {
        Stamp::from_millis(at.millis() & !(self.granularity - 1))
    }

    fn slot(&self, at: Stamp) -> usize {
        (at.millis() / self.granularity) as usize % SLOTS
    }

    /// Is the entry of a connection whose deadline is `scheduled` in the
    /// slot being visited, `slot`? (Otherwise the entry is stale.)
    fn lives_in(&self, scheduled: Stamp, slot: usize) -> bool {
        self.slot(scheduled) == slot
    }

    /// File connection `key` at its deadline `at`; returns the deadline as
    /// filed, which the connection keeps as its `scheduled` (a deadline
    /// already past is filed in the next slot to be visited).
    #[must_use]
    pub fn insert(&mut self, key: usize, at: Stamp) -> Stamp {
        let at = if at.is_before(self.next) { self.next } else { at };
        let slot = self.slot(at);
        // Slab keys are below the number of connections, far below 2^32.
        self.slots[slot].push(key as u32);
        at
    }

    /// Visit every slot up to `now`: the keys whose deadline has come, as
    /// decided by `scheduled` (the connection's own deadline, `None` when
    /// the key holds no connection), go to `due`; entries for deadlines of a
    /// later turn stay; stale ones are dropped.
    pub fn expire(&mut self, now: Stamp, mut scheduled: impl FnMut(usize) -> Option<Stamp>, due: &mut Vec<usize>) {
        // At most one turn of the wheel per call: every slot once.
        for _ in 0..SLOTS {
            if now.is_before(self.next.plus_millis(self.granularity)) {
                break;
            }
            let slot = self.slot(self.next);
            let mut keys = std::mem::take(&mut self.slots[slot]);
            keys.retain(|&key| {
                let key = key as usize;
                match scheduled(key) {
                    Some(at) if self.lives_in(at, slot) => {
                        if at.is_before(now) || at == now {
                            due.push(key);
                            false
                        } else {
                            // A deadline a turn (or more) away.
                            true
                        }
                    }
                    _ => false,
                }
            });
            // Keep what was filed into this slot meanwhile, and the
            // allocation if it is not oversized.
            let filed = std::mem::take(&mut self.slots[slot]);
            keys.extend(filed);
            if keys.is_empty() && keys.capacity() > 64 {
                keys = Vec::new();
            }
            self.slots[slot] = keys;
            self.next = self.next.plus_millis(self.granularity);
        }
        // Far behind (a paused process): every slot was just visited once,
        // so skip to the slot of now.
        if !now.is_before(self.next.plus_millis(self.granularity)) {
            self.next = self.align(now);
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    /// No entries at all.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn at(epoch: Instant, ms: u64) -> Stamp {
        Stamp::at(epoch, epoch + Duration::from_millis(ms))
    }

    #[test]
    fn keys_come_due_at_their_deadline_not_before() {
        let e = Instant::now();
        // 100 ms asked: 64 ms slots.
        let mut w = TimerWheel::new(Duration::from_millis(100), at(e, 0));
        let deadlines = [(1usize, 250u64), (2, 100), (3, 5000), (4, 0)];
        let filed: Vec<(usize, Stamp)> = deadlines.iter().map(|&(k, d)| (k, w.insert(k, at(e, d)))).collect();
        let lookup = |k: usize| filed.iter().find(|(kk, _)| *kk == k).map(|(_, s)| *s);
        let mut due = Vec::new();
        w.expire(at(e, 63), lookup, &mut due);
        assert!(due.is_empty());
        w.expire(at(e, 64), lookup, &mut due);
        assert_eq!(due, [4]);
        due.clear();
        w.expire(at(e, 200), lookup, &mut due);
        assert_eq!(due, [2]);
        due.clear();
        w.expire(at(e, 320), lookup, &mut due);
        assert_eq!(due, [1]);
        due.clear();
        // Never before its deadline, at most one slot after.
        w.expire(at(e, 4999), lookup, &mut due);
        assert!(due.is_empty());
        w.expire(at(e, 5064), lookup, &mut due);
        assert_eq!(due, [3]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_deadline_a_turn_away_waits_for_its_turn() {
        let e = Instant::now();
        let mut w = TimerWheel::new(Duration::from_millis(1), at(e, 0));
        let far = w.insert(7, at(e, SLOTS as u64 * 2 + 5));
        let mut due = Vec::new();
        w.expire(at(e, SLOTS as u64 + 10), |_| Some(far), &mut due);
        assert!(due.is_empty());
        assert_eq!(w.len(), 1);
        w.expire(at(e, 2 * SLOTS as u64), |_| Some(far), &mut due);
        assert!(due.is_empty());
        w.expire(at(e, 2 * SLOTS as u64 + 6), |_| Some(far), &mut due);
        assert_eq!(due, [7]);
    }

    #[test]
    fn stale_entries_and_gone_keys_are_dropped() {
        let e = Instant::now();
        let mut w = TimerWheel::new(Duration::from_millis(8), at(e, 0));
        // Filed at 500, then at 100 (earlier): the 500 entry goes stale.
        let _ = w.insert(1, at(e, 500));
        let mut scheduled = w.insert(1, at(e, 100));
        let _ = w.insert(2, at(e, 100));
        let mut due = Vec::new();
        w.expire(at(e, 110), |k| (k == 1).then_some(scheduled), &mut due);
        // Key 2 holds no connection any more: dropped, not due.
        assert_eq!(due, [1]);
        // After its visit key 1 is filed again at 900; the 500 entry is stale.
        scheduled = w.insert(1, at(e, 900));
        due.clear();
        w.expire(at(e, 600), |_| Some(scheduled), &mut due);
        assert!(due.is_empty());
        assert_eq!(w.len(), 1);
        w.expire(at(e, 910), |_| Some(scheduled), &mut due);
        assert_eq!(due, [1]);
    }

    #[test]
    fn a_past_deadline_is_due_at_the_next_visit() {
        let e = Instant::now();
        let mut w = TimerWheel::new(Duration::from_millis(100), at(e, 0));
        let mut due = Vec::new();
        w.expire(at(e, 1000), |_| None, &mut due);
        let filed = w.insert(3, at(e, 200));
        assert!(!filed.is_before(at(e, 960)));
        w.expire(at(e, 1100), |_| Some(filed), &mut due);
        assert_eq!(due, [3]);
    }
}
