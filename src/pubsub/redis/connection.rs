//! The connection a command thread (or the server API's reads) speaks
//! to one master on, made again when it fails, and what a failed call did.
//!
//! What a failed call did is told apart, because a publisher acts on it: a
//! call that never reached Redis (no connection, a failed write, a
//! replica's `READONLY`, a cluster's redirection or `CLUSTERDOWN`) did
//! nothing, and is answered `503` (refused) after one more try on a fresh
//! connection; a call that was sent and got no answer (a timeout, a
//! connection dropped after the send) may have run, and a publish is then
//! answered `504` (unconfirmed), never `503`. A connection unused for a
//! while, or whose twin (the subscription connection) just failed, is
//! checked with `PING` before a publish goes on it, so a publish does not
//! meet a connection that died meanwhile (Redis restarted).

use super::nodes::Protocol;
use super::replicas::Awaiting;
use super::Local;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A connection unused this long is checked (`PING`) before a publish (a
/// Redis that restarted is found sooner, by the subscription connection).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// After a connection could not be made, requests are refused at once
/// (never queued behind connects that wait out their timeout) for this long.
const RETRY_CONNECT: Duration = Duration::from_millis(250);

/// What is known of a call that failed.
pub(super) enum Failure {
    /// It never reached Redis: nothing was done.
    NotSent(redis::RedisError),
    /// It was sent and no answer came: it may have run.
    NoAnswer(redis::RedisError),
    /// Redis answered with an error: the script did not run (or stopped
    /// with an error of its own, before any write).
    Refused(redis::RedisError),
}

/// The command connection, made again when it fails.
pub(super) struct Commands {
    pub(super) con: Option<redis::Connection>,
    /// Connections made so far: `con` is the one numbered so.
    pub(super) made: u64,
    /// Publishes carried out on `con` and not yet answered: they wait for
    /// `[pubsub] broker_replicas`, together.
    pub(super) awaiting: Awaiting,
    /// The master's generation `con` was made under ([`super::topology`]):
    /// a connection of an older one is to a server no longer the master.
    pub(super) generation: u64,
    pub(super) used: Instant,
    /// No connect is tried before then (one failed).
    pub(super) next_connect: Instant,
    /// The master's share ([`super::Shard`]) this connection is to.
    pub(super) shard: usize,
    /// `Some(shard)` for the command connection, whose state `/readyz`
    /// and the metrics report; `None` for the server API's reads.
    pub(super) main: Option<usize>,
}

impl Commands {
    /// The connection, made if there is none or it is known to be broken;
    /// with `check`, one unused for [`IDLE_CHECK`] is asked for a `PING`
    /// first and made again if it does not answer.
    pub(super) fn ready(&mut self, local: &Local, check: bool) -> Result<&mut redis::Connection, redis::RedisError> {
        let main = self.main;
        // Unused for a while, or the subscription connection to the same
        // Redis just failed: a publish must not be the first to find out.
        // The suspicion is the command connection's to take.
        let suspect = main.is_some_and(|i| local.shards[i].suspect.swap(false, Relaxed));
        let stale = check && (self.used.elapsed() >= IDLE_CHECK || suspect);
        if self.generation != local.target.generation(self.shard) {
            // A failover: the master is elsewhere now.
            self.con = None;
        }
        if let Some(con) = self.con.as_mut().filter(|c| redis::ConnectionLike::is_open(*c)) {
            if stale {
                local.busy_if(main, true);
                let pong = redis::cmd("PING").query::<String>(con);
                local.busy_if(main, false);
                if pong.is_err() {
                    self.con = None;
                }
            }
        } else {
            self.con = None;
        }
        if self.con.is_none() {
            if Instant::now() < self.next_connect {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "redis is unreachable: connecting again shortly",
                )));
            }
            local.busy_if(main, true);
            let made = local.target.connect_shard(self.shard, Protocol::Replies);
            local.busy_if(main, false);
            match made {
                Ok((con, generation)) => {
                    if main.is_some() {
                        local.counters.reconnects.fetch_add(1, Relaxed);
                    }
                    self.con = Some(con);
                    self.made += 1;
                    self.generation = generation;
                }
                Err(e) => {
                    local.up_if(main, false);
                    self.next_connect = Instant::now() + RETRY_CONNECT;
                    return Err(e);
                }
            }
        }
        local.up_if(main, true);
        self.used = Instant::now();
        Ok(self.con.as_mut().expect("made above"))
    }

    /// Run `script` with the keys and arguments in `call` (an `EVALSHA`
    /// being built), sent and answered separately so that what a failure
    /// did is known.
    pub(super) fn eval(
        &mut self,
        local: &Local,
        script: &redis::Script,
        call: &redis::Cmd,
        check: bool,
    ) -> Result<redis::Value, Failure> {
        let main = self.main;
        let con = self.ready(local, check).map_err(Failure::NotSent)?;
        local.busy_if(main, true);
        let mut answer = send(con, call);
        if matches!(&answer, Err(Failure::Refused(e)) if e.code() == Some("NOSCRIPT")) {
            // Not run: Redis does not know the script yet (or lost it).
            answer = match script.load(con) {
                Ok(_) => send(con, call),
                Err(e) => Err(Failure::NotSent(e)),
            };
        }
        local.busy_if(main, false);
        self.used = Instant::now();
        let answer = match answer {
            // A replica (the master was demoted, a failover under way):
            // the script's first write was refused, so nothing was done.
            // The master is looked for again on the next connection.
            Err(Failure::Refused(e)) if e.code() == Some("READONLY") => Err(Failure::NotSent(e)),
            // A cluster's slot served elsewhere (`MOVED`), or being moved
            // (`ASK`): nothing was done here. The slots are read again, so
            // that the request goes to the master serving it now
            // ([`super::commands`] passes it on); a script cannot follow an
            // `ASK` (its master's tables are not on the other master).
            Err(Failure::Refused(e)) if e.redirect_node().is_some() => {
                local.target.moved();
                Err(Failure::NotSent(e))
            }
            // A cluster that cannot serve the slot now (a failover under
            // way): nothing was done.
            Err(Failure::Refused(e)) if matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN")) => {
                Err(Failure::NotSent(e))
            }
            other => other,
        };
        if let Err(Failure::NotSent(_) | Failure::NoAnswer(_)) = answer {
            // Its state is unknown (a late answer may still come): never reused.
            self.con = None;
            local.up_if(main, false);
        }
        answer
    }
}

fn send(con: &mut redis::Connection, call: &redis::Cmd) -> Result<redis::Value, Failure> {
    con.send_packed_command(&call.get_packed_command())
        .map_err(Failure::NotSent)?;
    let value = con.recv_response().map_err(Failure::NoAnswer)?;
    value.extract_error().map_err(Failure::Refused)
}

/// `EVALSHA` of `script` with `keys`, arguments to be added.
pub(super) fn evalsha(script: &redis::Script, keys: &[&str]) -> redis::Cmd {
    let mut call = redis::cmd("EVALSHA");
    call.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        call.arg(*key);
    }
    call
}

impl Commands {
    pub(super) fn new(shard: usize, con: redis::Connection, main: Option<usize>, generation: u64) -> Commands {
        Commands {
            con: Some(con),
            made: 0,
            awaiting: Awaiting::default(),
            generation,
            used: Instant::now(),
            next_connect: Instant::now(),
            shard,
            main,
        }
    }
}

impl Commands {
    /// Wait for `[pubsub] broker_replicas` to have the publishes
    /// awaiting, and answer them.
    pub(super) fn confirm(&mut self, local: &Local) {
        let con = self.con.as_mut().filter(|_| self.awaiting.made_on(self.made));
        if !self.awaiting.confirm(local, con) {
            self.con = None;
        }
    }
}
