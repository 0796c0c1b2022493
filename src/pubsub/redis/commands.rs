//! The command threads: per master, its channels' publishes, subscribes'
//! reads, history reads and the upkeep of this node's channels (leases,
//! subscriber counts, presence renewals), one at a time on one connection
//! ([`Commands`]); and the server API's reads, on connections of their own.

use super::connection::{evalsha, Commands, Failure};
use super::numbering::{past_delivered, raise};
use super::presence;
use super::presence::count_events;
use super::scripts::Scripts;
use super::store::{counts_key, hub_error, idempotency_keys, keys, kind_tag, snapshot, Tables, LEASE_MS, SIGNALS};
use super::subscribe::{join, subscribe};
use super::{lock, new_epoch, refuse, unix_ms, Job, Local, UNREACHABLE};
use crate::protocol::MessageKind;
use crate::pubsub::{Answer, HubError, Receipt, Request, Via};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How soon a changed subscriber count is told to Redis.
const RECOUNT: Duration = Duration::from_millis(50);
/// Runs the jobs of shard `shard`'s channels in order on one connection
/// to its master, and the node's upkeep of them (leases, subscriber
/// counts, presence renewals).
pub(super) fn command_thread(
    shard: usize,
    (con, generation): (redis::Connection, u64),
    jobs: mpsc::Receiver<Job>,
    local: Arc<Local>,
) {
    let scripts = Scripts::new(local.target.is_cluster());
    let mut commands = Commands::new(shard, con, Some(shard), generation);
    let mut renew = Instant::now();
    let presence_every = local.settings.presence.ttl / 3;
    let mut renew_members = Instant::now() + presence_every;
    loop {
        let mut wait = renew.min(renew_members).saturating_duration_since(Instant::now());
        if !lock(&local.shards[shard].dirty).is_empty() {
            wait = wait.min(RECOUNT);
        }
        let due = Instant::now() >= renew.min(renew_members);
        let job = if commands.awaiting.is_empty() {
            match jobs.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            // Publishes wait for the replicas together: one WAIT for all
            // that came while the last was carried out, once no more wait
            // in the queue (or enough of them do, or the upkeep is due).
            match jobs.try_recv() {
                Ok(job) if is_publish(&job) && commands.awaiting.len() < BATCH && !due => {
                    run(&mut commands, &scripts, &local, job);
                    continue;
                }
                Ok(job) => {
                    commands.confirm(&local);
                    Some(job)
                }
                Err(mpsc::TryRecvError::Empty) => {
                    commands.confirm(&local);
                    None
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    commands.confirm(&local);
                    return;
                }
            }
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

/// The server API's reads, on connections of their own (one per master),
/// so that they never wait behind a flood of subscribes (a crowd joining
/// a presence channel) on the command connections.
pub(super) fn query_thread(cons: Vec<(redis::Connection, u64)>, jobs: mpsc::Receiver<Job>, local: Arc<Local>) {
    let scripts = Scripts::new(local.target.is_cluster());
    let mut shards: Vec<Commands> = cons
        .into_iter()
        .enumerate()
        .map(|(i, (con, generation))| Commands::new(i, con, None, generation))
        .collect();
    while let Ok(job) = jobs.recv() {
        if let Job::Request {
            from,
            request: Request::Query(query),
        } = job
        {
            let mut reads = Reads {
                shards: &mut shards,
                local: &local,
            };
            let found = super::query::query(&mut reads, &scripts.state, &scripts.members, &local.settings, &query);
            local.inboxes[from.worker].answer(from, Answer::Found(found));
        }
    }
}

/// The read connections, one per master, as [`super::query`] asks for them.
struct Reads<'a> {
    shards: &'a mut [Commands],
    local: &'a Local,
}

impl super::query::Shards for Reads<'_> {
    fn count(&self) -> usize {
        self.shards.len()
    }

    fn shard_of(&self, channel: &str) -> Option<usize> {
        self.local.shard_of(channel)
    }

    fn tables(&self, shard: usize) -> &Tables {
        &self.local.shards[shard].tables
    }

    fn con(&mut self, shard: usize) -> Result<&mut redis::Connection, HubError> {
        let commands = self.shards.get_mut(shard).ok_or(UNREACHABLE)?;
        commands.ready(self.local, true).map_err(|_| UNREACHABLE)
    }

    fn failed(&mut self, shard: usize) {
        // A late answer must not be read as the next one's.
        if let Some(commands) = self.shards.get_mut(shard) {
            commands.con = None;
        }
    }
}

/// The shard other than `shard` whose master serves `channel` now, if one
/// does: a cluster's slot moved since the request was queued here.
fn elsewhere(local: &Local, shard: usize, channel: &str) -> Option<usize> {
    local.shard_of(channel).filter(|&s| s != shard)
}

/// Hand a job to shard `to`'s command thread.
fn pass_on(local: &Local, to: usize, job: Job) {
    if let Some(s) = local.shards.get(to) {
        let _ = lock(&s.jobs).send(job);
    }
}

fn run(commands: &mut Commands, scripts: &Scripts, local: &Local, job: Job) {
    let main = commands.main;
    let shard = commands.shard;
    if let Job::Request {
        request: Request::Publish { channel, .. } | Request::Subscribe { channel, .. },
        ..
    } = &job
    {
        if let Some(to) = elsewhere(local, shard, channel) {
            return pass_on(local, to, job);
        }
    }
    match job {
        Job::Request {
            from,
            request: request @ Request::Publish { .. },
        } => {
            let Request::Publish {
                channel,
                kind,
                payload,
                idempotency_key,
            } = &request
            else {
                return;
            };
            let publish = Publish {
                channel,
                kind: *kind,
                payload,
                key: idempotency_key.as_deref(),
            };
            match publish.run(commands, &scripts.publish, local) {
                Ok(receipt) if local.durability.replicas > 0 => {
                    commands.awaiting.add(local, commands.made, from, receipt);
                }
                // Refused, nothing done, because its slot moved to another
                // master (`MOVED`): that master's thread carries it out.
                Err(e @ HubError::Unavailable(_)) => match elsewhere(local, shard, channel) {
                    Some(to) => pass_on(local, to, Job::Request { from, request }),
                    None => local.inboxes[from.worker].answer(from, Answer::Published(Err(e))),
                },
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
        // The query thread's ([`query_thread`]).
        Job::Request {
            from,
            request: Request::Query(_),
        } => local.inboxes[from.worker].answer(from, Answer::Found(Err(UNREACHABLE))),
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
            let attempt = |commands: &mut Commands| match commands.ready(local, true) {
                Ok(con) => {
                    local.busy_if(main, true);
                    let tables = &local.shards[shard].tables;
                    let read = snapshot(con, &scripts.read, (&local.settings, tables), &channel, since, None);
                    local.busy_if(main, false);
                    if read.is_err() {
                        // A late answer must not be read as the next one's.
                        commands.con = None;
                    }
                    read
                }
                Err(_) => Err(UNREACHABLE),
            };
            let read = attempt(commands);
            let read = past_delivered(commands, scripts, local, &channel, read, attempt);
            let _ = reply.send(read.map(|(s, _)| s));
        }
        Job::Raise { channel, epoch, floor } => raise(commands, scripts, local, &channel, &epoch, floor),
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
                let topic = &local.shards[shard].probe_topic;
                let sent: redis::RedisResult<u64> =
                    redis::cmd(local.target.publish_command()).arg(topic).arg(1).query(con);
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
        let call = self.call(script, local, &local.shards[commands.shard].tables);
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
    fn call(&self, script: &redis::Script, local: &Local, tables: &Tables) -> redis::Cmd {
        let (meta, stream, topic) = keys(self.channel);
        let (seen, order) = idempotency_keys(self.channel);
        let counts = counts_key(self.channel);
        let known = lock(&local.channels).get(self.channel).map_or(0, |l| l.delivered);
        let s = &local.settings;
        let mut call = evalsha(script, &[&meta, &stream, &seen, &order, &counts]);
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
            .arg(s.idempotency_keys)
            .arg(&tables.channels)
            .arg(&tables.known)
            .arg(&tables.floor);
        call
    }
}

/// The channels this node has subscribers for go on existing in
/// `wsr:channels` (a lease of [`LEASE_MS`], renewed every third of it),
/// with this node's count of their subscribers.
fn keep_channels(commands: &mut Commands, keep: &redis::Script, local: &Local) {
    let names: Vec<(Arc<str>, u32, String)> = lock(&local.channels)
        .values()
        .filter(|l| local.shard_of(&l.name) == Some(commands.shard))
        .map(|l| (l.name.clone(), l.total(), l.by_via(Via::WebSocket)))
        .collect();
    let now = unix_ms();
    let tables = &local.shards[commands.shard].tables;
    for chunk in names.chunks(512) {
        let mut call = evalsha(keep, &[]);
        call.arg(&tables.channels)
            .arg(&tables.known)
            .arg(now + LEASE_MS)
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
    let shard_dirty = &local.shards[commands.shard].dirty;
    let dirty: Vec<Arc<str>> = lock(shard_dirty).drain().collect();
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
            lock(shard_dirty).extend(dirty[i..].iter().cloned());
            return;
        }
    }
}

/// Renew this node's members in every channel it has some in (and take
/// out the ones whose node stopped renewing, telling their leaves).
fn renew_presence(commands: &mut Commands, script: &redis::Script, local: &Local) {
    // Per channel: (client id, member JSON) of each of this node's members.
    type Members = Vec<(String, String)>;
    let channels: Vec<(Arc<str>, Members)> = lock(&local.members)
        .iter()
        .filter(|(name, _)| local.shard_of(name) == Some(commands.shard))
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
