//! A distributed run's agents in the summary: what each one saw, and how
//! far its clock was from the coordinator's.

use super::Percentiles;
use serde::Serialize;
use std::fmt::Write;

/// One agent's part of a distributed run, as it reported it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    /// Its place in the run, 0 to agents - 1.
    pub index: usize,
    /// Its name (`--name`, else host name and process id).
    pub name: String,
    /// Connections it was given.
    pub connections: usize,
    /// Connections it tried.
    pub attempted: u64,
    /// Connections that completed the opening handshake.
    pub opened: u64,
    /// The most it held open at once.
    pub peak_open: usize,
    /// Messages it received (echoes, or deliveries with duplicates).
    pub received: u64,
    /// Messages it sent (echo mode).
    pub sent: u64,
    /// Errors it counted (the run's total adds the publisher's).
    pub errors: u64,
    /// Its clock minus the coordinator's, in µs, each measured against the
    /// Redis server's `TIME` over the round trip with the least delay.
    pub clock_offset_us: i64,
    /// The uncertainty of that offset: half the sum of the two round trips, µs.
    pub clock_error_us: u64,
    /// Its latencies.
    pub latency_us: Percentiles,
    /// Its latency histogram in HdrHistogram's V2 format (deflated), base64:
    /// the run's `latency_us` are those of these histograms added together.
    pub latency_histogram: String,
}

/// The agents' lines of the table.
pub(super) fn lines(s: &mut String, agents: &[AgentReport]) {
    if agents.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n{:<24}{:>12}{:>10}{:>12}{:>8}{:>11}{:>11}{:>16}",
        "agent", "connections", "opened", "received", "errors", "p50 ms", "p99 ms", "clock offset"
    );
    for a in agents {
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            s,
            "{:<24}{:>12}{:>10}{:>12}{:>8}{:>11.3}{:>11.3}{:>16}",
            format!("{} {}", a.index, a.name),
            a.connections,
            a.opened,
            a.received,
            a.errors,
            ms(a.latency_us.p50),
            ms(a.latency_us.p99),
            format!("{:+} ±{} µs", a.clock_offset_us, a.clock_error_us),
        );
    }
}
