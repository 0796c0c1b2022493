//! Whether a run passed, for CI: errors beyond what is allowed, nothing to
//! measure, a stop before the end, and k6-style thresholds on the
//! figures. Each failure is named in the summary, and the exit status
//! says which kind came first:
//!
//! | status | meaning |
//! | --- | --- |
//! | 0 | the run completed, no more errors than `--max-errors`, every threshold met |
//! | 1 | the generator itself failed (no summary), or the JSON or chart could not be written |
//! | 2 | a usage error (no run) |
//! | 3 | errors beyond `--max-errors` (default 0), no connection opened, or in subscribe mode no publish accepted |
//! | 4 | a threshold breached: `--max-p99`, `--max-p99.9`, `--min-rate` |
//! | 130 | stopped by Ctrl-C before the end (the summary is still printed) |

use super::Summary;
use serde::Serialize;
use std::time::Duration;

/// Exit status: errors, or nothing measured.
pub const EXIT_ERRORS: u8 = 3;
/// Exit status: a threshold breached.
pub const EXIT_THRESHOLD: u8 = 4;
/// Exit status: stopped early by a signal.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Limits a run must stay within (`None`: not checked).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// Errors allowed (default 0).
    pub max_errors: u64,
    /// Largest p99 of `latency_us`.
    pub max_p99: Option<Duration>,
    /// Largest p99.9 of `latency_us`.
    pub max_p99_9: Option<Duration>,
    /// Smallest headline rate: echoes per second (echo), deliveries per
    /// second (subscribe), cycles per second (churn), connections opened
    /// per second of the ramp (connect).
    pub min_rate: Option<f64>,
}

/// The run's verdict, in the JSON as `verdict`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Nothing failed.
    pub passed: bool,
    /// The process's exit status.
    pub exit_code: u8,
    /// What failed, one sentence each.
    pub failures: Vec<String>,
}

impl Summary {
    /// The figure `--min-rate` checks, and its unit.
    pub fn headline_rate(&self) -> (f64, &'static str) {
        match (&self.subscribe, &self.churn, self.mode) {
            (Some(s), _, _) => (s.deliveries.per_second, "deliveries/s"),
            (_, Some(c), _) => (c.cycles_per_sec, "cycles/s"),
            (_, _, "connect") if self.time.ramp_s > 0.0 => {
                (self.connections.opened as f64 / self.time.ramp_s, "connections/s")
            }
            (_, _, "connect") => (0.0, "connections/s"),
            _ => (self.messages.per_second, "messages/s"),
        }
    }

    /// Judge the run against `t`; `interrupted`: a signal stopped it.
    pub fn judge(&self, t: &Thresholds, interrupted: bool) -> Verdict {
        let mut errors = Vec::new();
        let mut breached = Vec::new();
        if self.errors.total > t.max_errors {
            errors.push(format!(
                "{} errors, more than the {} allowed (--max-errors)",
                self.errors.total, t.max_errors
            ));
        }
        if self.connections.opened == 0 {
            errors.push("no connection opened".to_owned());
        }
        if let Some(s) = self.subscribe.as_ref().filter(|s| !s.observed) {
            if s.published.accepted == 0 {
                errors.push(format!(
                    "no publish was accepted ({} sent, {} refused): nothing was measured",
                    s.published.sent, s.published.rejected
                ));
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let latency = &self.latency_us;
        if let Some(max) = t.max_p99 {
            if latency.count == 0 || latency.p99 as u128 > max.as_micros() {
                breached.push(format!(
                    "p99 {:.3} ms over --max-p99 {:.3} ms{}",
                    ms(latency.p99),
                    max.as_secs_f64() * 1000.0,
                    if latency.count == 0 { " (no samples)" } else { "" }
                ));
            }
        }
        if let Some(max) = t.max_p99_9 {
            if latency.count == 0 || latency.p99_9 as u128 > max.as_micros() {
                breached.push(format!(
                    "p99.9 {:.3} ms over --max-p99.9 {:.3} ms{}",
                    ms(latency.p99_9),
                    max.as_secs_f64() * 1000.0,
                    if latency.count == 0 { " (no samples)" } else { "" }
                ));
            }
        }
        if let Some(min) = t.min_rate {
            let (rate, unit) = self.headline_rate();
            if rate < min {
                breached.push(format!("{rate:.1} {unit} under --min-rate {min}"));
            }
        }
        let exit_code = if interrupted {
            EXIT_INTERRUPTED
        } else if !errors.is_empty() {
            EXIT_ERRORS
        } else if !breached.is_empty() {
            EXIT_THRESHOLD
        } else {
            0
        };
        let mut failures = errors;
        failures.extend(breached);
        if interrupted {
            failures.insert(0, "stopped by a signal before the end".to_owned());
        }
        Verdict {
            passed: exit_code == 0,
            exit_code,
            failures,
        }
    }
}
