//! The coordinator's side: post the parts, hold the agents together (one
//! window start for all), publish, collect and merge.

use super::results::Outcome;
use super::{connect, jobs_key, json, run_key, set, Clock, Job, Joined, Ready, START_DELAY};
use crate::load::report::{AgentReport, Percentiles, Summary};
use crate::load::stats::Stats;
use crate::load::{run_part, LoadError, Mode, Options, Relay, Role, Shared};
use redis::{Commands, Connection, RedisResult};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// After the window: what the agents' drain and close may take, and then
/// this long for their results to come.
const RESULTS_MARGIN: Duration = Duration::from_secs(15);
/// After every agent joined: what the ramp may take beyond its schedule.
const RAMP_MARGIN: Duration = Duration::from_secs(10);

/// What is asked of a distributed run.
#[derive(Debug, Clone)]
pub struct Coordination {
    /// `redis://HOST:PORT`.
    pub url: String,
    /// Agents to spread the connections over.
    pub agents: usize,
    /// How long to wait for every agent to take its part.
    pub join_wait: Duration,
    /// The `load` flags as given, for the agents to run the same load
    /// (`--publish-token` left out: agents do not publish).
    pub args: Vec<String>,
}

/// `options` with `c`: why the run cannot be distributed, if it cannot.
pub fn check(options: &Options, c: &Coordination) -> Result<(), LoadError> {
    let refuse = |why: &str| Err(LoadError::Invalid(why.to_owned()));
    if c.agents == 0 || c.agents > options.connections {
        return refuse("--agents must be at least 1 and at most --connections");
    }
    if !c.url.starts_with("redis://") && !c.url.starts_with("rediss://") {
        return refuse("--coordinator must be a redis:// or rediss:// URL");
    }
    if options.mode == Mode::Churn {
        return refuse("--coordinator: churn mode runs on one host (its cycles have no shared window)");
    }
    if options.observe {
        return refuse("--coordinator: --observe needs every subscriber in one process");
    }
    if options.metrics_bind.is_some() {
        return refuse("--coordinator: --metrics-bind serves one process's figures; run it on one host");
    }
    if !options.source_ips.is_empty() {
        return refuse("--coordinator: --source-ips are each host's own; give each agent its own address");
    }
    Ok(())
}

/// Agent `index`'s part of `total` connections over `agents`: the first
/// `total % agents` take one more.
fn part_of(total: usize, agents: usize, index: usize) -> usize {
    total / agents + usize::from(index < total % agents)
}

/// The URL without its password, to print.
pub(super) fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

fn failed(why: String) -> LoadError {
    LoadError::Io(std::io::Error::other(why))
}

/// Run `options` over the agents, as `c` says; one summary of all.
pub fn run(options: &Options, c: &Coordination, stop: &AtomicBool) -> Result<Summary, LoadError> {
    check(options, c)?;
    let at = redacted(&c.url);
    let redis_failed = |e: redis::RedisError| failed(format!("--coordinator {at}: {e}"));
    let mut con = connect(&c.url).map_err(redis_failed)?;
    let clock = Clock::measure(&mut con).map_err(redis_failed)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let run = format!("{:016x}", nanos ^ u64::from(std::process::id()).rotate_left(40));
    let ramp = if options.connect_rate > 0.0 {
        Duration::from_secs_f64(options.connections as f64 / options.connect_rate)
    } else {
        Duration::ZERO
    };
    let ramp_bound = ramp + options.timeout + RAMP_MARGIN;
    let jobs: Vec<String> = (0..c.agents)
        .map(|index| {
            let job = Job {
                run: run.clone(),
                index,
                agents: c.agents,
                connections: part_of(options.connections, c.agents, index),
                args: c.args.clone(),
                expires_us: clock.now_redis_us() + c.join_wait.as_micros() as i64,
                start_by_us: clock.now_redis_us() + (c.join_wait + ramp_bound + RAMP_MARGIN).as_micros() as i64,
            };
            json(&job)
        })
        .collect();
    let mut post = redis::pipe();
    for job in &jobs {
        post.rpush(jobs_key(), job).ignore();
    }
    // A coordinator killed outright leaves no parts behind for long.
    post.expire(jobs_key(), super::KEY_TTL_S).ignore();
    post.query::<()>(&mut con).map_err(redis_failed)?;
    eprintln!(
        "wsreactor load: run {run}: {} connections over {} agents; waiting for them at {at} \
         (each: wsreactor load agent --coordinator {at})",
        options.connections, c.agents
    );
    let mut relay = Coordinator {
        con,
        run,
        jobs,
        clock,
        agents: c.agents,
        stop,
        phase: Phase::Joining {
            until: Instant::now() + c.join_wait,
        },
        joined: vec![None; c.agents],
        ready: vec![None; c.agents],
        results: vec![None; c.agents],
        ramp_bound,
        drain_bound: 2 * options.timeout + options.timeout.max(Duration::from_secs(1)) + RESULTS_MARGIN,
        join_wait: c.join_wait,
        accepted_sent: false,
        stop_sent: false,
    };
    let mut local = options.clone();
    local.progress = false;
    let finished = match run_part(&local, stop, Role::Coordinator(&mut relay)) {
        Ok(f) => f,
        Err(e) => {
            relay.abandon();
            return Err(e);
        }
    };
    relay.forget(true);
    let mut finished = finished;
    let mut agents = Vec::new();
    let mut peak = 0;
    for (outcome, joined) in relay.results.into_iter().zip(relay.joined) {
        let (Some(outcome), Some(joined)) = (outcome, joined) else {
            unreachable!("the relay waits for every agent");
        };
        let who = format!("agent {} ({})", outcome.index, outcome.name);
        let figures = outcome.figures.ok_or_else(|| failed(format!("{who}: no figures")))?;
        let latency_histogram = figures.latency().to_owned();
        let agent_peak = figures.peak_open;
        let stats = figures.stats().map_err(|e| failed(format!("{who}: {e}")))?;
        peak += agent_peak;
        agents.push(agent_report(
            outcome.index,
            outcome.name,
            &joined,
            &clock,
            &stats,
            agent_peak,
            latency_histogram,
            options,
            c.agents,
        ));
        finished.stats.merge(&stats);
    }
    // Each agent's most at once, added: an upper bound of what was open
    // at once (their peaks need not be at the same time).
    finished.peak = peak;
    let mut summary = finished.summary(options);
    summary.agents = agents;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn agent_report(
    index: usize,
    name: String,
    joined: &Joined,
    ours: &Clock,
    stats: &Stats,
    peak_open: usize,
    latency_histogram: String,
    options: &Options,
    agents: usize,
) -> AgentReport {
    AgentReport {
        index,
        name,
        connections: part_of(options.connections, agents, index),
        attempted: stats.attempted,
        opened: stats.opened,
        peak_open,
        received: stats.received,
        sent: stats.sent,
        errors: stats.errors.total(),
        // (Redis - ours) - (Redis - theirs) = theirs - ours.
        clock_offset_us: ours.offset_us - joined.clock.offset_us,
        clock_error_us: (ours.rtt_us + joined.clock.rtt_us) / 2,
        latency_us: Percentiles::of(&stats.latency),
        latency_histogram,
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for every agent to take its part.
    Joining {
        until: Instant,
    },
    /// Waiting for every agent's ramp.
    Ramping {
        until: Instant,
    },
    /// The window was posted (or the run stopped): waiting for results.
    Running {
        until: Option<Instant>,
    },
    Done,
}

/// The coordinator's messages to and from the agents during the run.
struct Coordinator<'a> {
    con: Connection,
    run: String,
    jobs: Vec<String>,
    clock: Clock,
    agents: usize,
    stop: &'a AtomicBool,
    phase: Phase,
    joined: Vec<Option<Joined>>,
    ready: Vec<Option<Ready>>,
    results: Vec<Option<Outcome>>,
    ramp_bound: Duration,
    drain_bound: Duration,
    join_wait: Duration,
    accepted_sent: bool,
    stop_sent: bool,
}

/// Every message waiting in the list `key`, parsed.
fn pop_all<T: serde::de::DeserializeOwned>(con: &mut Connection, key: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    loop {
        let next: Option<String> = con.lpop(key, None).map_err(|e| e.to_string())?;
        let Some(json) = next else {
            return Ok(out);
        };
        out.push(serde_json::from_str(&json).map_err(|e| format!("a message in {key} is not ours: {e}"))?);
    }
}

/// The first agent's part among `results` that failed, as the run's error.
fn failure(results: &[Outcome]) -> Result<(), String> {
    match results.iter().find_map(|o| Some((o, o.error.as_deref()?))) {
        Some((o, why)) => Err(format!("agent {} ({}): {why}", o.index, o.name)),
        None => Ok(()),
    }
}

/// Put each message in its agent's place; true when every place is taken.
fn place<T>(into: &mut [Option<T>], got: Vec<T>, index: impl Fn(&T) -> usize) -> Result<bool, String> {
    for m in got {
        let i = index(&m);
        match into.get_mut(i) {
            Some(slot @ None) => *slot = Some(m),
            Some(Some(_)) => return Err(format!("agent {i} answered twice")),
            None => return Err(format!("an answer from agent {i}, of {}", into.len())),
        }
    }
    Ok(into.iter().all(Option::is_some))
}

impl Coordinator<'_> {
    fn key(&self, what: &str) -> String {
        run_key(&self.run, what)
    }

    /// Set the run's key `what`.
    fn set(&mut self, what: &str, value: &str) -> Result<(), String> {
        let key = self.key(what);
        set(&mut self.con, &key, value).map_err(|e| e.to_string())
    }

    /// Every message waiting in the run's list `what`.
    fn pop_all<T: serde::de::DeserializeOwned>(&mut self, what: &str) -> Result<Vec<T>, String> {
        let key = self.key(what);
        pop_all(&mut self.con, &key)
    }

    /// Take back the parts no agent took; with `all`, the run's keys too.
    fn forget(&mut self, all: bool) {
        for job in &self.jobs {
            let _: RedisResult<i64> = self.con.lrem(jobs_key(), 1, job);
        }
        if all {
            let keys = ["joined", "ready", "start", "accepted", "stop", "results"].map(|w| self.key(w));
            let _: RedisResult<i64> = self.con.del(&keys);
        }
    }

    /// The run failed here: agents stop, parts not taken are withdrawn.
    fn abandon(&mut self) {
        let key = self.key("stop");
        let _ = set(&mut self.con, &key, "1");
        self.forget(false);
    }

    fn step(&mut self, shared: &Shared, now: Instant) -> Result<(), String> {
        if self.stop.load(Relaxed) && !self.stop_sent {
            self.stop_sent = true;
            self.set("stop", "1")?;
            if let Phase::Joining { .. } = self.phase {
                return Err("interrupted before every agent took its part".into());
            }
            if let Phase::Ramping { .. } = self.phase {
                self.phase = Phase::Running { until: None };
            }
        }
        match self.phase {
            Phase::Joining { until } => {
                let got = self.pop_all("joined")?;
                if place(&mut self.joined, got, |j: &Joined| j.index)? {
                    eprintln!("wsreactor load: every agent took its part; they are connecting");
                    self.phase = Phase::Ramping {
                        until: now + self.ramp_bound,
                    };
                } else if now >= until {
                    let n = self.joined.iter().flatten().count();
                    return Err(format!(
                        "{n} of {} agents took their part within {:?}: start them with \
                         wsreactor load agent --coordinator URL",
                        self.agents, self.join_wait
                    ));
                }
            }
            Phase::Ramping { until } => {
                let got = self.pop_all("ready")?;
                if let Some(r) = got.iter().find(|r: &&Ready| r.error.is_some()) {
                    return Err(format!("agent {}: {}", r.index, r.error.as_deref().unwrap_or("")));
                }
                // An agent that failed after its ramp says so in its results.
                let results = self.pop_all("results")?;
                failure(&results)?;
                place(&mut self.results, results, |o: &Outcome| o.index)?;
                if place(&mut self.ready, got, |r: &Ready| r.index)? {
                    let opened: usize = self.ready.iter().flatten().map(|r| r.opened).sum();
                    let start = self.clock.now_redis_us() + START_DELAY.as_micros() as i64;
                    self.set("start", &start.to_string())?;
                    shared.start_at(self.clock.instant_of(start));
                    eprintln!(
                        "wsreactor load: {opened} connections open on the agents; the window starts in {START_DELAY:?}"
                    );
                    self.phase = Phase::Running { until: None };
                } else if now >= until {
                    let n = self.ready.iter().flatten().count();
                    return Err(format!(
                        "{n} of {} agents done connecting within {:?}",
                        self.agents, self.ramp_bound
                    ));
                }
            }
            Phase::Running { until } => {
                if let (false, Some(n)) = (self.accepted_sent, shared.accepted()) {
                    self.accepted_sent = true;
                    self.set("accepted", &n.to_string())?;
                }
                let until = match (until, shared.window()) {
                    (Some(t), _) => Some(t),
                    (None, Some((_, end))) => Some(end.max(now) + self.drain_bound),
                    (None, None) => None,
                };
                self.phase = Phase::Running { until };
                let got = self.pop_all("results")?;
                failure(&got)?;
                if place(&mut self.results, got, |o: &Outcome| o.index)? {
                    self.phase = Phase::Done;
                } else if until.is_some_and(|t| now >= t) {
                    let n = self.results.iter().flatten().count();
                    return Err(format!("{n} of {} agents sent their results in time", self.agents));
                }
            }
            Phase::Done => {}
        }
        Ok(())
    }
}

impl Relay for Coordinator<'_> {
    fn clock_offset_us(&self) -> i64 {
        self.clock.offset_us
    }

    fn tick(&mut self, shared: &Shared, now: Instant) -> Result<(), LoadError> {
        self.step(shared, now).map_err(failed)
    }

    fn waiting(&self) -> bool {
        !matches!(self.phase, Phase::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_add_up_to_the_whole() {
        assert_eq!((0..3).map(|i| part_of(61, 3, i)).collect::<Vec<_>>(), [21, 20, 20]);
        assert_eq!((0..4).map(|i| part_of(10, 4, i)).sum::<usize>(), 10);
    }

    #[test]
    fn a_password_is_not_printed() {
        assert_eq!(redacted("redis://:secret@10.0.0.1:6379"), "redis://10.0.0.1:6379");
        assert_eq!(redacted("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn answers_take_their_agents_places_once() {
        let mut slots: Vec<Option<usize>> = vec![None; 3];
        assert_eq!(place(&mut slots, vec![2, 0], |&i| i), Ok(false));
        assert!(place(&mut slots, vec![2], |&i| i).is_err());
        assert!(place(&mut slots, vec![7], |&i| i).is_err());
        assert_eq!(place(&mut slots, vec![1], |&i| i), Ok(true));
    }

    #[test]
    fn what_cannot_be_spread_is_refused() {
        let c = Coordination {
            url: "redis://127.0.0.1:6379".into(),
            agents: 2,
            join_wait: Duration::from_secs(1),
            args: Vec::new(),
        };
        let o = Options {
            connections: 10,
            ..Options::default()
        };
        assert!(check(&o, &c).is_ok());
        let churn = Options {
            mode: Mode::Churn,
            ..o.clone()
        };
        assert!(check(&churn, &c).is_err());
        let many = Coordination {
            agents: 11,
            ..c.clone()
        };
        assert!(check(&o, &many).is_err());
        let http = Coordination {
            url: "http://x".into(),
            ..c
        };
        assert!(check(&o, &http).is_err());
    }
}
