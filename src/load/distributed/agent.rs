//! `wsreactor load agent`: take a part of a run from the coordinator's
//! Redis, run it with the window the coordinator starts, send the figures
//! back; then the next part, until stopped (or `--runs` parts).
//!
//! Each part done prints one JSON line on stdout, the agent's own view of
//! it (`run`, `index`, `attempted`, `opened`, `received`, `sent`,
//! `errors`, `latency_us`), which the coordinator's report repeats.

use super::results::{Figures, Outcome};
use super::{connect, jobs_key, json, push, run_key, Clock, Job, Joined, Ready};
use crate::load::report::Percentiles;
use crate::load::{run_part, LoadError, Mode, Options, Relay, Role, Shared};
use redis::{Commands, Connection};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

/// How long one wait for a job lasts before the agent looks at Ctrl-C.
const JOB_POLL_S: f64 = 1.0;
/// The longest an agent waits for a window's start: a day, in µs.
const MAX_START_WAIT_US: i64 = 86_400_000_000;

/// What `wsreactor load agent` is asked.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The coordinator's Redis, `redis://HOST:PORT`.
    pub url: String,
    /// This agent's name in the report.
    pub name: String,
    /// Parts to run before exiting; `None`: until stopped.
    pub runs: Option<u64>,
}

/// The agent's own view of one part, printed as a JSON line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    run: &'a str,
    index: usize,
    name: &'a str,
    attempted: u64,
    opened: u64,
    received: u64,
    sent: u64,
    errors: u64,
    latency_us: Percentiles,
}

/// Serve parts until `stop` (or `--runs`); `parse` makes a job's flags
/// into options, as the command line would.
pub fn serve(
    o: &AgentOptions,
    parse: &dyn Fn(&[String]) -> Result<Options, String>,
    stop: &AtomicBool,
) -> Result<(), LoadError> {
    let at = super::coordinator::redacted(&o.url);
    let failed = |e: redis::RedisError| LoadError::Io(std::io::Error::other(format!("--coordinator {at}: {e}")));
    let mut con = connect(&o.url).map_err(failed)?;
    eprintln!("wsreactor load agent {}: waiting for runs at {at}", o.name);
    let mut done = 0;
    while !stop.load(Relaxed) && o.runs.is_none_or(|n| done < n) {
        let next: Option<(String, String)> = con.blpop(jobs_key(), JOB_POLL_S).map_err(failed)?;
        let Some((_, json)) = next else { continue };
        let job: Job = match serde_json::from_str(&json) {
            Ok(job) => job,
            Err(e) => {
                eprintln!("wsreactor load agent: skipped a job that is not ours: {e}");
                continue;
            }
        };
        let clock = Clock::measure(&mut con).map_err(failed)?;
        let now = clock.now_redis_us();
        if job.expires_us < now {
            eprintln!(
                "wsreactor load agent: skipped run {}: its coordinator gave up on it",
                job.run
            );
            continue;
        }
        // A part whose start may come more than a day from now is no part
        // of ours.
        if job.start_by_us.saturating_sub(now) > MAX_START_WAIT_US || job.connections == 0 {
            eprintln!(
                "wsreactor load agent: skipped run {}: its part is not one to run",
                job.run
            );
            continue;
        }
        run_job(&mut con, o, &job, clock, parse, stop).map_err(failed)?;
        done += 1;
    }
    Ok(())
}

/// Options for part `job` of the load `whole`: its share of the
/// connections and of the rates that are totals.
fn share(mut whole: Options, job: &Job) -> Options {
    let part = job.connections as f64 / whole.connections.max(1) as f64;
    whole.connections = job.connections;
    whole.connect_rate *= part;
    if whole.mode == Mode::Echo {
        // Echo mode's rate is over all connections; subscribe mode's is the
        // publisher's, which the coordinator runs.
        whole.rate = whole.rate.map(|r| r * part);
    }
    whole.progress = false;
    whole.metrics_bind = None;
    whole.server_pid = None;
    whole
}

fn run_job(
    con: &mut Connection,
    o: &AgentOptions,
    job: &Job,
    clock: Clock,
    parse: &dyn Fn(&[String]) -> Result<Options, String>,
    stop: &AtomicBool,
) -> redis::RedisResult<()> {
    let key = |what| run_key(&job.run, what);
    let joined = Joined {
        index: job.index,
        name: o.name.clone(),
        clock,
    };
    push(con, &key("joined"), &json(&joined))?;
    eprintln!(
        "wsreactor load agent {}: run {} part {} of {}: {} connections",
        o.name,
        job.run,
        job.index + 1,
        job.agents,
        job.connections
    );
    let fail = |con: &mut Connection, why: String, ready_sent: bool| {
        eprintln!("wsreactor load agent {}: run {}: {why}", o.name, job.run);
        if !ready_sent {
            let ready = Ready {
                index: job.index,
                opened: 0,
                error: Some(why.clone()),
            };
            push(con, &key("ready"), &json(&ready))?;
        }
        let outcome = Outcome {
            index: job.index,
            name: o.name.clone(),
            error: Some(why),
            figures: None,
        };
        push(con, &key("results"), &json(&outcome))
    };
    let options = match parse(&job.args) {
        Ok(whole) => share(whole, job),
        Err(why) => return fail(con, format!("its flags: {why}"), false),
    };
    let mut relay = Agent {
        con,
        run: job.run.clone(),
        index: job.index,
        clock,
        start_by_us: job.start_by_us,
        subscribe: options.mode == Mode::Subscribe,
        ready_at: None,
        started: false,
        accepted: false,
    };
    let finished = run_part(&options, stop, Role::Agent(&mut relay));
    let ready_sent = relay.ready_at.is_some();
    let finished = match finished {
        Ok(f) => f,
        Err(e) => return fail(con, e.to_string(), ready_sent),
    };
    let s = &finished.stats;
    let line = Line {
        run: &job.run,
        index: job.index,
        name: &o.name,
        attempted: s.attempted,
        opened: s.opened,
        received: s.received,
        sent: s.sent,
        errors: s.errors.total(),
        latency_us: Percentiles::of(&s.latency),
    };
    println!("{}", json(&line));
    let outcome = Outcome {
        index: job.index,
        name: o.name.clone(),
        error: None,
        figures: Some(Figures::new(s, finished.peak)),
    };
    push(con, &key("results"), &json(&outcome))
}

/// An agent's messages to and from the coordinator during its part.
struct Agent<'a> {
    con: &'a mut Connection,
    run: String,
    index: usize,
    clock: Clock,
    start_by_us: i64,
    subscribe: bool,
    ready_at: Option<Instant>,
    started: bool,
    accepted: bool,
}

impl Agent<'_> {
    fn step(&mut self, shared: &Shared, now: Instant) -> Result<(), String> {
        let e = |e: redis::RedisError| e.to_string();
        if self.ready_at.is_none() && shared.ramped() {
            let ready = Ready {
                index: self.index,
                opened: shared.opened(),
                error: None,
            };
            push(self.con, &run_key(&self.run, "ready"), &json(&ready)).map_err(e)?;
            self.ready_at = Some(now);
        }
        let keys = ["start", "accepted", "stop"].map(|w| run_key(&self.run, w));
        let (start, accepted, stopped): (Option<i64>, Option<u64>, Option<String>) = redis::pipe()
            .get(&keys[0])
            .get(&keys[1])
            .get(&keys[2])
            .query(self.con)
            .map_err(e)?;
        if stopped.is_some() {
            shared.stop(now);
        }
        match (self.started, start, self.ready_at) {
            (false, Some(us), Some(_)) => {
                self.started = true;
                shared.start_at(self.clock.instant_of(us));
            }
            (false, None, Some(_)) if self.clock.now_redis_us() >= self.start_by_us => {
                return Err("no window start from the coordinator in time".into());
            }
            _ => {}
        }
        if let (true, false, Some(n)) = (self.subscribe, self.accepted, accepted) {
            self.accepted = true;
            shared.published(n);
        }
        Ok(())
    }
}

impl Relay for Agent<'_> {
    fn clock_offset_us(&self) -> i64 {
        self.clock.offset_us
    }

    fn tick(&mut self, shared: &Shared, now: Instant) -> Result<(), LoadError> {
        self.step(shared, now)
            .map_err(|why| LoadError::Io(std::io::Error::other(why)))
    }

    fn waiting(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_has_its_share_of_the_totals() {
        let job = Job {
            run: "r".into(),
            index: 1,
            agents: 4,
            connections: 250,
            args: Vec::new(),
            expires_us: 0,
            start_by_us: 0,
        };
        let echo = Options {
            connections: 1000,
            connect_rate: 400.0,
            rate: Some(2000.0),
            progress: true,
            ..Options::default()
        };
        let part = share(echo.clone(), &job);
        assert_eq!(
            (part.connections, part.connect_rate, part.rate),
            (250, 100.0, Some(500.0))
        );
        assert!(!part.progress);
        // The publish rate is the coordinator's: a subscriber's due times
        // come from it, unchanged.
        let sub = share(
            Options {
                mode: Mode::Subscribe,
                ..echo
            },
            &job,
        );
        assert_eq!(sub.rate, Some(2000.0));
    }
}
