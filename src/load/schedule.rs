//! Pacing: when each connection opens and when each message is due.
//!
//! Connection `i` (numbered over the whole run) opens at `t0 + i / connect_rate`,
//! so a ramp reaches the server's accept queue at a steady pace instead of
//! all at once. Worker `w` of `T` owns connections `w, w + T, w + 2T...`.
//!
//! With `--rate R` over `N` connections, message `k` of connection `i` is due
//! at `start + (i + k·N) / R`: each connection sends `R / N` per second, and
//! the connections' phases interleave so the whole run sends one message
//! every `1 / R` seconds. A message that cannot go when due (its connection
//! already has `--pipeline` messages in flight, or the worker is behind)
//! goes as soon as it can, and its latency is counted from the time it was
//! due, not from when it went: a server that stalls for a second is charged
//! for every message that should have gone in that second (coordinated
//! omission, as in wrk2 and HdrHistogram's documentation).

use std::time::{Duration, Instant};

/// When each connection is opened.
#[derive(Debug, Clone, Copy)]
pub struct ConnectSchedule {
    t0: Instant,
    /// Seconds between two connections; 0 opens them all at once.
    interval: f64,
}

impl ConnectSchedule {
    /// Open `rate` connections per second from `t0`; a rate of 0 (or not
    /// finite) means no pacing.
    pub fn new(t0: Instant, rate: f64) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            1.0 / rate
        } else {
            0.0
        };
        ConnectSchedule { t0, interval }
    }

    /// When connection `i` is due to open.
    pub fn due(&self, i: usize) -> Instant {
        self.t0 + Duration::from_secs_f64(i as f64 * self.interval)
    }
}

/// When each message is due, relative to the start of the measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageSchedule {
    /// Messages per second over the whole run.
    rate: f64,
    /// Connections over the whole run.
    connections: usize,
}

impl MessageSchedule {
    /// `rate` messages per second in total, spread over `connections`.
    pub fn new(rate: f64, connections: usize) -> Self {
        MessageSchedule {
            rate,
            connections: connections.max(1),
        }
    }

    /// Messages per second in all.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Offset from the start of message `k` of connection `conn`.
    pub fn offset(&self, conn: usize, k: u64) -> Duration {
        let slot = conn as f64 + k as f64 * self.connections as f64;
        Duration::from_secs_f64(slot / self.rate)
    }

    /// Messages of connection `conn` due within the first `window`.
    pub fn count_within(&self, conn: usize, window: Duration) -> u64 {
        // Slots conn, conn + N, ... below window·R.
        let slots = window.as_secs_f64() * self.rate;
        let first = conn as f64;
        if slots <= first {
            return 0;
        }
        ((slots - first) / self.connections as f64).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_are_spread_at_the_rate() {
        let t0 = Instant::now();
        let s = ConnectSchedule::new(t0, 1000.0);
        assert_eq!(s.due(0), t0);
        assert_eq!(s.due(500) - t0, Duration::from_millis(500));
        let all = ConnectSchedule::new(t0, 0.0);
        assert_eq!(all.due(12345), t0);
    }

    #[test]
    fn messages_interleave_over_connections() {
        // 4 connections, 100/s in total: one message every 10 ms, in turn.
        let s = MessageSchedule::new(100.0, 4);
        let mut offsets: Vec<(Duration, usize)> =
            (0..4).flat_map(|c| (0..3).map(move |k| (s.offset(c, k), c))).collect();
        offsets.sort();
        for (n, (offset, conn)) in offsets.iter().enumerate() {
            let want = Duration::from_millis(10 * n as u64);
            assert!(offset.abs_diff(want) < Duration::from_micros(1), "{n}: {offset:?}");
            assert_eq!(*conn, n % 4);
        }
    }

    #[test]
    fn count_within_totals_rate_times_window() {
        for (rate, conns, millis) in [(100.0, 4, 1000), (250.0, 7, 2000), (50.0, 1000, 3000), (3.0, 2, 500)] {
            let s = MessageSchedule::new(rate, conns);
            let window = Duration::from_millis(millis);
            let total: u64 = (0..conns).map(|c| s.count_within(c, window)).sum();
            let expected = (rate * window.as_secs_f64()).ceil() as u64;
            assert_eq!(total, expected, "rate {rate} conns {conns}");
            // And count_within agrees with offset.
            for c in 0..conns {
                let n = s.count_within(c, window);
                if n > 0 {
                    assert!(s.offset(c, n - 1) < window);
                }
                assert!(s.offset(c, n) >= window);
            }
        }
    }
}
