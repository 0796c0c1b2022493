//! The live progress line on stderr (indicatif's, with the `cli` feature;
//! without it the line is never drawn).

use hdrhistogram::Histogram;
#[cfg(feature = "cli")]
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
#[cfg(feature = "cli")]
use std::time::Duration;

/// The live progress line on stderr (a no-op when hidden).
pub struct Progress {
    #[cfg(feature = "cli")]
    bar: ProgressBar,
}

#[cfg(not(feature = "cli"))]
impl Progress {
    /// Nothing is drawn without the `cli` feature.
    pub fn new(_show: bool) -> Progress {
        Progress {}
    }

    /// Nothing is drawn without the `cli` feature.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        _phase: &str,
        _left: Option<std::time::Duration>,
        _open: usize,
        _target: usize,
        _rate: f64,
        _interval: &Histogram<u64>,
        _errors: u64,
    ) {
    }

    /// Nothing is drawn without the `cli` feature.
    pub fn finish(&self) {}
}

#[cfg(feature = "cli")]
impl Progress {
    /// A spinner line on stderr when `show`, else nothing.
    pub fn new(show: bool) -> Progress {
        if !show {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    /// Show the current figures; `left`: the window's remaining time.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        phase: &str,
        left: Option<Duration>,
        open: usize,
        target: usize,
        rate: f64,
        interval: &Histogram<u64>,
        errors: u64,
    ) {
        let p99 = if interval.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3} ms", interval.value_at_quantile(0.99) as f64 / 1000.0)
        };
        let left = left.map_or(String::new(), |l| {
            format!(" {:>3}s left", l.as_secs_f64().ceil() as u64)
        });
        self.bar.set_message(format!(
            "{phase:<7}{left} open {open}/{target}  {rate:.0} msg/s  p99 {p99}  errors {errors}"
        ));
    }

    /// Remove the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
