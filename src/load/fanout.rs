//! Fan-out completion: per publish, the time until its last subscriber
//! had it (from the time it was due, as every delivery's latency), and
//! percentiles over the publishes beside the per-delivery ones. A server
//! that reaches most subscribers at once and the last ones a second later
//! shows it here and nowhere else.
//!
//! Each worker notes, per publish (a stream and a sequence number, see
//! `subscribe`), how many of its subscribers had it and the
//! latest arrival; the run adds the counts and takes the latest over the
//! workers. A publish counts as complete when every subscriber that
//! reconciles (`subscribe::reconcile`) had it. The table is
//! bounded: past [`MAX_TRACKED`] publishes per worker the rest are counted
//! as untracked, and a sequence number is a claim of the payload, never an
//! allocation size.

use super::report::Percentiles;
use super::stats::histogram;
use super::subscribe::LaneOutcome;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Publishes one worker follows at most (8 bytes each).
pub const MAX_TRACKED: usize = 1 << 22;

/// One publish's reach so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Reach {
    /// Subscribers that had it.
    count: u32,
    /// The latest of their latencies, µs (saturating at ~71 minutes).
    latest_us: u32,
}

/// Every publish's reach, as one worker (or the merged run) saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOut {
    /// Per stream, per sequence number.
    streams: Vec<Vec<Reach>>,
    /// Entries held over all streams.
    tracked: usize,
    /// Deliveries not followed: over the bound.
    pub untracked: u64,
}

/// The report's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FanOutReport {
    /// Accepted publishes.
    pub publishes: u64,
    /// Of them, received by every subscriber.
    pub complete: u64,
    /// Received by some subscribers only (or none).
    pub incomplete: u64,
    /// Deliveries not followed (over the bound of publishes per worker).
    pub untracked: u64,
    /// Publishes past the bound, neither complete nor incomplete.
    pub untracked_publishes: u64,
    /// Over the complete publishes: from the time each was due to its
    /// arrival at its last subscriber.
    pub completion_us: Percentiles,
}

impl FanOut {
    /// A subscriber had message `seq` of `stream`, `latency` after it was due.
    pub fn see(&mut self, stream: usize, seq: u64, latency: Duration) {
        let Some(seq) = usize::try_from(seq).ok().filter(|&s| s < MAX_TRACKED) else {
            self.untracked += 1;
            return;
        };
        if stream >= self.streams.len() {
            if stream >= super::subscribe::MAX_LANES {
                self.untracked += 1;
                return;
            }
            self.streams.resize_with(stream + 1, Vec::new);
        }
        let lane = &mut self.streams[stream];
        if seq >= lane.len() {
            let more = seq + 1 - lane.len();
            if self.tracked + more > MAX_TRACKED {
                self.untracked += 1;
                return;
            }
            self.tracked += more;
            lane.resize(seq + 1, Reach::default());
        }
        let reach = &mut lane[seq];
        reach.count = reach.count.saturating_add(1);
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        reach.latest_us = reach.latest_us.max(us);
    }

    /// Add another worker's reach.
    pub fn merge(&mut self, other: &FanOut) {
        if other.streams.len() > self.streams.len() {
            self.streams.resize_with(other.streams.len(), Vec::new);
        }
        for (mine, theirs) in self.streams.iter_mut().zip(&other.streams) {
            if theirs.len() > mine.len() {
                self.tracked += theirs.len() - mine.len();
                mine.resize(theirs.len(), Reach::default());
            }
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.count = m.count.saturating_add(t.count);
                m.latest_us = m.latest_us.max(t.latest_us);
            }
        }
        self.untracked += other.untracked;
    }

    /// The figures over the accepted publishes of `streams`, each due to
    /// reach `subscribers`.
    pub fn report(&self, streams: &[LaneOutcome], subscribers: u64) -> FanOutReport {
        let mut h = histogram();
        let mut r = FanOutReport {
            untracked: self.untracked,
            ..FanOutReport::default()
        };
        let none = Vec::new();
        for (s, outcome) in streams.iter().enumerate() {
            let lane = self.streams.get(s).unwrap_or(&none);
            for seq in 0..outcome.sent {
                let refused =
                    outcome.rejected.binary_search(&seq).is_ok() || outcome.unconfirmed.binary_search(&seq).is_ok();
                if refused {
                    continue;
                }
                r.publishes += 1;
                let reach = usize::try_from(seq).ok().and_then(|i| lane.get(i)).copied();
                match reach {
                    Some(reach) if u64::from(reach.count) >= subscribers && subscribers > 0 => {
                        r.complete += 1;
                        h.saturating_record(u64::from(reach.latest_us).max(1));
                    }
                    // Past a full table nobody can say: not followed.
                    None if self.untracked > 0 => r.untracked_publishes += 1,
                    _ => r.incomplete += 1,
                }
            }
        }
        r.completion_us = Percentiles::of(&h);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn completion_is_the_last_arrival_of_each_publish_over_all_workers() {
        // Two workers, two subscribers each; stream 0 sent 0..3, 1 refused.
        let mut a = FanOut::default();
        let mut b = FanOut::default();
        for (w, lat) in [(&mut a, [1, 2]), (&mut b, [3, 9])] {
            for l in lat {
                w.see(0, 0, ms(l));
                w.see(0, 2, ms(l * 10));
            }
        }
        // Stream 1's only publish reaches three of the four.
        a.see(1, 0, ms(5));
        a.see(1, 0, ms(6));
        b.see(1, 0, ms(7));
        a.merge(&b);
        let streams = [
            LaneOutcome {
                sent: 3,
                rejected: vec![1],
                unconfirmed: vec![],
            },
            LaneOutcome {
                sent: 1,
                ..LaneOutcome::default()
            },
        ];
        let r = a.report(&streams, 4);
        assert_eq!((r.publishes, r.complete, r.incomplete), (3, 2, 1));
        assert_eq!(r.completion_us.count, 2);
        // The latest of each complete publish: 9 ms and 90 ms.
        assert_eq!(r.completion_us.min, 9000);
        assert!((89_900..=90_100).contains(&r.completion_us.max));
    }

    #[test]
    fn a_claimed_sequence_number_never_sizes_the_table() {
        let mut f = FanOut::default();
        f.see(0, u64::MAX, ms(1));
        f.see(0, 1 << 40, ms(1));
        f.see(super::super::subscribe::MAX_LANES, 0, ms(1));
        assert_eq!(f.untracked, 3);
        assert_eq!(f.tracked, 0);
        f.see(0, (MAX_TRACKED - 1) as u64, ms(1));
        assert_eq!(f.tracked, MAX_TRACKED);
        f.see(1, 0, ms(1));
        assert_eq!(f.untracked, 4);
        // Stream 1's publish was never followed: not called incomplete.
        let streams = [
            LaneOutcome {
                sent: 0,
                ..LaneOutcome::default()
            },
            LaneOutcome {
                sent: 1,
                ..LaneOutcome::default()
            },
        ];
        let r = f.report(&streams, 1);
        assert_eq!((r.publishes, r.incomplete, r.untracked_publishes), (1, 0, 1));
    }

    #[test]
    fn no_subscribers_means_no_publish_is_complete() {
        let f = FanOut::default();
        let streams = [LaneOutcome {
            sent: 2,
            ..LaneOutcome::default()
        }];
        let r = f.report(&streams, 0);
        assert_eq!((r.publishes, r.complete, r.incomplete), (2, 0, 2));
    }
}
