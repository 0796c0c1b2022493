//! A subscribe on a master's command thread: the member it makes (with
//! presence), the count, the node's subscription, the history read and
//! what came live meanwhile, merged.

use super::connection::{Commands, Failure};
use super::numbering::past_delivered;
use super::presence;
use super::presence::count_events;
use super::scripts::Scripts;
use super::store::{hub_error, snapshot};
use super::{lock, Control, Job, Listeners, Local, SUBSCRIBE_WAIT, UNREACHABLE};
use crate::pubsub::{Address, Answer, HubError, Member, Presence, Subscription, Via};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::Instant;

/// Make the subscriber a member of `channel`'s presence, as `presence`:
/// its client number, or why not (the channel is full, Redis failed).
pub(super) fn join(
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
            local.send_for(channel, leave);
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
/// Count the subscriber, make sure this node listens to the channel, read
/// the history, merge what came live meanwhile, answer. A member (its
/// number and JSON, in Redis already) is this node's to renew once the
/// subscribe succeeds, and leaves again if it fails.
pub(super) fn subscribe(
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
        let _ = lock(&local.shards[commands.shard].control).send(Control::Subscribe(name.clone(), ack));
        acked.recv_timeout(SUBSCRIBE_WAIT).unwrap_or(false)
    };
    // A read changes nothing a second one would not: one that failed on
    // a dead connection is tried once more on a fresh one.
    let attempt = |commands: &mut Commands| match (listening, commands.con.as_mut()) {
        (true, Some(con)) => {
            local.busy_if(main, true);
            let lease = Some((local.node.as_str(), count.0, count.1.as_str()));
            let tables = &local.shards[commands.shard].tables;
            let read = snapshot(con, read, (&local.settings, tables), channel, since, lease);
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
    let read = past_delivered(commands, scripts, local, channel, read, attempt);
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
            // While the subscription connection is down, what this node
            // delivered is where its catch-up starts: a snapshot read
            // meanwhile must not move it past what others missed.
            if local.shards[commands.shard].pubsub_up.load(Relaxed) {
                l.delivered = l.delivered.max(snap.last_id);
            }
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
                local.send_for(channel, leave);
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
            let _ = lock(&local.shards[commands.shard].control).send(Control::Unsubscribe(name));
        }
    }
    // Under the lock: a live message after this is pushed after the answer.
    local.inboxes[from.worker].answer(from, answer);
}
