//! Echo mode's message flow on one connection: which message is due next,
//! which are in flight, and the round trip of each echo.
//!
//! Echoes come back in order on one connection (a WebSocket is one ordered
//! stream and the echo endpoint answers each message with one message), so
//! the oldest message in flight is the one an echo answers.

use super::stats::{record, Stats};
use super::Plan;
use crate::protocol::WebSocket;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::time::Instant;

/// A message's timestamps while its echo is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// When it was due: latency is measured from here.
    pub due: Instant,
    /// When it was queued on the connection.
    pub sent: Instant,
}

/// One connection's messages.
#[derive(Debug)]
pub struct EchoFlow {
    /// The connection's index over the whole run (its place in the schedule).
    index: usize,
    /// Messages awaiting their echo, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The next message's number in this connection's schedule.
    next: u64,
}

impl EchoFlow {
    /// The flow of connection `index`.
    pub fn new(index: usize) -> Self {
        EchoFlow {
            index,
            in_flight: VecDeque::new(),
            next: 0,
        }
    }

    /// Messages awaiting their echo.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the oldest message in flight was sent.
    pub fn oldest_sent(&self) -> Option<Instant> {
        self.in_flight.front().map(|m| m.sent)
    }

    /// When the next message is due, if one is and the pipeline has room.
    pub fn wake_at(&self, plan: &Plan, (start, end): (Instant, Instant), now: Instant) -> Option<Instant> {
        if self.in_flight.len() >= plan.pipeline || now >= end {
            return None;
        }
        match &plan.schedule {
            Some(s) => Some(start + s.offset(self.index, self.next)).filter(|&due| due < end),
            // Unpaced: the first sends wait for the start; echoes drive the rest.
            None => Some(start),
        }
    }

    /// Queue through `ws` into `out` the messages that are due at `now`,
    /// while the pipeline has room. Paced, a message goes at its due time
    /// or as soon after as it can; unpaced, at once.
    pub fn pump(
        &mut self,
        ws: &mut WebSocket,
        out: &mut Vec<u8>,
        plan: &Plan,
        (start, end): (Instant, Instant),
        now: Instant,
        stats: &mut Stats,
    ) {
        while self.in_flight.len() < plan.pipeline {
            let due = match &plan.schedule {
                Some(s) => start + s.offset(self.index, self.next),
                None => now,
            };
            if due > now || due < start || due >= end {
                break;
            }
            ws.send(plan.kind, &plan.payload, out);
            self.in_flight.push_back(InFlight { due, sent: now });
            self.next += 1;
            stats.sent += 1;
        }
    }

    /// A message of `len` bytes came back at `now` (when its readiness was
    /// seen, so after it arrived): the echo of the oldest in flight.
    pub fn on_echo(&mut self, len: usize, now: Instant, plan: &Plan, stats: &mut Stats, interval: &mut Histogram<u64>) {
        stats.received += 1;
        let Some(m) = self.in_flight.pop_front() else {
            *stats.errors.echo.entry("unsolicited").or_default() += 1;
            return;
        };
        if len != plan.payload.len() {
            *stats.errors.echo.entry("wrong_size").or_default() += 1;
        }
        let latency = now.saturating_duration_since(m.due);
        record(&mut stats.latency, latency);
        record(&mut stats.service, now.saturating_duration_since(m.sent));
        // For the progress line and the run's seconds (`series`).
        record(interval, latency);
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::histogram;
    use super::super::Options;
    use super::*;
    use crate::protocol::ReadLimits;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    struct Fixture {
        plan: Plan,
        ws: WebSocket,
        out: Vec<u8>,
        stats: Stats,
        window: (Instant, Instant),
    }

    /// A window of one second that ended a second ago, so every time in it
    /// is in the past of the real clock the echoes are stamped with.
    fn fixture(rate: Option<f64>, connections: usize, pipeline: usize) -> Fixture {
        let t0 = Instant::now() - Duration::from_secs(2);
        let options = Options {
            rate,
            connections,
            pipeline,
            ..Options::default()
        };
        Fixture {
            plan: Plan::new(&options, t0).unwrap(),
            ws: WebSocket::client(ReadLimits::default(), 1),
            out: Vec::new(),
            stats: Stats::default(),
            window: (t0, t0 + Duration::from_secs(1)),
        }
    }

    impl Fixture {
        fn pump(&mut self, flow: &mut EchoFlow, at: Duration) {
            let now = self.window.0 + at;
            flow.pump(
                &mut self.ws,
                &mut self.out,
                &self.plan,
                self.window,
                now,
                &mut self.stats,
            );
        }
    }

    #[test]
    fn paced_messages_go_when_due_and_while_the_pipeline_has_room() {
        // 100/s over 2 connections: connection 1's messages are due at
        // 10 ms, 30 ms, 50 ms...
        let mut f = fixture(Some(100.0), 2, 2);
        let start = f.window.0;
        let mut flow = EchoFlow::new(1);
        assert_eq!(flow.wake_at(&f.plan, f.window, start), Some(start + ms(10)));
        f.pump(&mut flow, ms(5));
        assert_eq!((f.stats.sent, f.out.len()), (0, 0));
        // Late: both overdue messages go at once, then the pipeline is full.
        f.pump(&mut flow, ms(55));
        assert_eq!(f.stats.sent, 2);
        assert_eq!(f.out.len(), 2 * (2 + 4 + 32));
        assert_eq!(flow.wake_at(&f.plan, f.window, start + ms(55)), None);
        // The echo is charged from the first message's due time (10 ms).
        let mut interval = histogram();
        flow.on_echo(32, Instant::now(), &f.plan, &mut f.stats, &mut interval);
        assert!(f.stats.latency.min() >= 1_900_000, "{}", f.stats.latency.min());
        assert!(f.stats.latency.min() > f.stats.service.min());
        // Room again: the third message (50 ms) is overdue.
        assert_eq!(flow.wake_at(&f.plan, f.window, start + ms(55)), Some(start + ms(50)));
        f.pump(&mut flow, ms(55));
        assert_eq!((f.stats.sent, flow.in_flight()), (3, 2));
    }

    #[test]
    fn nothing_is_due_at_or_after_the_end() {
        let mut f = fixture(Some(100.0), 1, 1000);
        let mut flow = EchoFlow::new(0);
        f.pump(&mut flow, Duration::from_secs(5));
        // Due at 0, 10, ..., 990 ms: exactly rate × window.
        assert_eq!(f.stats.sent, 100);
        assert_eq!(flow.wake_at(&f.plan, f.window, f.window.0 + ms(999)), None);
    }

    #[test]
    fn unpaced_keeps_the_pipeline_full_within_the_window() {
        let mut f = fixture(None, 1, 3);
        let mut flow = EchoFlow::new(0);
        let start = f.window.0;
        assert_eq!(flow.wake_at(&f.plan, f.window, start), Some(start));
        f.pump(&mut flow, ms(1));
        assert_eq!(flow.in_flight(), 3);
        flow.on_echo(32, Instant::now(), &f.plan, &mut f.stats, &mut histogram());
        f.pump(&mut flow, ms(2));
        assert_eq!((f.stats.sent, flow.in_flight()), (4, 3));
        flow.on_echo(32, Instant::now(), &f.plan, &mut f.stats, &mut histogram());
        f.pump(&mut flow, Duration::from_secs(1));
        assert_eq!(f.stats.sent, 4);
        // An echo nobody asked for, and one of the wrong size, are counted.
        flow.on_echo(31, Instant::now(), &f.plan, &mut f.stats, &mut histogram());
        flow.on_echo(32, Instant::now(), &f.plan, &mut f.stats, &mut histogram());
        flow.on_echo(32, Instant::now(), &f.plan, &mut f.stats, &mut histogram());
        assert_eq!(f.stats.errors.echo.get("wrong_size"), Some(&1));
        assert_eq!(f.stats.errors.echo.get("unsolicited"), Some(&1));
    }
}
