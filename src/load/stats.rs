//! What a load run measures: HDR histograms and error counters.
//!
//! Each worker thread owns a [`Stats`] and writes it without sharing; the
//! run merges them once at the end, so the hot path touches no atomics for
//! the figures that go in the report. The live progress line reads [`Live`]
//! instead: a few relaxed counters per thread and a latency histogram for the
//! last interval that the worker hands over a few times a second.
//!
//! Latencies are recorded in microseconds from 1 µs to one hour with three
//! significant digits; a longer value is recorded as the maximum.

use super::fanout::FanOut;
use super::scenario::ScenarioStats;
use super::subscribe::Order;
use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Largest latency a histogram tells apart, in microseconds (one hour).
const HIGHEST_US: u64 = 3_600_000_000;

/// An empty latency histogram (microseconds, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

/// Record `d` in microseconds (at least 1, so a sub-microsecond round trip
/// is not lost below the histogram's lowest value).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// A latency distribution in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Summarise a histogram (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Time-outs, by what was being waited for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedOut {
    /// The TCP connection did not complete.
    pub connect: u64,
    /// No complete answer to the upgrade request.
    pub handshake: u64,
    /// A message's echo did not come back (the connection is then dropped).
    pub message: u64,
    /// Our close frame got no close frame back (RFC 6455 §7.1.2).
    pub close: u64,
}

/// Errors by kind. The run counts them and goes on; none stops it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Errors {
    /// `ECONNREFUSED`: nothing listens on the port (or its backlog is full).
    pub refused: u64,
    /// Time-outs.
    pub timed_out: TimedOut,
    /// Upgrade requests answered with a status other than 101, by status.
    pub handshake_status: BTreeMap<u16, u64>,
    /// 101 answers that break RFC 6455 §4.1 (or no answer at all), by kind.
    #[serde(deserialize_with = "interned")]
    pub handshake_invalid: BTreeMap<&'static str, u64>,
    /// Close codes the server ended a connection with while we were not
    /// closing; 1006 when the TCP connection ended without a close frame
    /// (§7.1.5), 1005 for a close frame without a code.
    pub close_codes: BTreeMap<u16, u64>,
    /// Protocol violations by the server (§7.1.7), by kind.
    #[serde(deserialize_with = "interned")]
    pub protocol: BTreeMap<&'static str, u64>,
    /// Echo mode: a message that was not the echo of one we sent.
    #[serde(deserialize_with = "interned")]
    pub echo: BTreeMap<&'static str, u64>,
    /// Other socket errors, by kind (reset, address unavailable, EMFILE...).
    #[serde(deserialize_with = "interned")]
    pub io: BTreeMap<&'static str, u64>,
    /// Subscribe mode: publish requests answered with a status other than
    /// 200, by status.
    pub publish_status: BTreeMap<u16, u64>,
    /// Subscribe mode: publish requests that failed otherwise, by kind
    /// (socket errors, time-outs, answers that break the API).
    #[serde(deserialize_with = "interned")]
    pub publish: BTreeMap<&'static str, u64>,
    /// Subscribe mode: deliveries that break the channel's promise, by kind
    /// (missing, duplicate, out_of_order, delivered_rejected, unexpected,
    /// bad_payload, wrong_size).
    #[serde(deserialize_with = "interned")]
    pub delivery: BTreeMap<&'static str, u64>,
}

impl Errors {
    /// All errors counted.
    pub fn total(&self) -> u64 {
        let t = &self.timed_out;
        self.refused
            + t.connect
            + t.handshake
            + t.message
            + t.close
            + sum(&self.handshake_status)
            + sum(&self.handshake_invalid)
            + sum(&self.close_codes)
            + sum(&self.protocol)
            + sum(&self.echo)
            + sum(&self.io)
            + sum(&self.publish_status)
            + sum(&self.publish)
            + sum(&self.delivery)
    }

    /// Count a socket error: refusals on their own, the rest by kind.
    pub fn socket(&mut self, e: &io::Error) {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => self.refused += 1,
            _ => *self.io.entry(io_kind(e)).or_default() += 1,
        }
    }

    /// Count a publisher's socket error by kind.
    pub fn publish_socket(&mut self, e: &io::Error) {
        *self.publish.entry(io_kind(e)).or_default() += 1;
    }

    /// Count `n` deliveries of `kind` (no entry for zero).
    pub fn delivery(&mut self, kind: &'static str, n: u64) {
        if n > 0 {
            *self.delivery.entry(kind).or_default() += n;
        }
    }

    /// Add another set of counts to these.
    pub fn merge(&mut self, other: &Errors) {
        self.refused += other.refused;
        self.timed_out.connect += other.timed_out.connect;
        self.timed_out.handshake += other.timed_out.handshake;
        self.timed_out.message += other.timed_out.message;
        self.timed_out.close += other.timed_out.close;
        add_all(&mut self.handshake_status, &other.handshake_status);
        add_all(&mut self.handshake_invalid, &other.handshake_invalid);
        add_all(&mut self.close_codes, &other.close_codes);
        add_all(&mut self.protocol, &other.protocol);
        add_all(&mut self.echo, &other.echo);
        add_all(&mut self.io, &other.io);
        add_all(&mut self.publish_status, &other.publish_status);
        add_all(&mut self.publish, &other.publish);
        add_all(&mut self.delivery, &other.delivery);
    }
}

/// Most kinds of error a run keeps by name (see [`intern`]).
const MAX_KINDS: usize = 1024;

/// The `&'static str` for an error kind read back from another process
/// (a distributed run's agent): the kinds are a fixed few of our own, so
/// each is made static once; past [`MAX_KINDS`] of them, "other".
pub(crate) fn intern(kind: &str) -> &'static str {
    static KINDS: Mutex<std::collections::BTreeSet<&'static str>> = Mutex::new(std::collections::BTreeSet::new());
    let Ok(mut kinds) = KINDS.lock() else {
        return "other";
    };
    if let Some(&k) = kinds.get(kind) {
        return k;
    }
    if kinds.len() >= MAX_KINDS {
        return "other";
    }
    let k: &'static str = Box::leak(kind.to_owned().into_boxed_str());
    kinds.insert(k);
    k
}

fn interned<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<&'static str, u64>, D::Error> {
    let named = BTreeMap::<String, u64>::deserialize(d)?;
    let mut kinds = BTreeMap::new();
    for (k, n) in named {
        *kinds.entry(intern(&k)).or_default() += n;
    }
    Ok(kinds)
}

fn sum<K>(m: &BTreeMap<K, u64>) -> u64 {
    m.values().sum()
}

fn add_all<K: Ord + Copy>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(*k).or_default() += v;
    }
}

/// A short stable name for a socket error.
pub fn io_kind(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ECONNRESET) => "reset",
        Some(libc::EPIPE) => "broken_pipe",
        Some(libc::ETIMEDOUT) => "timed_out",
        Some(libc::EADDRNOTAVAIL) => "address_unavailable",
        Some(libc::EADDRINUSE) => "address_in_use",
        Some(libc::EMFILE | libc::ENFILE) => "too_many_open_files",
        Some(libc::ENOBUFS | libc::ENOMEM) => "out_of_memory",
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => "unreachable",
        _ if e.kind() == io::ErrorKind::UnexpectedEof => "eof",
        _ => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => tls_kind(tls),
            None => "other",
        },
    }
}

/// Why a TLS handshake failed, in words a person acts on; one of a fixed
/// few, so that counting by it stays bounded. A certificate the client
/// refused starts with [`CERTIFICATE_REFUSED`].
pub fn tls_kind(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "tls: certificate not trusted (unknown issuer: self-signed or a private CA)",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "tls: certificate not trusted (not valid for this host name)"
            }
            C::Expired | C::ExpiredContext { .. } => "tls: certificate not trusted (expired)",
            C::NotValidYet | C::NotValidYetContext { .. } => "tls: certificate not trusted (not valid yet)",
            C::Revoked => "tls: certificate not trusted (revoked)",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "tls: certificate not trusted (not for a server)",
            C::BadSignature | C::BadEncoding => "tls: certificate not trusted (malformed or badly signed)",
            _ => "tls: certificate not trusted",
        },
        rustls::Error::AlertReceived(_) => "tls: handshake refused by the server (alert)",
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
            "tls: no protocol version, cipher or ALPN in common"
        }
        _ => "tls: handshake or record error",
    }
}

/// How every kind of [`tls_kind`] for a refused certificate starts.
pub const CERTIFICATE_REFUSED: &str = "tls: certificate not trusted";

/// One worker's figures, merged into the run's at the end.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Round trips: from the scheduled send time with `--rate`, else from
    /// the actual send. Churn mode: cycle times, from the due time with
    /// `--rate`, else from the connect.
    pub latency: Histogram<u64>,
    /// Round trips from the actual send (equal to `latency` without
    /// `--rate`). Churn mode: cycle times from the connect.
    pub service: Histogram<u64>,
    /// From `connect()` to the connection being established.
    pub connect: Histogram<u64>,
    /// From the upgrade request to a valid 101.
    pub handshake: Histogram<u64>,
    /// Connections tried.
    pub attempted: u64,
    /// Connections that completed the opening handshake.
    pub opened: u64,
    /// Data messages sent.
    pub sent: u64,
    /// Data messages received (echoes in echo mode, deliveries in
    /// subscribe mode, duplicates included).
    pub received: u64,
    /// Errors by kind.
    pub errors: Errors,
    /// Subscribe mode: what each subscriber that opened received, for
    /// [`super::subscribe::reconcile`].
    pub orders: Vec<Order>,
    /// Churn mode's cycles.
    pub churn: ChurnStats,
    /// What the connections carried from the window's start to the end.
    pub wire: Wire,
    /// Subscribe mode: slow readers' deliveries, from the time each was
    /// due (kept out of `latency`, which is then the other subscribers').
    pub slow_latency: Histogram<u64>,
    /// Subscribe mode: each publish's reach.
    pub fanout: FanOut,
    /// Subscribe mode: slow readers and reconnect storms.
    pub scenario: ScenarioStats,
}

/// Bytes on the wire and HTTP requests, counted by the client from what it
/// actually wrote and read (TCP payload: TLS records over `wss://`), from the
/// start of the measurement window until the run ends; the opening
/// handshakes of the ramp are before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire {
    /// Bytes read from the server.
    pub bytes_in: u64,
    /// Bytes written to the server.
    pub bytes_out: u64,
    /// HTTP requests sent (polls, event-stream reconnects).
    pub requests: u64,
    /// TCP connections established.
    pub connects: u64,
    /// Event streams the server ended, and polls it closed unasked:
    /// the subscriber resumed from its cursor on a new connection.
    pub reconnects: u64,
}

impl Wire {
    fn merge(&mut self, o: &Wire) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.requests += o.requests;
        self.connects += o.connects;
        self.reconnects += o.reconnects;
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            service: histogram(),
            connect: histogram(),
            handshake: histogram(),
            attempted: 0,
            opened: 0,
            sent: 0,
            received: 0,
            errors: Errors::default(),
            orders: Vec::new(),
            churn: ChurnStats::default(),
            wire: Wire::default(),
            slow_latency: histogram(),
            fanout: FanOut::default(),
            scenario: ScenarioStats::default(),
        }
    }
}

impl Stats {
    /// Add another worker's figures to these.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.connect.add(&other.connect);
        let _ = self.handshake.add(&other.handshake);
        self.attempted += other.attempted;
        self.opened += other.opened;
        self.sent += other.sent;
        self.received += other.received;
        self.errors.merge(&other.errors);
        self.orders.extend_from_slice(&other.orders);
        self.churn.merge(&other.churn);
        self.wire.merge(&other.wire);
        let _ = self.slow_latency.add(&other.slow_latency);
        self.fanout.merge(&other.fanout);
        self.scenario.merge(&other.scenario);
    }
}

/// One worker's live counters for the progress line.
#[derive(Debug)]
pub struct Live {
    /// Messages received so far.
    pub received: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Latencies since the progress line last took them.
    pub interval: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval: Mutex::new(histogram()),
        }
    }
}

impl Live {
    /// Hand the worker's interval histogram over, and empty it.
    pub fn publish(&self, stats: &Stats, interval: &mut Histogram<u64>) {
        self.received.store(stats.received, Relaxed);
        self.errors.store(stats.errors.total(), Relaxed);
        if let Ok(mut h) = self.interval.lock() {
            let _ = h.add(&*interval);
        }
        interval.reset();
    }

    /// Take the latencies published since the last call.
    pub fn take_interval(&self, into: &mut Histogram<u64>) {
        if let Ok(mut h) = self.interval.lock() {
            let _ = into.add(&*h);
            h.reset();
        }
    }
}

/// One worker's churn figures (the cycle times themselves are the
/// `latency` and `service` histograms of [`Stats`]).
#[derive(Debug, Clone)]
pub struct ChurnStats {
    /// Cycles started (each a connection attempt).
    pub started: u64,
    /// Cycles that were due while every slot was busy, and waited.
    pub late: u64,
    /// Cycles completed inside the window.
    pub cycles: u64,
    /// Cycles completed after the window's end, in the drain.
    pub after_window: u64,
    /// Cycles that ended without completing (their errors are counted by kind).
    pub failed: u64,
    /// Completed cycles whose server did not close the TCP connection
    /// within the close timeout (§7.1.1 says it should close first).
    pub server_kept_open: u64,
    /// The echo's round trip, from the send.
    pub echo: Histogram<u64>,
}

impl Default for ChurnStats {
    fn default() -> Self {
        ChurnStats {
            started: 0,
            late: 0,
            cycles: 0,
            after_window: 0,
            failed: 0,
            server_kept_open: 0,
            echo: histogram(),
        }
    }
}

impl ChurnStats {
    /// Add another worker's figures to these.
    pub fn merge(&mut self, other: &ChurnStats) {
        self.started += other.started;
        self.late += other.late;
        self.cycles += other.cycles;
        self.after_window += other.after_window;
        self.failed += other.failed;
        self.server_kept_open += other.server_kept_open;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.echo.add(&other.echo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_merge_and_total() {
        let mut a = Errors::default();
        a.socket(&io::Error::from_raw_os_error(libc::ECONNREFUSED));
        a.socket(&io::Error::from_raw_os_error(libc::ECONNRESET));
        *a.close_codes.entry(1006).or_default() += 1;
        let mut b = Errors::default();
        b.timed_out.handshake = 2;
        *b.handshake_status.entry(404).or_default() += 3;
        *b.close_codes.entry(1006).or_default() += 1;
        a.merge(&b);
        assert_eq!(a.refused, 1);
        assert_eq!(a.io["reset"], 1);
        assert_eq!(a.close_codes[&1006], 2);
        assert_eq!(a.total(), 1 + 1 + 2 + 2 + 3);
    }

    #[test]
    fn errors_read_back_with_their_kinds() {
        let mut a = Errors::default();
        a.socket(&io::Error::from_raw_os_error(libc::ECONNRESET));
        a.delivery("missing", 3);
        *a.handshake_status.entry(503).or_default() += 2;
        let json = serde_json::to_string(&a).unwrap();
        let b: Errors = serde_json::from_str(&json).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(intern("missing"), intern("missing")));
    }

    #[test]
    fn histograms_merge_and_saturate() {
        let mut a = Stats::default();
        record(&mut a.latency, Duration::from_nanos(10));
        record(&mut a.latency, Duration::from_secs(7200));
        let mut b = Stats::default();
        record(&mut b.latency, Duration::from_millis(5));
        a.merge(&b);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.latency.min(), 1);
        assert!(a.latency.max() >= HIGHEST_US);
    }
}
