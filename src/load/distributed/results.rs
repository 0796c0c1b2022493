//! One agent's figures on their way to the coordinator: the counters as
//! they are, every subscriber's order (for the reconciliation), the fan-out
//! table, and each histogram in HdrHistogram's own V2 serialization
//! (deflated, base64), so that the coordinator adds histograms, never
//! percentiles.

use crate::load::fanout::FanOut;
use crate::load::scenario::ScenarioStats;
use crate::load::stats::{histogram, Errors, Stats, Wire};
use crate::load::subscribe::Order;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A histogram in V2 (deflated), base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail; a histogram of our bounds always fits.
    let _ = V2DeflateSerializer::new().serialize(h, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A histogram from [`encode`]'s form, in our bounds (values past them
/// saturate at the highest).
pub fn decode(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let read: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram is not HdrHistogram V2: {e:?}"))?;
    let mut h = histogram();
    for v in read.iter_recorded() {
        h.saturating_record_n(v.value_iterated_to(), v.count_at_value());
    }
    Ok(h)
}

/// An agent's part, done or failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Outcome {
    pub index: usize,
    pub name: String,
    /// Why the part failed (then no figures).
    pub error: Option<String>,
    pub figures: Option<Figures>,
}

/// [`Stats`] on the wire (churn mode is not distributed: no churn figures).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Figures {
    latency: String,
    service: String,
    connect: String,
    handshake: String,
    slow_latency: String,
    attempted: u64,
    opened: u64,
    sent: u64,
    received: u64,
    errors: Errors,
    orders: Vec<Order>,
    wire: Wire,
    fanout: FanOut,
    scenario: ScenarioStats,
    pub peak_open: usize,
}

impl Figures {
    pub fn new(s: &Stats, peak_open: usize) -> Figures {
        Figures {
            latency: encode(&s.latency),
            service: encode(&s.service),
            connect: encode(&s.connect),
            handshake: encode(&s.handshake),
            slow_latency: encode(&s.slow_latency),
            attempted: s.attempted,
            opened: s.opened,
            sent: s.sent,
            received: s.received,
            errors: s.errors.clone(),
            orders: s.orders.clone(),
            wire: s.wire,
            fanout: s.fanout.clone(),
            scenario: s.scenario.clone(),
            peak_open,
        }
    }

    /// The latency histogram as sent.
    pub fn latency(&self) -> &str {
        &self.latency
    }

    /// Back to [`Stats`].
    pub fn stats(self) -> Result<Stats, String> {
        Ok(Stats {
            latency: decode(&self.latency)?,
            service: decode(&self.service)?,
            connect: decode(&self.connect)?,
            handshake: decode(&self.handshake)?,
            slow_latency: decode(&self.slow_latency)?,
            attempted: self.attempted,
            opened: self.opened,
            sent: self.sent,
            received: self.received,
            errors: self.errors,
            orders: self.orders,
            wire: self.wire,
            fanout: self.fanout,
            scenario: self.scenario,
            ..Stats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::record;
    use std::time::Duration;

    #[test]
    fn a_histogram_survives_the_trip() {
        let mut h = histogram();
        for ms in [1, 2, 3, 50, 700, 7_000_000] {
            record(&mut h, Duration::from_millis(ms));
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }

    #[test]
    fn figures_come_back_as_they_went() {
        let mut s = Stats::default();
        record(&mut s.latency, Duration::from_micros(1500));
        record(&mut s.connect, Duration::from_micros(80));
        s.attempted = 3;
        s.opened = 2;
        s.received = 40;
        s.errors.delivery("missing", 2);
        s.orders.push(Order::new(2));
        let json = serde_json::to_string(&Figures::new(&s, 2)).unwrap();
        let f: Figures = serde_json::from_str(&json).unwrap();
        assert_eq!(f.peak_open, 2);
        let back = f.stats().unwrap();
        assert_eq!(back.latency, s.latency);
        assert_eq!(back.connect, s.connect);
        assert_eq!((back.attempted, back.opened, back.received), (3, 2, 40));
        assert_eq!(back.errors, s.errors);
        assert_eq!(back.orders, s.orders);
    }
}
