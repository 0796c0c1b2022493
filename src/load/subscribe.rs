//! Subscribe mode's messages: what a published payload carries, and what
//! each subscriber makes of the messages it receives.
//!
//! The publisher ([`super::publisher`]) posts over a few HTTP connections,
//! its *lanes*, one request at a time on each. A lane's messages are
//! accepted by the server in the order the lane sent them, and the server
//! delivers a channel's messages in the order it accepted them, so every
//! subscriber must see each *stream* (a lane's messages to one channel) in
//! the lane's order, once each. Across lanes there is no order to check:
//! two requests in flight at once may be accepted either way round; nor
//! across channels: a server need not keep one (a Redis Cluster's masters
//! each send their own channels' messages).
//!
//! A payload starts with 16 bytes (little endian):
//!
//! ```text
//!  0..8    stream << 48 | sequence number within the stream
//!  8..16   scheduled send time, ns since the unix epoch (wall clock)
//! 16..24   actual send time, ns since the unix epoch (only when --size >= 24)
//! ```
//!
//! The rest is filler. A text payload (`--text`, which every transport
//! carries as it is: SSE and polls would carry binary as base64) has the
//! same words as 16 lowercase hex digits each, then letters:
//!
//! ```text
//!  0..16   stream << 48 | sequence number   16..32   scheduled   32..48   sent (when --size >= 48)
//! ```
//!
//! Latency is measured from the scheduled time, so a
//! publisher held up by a slow server is charged for the wait (coordinated
//! omission), and, when the payload has room, also from the actual send.
//! The clock is the wall clock, so that subscribers in other processes on
//! the same machine (`--observe`) measure the same messages.
//!
//! Each subscriber keeps, per lane, the next sequence number it expects and
//! the gaps it has seen; a number below that is either a gap being filled
//! (out of order) or a duplicate. Whether a gap is a loss is known only at
//! the end, against what the publisher knows was accepted
//! ([`reconcile`]): a rejected or unanswered publish leaves a gap that is
//! no loss.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Bytes of the header every payload carries; the least `--size`.
pub const HEADER: usize = 16;
/// With this many bytes the payload also carries the actual send time.
pub const HEADER_WITH_SEND: usize = 24;
/// The text form's least `--size`, and the size that carries the send time.
pub const TEXT_HEADER: usize = 32;
/// See [`TEXT_HEADER`].
pub const TEXT_HEADER_WITH_SEND: usize = 48;
/// Lanes a payload can name (the 16 high bits of the first word).
pub const MAX_LANES: usize = 1 << 16;
/// Gaps remembered per lane; older ones are then counted as lost at once
/// (only a server losing messages by the thousand gets there).
const MAX_GAPS: usize = 1024;

const SEQ_MASK: u64 = (1 << 48) - 1;

/// What a payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Its stream: the publisher connection that sent it and the channel
    /// it went to ([`super::plan::PublishPlan::stream`]).
    pub lane: usize,
    /// Its number within the stream, from 0.
    pub seq: u64,
    /// When it was due, in ns since the epoch.
    pub scheduled_ns: u64,
    /// When it went, in ns since the epoch, if the payload has room.
    pub sent_ns: Option<u64>,
}

impl Stamp {
    /// Write the payload of `size` bytes (at least [`HEADER`]) into `out`.
    pub fn write(&self, size: usize, out: &mut Vec<u8>) {
        let word = self.first_word();
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(&self.scheduled_ns.to_le_bytes());
        let mut written = HEADER;
        if size >= HEADER_WITH_SEND {
            out.extend_from_slice(&self.sent_ns.unwrap_or(0).to_le_bytes());
            written = HEADER_WITH_SEND;
        }
        out.extend((written..size).map(|i| (i * 31 + 7) as u8));
    }

    /// Write the text form of `size` bytes (at least [`TEXT_HEADER`]).
    pub fn write_text(&self, size: usize, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let word = self.first_word();
        let _ = write!(out, "{word:016x}{:016x}", self.scheduled_ns);
        let mut written = TEXT_HEADER;
        if size >= TEXT_HEADER_WITH_SEND {
            let _ = write!(out, "{:016x}", self.sent_ns.unwrap_or(0));
            written = TEXT_HEADER_WITH_SEND;
        }
        out.extend((written..size).map(|i| b'a' + (i % 26) as u8));
    }

    /// Read a text payload's header; `None` unless it is ours.
    pub fn read_text(payload: &[u8]) -> Option<Stamp> {
        let word = |at: usize| {
            let hex = std::str::from_utf8(payload.get(at..at + 16)?).ok()?;
            u64::from_str_radix(hex, 16).ok()
        };
        Some(Stamp::from_words(word(0)?, word(16)?, word(32)))
    }

    /// Read a payload's header; `None` when it is too short to be ours.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let word = |at: usize| Some(u64::from_le_bytes(payload.get(at..at + 8)?.try_into().ok()?));
        Some(Stamp::from_words(word(0)?, word(8)?, word(16)))
    }

    /// The first word: the lane in the 16 high bits, the number below.
    fn first_word(&self) -> u64 {
        (self.lane as u64) << 48 | (self.seq & SEQ_MASK)
    }

    /// The stamp of a header's words, in either form.
    fn from_words(first: u64, scheduled_ns: u64, sent_ns: Option<u64>) -> Stamp {
        Stamp {
            lane: (first >> 48) as usize,
            seq: first & SEQ_MASK,
            scheduled_ns,
            sent_ns,
        }
    }
}

/// Where a received sequence number falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next one expected.
    InOrder,
    /// Past the next expected: the ones between are a gap.
    Ahead,
    /// Fills a gap: it came after a later one.
    Late,
    /// Already received.
    Duplicate,
}

/// One lane's order, as one subscriber saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneOrder {
    /// Every number below this was received or is in `gaps`.
    next: u64,
    /// Numbers skipped and not (yet) received, ascending and disjoint.
    gaps: Vec<Range<u64>>,
    /// Numbers given up on when `gaps` was full: counted as missing.
    forgotten: u64,
}

impl LaneOrder {
    /// Note sequence number `seq`.
    pub fn see(&mut self, seq: u64) -> Seen {
        if seq == self.next {
            self.next += 1;
            return Seen::InOrder;
        }
        if seq > self.next {
            if self.gaps.len() == MAX_GAPS {
                let oldest = self.gaps.remove(0);
                self.forgotten += oldest.end - oldest.start;
            }
            self.gaps.push(self.next..seq);
            self.next = seq + 1;
            return Seen::Ahead;
        }
        // Below `next`: a gap being filled, else a duplicate. Gaps are few
        // and the latest is the likeliest, so search from the back.
        let Some(i) = self.gaps.iter().rposition(|g| g.contains(&seq)) else {
            return Seen::Duplicate;
        };
        let gap = self.gaps[i].clone();
        match (seq == gap.start, seq + 1 == gap.end) {
            (true, true) => {
                self.gaps.remove(i);
            }
            (true, false) => self.gaps[i].start += 1,
            (false, true) => self.gaps[i].end -= 1,
            (false, false) => {
                self.gaps[i].end = seq;
                self.gaps.insert(i + 1, seq + 1..gap.end);
            }
        }
        Seen::Late
    }
}

/// One subscriber's view of every lane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    lanes: Vec<LaneOrder>,
    /// Distinct messages received.
    pub unique: u64,
}

impl Order {
    /// A subscriber expecting `lanes` lanes.
    pub fn new(lanes: usize) -> Order {
        Order {
            lanes: vec![LaneOrder::default(); lanes],
            unique: 0,
        }
    }

    /// Per lane, one past the highest sequence number received.
    pub fn reached(&self) -> impl Iterator<Item = u64> + '_ {
        self.lanes.iter().map(|l| l.next)
    }

    /// Every message before the latest received of each lane is received
    /// (none is missing so far).
    pub fn gapless(&self) -> bool {
        self.lanes.iter().all(|l| l.gaps.is_empty() && l.forgotten == 0)
    }

    /// Its gaps are ascending, disjoint, not empty and below `next`, as
    /// [`LaneOrder::see`] keeps them (one read from another process may not
    /// be).
    pub fn well_formed(&self) -> bool {
        self.lanes.iter().all(|l| {
            let mut floor = 0;
            l.gaps.iter().all(|g| {
                let ok = g.start >= floor && g.start < g.end && g.end <= l.next;
                floor = g.end;
                ok
            })
        })
    }

    /// Note a received stamp; `None` when its lane is not one of ours.
    pub fn see(&mut self, stamp: &Stamp) -> Option<Seen> {
        let seen = self.lanes.get_mut(stamp.lane)?.see(stamp.seq);
        if seen != Seen::Duplicate {
            self.unique += 1;
        }
        Some(seen)
    }
}

/// What the publisher knows of one lane at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneOutcome {
    /// Messages sent: sequence numbers `0..sent`.
    pub sent: u64,
    /// Sequence numbers answered with a status other than 200 (ascending).
    pub rejected: Vec<u64>,
    /// Sequence numbers that got no answer (connection lost, time-out):
    /// published or not, nobody knows (ascending).
    pub unconfirmed: Vec<u64>,
}

impl LaneOutcome {
    /// Messages the server confirmed with a 200.
    pub fn accepted(&self) -> u64 {
        self.sent - self.rejected.len() as u64 - self.unconfirmed.len() as u64
    }
}

/// The deliveries of all subscribers, held against what was published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Accepted messages a subscriber never received, summed.
    pub missing: u64,
    /// Rejected messages that a subscriber received anyway.
    pub delivered_rejected: u64,
    /// Sequence numbers received that were never sent.
    pub unexpected: u64,
    /// Subscribers that received every accepted message.
    pub complete: u64,
}

/// Count, over every subscriber, the accepted messages it never got.
pub fn reconcile(orders: &[Order], lanes: &[LaneOutcome]) -> Reconciled {
    let mut r = Reconciled::default();
    for order in orders {
        let mut missing = 0;
        for (seen, lane) in order.lanes.iter().zip(lanes) {
            let n = lane.sent;
            r.unexpected += seen.next.saturating_sub(n);
            let next = seen.next.min(n);
            // Not received: the gaps and the tail after `next`.
            let gaps = seen.gaps.iter().map(|g| g.start.min(n)..g.end.min(n));
            let mut rejected_in_gaps = 0;
            for hole in gaps.clone().chain(std::iter::once(next..n)) {
                let not_accepted = within(&lane.rejected, &hole) + within(&lane.unconfirmed, &hole);
                missing += hole.end.saturating_sub(hole.start) - not_accepted;
            }
            for gap in gaps {
                rejected_in_gaps += within(&lane.rejected, &gap);
            }
            missing += seen.forgotten;
            r.delivered_rejected += within(&lane.rejected, &(0..next)) - rejected_in_gaps;
        }
        r.missing += missing;
        r.complete += u64::from(missing == 0);
    }
    r
}

/// How many of the ascending `values` fall in `range`.
fn within(values: &[u64], range: &Range<u64>) -> u64 {
    if range.start >= range.end {
        return 0;
    }
    (values.partition_point(|&v| v < range.end) - values.partition_point(|&v| v < range.start)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_at_every_size() {
        let stamp = Stamp {
            lane: 3,
            seq: 123_456_789,
            scheduled_ns: 42,
            sent_ns: Some(99),
        };
        for size in [16, 23, 24, 64, 1000] {
            let mut out = Vec::new();
            stamp.write(size, &mut out);
            assert_eq!(out.len(), size);
            let read = Stamp::read(&out).unwrap();
            let sent = (size >= 24).then_some(99);
            assert_eq!(read, Stamp { sent_ns: sent, ..stamp });
        }
        assert_eq!(Stamp::read(&[0; 15]), None);
        for size in [32, 47, 48, 64, 4096] {
            let mut out = Vec::new();
            stamp.write_text(size, &mut out);
            assert_eq!(out.len(), size);
            assert!(out.iter().all(|b| b.is_ascii_alphanumeric()));
            let sent = (size >= 48).then_some(99);
            assert_eq!(Stamp::read_text(&out), Some(Stamp { sent_ns: sent, ..stamp }));
        }
        assert_eq!(Stamp::read_text(b"0000000000000000000000000000000"), None);
        assert_eq!(Stamp::read_text(b"zz00000000000000000000000000000000"), None);
    }

    fn seen(order: &mut LaneOrder, seqs: &[u64]) -> Vec<Seen> {
        seqs.iter().map(|&s| order.see(s)).collect()
    }

    #[test]
    fn test_lane_order_in_order_then_gap_then_late_and_duplicate() {
        let mut o = LaneOrder::default();
        use Seen::*;
        assert_eq!(seen(&mut o, &[0, 1, 2]), [InOrder; 3]);
        assert_eq!(seen(&mut o, &[6]), [Ahead]);
        assert_eq!(o.gaps, vec![Range { start: 3, end: 6 }]);
        // Fill the middle of the gap, then both ends.
        assert_eq!(
            seen(&mut o, &[4, 4, 3, 5, 1, 7]),
            [Late, Duplicate, Late, Late, Duplicate, InOrder]
        );
        assert!(o.gaps.is_empty());
        assert_eq!(o.next, 8);
    }

    #[test]
    fn full_gap_list_forgets_the_oldest_gap_as_missing() {
        let mut o = LaneOrder::default();
        for i in 0..=MAX_GAPS as u64 {
            o.see(2 * i + 1);
        }
        assert_eq!(o.gaps.len(), MAX_GAPS);
        assert_eq!(o.forgotten, 1);
        assert_eq!(o.see(0), Seen::Duplicate);
        let lanes = [LaneOutcome {
            sent: o.next,
            ..LaneOutcome::default()
        }];
        let order = Order {
            lanes: vec![o],
            unique: 0,
        };
        assert_eq!(reconcile(&[order], &lanes).missing, MAX_GAPS as u64 + 1);
    }

    #[test]
    fn reconcile_counts_only_accepted_messages_as_missing() {
        // Lane 0 sent 0..10: 3 rejected, 5 unanswered. Lane 1 sent 0..4.
        let lanes = [
            LaneOutcome {
                sent: 10,
                rejected: vec![3],
                unconfirmed: vec![5],
            },
            LaneOutcome {
                sent: 4,
                ..LaneOutcome::default()
            },
        ];
        assert_eq!(lanes[0].accepted(), 8);
        let order = |lane0: &[u64], lane1: &[u64]| {
            let mut o = Order::new(2);
            for &s in lane0 {
                o.see(&stamp(0, s));
            }
            for &s in lane1 {
                o.see(&stamp(1, s));
            }
            o
        };
        // Everything accepted, and the unconfirmed 5, received.
        let complete = order(&[0, 1, 2, 4, 5, 6, 7, 8, 9], &[0, 1, 2, 3]);
        // Missing 7 and the tail 9 of lane 0, and 2.. of lane 1; got the rejected 3.
        let holes = order(&[0, 1, 2, 3, 4, 6, 8], &[0, 1]);
        let r = reconcile(&[complete, holes], &lanes);
        assert_eq!(
            r,
            Reconciled {
                missing: 2 + 2,
                delivered_rejected: 1,
                unexpected: 0,
                complete: 1,
            }
        );
        // A number past what was sent was not ours.
        let stray = order(&[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11], &[0, 1, 2, 3]);
        assert_eq!(reconcile(&[stray], &lanes).unexpected, 2);
    }

    fn stamp(lane: usize, seq: u64) -> Stamp {
        Stamp {
            lane,
            seq,
            scheduled_ns: 0,
            sent_ns: None,
        }
    }
}
