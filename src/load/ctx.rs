//! What a load-generator worker lends a client (and the modes' flows:
//! echo, churn, subscribe) while it handles one event. A leaf beside
//! `stats` and `plan`, so the flows need not import the client that drives
//! them.

use super::stats::Stats;
use super::Plan;
use crate::reactor::buffer::BufferPool;
use hdrhistogram::Histogram;
use std::time::Instant;

/// What the worker lends a client while it handles an event.
pub struct Ctx<'a> {
    /// What the run does.
    pub plan: &'a Plan,
    /// The worker's figures.
    pub stats: &'a mut Stats,
    /// Latencies for the progress line.
    pub interval: &'a mut Histogram<u64>,
    /// The worker's buffers.
    pub pool: &'a mut BufferPool,
    /// The worker's random numbers (nonces, masking seeds).
    pub rng: &'a mut u64,
    /// The time of this step.
    pub now: Instant,
    /// The measurement window (start, end), once every connection is open
    /// or has failed.
    pub window: Option<(Instant, Instant)>,
}
