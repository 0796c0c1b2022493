//! Per-worker counters. Each worker writes only its own (relaxed atomics, no
//! sharing of cache lines between writers); readers (tests, `/metrics`) sum
//! or label them by worker.

use crate::protocol::http::Status;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// What a connection is doing, for the per-transport gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Reading or answering plain HTTP requests (including a publish).
    Http,
    /// A WebSocket (echo or channel subscriber).
    WebSocket,
    /// A parked long poll.
    Poll,
    /// A Server-Sent Events stream.
    Sse,
    /// Finishing: last bytes out, waiting for the peer's EOF.
    Closing,
}

impl Transport {
    /// Every transport, in gauge order.
    pub const ALL: [Transport; 5] = [
        Transport::Http,
        Transport::WebSocket,
        Transport::Poll,
        Transport::Sse,
        Transport::Closing,
    ];

    /// The label value in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::WebSocket => "websocket",
            Transport::Poll => "poll",
            Transport::Sse => "sse",
            Transport::Closing => "closing",
        }
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections open now, by [`Transport`] (indexed as [`Transport::ALL`]).
    pub open_by: [AtomicI64; 5],
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
    /// Slow subscribers and consumers dropped, by [`Transport`].
    pub slow_by: [AtomicU64; 5],
    /// Data messages received.
    pub messages_in: AtomicU64,
    /// Data messages sent (echo).
    pub messages_out: AtomicU64,
    /// Publishes accepted on this worker.
    pub published: AtomicU64,
    /// Channel messages handed to subscribers, by [`Transport`].
    pub delivered_by: [AtomicU64; 5],
    /// Bytes read from sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to sockets.
    pub bytes_out: AtomicU64,
    /// Error statuses answered, by status code.
    http_errors: Mutex<BTreeMap<u16, u64>>,
    /// Protocol violations, by [`ProtocolError::kind`](crate::protocol::ProtocolError::kind).
    protocol_error_kinds: Mutex<BTreeMap<&'static str, u64>>,
}

impl WorkerStats {
    /// Read one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// A request refused with `status`.
    pub fn count_http_error(&self, status: Status) {
        self.handshake_errors.fetch_add(1, Relaxed);
        *lock(&self.http_errors).entry(status.0).or_default() += 1;
    }

    /// A connection failed for a protocol violation of `kind`.
    pub fn count_protocol_error(&self, kind: &'static str) {
        self.protocol_errors.fetch_add(1, Relaxed);
        *lock(&self.protocol_error_kinds).entry(kind).or_default() += 1;
    }

    /// A connection dropped for not keeping up.
    pub fn count_slow(&self, transport: Transport) {
        let n = self.slow_consumers.fetch_add(1, Relaxed) + 1;
        self.slow_by[transport as usize].fetch_add(1, Relaxed);
        // At the 1st, 2nd, 4th, 8th...: an operator hears of it, and a flood
        // of slow clients cannot flood the log.
        if n.is_power_of_two() {
            log::warn!(
                "{n} slow subscriber(s) dropped by this worker so far (the last over {transport:?}): output over \
                 limits.write_buffer_limit (see wsreactor_slow_subscribers_dropped_total)"
            );
        }
    }

    /// `n` channel messages queued to a subscriber.
    pub fn count_delivered(&self, transport: Transport, n: u64) {
        self.delivered_by[transport as usize].fetch_add(n, Relaxed);
    }

    /// A connection changed transport (`None`: opened or closed).
    pub fn moved(&self, from: Option<Transport>, to: Option<Transport>) {
        if from == to {
            return;
        }
        if let Some(t) = from {
            self.open_by[t as usize].fetch_sub(1, Relaxed);
        }
        if let Some(t) = to {
            self.open_by[t as usize].fetch_add(1, Relaxed);
        }
    }

    /// Error statuses answered so far, by code.
    pub fn http_errors(&self) -> BTreeMap<u16, u64> {
        lock(&self.http_errors).clone()
    }

    /// Protocol violations so far, by kind.
    pub fn protocol_error_kinds(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.protocol_error_kinds).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The per-address limits' counters, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerIpStats {
    /// Refused over `per_ip_connections`.
    pub refused_connections: u64,
    /// Refused over `per_ip_connect_rate`.
    pub refused_rate: u64,
    /// Client addresses in the table.
    pub addresses: usize,
}
