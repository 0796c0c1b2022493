//! Subscribe mode's misbehaving subscribers: slow readers and reconnect
//! storms, as schedules and per-subscriber state without I/O (the session
//! asks what to do at a time; the figures come out in [`ScenarioStats`]).
//!
//! - **Slow readers** (`--slow-readers P%`, `--slow-reader-pause D`): a
//!   share of the subscribers stop reading their socket when the window
//!   opens and read again after `D` (at the latest when the window ends).
//!   Whatever the server does meanwhile is theirs to see once they read:
//!   its close frame and code, an HTTP status, the end of the stream. How
//!   long the server kept serving a reader is the time between the start
//!   of the pause and the latest message it received (when it was due).
//!   Their deliveries are kept apart, so that the run's latency is the
//!   other subscribers'.
//! - **Reconnect storms** (`--reconnect-storm AT`, `--reconnect-share P%`,
//!   `--reconnect-jitter D`): at `AT` into the window a share of the
//!   subscribers drop their connection at once (as a network blip or a
//!   deploy drops them) and each connects again after its own delay,
//!   uniform in `[0, D)`, with its cursor (a WebSocket's last message id
//!   as `?since=`, an event stream's `Last-Event-ID`, a poll's `since`). A
//!   subscriber has caught up at the first message due after it was back
//!   when it then has every earlier one; the messages due before it was
//!   back and received after are the ones the catch-up recovered.
//!
//! Who is chosen is a property of the subscriber's index, spread evenly
//! over the run and over the worker threads (a golden-ratio sequence), so
//! that a re-run picks the same ones. The two never pick the same
//! subscriber: the storm's share is of the subscribers that are not slow.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `--slow-readers`: who pauses, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowReaders {
    /// The share of subscribers, 0 to 1.
    pub share: f64,
    /// How long each stops reading, from the window's start.
    pub pause: Duration,
    /// Their sockets' receive buffer (SO_RCVBUF), if not the system's.
    pub rcvbuf: Option<usize>,
}

/// `--reconnect-storm`: when, who, and how spread out the reconnects are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectStorm {
    /// From the window's start to the drop.
    pub at: Duration,
    /// The share of subscribers that drop, 0 to 1.
    pub share: f64,
    /// Each reconnects after a delay uniform in `[0, jitter)`.
    pub jitter: Duration,
}

/// What the run's subscribers do besides reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scenario {
    /// Slow readers, if any.
    pub slow: Option<SlowReaders>,
    /// A reconnect storm, if any.
    pub storm: Option<ReconnectStorm>,
}

/// Whether subscriber `index` is among a `share` (0 to 1) of all: the
/// fractional parts of `index × φ` are spread evenly over `[0, 1)` for any
/// run of indexes, so about `share × n` of any `n` in a row are chosen.
pub fn chosen(index: usize, share: f64) -> bool {
    in_band(index, 0.0, share)
}

/// Whether subscriber `index`'s place in `[0, 1)` is in `[from, to)`.
fn in_band(index: usize, from: f64, to: f64) -> bool {
    const PHI: f64 = 0.618_033_988_749_894_9;
    let x = (index as f64 * PHI).fract();
    x >= from && x < to
}

/// Subscriber `index`'s reconnect delay, uniform in `[0, jitter)`.
pub fn backoff(index: usize, jitter: Duration) -> Duration {
    // splitmix64: a well-mixed value per index, the same every run.
    let mut z = (index as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    jitter.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
}

impl Scenario {
    /// Refuse what cannot be run, naming the flag: a scenario is about a
    /// push server's subscribers, inside the window.
    pub fn check(
        &self,
        mode: super::Mode,
        transport: super::Transport,
        duration: Duration,
        mux: bool,
    ) -> Result<(), String> {
        if *self == Scenario::default() {
            return Ok(());
        }
        if mode != super::Mode::Subscribe {
            return Err("--slow-readers and --reconnect-storm are for subscribe mode".into());
        }
        let share = |s: f64| s > 0.0 && s <= 1.0;
        if let Some(slow) = self.slow {
            if !share(slow.share) {
                return Err("--slow-readers must be above 0% and at most 100%".into());
            }
            if transport == super::Transport::Poll {
                return Err(
                    "--slow-readers is for --transport ws, sse and longpoll: a short poller only reads \
                            what it asks for"
                        .into(),
                );
            }
            if slow.pause.is_zero() {
                return Err("--slow-reader-pause must be above 0".into());
            }
            if slow.rcvbuf.is_some_and(|b| !(1024..=1 << 30).contains(&b)) {
                return Err("--slow-reader-rcvbuf must be 1024 bytes to 1 GiB".into());
            }
        }
        if let Some(storm) = self.storm {
            if !share(storm.share) {
                return Err("--reconnect-share must be above 0% and at most 100%".into());
            }
            if storm.at + storm.jitter >= duration {
                return Err(format!(
                    "--reconnect-storm {:?} plus --reconnect-jitter {:?} must end inside --duration {duration:?}, \
                     so that every subscriber is back while messages are published",
                    storm.at, storm.jitter
                ));
            }
            if mux {
                return Err(
                    "--reconnect-storm is not for --channels-per-connection (one channel per connection)".into(),
                );
            }
        }
        Ok(())
    }

    /// What subscriber `index` does, if anything.
    pub fn disruption(&self, index: usize) -> Option<Disruption> {
        if let Some(slow) = self.slow.filter(|s| chosen(index, s.share)) {
            return Some(Disruption::Slow(SlowReader::new(slow)));
        }
        // The storm's share of the others: the band just above the slow one.
        let slow = self.slow.map_or(0.0, |s| s.share);
        let storm = self
            .storm
            .filter(|s| in_band(index, slow, slow + s.share * (1.0 - slow)))?;
        Some(Disruption::Storm(Stormed::new(storm, backoff(index, storm.jitter))))
    }
}

/// How a slow reader's connection ended, as it saw once it read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server's close frame, with its code (1005 without one; 1006:
    /// the connection ended with no close frame, RFC 6455 §7.1.5).
    Close(u16),
    /// An HTTP status other than 200 and 204.
    Status(u16),
    /// The server ended the response (an event stream, a poll).
    Eof,
    /// A socket error, by kind.
    Io(&'static str),
}

impl End {
    /// The report's name for it.
    pub fn name(self) -> String {
        match self {
            End::Close(code) => format!("close {code}"),
            End::Status(status) => format!("status {status}"),
            End::Eof => "eof".into(),
            End::Io(kind) => kind.into(),
        }
    }
}

/// One subscriber's part in the scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Disruption {
    /// It stops reading for a time.
    Slow(SlowReader),
    /// It drops its connection and comes back.
    Storm(Stormed),
}

impl Disruption {
    /// A slow reader.
    pub fn slow(&self) -> Option<&SlowReader> {
        match self {
            Disruption::Slow(s) => Some(s),
            Disruption::Storm(_) => None,
        }
    }

    /// When the session must wake for it, if it must.
    pub fn wake_at(&self, window: (Instant, Instant)) -> Option<Instant> {
        match self {
            Disruption::Slow(s) if !s.resumed => Some(s.resume_at(window)),
            Disruption::Storm(s) => s.wake_at(window),
            Disruption::Slow(_) => None,
        }
    }

    /// A distinct message arrived, due at `due` (where `now` is on the
    /// same clock); `whole`: the subscriber has every message before the
    /// latest of each stream.
    pub fn on_delivery(&mut self, due: Instant, whole: bool, now: Instant) {
        match self {
            // What it had when the server ended it: an event stream it
            // resumes does not count.
            Disruption::Slow(s) if s.ended.is_none() => {
                s.received += 1;
                s.last_due = s.last_due.max(Some(due));
            }
            Disruption::Slow(_) => {}
            Disruption::Storm(s) => s.on_delivery(due, whole, now),
        }
    }
}

/// A slow reader's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowReader {
    plan: SlowReaders,
    /// Reading again (the pause is over).
    pub resumed: bool,
    /// Distinct messages received until the server ended it.
    pub received: u64,
    /// When the latest message received was due to be published.
    pub last_due: Option<Instant>,
    /// How its connection ended, if it did.
    pub ended: Option<End>,
}

impl SlowReader {
    fn new(plan: SlowReaders) -> SlowReader {
        SlowReader {
            plan,
            resumed: false,
            received: 0,
            last_due: None,
            ended: None,
        }
    }

    /// When reading resumes: after the pause, at the latest as the window ends.
    pub fn resume_at(&self, (start, end): (Instant, Instant)) -> Instant {
        (start + self.plan.pause).min(end)
    }

    /// Its socket's receive buffer, if not the system's.
    pub fn rcvbuf(&self) -> Option<usize> {
        self.plan.rcvbuf
    }

    /// Whether it reads its socket now.
    pub fn reading(&self, window: Option<(Instant, Instant)>, now: Instant) -> bool {
        match window {
            None => true,
            Some(w) => self.resumed || now < w.0 || now >= self.resume_at(w),
        }
    }

    /// How long the server went on serving it after it stopped reading:
    /// from the window's start to the due time of the latest message it got.
    pub fn served(&self, start: Instant) -> Duration {
        self.last_due
            .map_or(Duration::ZERO, |due| due.saturating_duration_since(start))
    }
}

/// Where a stormed subscriber is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Storming {
    /// The storm has not come.
    Before,
    /// Dropped at `dropped`, to connect again at `back`.
    Away { dropped: Instant, back: Instant },
    /// Connected again at `back` since the drop at `dropped`.
    Back { dropped: Instant, back: Instant },
    /// Had every message when one due after its return came.
    CaughtUp,
    /// Not open when the storm came: not part of it.
    Spared,
}

/// A subscriber of a reconnect storm.
#[derive(Debug, Clone, PartialEq)]
pub struct Stormed {
    plan: ReconnectStorm,
    /// Its reconnect delay.
    delay: Duration,
    at: Storming,
    /// Messages due while it was away (from its drop to its return) and
    /// received after its return.
    pub recovered: u64,
    /// From its drop to catching up, once it has.
    pub caught_up: Option<Duration>,
}

impl Stormed {
    fn new(plan: ReconnectStorm, delay: Duration) -> Stormed {
        Stormed {
            plan,
            delay,
            at: Storming::Before,
            recovered: 0,
            caught_up: None,
        }
    }

    /// When it drops.
    pub fn drop_at(&self, (start, _): (Instant, Instant)) -> Instant {
        start + self.plan.at
    }

    /// Only the drop: the return is the session's own `Redial` wake, and
    /// a wake that stays in the past until the connection completes would
    /// fire again at once, for ever.
    fn wake_at(&self, window: (Instant, Instant)) -> Option<Instant> {
        match self.at {
            Storming::Before => Some(self.drop_at(window)),
            _ => None,
        }
    }

    /// The storm is due and has not come for this subscriber.
    pub fn due(&self, window: Option<(Instant, Instant)>, now: Instant) -> bool {
        self.at == Storming::Before && window.is_some_and(|w| now >= self.drop_at(w))
    }

    /// Drop now (`open`: it was subscribed; if not, it is spared); when it
    /// connects again.
    pub fn drop_now(&mut self, open: bool, now: Instant) -> Option<Instant> {
        if !open {
            self.at = Storming::Spared;
            return None;
        }
        let back = now + self.delay;
        self.at = Storming::Away { dropped: now, back };
        Some(back)
    }

    /// Dropped and not yet connected again.
    pub fn away(&self) -> bool {
        matches!(self.at, Storming::Away { .. })
    }

    /// Subscribed again: its cursor went with the request, and the server
    /// answered (a 101; over HTTP, the connection is made).
    pub fn back(&mut self, now: Instant) {
        if let Storming::Away { dropped, .. } = self.at {
            self.at = Storming::Back { dropped, back: now };
        }
    }

    /// Part of the storm: it was open when it came.
    pub fn dropped(&self) -> bool {
        !matches!(self.at, Storming::Before | Storming::Spared)
    }

    /// Connected again at some point.
    pub fn reconnected(&self) -> bool {
        matches!(self.at, Storming::Back { .. } | Storming::CaughtUp)
    }

    fn on_delivery(&mut self, due: Instant, whole: bool, now: Instant) {
        let Storming::Back { dropped, back } = self.at else {
            return;
        };
        if due < back {
            // Messages on their way when it dropped were sent before: not
            // the catch-up's.
            self.recovered += u64::from(due >= dropped);
        } else if whole {
            self.at = Storming::CaughtUp;
            self.caught_up = Some(now.saturating_duration_since(dropped));
        }
    }
}

/// The scenario's figures of one worker, merged at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioStats {
    /// Slow readers that opened.
    pub slow_readers: u64,
    /// How their connections ended (by [`End::name`]); the rest were never
    /// ended by the server.
    pub slow_ends: BTreeMap<String, u64>,
    /// Per slow reader the server ended: how long it served it after it
    /// stopped reading, in ms.
    pub slow_served_ms: Vec<u64>,
    /// Per slow reader: distinct messages received.
    pub slow_received: Vec<u64>,
    /// Subscribers the storm dropped.
    pub storm_dropped: u64,
    /// Of them, connected again.
    pub storm_reconnected: u64,
    /// Per subscriber that caught up: from its drop to then, in µs.
    pub storm_caught_up_us: Vec<u64>,
    /// Messages the catch-ups recovered.
    pub storm_recovered: u64,
}

impl ScenarioStats {
    /// A subscriber's part ended with the subscriber (`start`: the
    /// window's, if it began; `opened`: it ever subscribed).
    pub fn finish(&mut self, d: &Disruption, start: Option<Instant>, opened: bool) {
        match d {
            Disruption::Slow(_) if !opened => {}
            Disruption::Slow(s) => {
                self.slow_readers += 1;
                self.slow_received.push(s.received);
                if let Some(end) = s.ended {
                    *self.slow_ends.entry(end.name()).or_default() += 1;
                    if let Some(start) = start {
                        self.slow_served_ms.push(s.served(start).as_millis() as u64);
                    }
                }
            }
            Disruption::Storm(s) => {
                self.storm_dropped += u64::from(s.dropped());
                self.storm_reconnected += u64::from(s.reconnected());
                self.storm_recovered += s.recovered;
                if let Some(t) = s.caught_up {
                    self.storm_caught_up_us.push(t.as_micros() as u64);
                }
            }
        }
    }

    /// Add another worker's figures.
    pub fn merge(&mut self, o: &ScenarioStats) {
        self.slow_readers += o.slow_readers;
        for (k, v) in &o.slow_ends {
            *self.slow_ends.entry(k.clone()).or_default() += v;
        }
        self.slow_served_ms.extend_from_slice(&o.slow_served_ms);
        self.slow_received.extend_from_slice(&o.slow_received);
        self.storm_dropped += o.storm_dropped;
        self.storm_reconnected += o.storm_reconnected;
        self.storm_caught_up_us.extend_from_slice(&o.storm_caught_up_us);
        self.storm_recovered += o.storm_recovered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_spread_evenly_over_indexes_and_threads() {
        for share in [0.0, 0.01, 0.1, 0.5, 1.0] {
            let n = 2000;
            let picked: Vec<usize> = (0..n).filter(|&i| chosen(i, share)).collect();
            let want = share * n as f64;
            assert!((picked.len() as f64 - want).abs() <= 3.0, "{share}: {}", picked.len());
            // Over two worker threads (indexes alternate), about half each.
            let even = picked.iter().filter(|&&i| i % 2 == 0).count() as f64;
            assert!((even - want / 2.0).abs() <= 3.0 + want * 0.02, "{share}: {even}");
        }
        // The same ones every time.
        assert_eq!(
            (0..100).filter(|&i| chosen(i, 0.1)).collect::<Vec<_>>(),
            (0..100).filter(|&i| chosen(i, 0.1)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn backoff_is_uniform_below_the_jitter() {
        let jitter = Duration::from_secs(2);
        let delays: Vec<Duration> = (0..10_000).map(|i| backoff(i, jitter)).collect();
        assert!(delays.iter().all(|&d| d < jitter));
        // Each fifth of the range holds about a fifth of the delays.
        for k in 0..5 {
            let lo = jitter * k / 5;
            let hi = jitter * (k + 1) / 5;
            let n = delays.iter().filter(|&&d| d >= lo && d < hi).count();
            assert!((1800..=2200).contains(&n), "fifth {k}: {n}");
        }
        assert_eq!(backoff(7, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_slow_reader_stops_reading_for_its_pause_within_the_window() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let plan = Scenario {
            slow: Some(SlowReaders {
                share: 1.0,
                pause: Duration::from_secs(5),
                rcvbuf: None,
            }),
            storm: None,
        };
        let Some(Disruption::Slow(mut reader)) = plan.disruption(3) else {
            panic!("every subscriber is slow at 100 %");
        };
        let window = (s(10), s(30));
        assert!(reader.reading(None, s(12)), "no window yet: reads");
        assert!(reader.reading(Some(window), s(9)));
        assert!(!reader.reading(Some(window), s(10)));
        assert!(!reader.reading(Some(window), s(14)));
        assert!(reader.reading(Some(window), s(15)));
        assert_eq!(Disruption::Slow(reader.clone()).wake_at(window), Some(s(15)));
        // A pause past the window's end ends with it.
        assert_eq!(reader.resume_at((s(10), s(12))), s(12));
        reader.resumed = true;
        assert_eq!(Disruption::Slow(reader.clone()).wake_at(window), None);
        // Served for as long as the latest message it got was due after the start.
        let mut d = Disruption::Slow(reader);
        d.on_delivery(s(11), true, s(16));
        d.on_delivery(s(13), true, s(16));
        d.on_delivery(s(12), true, s(16));
        let Disruption::Slow(reader) = &d else { unreachable!() };
        assert_eq!((reader.received, reader.served(s(10))), (3, Duration::from_secs(3)));
    }

    #[test]
    fn a_stormed_subscriber_drops_comes_back_recovers_and_catches_up() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let storm = ReconnectStorm {
            at: Duration::from_millis(1000),
            share: 1.0,
            jitter: Duration::from_millis(500),
        };
        let plan = Scenario {
            slow: None,
            storm: Some(storm),
        };
        let Some(Disruption::Storm(mut s)) = plan.disruption(11) else {
            panic!("every subscriber storms at 100 %");
        };
        let delay = backoff(11, storm.jitter);
        let window = (ms(100), ms(10_000));
        assert!(!s.due(None, ms(5000)));
        assert!(!s.due(Some(window), ms(1099)));
        assert!(s.due(Some(window), ms(1100)));
        assert_eq!(Disruption::Storm(s.clone()).wake_at(window), Some(ms(1100)));
        let back = s.drop_now(true, ms(1100)).unwrap();
        assert_eq!(back, ms(1100) + delay);
        assert!(s.away() && s.dropped() && !s.reconnected());
        assert!(!s.due(Some(window), ms(2000)), "once");
        assert_eq!(Disruption::Storm(s.clone()).wake_at(window), None);
        let back_at = ms(1700);
        s.back(back_at);
        let mut d = Disruption::Storm(s);
        // On its way at the drop: not the catch-up's. Missed while away: recovered.
        d.on_delivery(ms(1050), true, ms(1705));
        d.on_delivery(ms(1200), true, ms(1710));
        d.on_delivery(ms(1600), true, ms(1711));
        // Due after its return, but a gap is open: not yet.
        d.on_delivery(ms(1720), false, ms(1721));
        d.on_delivery(ms(1730), true, ms(1735));
        d.on_delivery(ms(1740), true, ms(1745));
        let Disruption::Storm(s) = &d else { unreachable!() };
        assert_eq!(s.recovered, 2);
        assert_eq!(s.caught_up, Some(Duration::from_millis(635)));
        let mut stats = ScenarioStats::default();
        stats.finish(&d, Some(ms(100)), true);
        assert_eq!(
            (stats.storm_dropped, stats.storm_reconnected, stats.storm_recovered),
            (1, 1, 2)
        );
        assert_eq!(stats.storm_caught_up_us, [635_000]);
        // One not open when the storm came is spared.
        let Some(Disruption::Storm(mut spared)) = plan.disruption(12) else {
            unreachable!()
        };
        assert_eq!(spared.drop_now(false, ms(1100)), None);
        assert!(!spared.dropped() && !spared.due(Some(window), ms(2000)));
    }

    #[test]
    fn slow_readers_and_storms_pick_their_own_and_stats_merge() {
        let plan = Scenario {
            slow: Some(SlowReaders {
                share: 0.1,
                pause: Duration::from_secs(1),
                rcvbuf: None,
            }),
            storm: None,
        };
        let slow = (0..1000).filter(|&i| plan.disruption(i).is_some()).count();
        assert!((97..=103).contains(&slow), "{slow}");
        // With a storm of half the others too: no subscriber is both, and
        // the storm takes half of the 900 that are not slow.
        let both = Scenario {
            storm: Some(ReconnectStorm {
                at: Duration::from_secs(1),
                share: 0.5,
                jitter: Duration::ZERO,
            }),
            ..plan
        };
        let picks: Vec<Option<Disruption>> = (0..1000).map(|i| both.disruption(i)).collect();
        let slow_too = picks.iter().filter(|d| matches!(d, Some(Disruption::Slow(_)))).count();
        let stormed = picks.iter().filter(|d| matches!(d, Some(Disruption::Storm(_)))).count();
        assert_eq!(slow_too, slow);
        assert!((445..=455).contains(&stormed), "{stormed}");
        let mut a = ScenarioStats::default();
        let mut reader = SlowReader::new(plan.slow.unwrap());
        reader.ended = Some(End::Close(1013));
        a.finish(&Disruption::Slow(reader.clone()), Some(Instant::now()), true);
        let mut b = ScenarioStats::default();
        reader.ended = None;
        b.finish(&Disruption::Slow(reader.clone()), Some(Instant::now()), true);
        // One that never opened is nobody's figure.
        b.finish(&Disruption::Slow(reader), Some(Instant::now()), false);
        a.merge(&b);
        assert_eq!(a.slow_readers, 2);
        assert_eq!(a.slow_ends, BTreeMap::from([("close 1013".to_owned(), 1)]));
        assert_eq!((a.slow_served_ms.len(), a.slow_received.len()), (1, 2));
    }

    #[test]
    fn scenarios_that_cannot_run_are_refused_naming_the_flag() {
        use super::super::{Mode, Transport};
        let d = Duration::from_secs(10);
        let slow = |share, pause| Scenario {
            slow: Some(SlowReaders {
                share,
                pause,
                rcvbuf: None,
            }),
            storm: None,
        };
        let storm = |at, share, jitter| Scenario {
            slow: None,
            storm: Some(ReconnectStorm { at, share, jitter }),
        };
        let s = Duration::from_secs;
        assert_eq!(Scenario::default().check(Mode::Echo, Transport::Ws, d, false), Ok(()));
        assert_eq!(slow(0.1, s(1)).check(Mode::Subscribe, Transport::Ws, d, false), Ok(()));
        assert_eq!(
            storm(s(2), 1.0, s(7)).check(Mode::Subscribe, Transport::Ws, d, false),
            Ok(())
        );
        for (scenario, mode, mux, flag) in [
            (slow(0.1, s(1)), Mode::Echo, false, "--slow-readers"),
            (slow(0.0, s(1)), Mode::Subscribe, false, "--slow-readers"),
            (slow(0.1, s(0)), Mode::Subscribe, false, "--slow-reader-pause"),
            (storm(s(2), 1.5, s(0)), Mode::Subscribe, false, "--reconnect-share"),
            (storm(s(2), 1.0, s(8)), Mode::Subscribe, false, "--reconnect-jitter"),
            (storm(s(10), 1.0, s(0)), Mode::Subscribe, false, "--reconnect-storm"),
            (
                storm(s(1), 1.0, s(0)),
                Mode::Subscribe,
                true,
                "--channels-per-connection",
            ),
        ] {
            let err = scenario.check(mode, Transport::Ws, d, mux).unwrap_err();
            assert!(err.contains(flag), "{flag}: {err}");
        }
        let poll = slow(0.1, s(1)).check(Mode::Subscribe, Transport::Poll, d, false);
        assert!(poll.unwrap_err().contains("--transport"));
        let mut tiny = slow(0.1, s(1));
        tiny.slow.as_mut().unwrap().rcvbuf = Some(10);
        assert!(tiny
            .check(Mode::Subscribe, Transport::Ws, d, false)
            .unwrap_err()
            .contains("--slow-reader-rcvbuf"));
    }
}
