//! The run's phase, shared by the workers: connections resolved, the
//! measurement window, and what the publisher got accepted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

/// Margin between the last connection resolving and the window's start,
/// so every worker sees the start before its first message is due.
const START_MARGIN: Duration = Duration::from_millis(20);

/// The run's phase, shared by the workers.
#[derive(Debug)]
pub struct Shared {
    t0: Instant,
    duration: Duration,
    /// Connections neither open nor failed yet.
    unresolved: AtomicUsize,
    /// Connections that completed the opening handshake.
    opened: AtomicUsize,
    /// Connections open now, and the most at once.
    open: AtomicUsize,
    peak_open: AtomicUsize,
    /// The window, in nanoseconds after `t0`; `u64::MAX` until decided.
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    /// Subscribe mode: messages the server accepted, once the publisher is
    /// done; `u64::MAX` until then.
    published: AtomicU64,
    /// `--observe`: the most distinct messages any subscriber received, as
    /// the workers report it while draining.
    seen: AtomicU64,
    /// A distributed run: the window is the coordinator's to start
    /// ([`Shared::start_at`]), not the last connection's.
    held: bool,
}

impl Shared {
    pub(super) fn new(t0: Instant, duration: Duration, connections: usize) -> Self {
        Shared {
            t0,
            duration,
            unresolved: AtomicUsize::new(connections),
            opened: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            peak_open: AtomicUsize::new(0),
            start_ns: AtomicU64::new(u64::MAX),
            end_ns: AtomicU64::new(u64::MAX),
            published: AtomicU64::new(u64::MAX),
            seen: AtomicU64::new(0),
            held: false,
        }
    }

    /// A distributed run's part: the connections ramp as usual, but the
    /// window starts when [`Shared::start_at`] says, on every agent at once.
    pub(super) fn held(t0: Instant, duration: Duration, connections: usize) -> Self {
        Shared {
            held: true,
            ..Shared::new(t0, duration, connections)
        }
    }

    /// Every connection is open or has failed.
    pub fn ramped(&self) -> bool {
        self.unresolved.load(Acquire) == 0
    }

    /// Connections that completed the opening handshake so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Acquire)
    }

    /// Start the window at `start` (a held window; a stop may have started
    /// an empty one first, which stays).
    pub fn start_at(&self, start: Instant) {
        let start = self.nanos(start);
        self.end_ns
            .fetch_min(start.saturating_add(self.duration.as_nanos() as u64), AcqRel);
        let _ = self.start_ns.compare_exchange(u64::MAX, start, AcqRel, Acquire);
    }

    /// Churn mode: no ramp to wait for, the window starts at once (after
    /// the margin that lets every worker see it first).
    pub(super) fn at_once(t0: Instant, duration: Duration) -> Self {
        let shared = Shared::new(t0, duration, 0);
        let start = shared.nanos(t0 + START_MARGIN);
        shared.start_ns.store(start, Release);
        shared
            .end_ns
            .store(start.saturating_add(duration.as_nanos() as u64), Release);
        shared
    }

    /// `t` in nanoseconds since the run's epoch.
    pub fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// A connection opened or failed. The last one decides the window;
    /// with none open there is nothing to measure and the window is empty.
    pub fn resolve(&self, opened: bool, now: Instant) {
        if opened {
            self.opened.fetch_add(1, AcqRel);
            let open = self.open.fetch_add(1, AcqRel) + 1;
            self.peak_open.fetch_max(open, AcqRel);
        }
        // Churn mode resolves connections all run long, with none counted.
        let left = self.unresolved.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
        if left == Ok(1) && !self.held {
            let start = self.nanos(now + START_MARGIN);
            let length = if self.opened.load(Acquire) == 0 {
                0
            } else {
                self.duration.as_nanos() as u64
            };
            self.end_ns.fetch_min(start.saturating_add(length), AcqRel);
            let _ = self.start_ns.compare_exchange(u64::MAX, start, AcqRel, Acquire);
        }
    }

    /// The publisher is done: the server accepted `accepted` messages.
    pub fn published(&self, accepted: u64) {
        self.published.store(accepted.min(u64::MAX - 1), Release);
    }

    /// Messages the server accepted, once the publisher is done.
    pub fn accepted(&self) -> Option<u64> {
        Some(self.published.load(Acquire)).filter(|&n| n != u64::MAX)
    }

    /// `--observe`: a worker's subscribers have seen up to `n` distinct
    /// messages; the most any worker reported.
    pub fn seen(&self, n: u64) -> u64 {
        self.seen.fetch_max(n, AcqRel).max(n)
    }

    /// Connections open now.
    pub fn open_now(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// The most connections open at once so far.
    pub fn peak_open(&self) -> usize {
        self.peak_open.load(Acquire)
    }

    /// An open connection is gone.
    pub fn closed(&self) {
        self.open.fetch_sub(1, AcqRel);
    }

    /// End the window now (or start an empty one).
    pub fn stop(&self, now: Instant) {
        let now = self.nanos(now);
        self.end_ns.fetch_min(now, AcqRel);
        let _ = self.start_ns.compare_exchange(u64::MAX, now, AcqRel, Acquire);
    }

    /// The measurement window (start, end), once decided.
    pub fn window(&self) -> Option<(Instant, Instant)> {
        let start = self.start_ns.load(Acquire);
        if start == u64::MAX {
            return None;
        }
        let end = self.end_ns.load(Acquire).max(start);
        Some((
            self.t0 + Duration::from_nanos(start),
            self.t0 + Duration::from_nanos(end),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_waits_for_every_connection_then_lasts_the_duration() {
        let t0 = Instant::now();
        let shared = Shared::new(t0, Duration::from_secs(5), 3);
        shared.resolve(true, t0);
        shared.resolve(false, t0);
        assert_eq!(shared.window(), None);
        let last = t0 + Duration::from_secs(1);
        shared.resolve(true, last);
        let (start, end) = shared.window().unwrap();
        assert_eq!(start, last + START_MARGIN);
        assert_eq!(end - start, Duration::from_secs(5));
        assert_eq!(shared.peak_open.load(Relaxed), 2);
        // A stop ends it early.
        shared.stop(start + Duration::from_secs(2));
        assert_eq!(shared.window().unwrap().1 - start, Duration::from_secs(2));
    }

    #[test]
    fn churn_has_its_window_at_once_and_connections_do_not_move_it() {
        let t0 = Instant::now();
        let shared = Shared::at_once(t0, Duration::from_secs(3));
        let (start, end) = shared.window().unwrap();
        assert_eq!((start, end - start), (t0 + START_MARGIN, Duration::from_secs(3)));
        for _ in 0..3 {
            shared.resolve(true, t0 + Duration::from_secs(1));
            shared.closed();
        }
        shared.resolve(false, t0 + Duration::from_secs(2));
        assert_eq!(shared.window(), Some((start, end)));
        assert_eq!(shared.peak_open.load(Relaxed), 1);
    }

    #[test]
    fn a_held_window_waits_for_its_start_not_for_the_ramp() {
        let t0 = Instant::now();
        let shared = Shared::held(t0, Duration::from_secs(5), 2);
        shared.resolve(true, t0);
        assert!(!shared.ramped());
        shared.resolve(true, t0 + Duration::from_secs(1));
        assert!(shared.ramped());
        assert_eq!((shared.window(), shared.opened()), (None, 2));
        let start = t0 + Duration::from_secs(3);
        shared.start_at(start);
        assert_eq!(shared.window(), Some((start, start + Duration::from_secs(5))));
        // A second start does not move it.
        shared.start_at(t0 + Duration::from_secs(4));
        assert_eq!(shared.window().unwrap().0, start);
    }

    #[test]
    fn nothing_open_means_an_empty_window() {
        let t0 = Instant::now();
        let shared = Shared::new(t0, Duration::from_secs(5), 2);
        shared.resolve(false, t0);
        shared.resolve(false, t0);
        let (start, end) = shared.window().unwrap();
        assert_eq!(start, end);
    }
}
