//! Compact timestamps for per-connection timers.
//!
//! A connection keeps two or three points in time; as `Instant`s they cost
//! 16 bytes each, which is a tenth of an idle connection's memory. A
//! [`Stamp`] is milliseconds since its worker started, in 4 bytes, wrapping
//! every ~49 days: differences stay right as long as the real interval is
//! shorter than that, which every timer guarantees by firing first (the
//! configuration caps timeouts at [`MAX_TIMEOUT`](crate::config::MAX_TIMEOUT)).

use std::time::{Duration, Instant};

/// The longest timeout a [`Stamp`] difference must measure: the
/// configuration caps every timeout at it.
#[cfg(test)]
use crate::config::MAX_TIMEOUT;

/// Milliseconds since a worker's epoch, wrapping (the default is the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp(u32);

impl Stamp {
    /// The stamp of `now` for a worker that started at `epoch`.
    pub fn at(epoch: Instant, now: Instant) -> Stamp {
        // Truncation is the wrap.
        Stamp(now.saturating_duration_since(epoch).as_millis() as u32)
    }

    /// Time from `earlier` to this stamp.
    pub fn since(self, earlier: Stamp) -> Duration {
        Duration::from_millis(u64::from(self.0.wrapping_sub(earlier.0)))
    }

    /// This stamp moved `d` later (at most [`MAX_TIMEOUT`](crate::config::MAX_TIMEOUT) apart stays exact).
    pub fn plus(self, d: Duration) -> Stamp {
        self.plus_millis(d.as_millis().min(u128::from(u32::MAX)) as u32)
    }

    /// This stamp moved `ms` milliseconds later, wrapping.
    pub fn plus_millis(self, ms: u32) -> Stamp {
        Stamp(self.0.wrapping_add(ms))
    }

    /// As far after this stamp as stamps can tell apart (~24.8 days): later
    /// than any deadline a timer sets.
    pub fn far_after(self) -> Stamp {
        self.plus_millis(i32::MAX as u32)
    }

    /// Is this stamp earlier than `other`? Exact while they are less than
    /// ~24.8 days apart, which every timer keeps them.
    pub fn is_before(self, other: Stamp) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// The earlier of two stamps.
    pub fn min(self, other: Stamp) -> Stamp {
        if other.is_before(self) {
            other
        } else {
            self
        }
    }

    /// A stamp from raw milliseconds (a timer wheel's slot boundaries).
    pub fn from_millis(ms: u32) -> Stamp {
        Stamp(ms)
    }

    /// The raw milliseconds (for slotting into a timer wheel).
    pub fn millis(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_survive_the_wrap() {
        let epoch = Instant::now();
        let a = Stamp::at(epoch, epoch + Duration::from_millis(1500));
        let b = Stamp::at(epoch, epoch + Duration::from_millis(4000));
        assert_eq!(b.since(a), Duration::from_millis(2500));
        let late = Stamp(u32::MAX - 10);
        let after = Stamp(late.0.wrapping_add(30));
        assert_eq!(after.since(late), Duration::from_millis(30));
        // Ordering survives it too.
        assert!(late.is_before(after) && !after.is_before(late));
        assert_eq!(late.plus(Duration::from_millis(30)), after);
        assert!(late.is_before(late.far_after()));
        assert_eq!(after.min(late), late);
        assert!(MAX_TIMEOUT.as_millis() < u128::from(u32::MAX));
    }
}
