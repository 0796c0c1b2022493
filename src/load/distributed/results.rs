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

/// The most a histogram of ours takes, deflated or not: three significant
/// digits up to an hour are ~25,000 counts of at most 9 bytes each.
const MAX_HISTOGRAM_BYTES: usize = 1 << 20;

/// A histogram from [`encode`]'s form, in our bounds (values past them
/// saturate at the highest). The sizes it declares are checked before
/// hdrhistogram allocates by them: a size in a message is a claim.
pub fn decode(s: &str) -> Result<Histogram<u64>, String> {
    if s.len() > MAX_HISTOGRAM_BYTES {
        return Err("histogram is too large".into());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    // V2 deflated: cookie, length, then zlib of the V2 encoding, whose
    // header's bytes 4..8 are its payload's length (big-endian).
    let mut inflated = Vec::new();
    let zlib = bytes.get(8..).ok_or("histogram is cut short")?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(flate2::read::ZlibDecoder::new(zlib), MAX_HISTOGRAM_BYTES as u64 + 1),
        &mut inflated,
    )
    .map_err(|e| format!("histogram does not inflate: {e}"))?;
    let declared = inflated
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if inflated.len() > MAX_HISTOGRAM_BYTES || declared.is_none_or(|n| n > inflated.len()) {
        return Err("histogram declares more than it holds".into());
    }
    // Its precision (bytes 12..16) sizes the counts it is read into: ours
    // is 3 significant digits.
    if inflated.get(12..16) != Some(&3u32.to_be_bytes()[..]) {
        return Err("histogram is not of three significant digits".into());
    }
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
        if !self.orders.iter().all(Order::well_formed) {
            return Err("a subscriber's order is not well formed".into());
        }
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
        // A header that declares 4 GiB of counts is refused before anything
        // is allocated for them.
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(encode(&h)).unwrap();
        let mut v2 = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[8..]), &mut v2).unwrap();
        v2[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &v2).unwrap();
        bytes.truncate(8);
        bytes.extend(z.finish().unwrap());
        let forged = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(decode(&forged).unwrap_err(), "histogram declares more than it holds");
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
        // Gaps that overlap (which would make the reconciliation count
        // below zero) are refused.
        let mut json: serde_json::Value = serde_json::from_str(&json).unwrap();
        json["orders"][0]["lanes"][0] = serde_json::json!({
            "next": 9, "gaps": [{"start": 1, "end": 5}, {"start": 3, "end": 7}], "forgotten": 0
        });
        let f: Figures = serde_json::from_value(json).unwrap();
        assert_eq!(f.stats().unwrap_err(), "a subscriber's order is not well formed");
    }
}
