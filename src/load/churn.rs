//! Churn mode: new connections back to back, each living the whole life of
//! a WebSocket connection once.
//!
//! ```text
//!  slot free ─► connect ─► upgrade ─► 101 ─► message ─► echo ─► close 1000 ─► server's close ─► server's FIN ─► slot free
//!               │◄──────────────────────────── cycle time ───────────────────────────────────►│
//!     (from the cycle's due time with --rate: waiting for a slot counts)
//! ```
//!
//! `--connections N` is a number of slots: at most N cycles are in progress
//! at once. Worker `w` of `T` owns slots `w, w + T, ...`. Without `--rate`
//! (closed loop) a free slot starts its next cycle at once. With `--rate R`
//! cycle `i` of the run is due at `start + i / R`, and worker `w` takes
//! cycles `w, w + T, ...` (the message schedule with the workers in place of
//! connections); each starts on one of the worker's free slots when due.
//! A cycle due while all of them are busy waits for one and is counted
//! late; its time is measured from when it was due (coordinated omission),
//! so a server that holds connections is charged for the wait, and the
//! cycles due in the window that never started are reported too.
//!
//! A cycle is complete when the server's close frame answers ours with
//! 1000 (or no code). Cycles completed inside the window are the figure;
//! those in progress at its end may finish during the drain and are timed,
//! but counted apart. The client then waits for the server to close the TCP
//! connection first (§7.1.1), so TIME_WAIT lands on the server; a server that
//! has not within the close timeout is counted and the client closes.
//!
//! A cycle that fails (refused, ephemeral ports exhausted, a status other
//! than 101, a close code other than 1000, a time-out...) has its error
//! counted by kind where it was found; its slot then rests for [`BACKOFF`]
//! before the next cycle, so a dead server or exhausted ports cost a bounded
//! number of attempts per second instead of a busy loop.

use super::ctx::Ctx;
use super::stats::{record, ChurnStats, Percentiles, Stats};
use super::Plan;
use crate::protocol::{CloseCode, WebSocket};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long a slot rests after a failed cycle.
pub const BACKOFF: Duration = Duration::from_millis(10);

/// One cycle's times, held by its client.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// When it was due: its time is measured from here.
    due: Instant,
    /// When its connect began.
    started: Instant,
    /// When its message went, once it has.
    sent: Option<Instant>,
    /// The echo came back (and our close went).
    echoed: bool,
    /// The server answered our close: the cycle is complete.
    done: bool,
}

impl Cycle {
    /// A cycle due at `due` whose connect began at `started`.
    pub fn new(due: Instant, started: Instant) -> Self {
        Cycle {
            due,
            started,
            sent: None,
            echoed: false,
            done: false,
        }
    }

    /// Complete: the server answered our close.
    pub fn done(&self) -> bool {
        self.done
    }

    /// When the message whose echo is awaited went.
    pub fn awaiting_echo(&self) -> Option<Instant> {
        self.sent.filter(|_| !self.echoed)
    }

    /// Open: queue the cycle's one message, once.
    pub fn send(&mut self, ws: &mut WebSocket, out: &mut Vec<u8>, plan: &Plan, now: Instant, stats: &mut Stats) {
        if self.sent.is_none() && plan.close_on_open {
            // No message: the close handshake at once (§7.1.2).
            self.sent = Some(now);
            self.echoed = true;
            ws.close(CloseCode::NORMAL, "", out);
            return;
        }
        if self.sent.is_none() {
            ws.send(plan.kind, &plan.payload, out);
            self.sent = Some(now);
            stats.sent += 1;
        }
    }

    /// A message of `len` bytes came: the echo. Time it and start the close
    /// handshake (§7.1.2, 1000: the cycle's purpose is fulfilled).
    pub fn on_echo(&mut self, len: usize, ws: &mut WebSocket, out: &mut Vec<u8>, plan: &Plan, stats: &mut Stats) {
        stats.received += 1;
        let Some(sent) = self.awaiting_echo() else {
            *stats.errors.echo.entry("unsolicited").or_default() += 1;
            return;
        };
        if len != plan.payload.len() {
            *stats.errors.echo.entry("wrong_size").or_default() += 1;
        }
        record(&mut stats.churn.echo, Instant::now().saturating_duration_since(sent));
        self.echoed = true;
        ws.close(CloseCode::NORMAL, "", out);
    }

    /// The server's close frame answered ours with `code`. 1000 or none
    /// completes the cycle (§5.5.1: the answer typically echoes our code);
    /// any other code is counted as the connection's close code.
    pub fn on_close_answer(&mut self, code: Option<CloseCode>, ctx: &mut Ctx<'_>) {
        if let Some(code) = code.filter(|&c| c != CloseCode::NORMAL) {
            *ctx.stats.errors.close_codes.entry(code.0).or_default() += 1;
            return;
        }
        self.done = true;
        let now = Instant::now();
        let c = &mut ctx.stats.churn;
        if ctx.window.is_some_and(|(_, end)| now < end) {
            c.cycles += 1;
        } else {
            c.after_window += 1;
        }
        let latency = now.saturating_duration_since(self.due);
        record(&mut ctx.stats.latency, latency);
        record(&mut ctx.stats.service, now.saturating_duration_since(self.started));
        // For the progress line and the run's seconds (`series`).
        record(ctx.interval, latency);
    }
}

/// A cycle a worker may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// When it was due (now, in a closed loop).
    pub due: Instant,
    /// Its connection's index over the run (source address, timer checks).
    pub index: usize,
}

/// One worker's slots and its share of the cycle schedule.
#[derive(Debug)]
pub struct Slots {
    worker: usize,
    threads: usize,
    /// When each free slot may take a cycle: when it was freed, or the end
    /// of its rest after a failure. Busy slots are not in it.
    ready: BinaryHeap<Reverse<Instant>>,
    /// This worker's next cycle in the schedule.
    next: u64,
}

impl Slots {
    /// Worker `worker`'s share of `slots` slots over `threads` workers, free
    /// since `now`.
    pub fn new(worker: usize, threads: usize, slots: usize, now: Instant) -> Slots {
        let mine = (worker..slots).step_by(threads.max(1)).count();
        Slots {
            worker,
            threads: threads.max(1),
            ready: std::iter::repeat_n(Reverse(now), mine).collect(),
            next: 0,
        }
    }

    /// The time the next cycle is due, if it is due inside the window.
    fn next_due(&self, plan: &Plan, (start, end): (Instant, Instant), now: Instant) -> Option<Instant> {
        let due = match &plan.schedule {
            Some(s) => start + s.offset(self.worker, self.next),
            None => now.max(start),
        };
        (due < end).then_some(due)
    }

    /// Take a free slot for the cycle that is due, if one is and a slot is
    /// free; counts it started, and late if it waited for the slot.
    pub fn take(&mut self, plan: &Plan, window: (Instant, Instant), now: Instant, stats: &mut Stats) -> Option<Start> {
        let &Reverse(ready) = self.ready.peek()?;
        let due = self.next_due(plan, window, now)?;
        if ready > now || due > now {
            return None;
        }
        self.ready.pop();
        let index = self.worker + self.next as usize * self.threads;
        self.next += 1;
        stats.churn.started += 1;
        // The slot was still busy (or resting) when the cycle fell due.
        if ready > due {
            stats.churn.late += 1;
        }
        Some(Start { due, index })
    }

    /// When a cycle can start next, if one can in the window; `None` with
    /// every slot busy (a cycle's end frees one and wakes the worker).
    pub fn wake_at(&self, plan: &Plan, window: (Instant, Instant), now: Instant) -> Option<Instant> {
        let &Reverse(ready) = self.ready.peek()?;
        let at = self.next_due(plan, window, now)?.max(ready);
        (at < window.1).then_some(at)
    }

    /// A slot's cycle is over; after a failure the slot rests first.
    pub fn free(&mut self, now: Instant, failed: bool) {
        self.ready.push(Reverse(if failed { now + BACKOFF } else { now }));
    }
}

/// Churn mode's part of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// Cycles in progress at once, at most.
    pub slots: usize,
    /// Each cycle sent a message and awaited its echo (not with
    /// `--close-on-open`).
    pub echo: bool,
    /// Cycles per second asked for (null: closed loop).
    pub rate: Option<f64>,
    /// Cycles due in the window: rate × window (null: closed loop).
    pub due: Option<u64>,
    /// Cycles started in the window.
    pub started: u64,
    /// Due in the window and never started: every slot stayed busy.
    pub unstarted: u64,
    /// Started after waiting for a free slot.
    pub late: u64,
    /// Over 1 % of the due cycles were late or never started.
    pub fell_behind: bool,
    /// Cycles completed inside the window: the figure.
    pub cycles: u64,
    /// `cycles` per second of the window.
    pub cycles_per_sec: f64,
    /// Completed after the window, in the drain (timed, not in `cycles`).
    pub completed_after_window: u64,
    /// Ended without completing (see the errors).
    pub failed: u64,
    /// Completed, but the server did not close the TCP connection first
    /// within the close timeout, so the client did.
    pub server_kept_open: u64,
    /// The echo's round trip from its send.
    pub echo_us: Percentiles,
}

impl ChurnReport {
    /// The report from the merged figures and the window as run.
    pub fn new(plan: &Plan, c: &ChurnStats, measured: Duration) -> ChurnReport {
        let due = plan
            .schedule
            .map(|s| (0..plan.threads).map(|w| s.count_within(w, measured)).sum::<u64>());
        let unstarted = due.map_or(0, |d| d.saturating_sub(c.started));
        let secs = measured.as_secs_f64();
        ChurnReport {
            slots: plan.connections,
            echo: !plan.close_on_open,
            rate: plan.schedule.map(|s| s.rate()),
            due,
            started: c.started,
            unstarted,
            late: c.late,
            fell_behind: due.is_some_and(|d| (unstarted + c.late) * 100 > d),
            cycles: c.cycles,
            cycles_per_sec: if secs > 0.0 { c.cycles as f64 / secs } else { 0.0 },
            completed_after_window: c.after_window,
            failed: c.failed,
            server_kept_open: c.server_kept_open,
            echo_us: Percentiles::of(&c.echo),
        }
    }

    /// The table's lines about cycles.
    pub fn lines(&self, s: &mut String, size: usize, kind: &str) {
        let pace = match (self.rate, self.due) {
            (Some(r), Some(d)) => format!("rate {r}/s, {d} due"),
            _ => "closed loop".into(),
        };
        let each = if self.echo {
            format!("connect, handshake, one {size} B {kind} echo, close 1000")
        } else {
            "connect, handshake, close 1000 at once".to_owned()
        };
        let _ = writeln!(s, "cycles       {} slots, {pace}; each: {each}", self.slots);
        let _ = writeln!(
            s,
            "             {} started, {} completed in the window ({:.1}/s), {} after it, {} failed",
            self.started, self.cycles, self.cycles_per_sec, self.completed_after_window, self.failed
        );
        if self.late + self.unstarted > 0 {
            let _ = writeln!(
                s,
                "             {}{} due while every slot was busy (late), {} due and never started",
                if self.fell_behind { "FELL BEHIND, " } else { "" },
                self.late,
                self.unstarted
            );
        }
        if self.server_kept_open > 0 {
            let _ = writeln!(
                s,
                "             {} times the server kept the TCP connection open after the close handshake",
                self.server_kept_open
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Options;
    use super::*;
    use crate::load::stats::histogram;
    use crate::protocol::ReadLimits;
    use crate::reactor::buffer::BufferPool;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn plan(rate: Option<f64>, slots: usize, threads: usize) -> Plan {
        let options = Options {
            mode: super::super::Mode::Churn,
            rate,
            connections: slots,
            threads,
            ..Options::default()
        };
        Plan::new(&options, Instant::now()).unwrap()
    }

    #[test]
    fn closed_loop_starts_a_cycle_on_every_free_slot_within_the_window() {
        let plan = plan(None, 5, 2);
        let t = Instant::now();
        let window = (t + ms(20), t + ms(1020));
        // Worker 1 of 2 owns slots 1 and 3.
        let mut slots = Slots::new(1, 2, 5, t);
        let mut stats = Stats::default();
        assert_eq!(slots.take(&plan, window, t, &mut stats), None, "before the start");
        assert_eq!(slots.wake_at(&plan, window, t), Some(window.0));
        let now = t + ms(30);
        let a = slots.take(&plan, window, now, &mut stats).unwrap();
        let b = slots.take(&plan, window, now, &mut stats).unwrap();
        assert_eq!((a.due, a.index, b.index), (now, 1, 3));
        assert_eq!(slots.take(&plan, window, now, &mut stats), None, "both busy");
        assert_eq!(slots.wake_at(&plan, window, now), None);
        // A failed cycle rests its slot; a completed one frees it at once.
        slots.free(now, true);
        assert_eq!(slots.wake_at(&plan, window, now), Some(now + BACKOFF));
        assert_eq!(slots.take(&plan, window, now + ms(1), &mut stats), None);
        slots.free(now + ms(1), false);
        assert!(slots.take(&plan, window, now + ms(1), &mut stats).is_some());
        assert_eq!((stats.churn.started, stats.churn.late), (3, 0));
        // Nothing starts at or after the end.
        slots.free(window.1, false);
        assert_eq!(slots.take(&plan, window, window.1, &mut stats), None);
        assert_eq!(slots.wake_at(&plan, window, window.1), None);
    }

    #[test]
    fn paced_cycles_go_when_due_and_wait_for_a_slot_as_late() {
        // 100/s over 2 workers: worker 0's cycles are due at 0, 20, 40 ms...
        let plan = plan(Some(100.0), 2, 2);
        let t = Instant::now();
        let window = (t, t + Duration::from_secs(1));
        let mut slots = Slots::new(0, 2, 2, t);
        let mut stats = Stats::default();
        let first = slots.take(&plan, window, t + ms(1), &mut stats).unwrap();
        assert_eq!(first.due, t);
        assert_eq!(slots.take(&plan, window, t + ms(1), &mut stats), None, "one slot, busy");
        // The slot frees at 30 ms: the cycle due at 20 ms waited for it.
        slots.free(t + ms(30), false);
        assert_eq!(slots.wake_at(&plan, window, t + ms(30)), Some(t + ms(30)));
        let second = slots.take(&plan, window, t + ms(30), &mut stats).unwrap();
        assert_eq!((second.due, second.index), (t + ms(20), 2));
        assert_eq!(stats.churn.late, 1);
        // Freed early, the slot waits for the next due time (40 ms), not late.
        slots.free(t + ms(31), false);
        assert_eq!(slots.wake_at(&plan, window, t + ms(31)), Some(t + ms(40)));
        assert_eq!(slots.take(&plan, window, t + ms(39), &mut stats), None);
        assert!(slots.take(&plan, window, t + ms(40), &mut stats).is_some());
        assert_eq!((stats.churn.started, stats.churn.late), (3, 1));
    }

    #[test]
    fn the_report_counts_due_cycles_that_never_started() {
        let plan = plan(Some(100.0), 4, 2);
        let stats = ChurnStats {
            started: 150,
            late: 10,
            cycles: 140,
            ..ChurnStats::default()
        };
        let r = ChurnReport::new(&plan, &stats, Duration::from_secs(2));
        assert_eq!((r.due, r.unstarted, r.late), (Some(200), 50, 10));
        assert!(r.fell_behind);
        assert_eq!(r.cycles_per_sec, 70.0);
        let mut table = String::new();
        r.lines(&mut table, 32, "binary");
        assert!(table.contains("FELL BEHIND"), "{table}");
        let closed = ChurnReport::new(&super::super::Plan { schedule: None, ..plan }, &stats, Duration::ZERO);
        assert_eq!((closed.due, closed.unstarted, closed.cycles_per_sec), (None, 0, 0.0));
        assert!(!closed.fell_behind);
    }

    #[test]
    fn with_close_on_open_a_cycle_closes_at_once_and_sends_no_message() {
        let plan = Plan {
            close_on_open: true,
            ..plan(None, 1, 1)
        };
        let t = Instant::now();
        let mut ws = WebSocket::client(ReadLimits::default(), 7);
        let (mut out, mut stats) = (Vec::new(), Stats::default());
        let mut cycle = Cycle::new(t, t);
        cycle.send(&mut ws, &mut out, &plan, t, &mut stats);
        cycle.send(&mut ws, &mut out, &plan, t, &mut stats);
        assert!(ws.close_state().sent);
        // One close frame (2 + 4 mask + 2 code bytes), no data frame.
        assert_eq!((stats.sent, out.len(), out[0]), (0, 8, 0x88));
        assert_eq!(cycle.awaiting_echo(), None);
        let report = ChurnReport::new(&plan, &stats.churn, Duration::from_secs(1));
        let mut table = String::new();
        report.lines(&mut table, 32, "binary");
        assert!(
            table.contains("each: connect, handshake, close 1000 at once"),
            "{table}"
        );
        let echo = Options {
            close_on_open: true,
            ..Options::default()
        };
        match Plan::new(&echo, t) {
            Err(e) => assert!(e.to_string().contains("--close-on-open is for churn mode"), "{e}"),
            Ok(_) => panic!("--close-on-open in echo mode"),
        }
    }

    #[test]
    fn a_cycle_completes_on_a_normal_close_answer_only() {
        let plan = plan(None, 1, 1);
        let t = Instant::now();
        let mut ws = WebSocket::client(ReadLimits::default(), 7);
        let (mut out, mut stats, mut interval) = (Vec::new(), Stats::default(), histogram());
        let mut cycle = Cycle::new(t, t);
        assert_eq!(cycle.awaiting_echo(), None);
        cycle.send(&mut ws, &mut out, &plan, t, &mut stats);
        cycle.send(&mut ws, &mut out, &plan, t, &mut stats);
        assert_eq!((stats.sent, cycle.awaiting_echo()), (1, Some(t)));
        cycle.on_echo(32, &mut ws, &mut out, &plan, &mut stats);
        assert!(ws.close_state().sent);
        assert_eq!((stats.received, stats.churn.echo.len()), (1, 1));
        let mut pool = BufferPool::new(4096, 1);
        let mut rng = 1;
        let mut ctx = Ctx {
            plan: &plan,
            stats: &mut stats,
            interval: &mut interval,
            pool: &mut pool,
            rng: &mut rng,
            now: t,
            window: Some((t, t + Duration::from_secs(60))),
        };
        let mut other = cycle.clone();
        other.on_close_answer(Some(CloseCode(1011)), &mut ctx);
        assert!(!other.done());
        assert_eq!(ctx.stats.errors.close_codes.get(&1011), Some(&1));
        cycle.on_close_answer(None, &mut ctx);
        assert!(cycle.done());
        assert_eq!(
            (stats.churn.cycles, stats.latency.len(), stats.service.len()),
            (1, 1, 1)
        );
    }
}
