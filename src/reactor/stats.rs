//! Per-worker counters. Each worker writes only its own (relaxed atomics, no
//! sharing of cache lines between writers); readers sum them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused with 503 (over `max_connections`).
    pub refused: AtomicU64,
    /// Successful WebSocket upgrades.
    pub upgrades: AtomicU64,
    /// Requests answered with an error status.
    pub handshake_errors: AtomicU64,
    /// Connections failed for a protocol violation.
    pub protocol_errors: AtomicU64,
    /// Connections closed for not reading their output.
    pub slow_consumers: AtomicU64,
    /// Data messages received.
    pub messages_in: AtomicU64,
    /// Data messages sent.
    pub messages_out: AtomicU64,
    /// Bytes read from sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to sockets.
    pub bytes_out: AtomicU64,
}

impl WorkerStats {
    /// Read one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
