//! What the report says of slow readers and reconnect storms
//! ([`crate::load::scenario`]).

use super::Percentiles;
use crate::load::scenario::{ReconnectStorm, ScenarioStats, SlowReaders};
use crate::load::stats::histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Slow readers: what the server did to them, and whether the others
/// suffered.
#[derive(Debug, Clone, Serialize)]
pub struct SlowReport {
    /// The share of subscribers asked for, 0 to 1.
    pub share: f64,
    /// How long each stopped reading, from the window's start.
    pub pause_s: f64,
    /// Slow readers that opened.
    pub readers: u64,
    /// Of them, those whose connection the server ended.
    pub dropped: u64,
    /// How: `close CODE` (RFC 6455 close code, 1006 without a close
    /// frame), `status N`, `eof` (an event stream or poll ended), or a
    /// socket error's kind.
    pub dropped_by: BTreeMap<String, u64>,
    /// Over the dropped ones: from the start of the pause to the due time
    /// of the latest message each received (how long the server went on
    /// serving it), ms.
    pub served_ms: Spread,
    /// Distinct messages each slow reader received.
    pub received: Spread,
    /// The slow readers' deliveries, from the time each was due.
    pub latency_us: Percentiles,
    /// The other subscribers' deliveries: the run's `latency_us`.
    pub others_us: Percentiles,
    /// The same load without slow readers, run first (null when not run).
    pub baseline_us: Option<Percentiles>,
    /// `others_us.p99 / baseline_us.p99`.
    pub p99_ratio: Option<f64>,
}

/// A reconnect storm: how long until everyone was back and caught up,
/// and what the catch-up recovered.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    /// From the window's start to the drop.
    pub at_s: f64,
    /// The share of subscribers that dropped, 0 to 1.
    pub share: f64,
    /// Reconnect delays were uniform below this.
    pub jitter_s: f64,
    /// Subscribers dropped (open when the storm came).
    pub dropped: u64,
    /// Of them, connected again.
    pub reconnected: u64,
    /// Of them, caught up: they had every message when one due after
    /// their return came.
    pub caught_up: u64,
    /// Dropped and never caught up.
    pub not_caught_up: u64,
    /// Per subscriber that caught up, from the drop, µs.
    pub caught_up_us: Percentiles,
    /// From the drop until the last one caught up (null unless all did).
    pub all_caught_up_s: Option<f64>,
    /// Messages due while they were away and received after their return.
    pub recovered: u64,
}

/// A few figures of a list of counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// Largest.
    pub max: u64,
}

impl Spread {
    fn of(values: &[u64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        match (v.first(), v.last()) {
            (Some(&min), Some(&max)) => Spread {
                min,
                p50: v[(v.len() - 1) / 2],
                max,
            },
            _ => Spread::default(),
        }
    }
}

impl SlowReport {
    /// The figures of `stats`; `others` the run's latency.
    pub fn new(plan: SlowReaders, stats: &ScenarioStats, latency: Percentiles, others: Percentiles) -> SlowReport {
        SlowReport {
            share: plan.share,
            pause_s: plan.pause.as_secs_f64(),
            readers: stats.slow_readers,
            dropped: stats.slow_ends.values().sum(),
            dropped_by: stats.slow_ends.clone(),
            served_ms: Spread::of(&stats.slow_served_ms),
            received: Spread::of(&stats.slow_received),
            latency_us: latency,
            others_us: others,
            baseline_us: None,
            p99_ratio: None,
        }
    }

    /// The run without slow readers, for the side by side.
    pub fn set_baseline(&mut self, baseline: Percentiles) {
        self.baseline_us = Some(baseline);
        self.p99_ratio = (baseline.p99 > 0).then(|| self.others_us.p99 as f64 / baseline.p99 as f64);
    }

    /// Its lines of the table.
    pub fn lines(&self, s: &mut String) {
        let by: Vec<String> = self.dropped_by.iter().map(|(k, n)| format!("{n} by {k}")).collect();
        let _ = writeln!(
            s,
            "slow readers {} ({:.1}%) stopped reading for {:.1} s: {} dropped{}{}",
            self.readers,
            self.share * 100.0,
            self.pause_s,
            self.dropped,
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            },
            match self.dropped {
                0 => String::new(),
                _ => format!(
                    ", served {} ms (median; {} to {}) after they stopped",
                    self.served_ms.p50, self.served_ms.min, self.served_ms.max
                ),
            }
        );
        let _ = writeln!(
            s,
            "             each received {} messages (median; {} to {}); the others' p99 {:.3} ms{}",
            self.received.p50,
            self.received.min,
            self.received.max,
            self.others_us.p99 as f64 / 1000.0,
            match (self.baseline_us, self.p99_ratio) {
                (Some(b), Some(r)) => format!(", {:.3} ms without slow readers ({r:.2}x)", b.p99 as f64 / 1000.0),
                _ => String::new(),
            }
        );
    }
}

impl StormReport {
    /// The figures of `stats`.
    pub fn new(plan: ReconnectStorm, stats: &ScenarioStats) -> StormReport {
        let mut h = histogram();
        for &us in &stats.storm_caught_up_us {
            h.saturating_record(us.max(1));
        }
        let caught_up = stats.storm_caught_up_us.len() as u64;
        let all = caught_up == stats.storm_dropped && caught_up > 0;
        StormReport {
            at_s: plan.at.as_secs_f64(),
            share: plan.share,
            jitter_s: plan.jitter.as_secs_f64(),
            dropped: stats.storm_dropped,
            reconnected: stats.storm_reconnected,
            caught_up,
            not_caught_up: stats.storm_dropped - caught_up,
            caught_up_us: Percentiles::of(&h),
            all_caught_up_s: all.then(|| stats.storm_caught_up_us.iter().max().copied().unwrap_or(0) as f64 / 1e6),
            recovered: stats.storm_recovered,
        }
    }

    /// Its lines of the table.
    pub fn lines(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "storm        at {:.1} s, {:.1}% of subscribers, reconnect jitter {:.2} s: {} dropped, {} reconnected, {} caught up",
            self.at_s,
            self.share * 100.0,
            self.jitter_s,
            self.dropped,
            self.reconnected,
            self.caught_up
        );
        let all = match self.all_caught_up_s {
            Some(t) => format!("all caught up {t:.3} s after the drop"),
            None => format!("{} NEVER caught up", self.not_caught_up),
        };
        let _ = writeln!(
            s,
            "             {all}; {} messages recovered from their cursors",
            self.recovered
        );
    }
}
