//! The command thread: publishes, subscribes' reads, history reads and the
//! upkeep of this node's channels (leases, subscriber counts), one at a
//! time on one connection to Redis.
//!
//! What a failed call did is told apart, because a publisher acts on it: a
//! call that never reached Redis (no connection, a failed write) did
//! nothing, and is answered `503` (refused) after one more try on a fresh
//! connection; a call that was sent and got no answer (a timeout, a
//! connection dropped after the send) may have run, and a publish is then
//! answered `504` (unconfirmed), never `503`. A connection unused for a
//! while, or whose twin (the subscription connection) just failed, is
//! checked with `PING` before a publish goes on it, so a publish does not
//! meet a connection that died meanwhile (Redis restarted).

use super::presence;
use super::replicas::Awaiting;
use super::scripts;
use super::store::{
    counts_key, hub_error, idempotency_keys, keys, kind_tag, snapshot, CHANNELS, FLOOR, KNOWN, LEASE_MS, SIGNALS,
};
use super::{
    lock, new_epoch, refuse, unix_ms, Control, Job, Listeners, Local, SUBSCRIBE_WAIT, UNREACHABLE,
};
use crate::protocol::MessageKind;
use crate::pubsub::{Address, Answer, HubError, Member, Presence, Receipt, Request, Subscription, Via};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection unused this long is checked (`PING`) before a publish (a
/// Redis that restarted is found sooner, by the subscription connection).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// After a connection could not be made, requests are refused at once
/// (never queued behind connects that wait out their timeout) for this long.
const RETRY_CONNECT: Duration = Duration::from_millis(250);

/// How soon a changed subscriber count is told to Redis.
const RECOUNT: Duration = Duration::from_millis(50);

/// What is known of a call that failed.
enum Failure {
    /// It never reached Redis: nothing was done.
    NotSent(redis::RedisError),
    /// It was sent and no answer came: it may have run.
    NoAnswer(redis::RedisError),
    /// Redis answered with an error: the script did not run (or stopped
    /// with an error of its own, before any write).
    Refused(redis::RedisError),
}

/// The command connection, made again when it fails.
struct Commands {
    con: Option<redis::Connection>,
    /// Connections made so far: `con` is the one numbered so.
    made: u64,
    /// Publishes carried out on `con` and not yet answered: they wait for
    /// `[pubsub] broker_replicas`, together.
    awaiting: Awaiting,
    /// The master's generation `con` was made under ([`super::topology`]):
    /// a connection of an older one is to a server no longer the master.
    generation: u64,
    used: Instant,
    /// No connect is tried before then (one failed).
    next_connect: Instant,
    /// The command connection, whose state `/readyz` and the metrics
    /// report; the server API's read connection touches none of it.
    main: bool,
}

impl Commands {
    /// The connection, made if there is none or it is known to be broken;
    /// with `check`, one unused for [`IDLE_CHECK`] is asked for a `PING`
    /// first and made again if it does not answer.
    fn ready(&mut self, local: &Local, check: bool) -> Result<&mut redis::Connection, redis::RedisError> {
        let main = self.main;
        // Unused for a while, or the subscription connection to the same
        // Redis just failed: a publish must not be the first to find out.
        // The suspicion is the command connection's to take.
        let suspect = main && local.suspect.swap(false, Relaxed);
        let stale = check && (self.used.elapsed() >= IDLE_CHECK || suspect);
        if self.generation != local.target.generation() {
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
            let made = local.target.connect();
            local.busy_if(main, false);
            match made {
                Ok((con, generation)) => {
                    if main {
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
    fn eval(
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
fn evalsha(script: &redis::Script, keys: &[&str]) -> redis::Cmd {
    let mut call = redis::cmd("EVALSHA");
    call.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        call.arg(*key);
    }
    call
}

/// Runs `jobs` in order on one connection; with `upkeep`, also the
/// node's upkeep (leases, subscriber counts, presence renewals): the
/// command thread does, the server API's read thread does not.
pub(super) fn command_thread(
    con: redis::Connection,
    jobs: mpsc::Receiver<Job>,
    local: Arc<Local>,
    upkeep: bool,
) {
    let scripts = Scripts {
        publish: redis::Script::new(&scripts::publish()),
        read: redis::Script::new(&scripts::read()),
        raise: redis::Script::new(&scripts::raise()),
        keep: redis::Script::new(scripts::KEEP),
        count: redis::Script::new(scripts::COUNT),
        state: redis::Script::new(super::query::STATE),
        join: redis::Script::new(&presence::join_script()),
        leave: redis::Script::new(&presence::leave_script()),
        renew: redis::Script::new(&presence::renew_script()),
        members: redis::Script::new(presence::READ),
    };
    let mut commands = Commands {
        con: Some(con),
        made: 0,
        awaiting: Awaiting::default(),
        generation: local.target.generation(),
        used: Instant::now(),
        next_connect: Instant::now(),
        main: upkeep,
    };
    let mut renew = Instant::now();
    let presence_every = local.settings.presence.ttl / 3;
    let mut renew_members = Instant::now() + presence_every;
    loop {
        let mut wait = renew.min(renew_members).saturating_duration_since(Instant::now());
        if !lock(&local.dirty).is_empty() {
            wait = wait.min(RECOUNT);
        }
        if !upkeep {
            match jobs.recv() {
                Ok(job) => run(&mut commands, &scripts, &local, job),
                Err(mpsc::RecvError) => return,
            }
            continue;
        }
        if !commands.awaiting.is_empty() {
            // Publishes wait for the replicas together: one WAIT for all
            // that came while the last was carried out, once no more wait
            // in the queue (or enough of them do).
            match jobs.try_recv() {
                Ok(job) if is_publish(&job) && commands.awaiting.len() < BATCH => {
                    run(&mut commands, &scripts, &local, job);
                    continue;
                }
                Ok(job) => {
                    commands.confirm(&local);
                    run(&mut commands, &scripts, &local, job);
                    continue;
                }
                Err(mpsc::TryRecvError::Empty) => {
                    commands.confirm(&local);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    commands.confirm(&local);
                    return;
                }
            }
        }
        let job = match jobs.recv_timeout(wait) {
            Ok(job) => Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if Instant::now() >= renew {
            keep_channels(&mut commands, &scripts.keep, &local);
            renew = Instant::now() + Duration::from_millis(LEASE_MS / 3);
        }
        if Instant::now() >= renew_members {
            renew_presence(&mut commands, &scripts.renew, &local);
            renew_members = Instant::now() + presence_every;
        }
        if let Some(job) = job {
            run(&mut commands, &scripts, &local, job);
        }
        tell_counts(&mut commands, &scripts.count, &local);
    }
}

/// Publishes that wait for the replicas together at most.
const BATCH: usize = 64;

fn is_publish(job: &Job) -> bool {
    matches!(
        job,
        Job::Request {
            request: Request::Publish { .. },
            ..
        }
    )
}

impl Commands {
    /// Wait for `[pubsub] broker_replicas` to have the publishes
    /// awaiting, and answer them.
    fn confirm(&mut self, local: &Local) {
        let con = self.con.as_mut().filter(|_| self.awaiting.made_on(self.made));
        if !self.awaiting.confirm(local, con) {
            self.con = None;
        }
    }
}

struct Scripts {
    publish: redis::Script,
    read: redis::Script,
    raise: redis::Script,
    keep: redis::Script,
    count: redis::Script,
    state: redis::Script,
    join: redis::Script,
    leave: redis::Script,
    renew: redis::Script,
    members: redis::Script,
}

fn run(commands: &mut Commands, scripts: &Scripts, local: &Local, job: Job) {
    let main = commands.main;
    match job {
        Job::Request {
            from,
            request:
                Request::Publish {
                    channel,
                    kind,
                    payload,
                    idempotency_key,
                },
        } => {
            let publish = Publish {
                channel: &channel,
                kind,
                payload: &payload,
                key: idempotency_key.as_deref(),
            };
            match publish.run(commands, &scripts.publish, local) {
                Ok(receipt) if local.durability.replicas > 0 => {
                    commands.awaiting.add(local, commands.made, from, receipt);
                }
                answer => local.inboxes[from.worker].answer(from, Answer::Published(answer)),
            }
        }
        Job::Request {
            from,
            request:
                Request::Subscribe {
                    channel,
                    since,
                    presence,
                    via,
                },
        } => match commands.ready(local, true) {
            Ok(_) => {
                let member = match presence {
                    Some(presence) => match join(commands, &scripts.join, local, &channel, *presence) {
                        Ok(member) => Some(member),
                        Err(e) => {
                            local.inboxes[from.worker].answer(from, Answer::Subscribed(Err(e)));
                            return;
                        }
                    },
                    None => None,
                };
                subscribe(commands, scripts, local, from, (&channel, since, via), member);
            }
            Err(_) => refuse(local, from, &Request::subscribe(channel, since)),
        },
        Job::Request {
            from,
            request: Request::Query(query),
        } => {
            let found = match commands.ready(local, true) {
                Ok(con) => {
                    local.busy_if(main, true);
                    let found = super::query::query(con, &scripts.state, &scripts.members, &local.settings, &query);
                    local.busy_if(main, false);
                    if matches!(found, Err(HubError::Unavailable(_))) {
                        // A late answer must not be read as the next one's.
                        commands.con = None;
                    }
                    found
                }
                Err(_) => Err(UNREACHABLE),
            };
            local.inboxes[from.worker].answer(from, Answer::Found(found));
        }
        Job::Request {
            from,
            request: Request::Signal(payload),
        } => {
            let sent = match commands.ready(local, true) {
                Ok(con) => {
                    local.busy_if(main, true);
                    let sent: redis::RedisResult<u64> = redis::cmd("PUBLISH").arg(SIGNALS).arg(&*payload).query(con);
                    local.busy_if(main, false);
                    sent.map(drop).map_err(|e| {
                        commands.con = None;
                        hub_error("signal to", "every node", &e)
                    })
                }
                Err(_) => Err(UNREACHABLE),
            };
            local.inboxes[from.worker].answer(from, Answer::Signalled(sent));
        }
        Job::History { channel, since, reply } => {
            let read = match commands.ready(local, true) {
                Ok(con) => {
                    local.busy_if(main, true);
                    let read = snapshot(con, &scripts.read, &local.settings, &channel, since, None);
                    local.busy_if(main, false);
                    if read.is_err() {
                        // A late answer must not be read as the next one's.
                        commands.con = None;
                    }
                    read.map(|(s, _)| s)
                }
                Err(_) => Err(UNREACHABLE),
            };
            let _ = reply.send(read);
        }
        Job::Raise { channel, epoch, floor } => {
            let (meta, _, _) = keys(&channel);
            let mut call = evalsha(&scripts.raise, &[&meta]);
            call.arg(&*epoch).arg(floor).arg(new_epoch());
            if let Err(Failure::NotSent(e) | Failure::NoAnswer(e) | Failure::Refused(e)) =
                commands.eval(local, &scripts.raise, &call, false)
            {
                log::warn!("redis numbering of {channel} after a new epoch: {e}");
            }
        }
        Job::Leave { channel, client } => {
            let s = &local.settings.presence;
            let mut call = presence::call(&scripts.leave, &channel);
            call.arg(&client)
                .arg(s.max_events_per_second)
                .arg(presence::topic(&channel));
            match commands.eval(local, &scripts.leave, &call, false) {
                Ok(value) => count_events(local, value),
                // Its entry expires after the ttl, as a dead node's would.
                Err(Failure::NotSent(e) | Failure::NoAnswer(e) | Failure::Refused(e)) => {
                    log::warn!("redis presence: {client} leaving {channel}: {e}");
                }
            }
        }
        // Done after every job.
        Job::Recount => {}
        Job::Probe => {
            if let Ok(con) = commands.ready(local, false) {
                local.busy_if(main, true);
                let sent: redis::RedisResult<u64> = redis::cmd("PUBLISH").arg(&local.probe_topic).arg(1).query(con);
                local.busy_if(main, false);
                if let Err(e) = sent {
                    log::warn!("redis probe: {e}");
                    commands.con = None;
                }
            }
        }
    }
}

/// One publish and what its answer says.
struct Publish<'a> {
    channel: &'a str,
    kind: MessageKind,
    payload: &'a [u8],
    key: Option<&'a str>,
}

impl Publish<'_> {
    fn run(&self, commands: &mut Commands, script: &redis::Script, local: &Local) -> Result<Receipt, HubError> {
        let started = Instant::now();
        let call = self.call(script, local);
        let c = &local.counters;
        let mut outcome = commands.eval(local, script, &call, true);
        match &outcome {
            // Nothing reached Redis: one more try, on a fresh connection.
            Err(Failure::NotSent(_)) => outcome = commands.eval(local, script, &call, true),
            // Sent, and the connection died before the answer: with a key a
            // second try publishes at most once (the first one's id comes
            // back if it ran). A timeout is not tried again: a Redis that
            // does not answer would only hold the publisher longer.
            Err(Failure::NoAnswer(e)) if self.key.is_some() && !e.is_timeout() => {
                outcome = match commands.eval(local, script, &call, true) {
                    Ok(v) => Ok(v),
                    Err(_) => Err(Failure::NoAnswer(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no answer to the publish or its retry",
                    )))),
                };
            }
            _ => {}
        }
        let answer = match outcome {
            Ok(value) => redis::from_redis_value::<(u64, String, u64, u64)>(value)
                .map(|(id, _epoch, subscribers, duplicate)| Receipt {
                    id,
                    subscribers: subscribers as usize,
                    duplicate: duplicate == 1,
                })
                .map_err(|e| {
                    log::warn!("redis publish to {}: an answer not understood: {e}", self.channel);
                    HubError::Unconfirmed
                }),
            // Refused, or not run by a replica (READONLY, twice: no master
            // was found since): Redis's reason.
            Err(Failure::Refused(e)) => Err(hub_error("publish to", self.channel, &e)),
            Err(Failure::NotSent(e)) if e.code().is_some() => Err(hub_error("publish to", self.channel, &e)),
            Err(Failure::NotSent(e)) => {
                log::warn!("redis publish to {}: not sent: {e}", self.channel);
                Err(UNREACHABLE)
            }
            Err(Failure::NoAnswer(e)) => {
                log::warn!("redis publish to {}: sent, and no answer: {e}", self.channel);
                Err(HubError::Unconfirmed)
            }
        };
        match answer {
            Ok(_) => {
                c.publishes.fetch_add(1, Relaxed);
                c.publish_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
            }
            Err(HubError::TooManyChannels) => {}
            Err(_) => {
                c.publish_errors.fetch_add(1, Relaxed);
            }
        }
        answer
    }

    /// The publish script's call ([`scripts::publish`] lists its keys and arguments).
    fn call(&self, script: &redis::Script, local: &Local) -> redis::Cmd {
        let (meta, stream, topic) = keys(self.channel);
        let (seen, order) = idempotency_keys(self.channel);
        let counts = counts_key(self.channel);
        let known = lock(&local.channels).get(self.channel).map_or(0, |l| l.delivered);
        let s = &local.settings;
        let mut call = evalsha(
            script,
            &[&meta, &stream, CHANNELS, KNOWN, FLOOR, &seen, &order, &counts],
        );
        call.arg(topic)
            .arg(kind_tag(self.kind))
            .arg(self.payload)
            .arg(new_epoch())
            .arg(s.history_size)
            .arg(s.id_memory.as_millis() as u64)
            .arg(s.history_ttl.as_millis().max(1) as u64)
            .arg(unix_ms())
            .arg(known)
            .arg(self.channel)
            .arg(s.max_channels)
            .arg(s.id_memory_channels)
            .arg(self.key.unwrap_or(""))
            .arg(s.idempotency_ttl.as_millis().max(1) as u64)
            .arg(s.idempotency_keys);
        call
    }
}

/// The channels this node has subscribers for go on existing in
/// `wsr:channels` (a lease of [`LEASE_MS`], renewed every third of it),
/// with this node's count of their subscribers.
fn keep_channels(commands: &mut Commands, keep: &redis::Script, local: &Local) {
    let names: Vec<(Arc<str>, u32, String)> = lock(&local.channels)
        .values()
        .map(|l| (l.name.clone(), l.total(), l.by_via(Via::WebSocket)))
        .collect();
    let now = unix_ms();
    for chunk in names.chunks(512) {
        let mut call = evalsha(keep, &[CHANNELS, KNOWN]);
        call.arg(now + LEASE_MS)
            .arg(now + local.settings.id_memory.as_millis() as u64)
            .arg(&local.node)
            .arg(LEASE_MS);
        for (name, count, by_via) in chunk {
            call.arg(&**name).arg(*count).arg(by_via);
        }
        if let Err(Failure::NotSent(e) | Failure::NoAnswer(e) | Failure::Refused(e)) =
            commands.eval(local, keep, &call, false)
        {
            log::warn!("redis renewing this node's channels: {e}");
            return;
        }
    }
}

/// Tell Redis this node's subscriber counts that changed, so that a
/// publish on any node counts them (a receipt's `subscribers`).
fn tell_counts(commands: &mut Commands, count: &redis::Script, local: &Local) {
    let dirty: Vec<Arc<str>> = lock(&local.dirty).drain().collect();
    let now = unix_ms();
    for (i, name) in dirty.iter().enumerate() {
        let (n, by_via) = lock(&local.channels)
            .get(name)
            .map_or((0, String::new()), |l| (l.total(), l.by_via(Via::WebSocket)));
        let counts = counts_key(name);
        let mut call = evalsha(count, &[&counts]);
        call.arg(&local.node)
            .arg(n)
            .arg(now + LEASE_MS)
            .arg(LEASE_MS)
            .arg(by_via);
        if let Err(Failure::NotSent(e) | Failure::NoAnswer(e) | Failure::Refused(e)) =
            commands.eval(local, count, &call, false)
        {
            log::debug!("redis subscriber count of {name}: {e}");
            // Told with the next lease renewal, or the next change.
            lock(&local.dirty).extend(dirty[i..].iter().cloned());
            return;
        }
    }
}

/// The join and leave events a presence script sent and dropped
/// (`{_, sent, dropped}`), counted.
fn count_events(local: &Local, value: redis::Value) {
    if let Ok((_, sent, dropped)) = redis::from_redis_value::<(u64, u64, u64)>(value) {
        local.counters.events_sent.fetch_add(sent, Relaxed);
        local.counters.events_dropped.fetch_add(dropped, Relaxed);
    }
}

/// Make the subscriber a member of `channel`'s presence, as `presence`:
/// its client number, or why not (the channel is full, Redis failed).
fn join(
    commands: &mut Commands,
    script: &redis::Script,
    local: &Local,
    channel: &str,
    presence: Presence,
) -> Result<(u32, String), HubError> {
    // Past 2^32 the numbers wrap: skip 0 and this node's numbers in use.
    let n = loop {
        let n = local.clients.fetch_add(1, Relaxed).wrapping_add(1);
        let in_use = lock(&local.members).get(channel).is_some_and(|m| m.contains_key(&n));
        if n != 0 && !in_use {
            break n;
        }
    };
    let member = Member {
        client: local.client_id(n).into(),
        presence,
    };
    let json = member.json();
    let s = &local.settings.presence;
    let ttl = s.ttl.as_millis() as u64;
    let mut call = presence::call(script, channel);
    call.arg(&*member.client)
        .arg(&json)
        .arg(ttl)
        .arg(s.max_members)
        .arg(s.max_events_per_second)
        .arg(presence::topic(channel));
    let value = match commands.eval(local, script, &call, false) {
        Ok(value) => value,
        Err(Failure::Refused(e)) => return Err(hub_error("presence of", channel, &e)),
        Err(Failure::NotSent(e)) => {
            log::warn!("redis presence of {channel}: {e}");
            return Err(UNREACHABLE);
        }
        // It may have run: the member is taken out again (its leave told,
        // if it joined), so that a refused subscriber is no member.
        Err(Failure::NoAnswer(e)) => {
            log::warn!("redis presence of {channel}: no answer: {e}");
            let leave = Job::Leave {
                channel: channel.into(),
                client: member.client.into(),
            };
            let _ = lock(&local.jobs).send(leave);
            return Err(UNREACHABLE);
        }
    };
    let joined = matches!(redis::from_redis_value::<(u64, u64, u64)>(value.clone()), Ok((1, _, _)));
    count_events(local, value);
    if !joined {
        return Err(HubError::PresenceFull);
    }
    Ok((n, json))
}

/// Renew this node's members in every channel it has some in (and take
/// out the ones whose node stopped renewing, telling their leaves).
fn renew_presence(commands: &mut Commands, script: &redis::Script, local: &Local) {
    // Per channel: (client id, member JSON) of each of this node's members.
    type Members = Vec<(String, String)>;
    let channels: Vec<(Arc<str>, Members)> = lock(&local.members)
        .iter()
        .map(|(name, members)| {
            let list = members
                .iter()
                .map(|(&n, json)| (local.client_id(n), json.clone()))
                .collect();
            (name.clone(), list)
        })
        .collect();
    let s = &local.settings.presence;
    let ttl = s.ttl.as_millis() as u64;
    for (name, members) in channels {
        for chunk in members.chunks(500) {
            let mut call = presence::call(script, &name);
            call.arg(ttl).arg(s.max_events_per_second).arg(presence::topic(&name));
            for (client, json) in chunk {
                call.arg(client).arg(json);
            }
            match commands.eval(local, script, &call, false) {
                Ok(value) => count_events(local, value),
                Err(Failure::NotSent(e) | Failure::NoAnswer(e) | Failure::Refused(e)) => {
                    log::warn!("redis renewing this node's members of {name}: {e}");
                    return;
                }
            }
        }
    }
}

/// Count the subscriber, make sure this node listens to the channel, read
/// the history, merge what came live meanwhile, answer. A member (its
/// number and JSON, in Redis already) is this node's to renew once the
/// subscribe succeeds, and leaves again if it fails.
fn subscribe(
    commands: &mut Commands,
    scripts: &Scripts,
    local: &Local,
    from: Address,
    (channel, since, via): (&str, Option<u64>, Via),
    member: Option<(u32, String)>,
) {
    let read = &scripts.read;
    let main = commands.main;
    let workers = local.inboxes.len();
    let (name, first, count) = {
        let mut channels = lock(&local.channels);
        let mut first = false;
        let l = channels.entry(channel.into()).or_insert_with_key(|name| {
            first = true;
            Listeners {
                name: name.clone(),
                per_worker: vec![0; workers],
                by_via: [0; 3],
                pending: 0,
                buffer: Vec::new(),
                delivered: 0,
                epoch: None,
                idle_since: None,
            }
        });
        // Lingering or in use: the node listens to it already.
        l.idle_since = None;
        l.pending += 1;
        (l.name.clone(), first, (l.total(), l.by_via(via)))
    };
    let listening = !first || {
        let (ack, acked) = mpsc::channel();
        let _ = lock(&local.control).send(Control::Subscribe(name.clone(), ack));
        acked.recv_timeout(SUBSCRIBE_WAIT).unwrap_or(false)
    };
    // A read changes nothing a second one would not: one that failed on
    // a dead connection is tried once more on a fresh one.
    let attempt = |commands: &mut Commands| match (listening, commands.con.as_mut()) {
        (true, Some(con)) => {
            local.busy_if(main, true);
            let lease = Some((local.node.as_str(), count.0, count.1.as_str()));
            let read = snapshot(con, read, &local.settings, channel, since, lease);
            local.busy_if(main, false);
            if matches!(read, Err(HubError::Unavailable(_))) {
                commands.con = None;
            }
            read
        }
        _ => Err(UNREACHABLE),
    };
    let mut read = attempt(commands);
    if listening && matches!(read, Err(HubError::Unavailable(_))) && commands.ready(local, false).is_ok() {
        read = attempt(commands);
    }
    let mut channels = lock(&local.channels);
    let Some(l) = channels.get_mut(&name) else {
        return;
    };
    l.pending -= 1;
    let answer = match read {
        Ok((mut snap, epoch)) => {
            if l.epoch.is_none() && !epoch.is_empty() {
                l.epoch = Some(epoch.into());
            }
            // What arrived live while the history was read: the part after
            // the snapshot joins it (the rest is in it already).
            let after: Vec<_> = l.buffer.iter().filter(|m| m.id > snap.last_id).cloned().collect();
            if let Some(last) = after.last() {
                snap.last_id = last.id;
                // The numbering the subscriber's feed goes on in.
                snap.epoch_start = last.epoch_start;
            }
            snap.replay.extend(after);
            l.delivered = l.delivered.max(snap.last_id);
            l.per_worker[from.worker] += 1;
            l.by_via[via as usize] += 1;
            let sub = match member {
                Some((n, json)) => {
                    lock(&local.members).entry(name.clone()).or_default().insert(n, json);
                    Subscription::member(name.clone(), from.worker, n)
                }
                None => Subscription::new(name.clone(), from.worker),
            }
            .by(via);
            Answer::Subscribed(Ok((sub, snap)))
        }
        Err(e) => {
            // The count Redis was told (if any) had this one in it.
            local.recount(&name);
            if let Some((n, _)) = member {
                let leave = Job::Leave {
                    channel: name.clone(),
                    client: local.client_id(n),
                };
                let _ = lock(&local.jobs).send(leave);
            }
            Answer::Subscribed(Err(e))
        }
    };
    if l.pending == 0 {
        l.buffer.clear();
    }
    if l.total() == 0 {
        if listening {
            l.idle_since = Some(Instant::now());
        } else {
            channels.remove(&name);
            let _ = lock(&local.control).send(Control::Unsubscribe(name));
        }
    }
    // Under the lock: a live message after this is pushed after the answer.
    local.inboxes[from.worker].answer(from, answer);
}
