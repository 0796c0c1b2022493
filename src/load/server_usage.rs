//! `--server-pid`: what the server process spends, read from Linux's
//! `/proc/PID/stat` (user and system CPU time, proc(5) fields 14 and 15)
//! and `/proc/PID/status` (`VmRSS`, and `RssAnon`: its heap and stacks,
//! not the pages of its program file, which a big binary faults in as it
//! first runs a path, once, whatever the count of subscribers). The load
//! generator samples it before
//! the ramp, at the window's start and at the end of the drain, so the CPU
//! of a delivery is the server's CPU time from the window's start until
//! every subscriber has its messages, over the deliveries.

use serde::Serialize;
use std::time::Duration;

/// One look at the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident memory, bytes.
    pub rss: u64,
    /// The anonymous part of it (heap, stacks), bytes; 0 where the kernel
    /// does not say (before Linux 4.5).
    pub anon: u64,
}

/// Read the server's usage now; `None` when the process is gone (or this
/// is not Linux).
pub fn sample(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(Usage {
        cpu: cpu_of(&stat, u64::try_from(ticks).ok().filter(|&t| t > 0)?)?,
        rss: kb_field(&status, "VmRSS:")?,
        anon: kb_field(&status, "RssAnon:").unwrap_or(0),
    })
}

/// utime + stime from a `stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses: fields are counted
/// from the last `)`.
fn cpu_of(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second,
    ))
}

/// `NAME  1234 kB` (`VmRSS:`, `RssAnon:`) from a `status` file, in bytes.
fn kb_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// The server's share of a run, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerReport {
    /// The process looked at.
    pub pid: u32,
    /// CPU seconds from the window's start to the end of the drain.
    pub cpu_s: f64,
    /// The same over the deliveries, in microseconds.
    pub cpu_us_per_delivery: f64,
    /// Resident memory at the window's end.
    pub rss_bytes: u64,
    /// What the resident memory grew by from before the ramp, over the
    /// subscribers; `None` (null) when [`reused`](Self::reused).
    pub rss_bytes_per_subscriber: Option<f64>,
    /// The same of its anonymous part (heap and stacks: what the
    /// subscribers hold, without the program's pages a first run of a
    /// path faults in); `None` when reused or not told.
    pub rss_anon_bytes_per_subscriber: Option<f64>,
    /// The resident memory did not grow while the subscribers connected:
    /// the server ran an earlier load and its allocator kept that memory,
    /// so this run's subscribers took pages it already had, and their
    /// cost cannot be told from its RSS (it would read as 0).
    pub reused: bool,
}

impl ServerReport {
    /// From the samples before the ramp, at the window's start and at the
    /// drain's end.
    pub fn new(pid: u32, before: Usage, start: Usage, end: Usage, deliveries: u64, subscribers: u64) -> Self {
        let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64();
        // A fresh server's RSS grows with its first connections; one that
        // already held as many grows by nothing (or by what the window's
        // messages took, which is not the subscribers' cost).
        let grew = end.rss.saturating_sub(before.rss);
        let reused = subscribers > 0 && (start.rss <= before.rss || grew == 0);
        ServerReport {
            pid,
            cpu_s: cpu,
            cpu_us_per_delivery: if deliveries == 0 {
                0.0
            } else {
                cpu * 1e6 / deliveries as f64
            },
            rss_bytes: end.rss,
            rss_bytes_per_subscriber: (!reused).then(|| grew as f64 / subscribers.max(1) as f64),
            rss_anon_bytes_per_subscriber: (!reused && before.anon > 0)
                .then(|| end.anon.saturating_sub(before.anon) as f64 / subscribers.max(1) as f64),
            reused,
        }
    }
}

impl ServerReport {
    /// The server is known to have served an earlier run (`load compare`'s
    /// runs after its first): whatever its RSS did, the memory this run's
    /// subscribers took was partly that run's, and no figure is given.
    pub fn mark_reused(&mut self) {
        self.reused = true;
        self.rss_bytes_per_subscriber = None;
        self.rss_anon_bytes_per_subscriber = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_past_a_hostile_command_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 99 1000 200";
        assert_eq!(cpu_of(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(cpu_of("42 (x", 100), None);
        let status = "Name:\tx\nVmRSS:\t  2048 kB\nRssAnon:\t  1024 kB\nThreads: 3\n";
        assert_eq!(kb_field(status, "VmRSS:"), Some(2 << 20));
        assert_eq!(kb_field(status, "RssAnon:"), Some(1 << 20));
        assert_eq!(kb_field("Name:\tx\n", "VmRSS:"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let usage = sample(std::process::id()).unwrap();
        assert!(usage.rss > 0);
        assert_eq!(sample(u32::MAX), None);
    }

    #[test]
    fn the_report_divides_by_deliveries_and_subscribers() {
        let at = |cpu_ms, rss| Usage {
            cpu: Duration::from_millis(cpu_ms),
            rss,
            anon: rss / 2,
        };
        let r = ServerReport::new(7, at(0, 1000), at(500, 5000), at(1500, 9000), 1000, 8);
        assert_eq!((r.cpu_s, r.cpu_us_per_delivery), (1.0, 1000.0));
        assert_eq!(
            (
                r.rss_bytes,
                r.rss_bytes_per_subscriber,
                r.rss_anon_bytes_per_subscriber,
                r.reused
            ),
            (9000, Some(1000.0), Some(500.0), false)
        );
    }

    #[test]
    fn a_server_whose_memory_had_already_grown_gives_no_figure_per_subscriber() {
        let at = |rss| Usage {
            cpu: Duration::ZERO,
            rss,
            anon: rss,
        };
        // The subscribers connected and the RSS stayed put (or shrank):
        // the pages were the last run's, not a 0 B subscriber.
        for (before, start, end) in [(9000, 9000, 9000), (9000, 8000, 9500), (9000, 9100, 8000)] {
            let r = ServerReport::new(7, at(before), at(start), at(end), 10, 8);
            assert!(r.reused, "{before} {start} {end}");
            assert_eq!(r.rss_bytes_per_subscriber, None);
        }
        // Known to have served a run before, whatever its RSS did.
        let mut r = ServerReport::new(7, at(1000), at(5000), at(9000), 10, 8);
        assert_eq!(r.rss_bytes_per_subscriber, Some(1000.0));
        r.mark_reused();
        assert_eq!(
            (r.reused, r.rss_bytes_per_subscriber, r.rss_anon_bytes_per_subscriber),
            (true, None, None)
        );
        // No subscriber, nothing to say either way.
        assert!(!ServerReport::new(7, at(9000), at(9000), at(9000), 0, 0).reused);
    }
}
