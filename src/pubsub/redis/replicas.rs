//! `[pubsub] broker_replicas`: a publish is answered only once that many
//! replicas have it (Redis's `WAIT`). Redis replicates asynchronously, so
//! without it a message the master acknowledged and died before passing
//! on is lost in a failover; a sentinel promotes the replica with the most
//! of the master's writes, so one that has it survives.
//!
//! `WAIT` covers every write the connection made before it, so the
//! publishes carried out while the last one was (a queue of them) wait
//! together: one round trip to the replicas for the lot. A `WAIT` on
//! another connection covers none of them: publishes made on a connection
//! that was replaced are answered unconfirmed (`504`).

use super::{Local, IO_TIMEOUT};
use crate::pubsub::{Address, Answer, HubError, Receipt};
use std::sync::atomic::Ordering::Relaxed;

/// Publishes Redis carried out, waiting for the replicas before their answer.
#[derive(Default)]
pub(super) struct Awaiting {
    publishes: Vec<(Address, Receipt)>,
    /// The number of the connection they were made on.
    made: u64,
}

impl Awaiting {
    pub(super) fn is_empty(&self) -> bool {
        self.publishes.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.publishes.len()
    }

    /// They were made on connection number `made`.
    pub(super) fn made_on(&self, made: u64) -> bool {
        self.made == made
    }

    /// A publish carried out on connection number `made`. Those made on
    /// an earlier connection are answered first: no `WAIT` can cover them.
    pub(super) fn add(&mut self, local: &Local, made: u64, from: Address, receipt: Receipt) {
        if !self.publishes.is_empty() && self.made != made {
            self.answer(local, Err(HubError::Unconfirmed));
        }
        self.made = made;
        self.publishes.push((from, receipt));
    }

    /// Wait for the replicas on `con` (the connection the publishes were
    /// made on; `None` if it is gone) and answer every publish. `false`
    /// when the connection failed and is not to be used again.
    pub(super) fn confirm(&mut self, local: &Local, con: Option<&mut redis::Connection>) -> bool {
        if self.publishes.is_empty() {
            return true;
        }
        let (outcome, usable) = match con {
            Some(con) => wait(con, local),
            None => (Err(HubError::Unconfirmed), true),
        };
        self.answer(local, outcome);
        usable
    }

    fn answer(&mut self, local: &Local, outcome: Result<(), HubError>) {
        for (from, receipt) in self.publishes.drain(..) {
            if outcome.is_err() {
                local.counters.publish_errors.fetch_add(1, Relaxed);
            }
            let answer = outcome.map(|()| receipt);
            local.inboxes[from.worker].answer(from, Answer::Published(answer));
        }
    }
}

/// `WAIT replicas timeout` on `con`: whether enough replicas have its
/// writes, and whether the connection may be used again.
fn wait(con: &mut redis::Connection, local: &Local) -> (Result<(), HubError>, bool) {
    let d = local.durability;
    // WAIT answers after its own timeout at the latest: the read waits
    // that long and the usual margin. Not counted as a stalled call
    // (`/readyz`): Redis is answering, its replicas are slow.
    let _ = con.set_read_timeout(Some(d.timeout + IO_TIMEOUT));
    let acked = redis::cmd("WAIT")
        .arg(d.replicas)
        .arg(d.timeout.as_millis().max(1) as u64)
        .query::<u64>(con);
    let _ = con.set_read_timeout(Some(IO_TIMEOUT));
    match acked {
        Ok(n) if n >= u64::from(d.replicas) => (Ok(()), true),
        Ok(n) => {
            log::warn!(
                "redis: {n} replica(s) of the {} [pubsub] broker_replicas asks for had a publish within {:?}",
                d.replicas,
                d.timeout
            );
            let refused = HubError::Unavailable(
                "too few redis replicas confirmed the message within [pubsub] broker_replicas_timeout: \
                 the master has it, and a failover may lose it; retry with the same Idempotency-Key",
            );
            (Err(refused), true)
        }
        Err(e) => {
            // The master failed while it waited: the message may be on a
            // replica or not.
            log::warn!("redis: waiting for replicas: {e}");
            (Err(HubError::Unconfirmed), false)
        }
    }
}
